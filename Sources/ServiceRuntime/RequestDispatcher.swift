import Foundation
import JSONSchema
import Logging
import Postgres
import Wire

/// Turns one MDP request body into one reply body: checks the envelope, the operation, the
/// caller's roles and the input schema, runs the handler, and maps whatever it throws to a typed
/// protocol error. It never logs payloads (they may hold personal data).
/// - Note: `Sendable`; immutable after init.
public struct RequestDispatcher: Sendable {
    private let operations: [String: ServiceOperation]
    private let database: PostgresPool
    private let logger: Logger

    public init(definition: ServiceDefinition, database: PostgresPool, logger: Logger) {
        self.operations = Dictionary(definition.operations.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.database = database
        self.logger = logger
    }

    public func handle(_ body: [Data]) async -> [Data] {
        guard body.count >= 2, body[0] == TsunaguWire.marker else {
            return Self.replyBody(id: "", error: WireError(.badRequest, "this service speaks the Tsunagu envelope (TSUNAGU/1); see docs/protocol.md"))
        }
        let envelope: RequestEnvelope
        do { envelope = try RequestEnvelope.decode(body[1]) } catch {
            return Self.replyBody(id: "", error: error)
        }
        let logger = self.logger
        let requestMetadata: Logger.Metadata = [LogKey.requestID: "\(envelope.id)", LogKey.operation: "\(envelope.op)"]
        do {
            let payload = try await run(envelope, payload: body.count >= 3 ? body[2] : Data(), logger: logger)
            return Self.replyBody(id: envelope.id, payload: payload)
        } catch let error as WireError {
            logger.debug("request failed", metadata: requestMetadata.merging([LogKey.errorCode: "\(error.code.rawValue)"]) { $1 })
            return Self.replyBody(id: envelope.id, error: error)
        } catch let error as PostgresError where error.isConnectivity {
            logger.warning("database unavailable", metadata: requestMetadata.merging(["db.error": "\(error)"]) { $1 })
            return Self.replyBody(id: envelope.id, error: WireError(.unavailable, "the database is unavailable; retry later"))
        } catch let error as PostgresError where error.isUniqueViolation {
            return Self.replyBody(id: envelope.id, error: WireError(.conflict, "a record with the same key exists"))
        } catch is DecodingError {
            return Self.replyBody(id: envelope.id, error: WireError(.invalidInput, "the input does not have the expected shape"))
        } catch {
            // The error's text may hold data; the log line names only its type and is keyed by request id.
            logger.error("handler failed", metadata: requestMetadata.merging(["error.type": "\(type(of: error))", "error": "\(error)"]) { $1 })
            return Self.replyBody(id: envelope.id, error: WireError(.internal, "internal error; quote request id \(envelope.id)"))
        }
    }

    private func run(_ envelope: RequestEnvelope, payload: Data, logger: Logger) async throws -> Data {
        guard envelope.v == TsunaguWire.version else {
            throw WireError(.badRequest, "envelope version \(envelope.v) is not supported (this service speaks \(TsunaguWire.version))")
        }
        guard let operation = operations[envelope.op] else {
            throw WireError(.unknownOperation, "no operation \(envelope.op)",
                            details: .object(["operations": .array(operations.keys.sorted().map { .string($0) })]))
        }
        if let deadline = envelope.deadlineMs, deadline <= 0 {
            throw WireError(.timeout, "the deadline passed before the request was served")
        }
        if !operation.roles.isEmpty {
            guard let principal = envelope.principal else { throw WireError(.unauthorized, "no authenticated caller") }
            guard operation.roles.contains(where: principal.hasRole) else {
                throw WireError(.forbidden, "this operation needs one of the roles \(operation.roles.joined(separator: ", "))")
            }
        }
        let input: JSONValue
        do {
            input = try JSONValue.parse(payload.isEmpty ? Data("{}".utf8) : payload)
        } catch {
            throw WireError(.badRequest, "the body is not valid JSON")
        }
        let violations = operation.inputSchema.violations(of: input)
        if !violations.isEmpty {
            throw WireError.invalidInput("the input breaks the schema of \(envelope.op)", violations: violations)
        }
        let context = RequestContext(requestID: envelope.id, operation: envelope.op, principal: envelope.principal,
                                     idempotencyKey: envelope.idempotencyKey, database: database, baseLogger: logger)
        return try await operation.handler(context, payload.isEmpty ? Data("{}".utf8) : payload, input)
    }

    static func replyBody(id: String, payload: Data) -> [Data] {
        [TsunaguWire.marker, ReplyEnvelope(id: id, status: .ok).encoded(), payload]
    }

    static func replyBody(id: String, error: WireError) -> [Data] {
        [TsunaguWire.marker, ReplyEnvelope.failure(id: id, error).encoded()]
    }
}

import Foundation
import JSONSchema
import Logging
import Postgres
import Wire

/// Turns one MDP request body into one reply body: checks the envelope, the operation, the
/// caller's roles and the input (parsed once; that one value is schema-checked and then decoded
/// for the handler), runs the handler, and turns whatever it throws into a typed protocol error
/// (`ErrorProtocol`: `WireErrorConvertible`, else `internal` plus one log line). It never logs
/// payloads (they may hold personal data).
/// - Note: `Sendable`; immutable after init.
public struct RequestDispatcher: Sendable {
    public struct Limits: Sendable {
        /// The largest reply payload sent; a larger one is answered `too_large`.
        public var maxReplyBytes: Int
        /// How long a keyed write's reply is kept for repeats.
        public var idempotencyRetention: Duration

        public init(maxReplyBytes: Int = 16 << 20, idempotencyRetention: Duration = .seconds(86_400)) {
            self.maxReplyBytes = maxReplyBytes
            self.idempotencyRetention = idempotencyRetention
        }
    }

    private let operations: [String: ServiceOperation]
    private let database: PostgresPool?
    private let logger: Logger
    private let limits: Limits
    let writes: WriteRunner?

    public init(definition: ServiceDefinition, database: PostgresPool?, logger: Logger, limits: Limits = Limits()) {
        self.operations = Dictionary(definition.operations.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.database = database
        self.logger = logger
        self.limits = limits
        self.writes = definition.schema.map { WriteRunner(schema: $0, retention: limits.idempotencyRetention, events: definition.events?.nudge) }
    }

    public func handle(_ body: [Data]) async -> [Data] {
        switch dispatch(body) {
        case .answered(let reply): return reply
        case .needsTask(let request): return await run(request)
        }
    }

    /// What `dispatch` found: the reply (a request refused before its handler, or one of an
    /// `.inline` operation), or a request whose handler runs in a task (`run`).
    public enum Dispatch: Sendable {
        case answered([Data])
        case needsTask(Accepted)
    }

    /// A request for one of the service's operations, read as far as its envelope: the rest of
    /// its checks and its handler run in a task (`run`), in parallel with other requests.
    public struct Accepted: Sendable {
        let envelope: RequestEnvelope
        let operation: ServiceOperation
        let payload: Data
    }

    /// What needs no waiting, on the connection's thread for every request: the envelope and the
    /// operation. For an `.inline` operation, everything else too (roles, deadline, the input
    /// parsed once and checked against the schema, the handler).
    public func dispatch(_ body: [Data]) -> Dispatch {
        guard body.count >= 2, body[0] == TsunaguWire.marker else {
            return .answered(Self.replyBody(id: "", error: WireError(.badRequest, "this service speaks the Tsunagu envelope (TSUNAGU/1); see docs/protocol.md")))
        }
        let envelope: RequestEnvelope
        do { envelope = try RequestEnvelope.decode(body[1]) } catch {
            return .answered(Self.replyBody(id: "", error: error))
        }
        guard body.count <= 3 else {
            return .answered(Self.replyBody(id: envelope.id, error: WireError(.badRequest, "a request body has one payload frame after the envelope")))
        }
        let payload = body.count == 3 ? body[2] : Data()
        do {
            let operation = try operation(for: envelope)
            guard let inline = operation.inlineHandler else {
                return .needsTask(Accepted(envelope: envelope, operation: operation, payload: payload))
            }
            let (context, input) = try prepare(envelope, operation, payload: payload)
            return .answered(reply(envelope) { try inline(context, input) })
        } catch {
            return .answered(Self.replyBody(id: envelope.id, error: wireError(for: error, envelope: envelope)))
        }
    }

    /// Finishes an accepted request's checks, runs its handler and makes its reply.
    public func run(_ request: Accepted) async -> [Data] {
        do {
            let (context, input) = try prepare(request.envelope, request.operation, payload: request.payload)
            let payload = try await request.operation.handler(context, input)
            return reply(request.envelope) { payload }
        } catch {
            return Self.replyBody(id: request.envelope.id, error: wireError(for: error, envelope: request.envelope))
        }
    }

    /// The reply body for what `payload` returns (or throws), refused when it is too large.
    private func reply(_ envelope: RequestEnvelope, _ payload: () throws -> Data) -> [Data] {
        do {
            let payload = try payload()
            guard payload.count <= limits.maxReplyBytes else {
                throw WireError(.tooLarge, "the reply would have \(payload.count) bytes; this service sends at most \(limits.maxReplyBytes): ask for less (a smaller page)")
            }
            return Self.replyBody(id: envelope.id, payload: payload)
        } catch {
            return Self.replyBody(id: envelope.id, error: wireError(for: error, envelope: envelope))
        }
    }

    /// The reply for a request the instance cannot take now (it runs as many as it announced).
    public static func overloaded(_ body: [Data]) -> [Data] {
        let id = body.count >= 2 ? ((try? RequestEnvelope.decode(body[1]))?.id ?? "") : ""
        return replyBody(id: id, error: WireError(.unavailable, "this instance is running as many requests as it announced; retry"))
    }

    private func wireError(for error: any Error, envelope: RequestEnvelope) -> WireError {
        ErrorProtocol.wireError(for: error, requestID: envelope.id, operation: envelope.op, logger: logger)
    }

    private func operation(for envelope: RequestEnvelope) throws(WireError) -> ServiceOperation {
        guard envelope.v == TsunaguWire.version else {
            throw WireError(.badRequest, "envelope version \(envelope.v) is not supported (this service speaks \(TsunaguWire.version))")
        }
        guard let operation = operations[envelope.op] else {
            throw WireError(.unknownOperation, "no operation \(envelope.op)",
                            details: .object(["operations": .array(operations.keys.sorted().map { .string($0) })]))
        }
        return operation
    }

    /// The deadline and roles checked, the input parsed once and checked against the schema.
    private func prepare(_ envelope: RequestEnvelope, _ operation: ServiceOperation,
                         payload: Data) throws -> (RequestContext, JSONValue) {
        if let deadline = envelope.deadlineMs, deadline <= 0 {
            throw WireError(.timeout, "the deadline passed before the request was served")
        }
        let received = ContinuousClock.now
        if !operation.roles.isEmpty {
            guard let principal = envelope.principal else { throw WireError(.unauthorized, "no authenticated caller") }
            try principal.requireOneOf(operation.roles, for: envelope.op)
        }
        let input = try operation.inputSchema.checkedInput(payload, operation: envelope.op)
        let context = RequestContext(
            requestID: envelope.id, operation: envelope.op, principal: envelope.principal,
            idempotencyKey: envelope.idempotencyKey,
            deadline: envelope.deadlineMs.map { received + .milliseconds($0) },
            pool: database, baseLogger: logger,
            canonicalInput: { String(decoding: input.serialized(), as: UTF8.self) },
            writes: writes)
        return (context, input)
    }

    static func replyBody(id: String, payload: Data) -> [Data] {
        [TsunaguWire.marker, ReplyEnvelope(id: id, status: .ok).encoded(), payload]
    }

    static func replyBody(id: String, error: WireError) -> [Data] {
        [TsunaguWire.marker, ReplyEnvelope.failure(id: id, error).encoded()]
    }
}

import Foundation
import JSONSchema
import Logging
import Postgres
import Wire

/// Everything a service declares: its name, version, database schema and migrations, operations.
public struct ServiceDefinition: Sendable {
    public let name: String
    public let version: String
    /// The PostgreSQL schema the service owns; its migrations run there before any message is taken.
    public let schema: String
    public let migrations: [PostgresMigration]
    public let operations: [ServiceOperation]
    /// The service's event outbox; when set, its events are pushed to the gateway for fan-out.
    public let events: EventOutbox?

    public init(name: String, version: String, schema: String, migrations: [PostgresMigration],
                operations: [ServiceOperation], events: EventOutbox? = nil) {
        self.events = events
        self.name = name
        self.version = version
        self.schema = schema
        self.migrations = migrations
        self.operations = operations
    }

    public func manifest(concurrency: Int) -> Manifest {
        Manifest(service: name, version: version, concurrency: concurrency, operations: operations.map {
            Manifest.Operation(name: $0.name, summary: $0.summary, input: $0.inputSchema.json, roles: $0.roles)
        })
    }
}

/// What a handler knows about the request it serves.
public struct RequestContext: Sendable {
    public let requestID: String
    public let operation: String
    /// Set by the gateway; nil only for requests that reached the worker without one (never through the gateway).
    public let principal: Principal?
    public let idempotencyKey: String?
    public let database: PostgresPool
    let baseLogger: Logger

    /// The service's logger with this request's id and operation as metadata (made on first use:
    /// most requests log nothing, and setting metadata costs a copy).
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: LogKey.requestID] = "\(requestID)"
        logger[metadataKey: LogKey.operation] = "\(operation)"
        return logger
    }

    /// The principal, or `unauthorized` when there is none.
    public func requirePrincipal() throws(WireError) -> Principal {
        guard let principal else { throw WireError(.unauthorized, "this operation needs an authenticated caller") }
        return principal
    }
}

/// One operation: its input schema (checked before the handler runs) and its handler.
public struct ServiceOperation: Sendable {
    public let name: String
    public let summary: String
    public let inputSchema: JSONSchema
    /// Roles of which the caller needs one; empty admits any authenticated caller.
    public let roles: [String]
    /// Gets the payload both as bytes and as the JSONValue already parsed for validation.
    let handler: @Sendable (RequestContext, Data, JSONValue) async throws -> Data

    /// An operation whose input and output are Codable types. `schema` is JSON Schema text
    /// describing `Input`; the runtime validates the payload against it before decoding.
    public init<Input: Decodable & Sendable, Output: Encodable & Sendable>(
        _ name: String,
        summary: String,
        schema: String,
        roles: [String] = [],
        input: Input.Type = Input.self,
        handler: @escaping @Sendable (RequestContext, Input) async throws -> Output
    ) throws(JSONSchemaError) {
        self.name = name
        self.summary = summary
        self.inputSchema = try JSONSchema(jsonText: schema)
        self.roles = roles
        self.handler = { context, payload, parsed in
            // JSONValue in or out skips Codable: the value is already parsed, and its own writer
            // is several times faster than JSONEncoder on nested enums.
            let input: Input
            if let value = parsed as? Input {
                input = value
            } else {
                input = try SharedCoders.decoder.decode(Input.self, from: payload)
            }
            let output = try await handler(context, input)
            if let value = output as? JSONValue { return value.serialized() }
            if let raw = output as? RawJSON { return Data(raw.text.utf8) }
            return try SharedCoders.encoder.encode(output)
        }
    }
}

/// One decoder and encoder for all handlers: Foundation's coders are Sendable and keep no
/// per-call state, and making them anew on every request shows in the benchmark.
enum SharedCoders {
    static let decoder = JSONDecoder()
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()
}

/// JSON text a handler already has in final form (typically built by PostgreSQL with
/// `jsonb_build_object`): the runtime sends it as it is, without parsing or re-encoding.
/// Only for text from trusted code; it is not checked.
public struct RawJSON: Encodable, Sendable {
    public let text: String

    public init(text: String) { self.text = text }

    /// Slow path for a caller that encodes it with Codable anyway.
    public func encode(to encoder: Encoder) throws {
        try JSONValue.parse(Data(text.utf8)).encode(to: encoder)
    }
}

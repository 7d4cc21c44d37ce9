import Foundation
import JSONSchema
import Logging
import Postgres
import Wire

/// Everything a service declares: its name, version, database schema and migrations, operations.
public struct ServiceDefinition: Sendable {
    public let name: String
    public let version: String
    /// The PostgreSQL schema the service owns; its migrations run there before any message is
    /// taken. Nil for a service without a database (it may have read operations only).
    public let schema: String?
    public let migrations: [PostgresMigration]
    public let operations: [ServiceOperation]
    /// The service's event stream (named after the service, in its schema); when set, the
    /// runtime makes its tables, numbers its events and pushes them to the gateway for fan-out.
    public let events: EventStream?
    /// The service's own background work, run while it serves (`ServiceBackgroundWork`).
    public var backgroundWork: [ServiceBackgroundWork] = []

    public init(name: String, version: String, schema: String, migrations: [PostgresMigration],
                operations: [ServiceOperation], events: EventStream? = nil) {
        self.init(name: name, version: version, schema: schema as String?, migrations: migrations, operations: operations, events: events)
    }

    /// A service without a database: no pool, no migrations; read operations only.
    public init(name: String, version: String, operations: [ServiceOperation]) {
        self.init(name: name, version: version, schema: nil, migrations: [], operations: operations, events: nil)
    }

    private init(name: String, version: String, schema: String?, migrations: [PostgresMigration],
                 operations: [ServiceOperation], events: EventStream?) {
        self.events = events
        self.name = name
        self.version = version
        self.schema = schema
        self.migrations = migrations
        self.operations = operations
    }

    /// Every place, in every operation's input schema, that admits a value of unbounded size.
    /// A service with any does not start (`ServiceRunner`): bounds are what keep a hostile
    /// number from trapping a handler's arithmetic and a hostile string out of the database.
    public func unboundedInputs() -> [String] {
        operations.flatMap { operation in operation.inputSchema.unboundedPlaces().map { "\(operation.name) \($0)" } }
    }

    public func manifest(concurrency: Int) -> Manifest {
        Manifest(service: name, version: version, concurrency: concurrency, operations: operations.map {
            Manifest.Operation(name: $0.name, summary: $0.summary, input: $0.inputSchema.json, roles: $0.roles,
                               readOnly: $0.kind == .read)
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
    /// When the caller stops waiting (from the envelope's `deadline_ms`, counted from arrival).
    public let deadline: ContinuousClock.Instant?
    let pool: PostgresPool?
    let baseLogger: Logger
    /// The request's payload in canonical form (sorted keys): what an idempotency key is bound to.
    let canonicalInput: @Sendable () -> String
    let writes: WriteRunner?

    /// The service's connection pool; `internal` error for a service defined without a database.
    public var database: PostgresPool {
        get throws(WireError) {
            guard let pool else { throw WireError(.internal, "this service has no database") }
            return pool
        }
    }

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
///
/// Make it with `.read` (changes nothing: the gateway may send it to another instance when one
/// dies) or `.write` (runs in one transaction that the runtime opens; a retry with the same
/// idempotency key gets the stored reply instead of a second effect). Input schemas must bound
/// every string, number and array (`JSONSchema.unboundedPlaces()`), or the service does not start.
public struct ServiceOperation: Sendable {
    public enum Kind: String, Sendable { case read, write }

    public let name: String
    public let summary: String
    public let inputSchema: JSONSchema
    /// Roles of which the caller needs one; empty admits any authenticated caller.
    public let roles: [String]
    public let kind: Kind
    /// Gets the payload parsed once and already checked against `inputSchema`; returns the reply payload.
    let handler: @Sendable (RequestContext, JSONValue) async throws -> Data
    /// Set for `.inline` operations: the same handler, run on the connection's thread.
    let inlineHandler: (@Sendable (RequestContext, JSONValue) throws -> Data)?

    private init(name: String, summary: String, schema: String, roles: [String], kind: Kind,
                 inlineHandler: (@Sendable (RequestContext, JSONValue) throws -> Data)? = nil,
                 handler: @escaping @Sendable (RequestContext, JSONValue) async throws -> Data) throws(JSONSchemaError) {
        let inputSchema = try JSONSchema(jsonText: schema)
        self.name = name
        self.summary = summary
        self.inputSchema = inputSchema
        self.roles = roles
        self.kind = kind
        self.handler = handler
        self.inlineHandler = inlineHandler
    }

    /// An operation that only reads. `schema` is JSON Schema text describing `Input`.
    public static func read<Input: Decodable & Sendable, Output: Encodable & Sendable>(
        _ name: String,
        summary: String,
        schema: String,
        roles: [String] = [],
        input: Input.Type = Input.self,
        handler: @escaping @Sendable (RequestContext, Input) async throws -> Output
    ) throws(JSONSchemaError) -> ServiceOperation {
        try ServiceOperation(name: name, summary: summary, schema: schema, roles: roles, kind: .read) { context, value in
            let input = try JSONValueDecoder().decode(Input.self, from: value)
            return try OutputCoding.encode(try await handler(context, input))
        }
    }

    /// A read answered on the instance's connection thread as soon as it arrives, with no task:
    /// for handlers that compute from their input and memory alone (no database, nothing that
    /// waits, nothing slow: the thread serves every other request too). The gateway sees a read.
    public static func inline<Input: Decodable & Sendable, Output: Encodable & Sendable>(
        _ name: String,
        summary: String,
        schema: String,
        roles: [String] = [],
        input: Input.Type = Input.self,
        handler: @escaping @Sendable (RequestContext, Input) throws -> Output
    ) throws(JSONSchemaError) -> ServiceOperation {
        let run: @Sendable (RequestContext, JSONValue) throws -> Data = { context, value in
            try OutputCoding.encode(try handler(context, try JSONValueDecoder().decode(Input.self, from: value)))
        }
        return try ServiceOperation(name: name, summary: summary, schema: schema, roles: roles, kind: .read, inlineHandler: run) {
            try run($0, $1)
        }
    }

    /// An operation that changes state. The handler runs on a pool connection inside a transaction
    /// the runtime opens (with a statement timeout from the request's deadline), and the reply is
    /// committed with the change: with an idempotency key, a repeat returns the stored reply, the
    /// same key with another payload is `conflict`, and work still running at the deadline rolls back.
    public static func write<Input: Decodable & Sendable, Output: Encodable & Sendable>(
        _ name: String,
        summary: String,
        schema: String,
        roles: [String] = [],
        input: Input.Type = Input.self,
        handler: @escaping @Sendable (RequestContext, Input, PostgresConnection) throws -> Output
    ) throws(JSONSchemaError) -> ServiceOperation {
        try ServiceOperation(name: name, summary: summary, schema: schema, roles: roles, kind: .write) { context, value in
            let input = try JSONValueDecoder().decode(Input.self, from: value)
            guard let writes = context.writes else { throw WireError(.internal, "this service has no database") }
            return try await writes.run(context) { tx in try OutputCoding.encode(try handler(context, input, tx)) }
        }
    }
}

/// A handler's output as reply bytes: RawJSON as it is (final text), anything else through
/// `JSONValueEncoder` and JSONValue's own writer, several times cheaper than `JSONEncoder`.
enum OutputCoding {
    static func encode<Output: Encodable>(_ output: Output) throws -> Data {
        if let raw = output as? RawJSON { return Data(raw.text.utf8) }
        return try JSONValueEncoder().encode(output).serialized()
    }
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

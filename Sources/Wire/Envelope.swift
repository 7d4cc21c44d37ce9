import Foundation
import JSONSchema

/// Who is calling, as established by the gateway. Only the gateway sets it; workers trust it
/// because only the gateway can reach them on the worker endpoint.
public struct Principal: Sendable, Codable, Equatable {
    public let tenant: String
    public let roles: [String]
    /// Id of the token used (never the token itself), for audit.
    public let tokenID: String?
    /// The events this caller may see, when its token says so; nil means the default rule
    /// (`eventPermissions`).
    public let events: EventPermissions?

    public init(tenant: String, roles: [String], tokenID: String?, events: EventPermissions? = nil) {
        self.tenant = tenant
        self.roles = roles
        self.tokenID = tokenID
        self.events = events
    }

    public func hasRole(_ role: String) -> Bool { roles.contains(role) }

    enum CodingKeys: String, CodingKey {
        case tenant, roles, events
        case tokenID = "token_id"
    }
}

/// The request envelope: the frame after `TSUNAGU/1` in a request body.
/// A client sends `token`; the gateway removes it and sets `principal` before forwarding.
public struct RequestEnvelope: Sendable, Codable, Equatable {
    /// Envelope version; must equal `TsunaguWire.version`.
    public var v: Int
    /// The operation within the service, e.g. "area.get".
    public var op: String
    /// Caller-chosen id, echoed in the reply and used in every log line about the request.
    public var id: String
    /// Milliseconds the caller will wait from now; the gateway and worker give up after it.
    public var deadlineMs: Int?
    /// Retries of a state-changing command with the same key are applied once.
    public var idempotencyKey: String?
    /// Bearer token (client to gateway only).
    public var token: String?
    /// The authenticated caller (gateway to worker only).
    public var principal: Principal?

    public init(op: String, id: String, deadlineMs: Int? = nil, idempotencyKey: String? = nil,
                token: String? = nil, principal: Principal? = nil) {
        self.v = TsunaguWire.version
        self.op = op
        self.id = id
        self.deadlineMs = deadlineMs
        self.idempotencyKey = idempotencyKey
        self.token = token
        self.principal = principal
    }

    enum CodingKeys: String, CodingKey {
        case v, op, id, token, principal
        case deadlineMs = "deadline_ms"
        case idempotencyKey = "idempotency_key"
    }
}

/// The reply envelope: the frame after `TSUNAGU/1` in a reply body; the payload frame follows
/// when `status` is "ok".
public struct ReplyEnvelope: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable { case ok, error }

    public var v: Int
    public var id: String
    public var status: Status
    public var error: WireError?

    public init(id: String, status: Status, error: WireError? = nil) {
        self.v = TsunaguWire.version
        self.id = id
        self.status = status
        self.error = error
    }

    public static func failure(id: String, _ error: WireError) -> ReplyEnvelope {
        ReplyEnvelope(id: id, status: .error, error: error)
    }
}

/// What a worker announces after READY: the service's version and operations.
public struct Manifest: Sendable, Codable, Equatable {
    public struct Operation: Sendable, Codable, Equatable {
        public let name: String
        public let summary: String
        /// JSON Schema of the operation's input payload.
        public let input: JSONValue
        /// Roles of which the caller needs one; empty means any authenticated caller.
        public let roles: [String]
        /// True when the operation changes nothing: the gateway may send it again to another
        /// instance when the first dies. Absent means false (a write).
        public let readOnly: Bool?

        public init(name: String, summary: String, input: JSONValue, roles: [String] = [], readOnly: Bool? = nil) {
            self.name = name
            self.summary = summary
            self.input = input
            self.roles = roles
            self.readOnly = readOnly
        }

        enum CodingKeys: String, CodingKey {
            case name, summary, input, roles
            case readOnly = "read_only"
        }
    }

    public var v: Int
    public let service: String
    public let version: String
    /// Requests this instance runs at once; the gateway sends it no more than that.
    public let concurrency: Int
    public let operations: [Operation]

    public init(service: String, version: String, concurrency: Int, operations: [Operation]) {
        self.v = TsunaguWire.version
        self.service = service
        self.version = version
        self.concurrency = concurrency
        self.operations = operations
    }
}

/// Shared coders with the settings the wire uses (sorted keys keep frames stable for tests and logs).
public enum WireCoding {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static func decoder() -> JSONDecoder { JSONDecoder() }
}

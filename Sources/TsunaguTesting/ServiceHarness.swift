import Foundation
import JSONSchema
import Logging
import Postgres
import ServiceRuntime
import Wire

/// A service's operations driven in process, with no socket and no gateway: each call goes
/// through the same dispatcher a running instance uses (envelope, roles, one parse, schema,
/// NUL check, handler, error mapping), with the principal the test chooses.
public struct ServiceHarness: Sendable {
    public let dispatcher: RequestDispatcher

    public init(_ definition: ServiceDefinition, database: PostgresPool? = nil, logger: Logger,
                limits: RequestDispatcher.Limits = .init()) {
        dispatcher = RequestDispatcher(definition: definition, database: database, logger: logger, limits: limits)
    }

    /// A principal of `tenant` with `roles`, as the gateway would set it.
    public static func principal(_ tenant: String = TsunaguWire.nationalTenant, roles: [String] = ["admin"]) -> Principal {
        Principal(tenant: tenant, roles: roles, tokenID: "tok_test")
    }

    /// Calls `operation` with `payload` (JSON text) and returns the reply envelope and payload.
    public func call(_ operation: String, _ payload: String = "{}", principal: Principal? = ServiceHarness.principal(),
                     idempotencyKey: String? = nil, deadlineMs: Int? = nil) async throws -> (ReplyEnvelope, JSONValue?) {
        let envelope = RequestEnvelope(op: operation, id: UUID().uuidString, deadlineMs: deadlineMs,
                                       idempotencyKey: idempotencyKey, principal: principal)
        let reply = await dispatcher.handle([TsunaguWire.marker, envelope.encoded(), Data(payload.utf8)])
        let decoded = try WireCoding.decoder().decode(ReplyEnvelope.self, from: reply[1])
        return (decoded, reply.count > 2 ? try JSONValue.parse(reply[2]) : nil)
    }
}

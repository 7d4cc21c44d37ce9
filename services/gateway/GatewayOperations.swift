import Foundation
import JSONSchema
import ServiceRuntime
import Wire

/// The gateway's own service, `tsunagu.gateway`: the service catalogue and token administration.
/// Runs on the broker's loop thread; database work goes to a task that posts its reply back.
struct GatewayOperations {
    private unowned let broker: Broker
    private let tokens: TokenStore
    private let operations: [String: (summary: String, roles: [String], schema: JSONSchema)]

    static let roleName = #"^[a-z][a-z0-9_.-]{0,63}$"#
    static let tenantCode = #"^[a-z0-9][a-z0-9_.-]{0,63}$"#

    init(broker: Broker, tokens: TokenStore) {
        self.broker = broker
        self.tokens = tokens
        // Schemas are constants written here; a typo or a missing bound is a programmer error
        // caught by the first test run.
        func schema(_ text: String) -> JSONSchema {
            do {
                let schema = try JSONSchema(jsonText: text)
                precondition(schema.unboundedPlaces().isEmpty, "unbounded built-in schema: \(schema.unboundedPlaces())")
                return schema
            } catch { preconditionFailure("bad built-in schema: \(error.message)") }
        }
        let empty = schema(#"{"type":"object","additionalProperties":false}"#)
        operations = [
            "services.list": ("List services, their live instances and manifests.", [], empty),
            "tokens.create": ("Create a bearer token for a tenant with roles; the token is shown only in this reply.", ["admin"], schema("""
                {"type":"object","additionalProperties":false,"required":["tenant","roles"],
                 "properties":{"tenant":{"type":"string","pattern":"\(Self.tenantCode)","maxLength":64},
                               "roles":{"type":"array","maxItems":16,"items":{"type":"string","pattern":"\(Self.roleName)","maxLength":64}},
                               "label":{"type":"string","maxLength":200},
                               "events":{"type":"object","additionalProperties":false,"required":["tenants"],
                                         "properties":{
                                           "tenants":{"type":"array","minItems":1,"maxItems":64,
                                                      "items":{"type":"string","pattern":"^([*]|[a-z0-9][a-z0-9_.-]{0,63})$","maxLength":64}},
                                           "types":{"type":"array","maxItems":32,
                                                    "items":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,200}$","maxLength":200}}}}}}
                """)),
            "service_tokens.create": ("Create a service credential: it lets a process register as this service and push its events; shown only in this reply.", ["admin"], schema("""
                {"type":"object","additionalProperties":false,"required":["service"],
                 "properties":{"service":{"type":"string","pattern":"^[a-z][a-z0-9_.-]{0,63}$","maxLength":64},
                               "label":{"type":"string","maxLength":200}}}
                """)),
            "tokens.revoke": ("Revoke a token by id; it stops working at once on this gateway.", ["admin"], schema("""
                {"type":"object","additionalProperties":false,"required":["id"],"properties":{"id":{"type":"string","minLength":1,"maxLength":100}}}
                """)),
            "tokens.list": ("List tokens (ids, tenants, roles; never the tokens).", ["admin"], empty),
        ]
    }

    var manifestOperations: [Manifest.Operation] {
        operations.keys.sorted().map { name in
            let op = operations[name]!
            return Manifest.Operation(name: name, summary: op.summary, input: op.schema.json, roles: op.roles)
        }
    }

    func handle(identity: Data, envelope: RequestEnvelope, payload: Data, principal: Principal) {
        let service = TsunaguWire.gatewayService
        let id = envelope.id
        guard let operation = operations[envelope.op] else {
            broker.replyError(to: identity, service: service, requestID: id,
                              WireError(.unknownOperation, "\(service) has no operation \(envelope.op)",
                                        details: .object(["operations": .array(operations.keys.sorted().map { .string($0) })])))
            return
        }
        let input: JSONValue
        do {
            try principal.requireOneOf(operation.roles, for: envelope.op)
            input = try operation.schema.checkedInput(payload, operation: envelope.op)
        } catch {
            broker.replyError(to: identity, service: service, requestID: id, error)
            return
        }

        // A national admin administers every tenant's tokens; another tenant's admin only its own.
        let scope: String? = principal.isNationalAdmin ? nil : principal.tenant
        switch envelope.op {
        case "services.list":
            broker.replyOK(to: identity, service: TsunaguWire.gatewayService, requestID: id,
                           catalogue(showInstanceIDs: principal.hasRole("admin")))
        case "tokens.create":
            let tenant = input["tenant"]?.stringValue ?? ""
            let roles: [String] = if case .array(let items)? = input["roles"] { items.compactMap(\.stringValue) } else { [] }
            let label = input["label"]?.stringValue ?? ""
            if let scope, tenant != scope {
                broker.replyError(to: identity, service: service, requestID: id,
                                  WireError(.forbidden, "an admin of tenant \(scope) makes tokens for \(scope) only"))
                return
            }
            let events = input["events"].map(Self.eventPermissions)
            // A national admin grants any tenants' events; another admin only its own tenant's.
            if let scope, let events, events.tenants != [scope] {
                broker.replyError(to: identity, service: service, requestID: id,
                                  WireError(.forbidden, "an admin of tenant \(scope) grants the events of tenant \(scope) only"))
                return
            }
            runAsync(identity: identity, envelope: envelope, after: { broker in broker.tokenCreated() }) { tokens in
                try await tokens.issue(tenant: tenant, roles: roles, label: label, events: events)
            }
        case "service_tokens.create":
            guard scope == nil else {
                broker.replyError(to: identity, service: service, requestID: id,
                                  WireError(.forbidden, "only a national admin issues service credentials"))
                return
            }
            let name = input["service"]?.stringValue ?? ""
            let label = input["label"]?.stringValue ?? ""
            runAsync(identity: identity, envelope: envelope, after: { broker in broker.tokenCreated() }) { tokens in
                try await tokens.issueService(name, label: label)
            }
        case "tokens.revoke":
            let tokenID = input["id"]?.stringValue ?? ""
            runAsync(identity: identity, envelope: envelope, after: { broker in broker.forgetToken(id: tokenID) }) { tokens in
                guard try await tokens.revoke(id: tokenID, tenant: scope) else { throw WireError(.notFound, "no token \(tokenID)") }
                return ["id": tokenID, "revoked": "true"]
            }
        case "tokens.list":
            runAsync(identity: identity, envelope: envelope) { tokens in ["tokens": try await tokens.list(tenant: scope)] }
        default:
            broker.replyError(to: identity, service: service, requestID: id, WireError(.unknownOperation, "no operation \(envelope.op)"))
        }
    }

    /// `{"tenants":[…],"types":[…]}`, already checked against the schema.
    private static func eventPermissions(_ value: JSONValue) -> EventPermissions {
        func strings(_ member: String) -> [String] {
            if case .array(let items)? = value[member] { items.compactMap(\.stringValue) } else { [] }
        }
        return EventPermissions(tenants: strings("tenants"), types: strings("types"))
    }

    /// Instance ids are routing identities: shown to administrators only.
    private func catalogue(showInstanceIDs: Bool) -> CatalogueReply {
        var entries = broker.core.services.values.sorted { $0.name < $1.name }.map { state in
            CatalogueReply.Service(
                name: state.name,
                version: state.manifest?.version,
                kind: state.manifest == nil ? "opaque" : "tsunagu",
                operations: state.manifest?.operations ?? [],
                instances: state.workers.compactMap { broker.core.workers[$0] }.map {
                    .init(id: showInstanceIDs ? $0.identity.hexString : nil, inFlight: $0.inFlight.count, capacity: $0.capacity,
                          draining: $0.draining, served: $0.served)
                },
                queued: state.queued)
        }
        entries.insert(.init(name: TsunaguWire.gatewayService, version: gatewayVersion, kind: "tsunagu",
                             operations: manifestOperations, instances: [], queued: 0), at: 0)
        return CatalogueReply(services: entries)
    }

    /// Runs database work in a task; its reply (or its error, through the `ErrorProtocol` every
    /// service uses) goes back through the broker's loop, after `after` ran there on success.
    private func runAsync<Output: Encodable & Sendable>(
        identity: Data, envelope: RequestEnvelope, after: (@Sendable (Broker) -> Void)? = nil,
        _ work: @escaping @Sendable (TokenStore) async throws -> Output
    ) {
        let tokens = self.tokens
        let broker = self.broker
        let (requestID, operation) = (envelope.id, envelope.op)
        Task {
            let result: Result<Output, WireError>
            do {
                result = .success(try await work(tokens))
            } catch {
                result = .failure(ErrorProtocol.wireError(for: error, requestID: requestID, operation: operation, logger: broker.logger))
            }
            broker.post { broker in
                switch result {
                case .success(let output):
                    after?(broker)
                    broker.replyOK(to: identity, service: TsunaguWire.gatewayService, requestID: requestID, output)
                case .failure(let error):
                    broker.replyError(to: identity, service: TsunaguWire.gatewayService, requestID: requestID, error)
                }
            }
        }
    }

}

/// The reply of `services.list`.
struct CatalogueReply: Encodable {
    struct Instance: Encodable {
        let id: String?
        let inFlight: Int
        let capacity: Int
        let draining: Bool
        let served: Int
        enum CodingKeys: String, CodingKey {
            case id, capacity, draining, served
            case inFlight = "in_flight"
        }
    }
    struct Service: Encodable {
        let name: String
        let version: String?
        let kind: String
        let operations: [Manifest.Operation]
        let instances: [Instance]
        let queued: Int
    }
    let services: [Service]
}

let gatewayVersion = "0.1.0"

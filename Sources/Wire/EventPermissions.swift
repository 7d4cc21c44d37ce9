/// Which events a principal may see: the one rule used by the gateway's live stream and by every
/// service's `events.read`, so a subscriber sees the same events live and on replay.
///
/// An event is visible when its tenant is allowed (`tenants` holds it, or `"*"`) and its type is
/// allowed (`types` is empty, or one of them is a prefix of the type: `"jp.tsunagu.meetings."`
/// allows every meetings event, a whole type allows that type).
/// - Note: `Sendable`; a value.
public struct EventPermissions: Sendable, Codable, Equatable {
    /// Tenant codes, or `["*"]` for every tenant.
    public let tenants: [String]
    /// Event-type prefixes; empty allows every type.
    public let types: [String]

    /// The tenant code that stands for every tenant.
    public static let allTenants = "*"

    public init(tenants: [String], types: [String] = []) {
        self.tenants = tenants
        self.types = types
    }

    /// What a principal without explicit permissions sees: everything for tenant `national`,
    /// otherwise its own tenant's events of every type.
    public static func `default`(forTenant tenant: String) -> EventPermissions {
        tenant == TsunaguWire.nationalTenant ? EventPermissions(tenants: [allTenants]) : EventPermissions(tenants: [tenant])
    }

    /// Whether an event of `tenant` and `type` may be shown.
    public func visible(tenant: String, type: String) -> Bool {
        guard tenants.contains(where: { $0 == Self.allTenants || $0 == tenant }) else { return false }
        return types.isEmpty || types.contains(where: { type.hasPrefix($0) })
    }
}

extension Principal {
    /// The event permissions this principal's token carries, or the default rule for its tenant.
    public var eventPermissions: EventPermissions {
        events ?? .default(forTenant: tenant)
    }
}

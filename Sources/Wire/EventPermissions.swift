import Foundation

/// Which events a principal may see: the one rule used by the gateway's live stream and by every
/// service's `events.read` (docs/events.md, "Permissions").
/// - Note: `Sendable`; a value.
public struct EventPermissions: Sendable, Codable, Equatable {
    /// Tenant codes whose events are visible, or `["*"]` for every tenant.
    public var tenants: [String]
    /// Event-type prefixes (`jp.tsunagu.meetings.`, or a whole type); empty admits every type.
    public var types: [String]

    /// The wildcard in `tenants`.
    public static let everyTenant = "*"

    public init(tenants: [String], types: [String]) {
        self.tenants = tenants
        self.types = types
    }

    /// True when an event of `tenant` and `type` is visible: its tenant is listed (or every tenant
    /// is) and its type starts with one of the prefixes (or no prefix is given).
    public func visible(tenant: String, type: String) -> Bool {
        (tenants.contains(Self.everyTenant) || tenants.contains(tenant))
            && (types.isEmpty || types.contains(where: { type.hasPrefix($0) }))
    }

    /// What a principal without explicit permissions sees: tenant `national` every event, any
    /// other tenant its own tenant's events, of every type.
    public static func defaultRule(forTenant tenant: String) -> EventPermissions {
        tenant == TsunaguWire.nationalTenant
            ? EventPermissions(tenants: [everyTenant], types: [])
            : EventPermissions(tenants: [tenant], types: [])
    }
}

extension Principal {
    /// The events this principal may see. Until the principal carries explicit permissions (the
    /// gateway's `events` member), this is the default rule for its tenant.
    public var eventPermissions: EventPermissions {
        EventPermissions.defaultRule(forTenant: tenant)
    }
}

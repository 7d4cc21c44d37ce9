import ServiceRuntime
import Wire

/// Who may do what in the registry. Tenants are implementing bodies, named by their 6-digit
/// local-government code (130001 東京都, 011002 札幌市), plus `national` (the secretariat).
/// Directory data is public: any authenticated caller reads it. Writing needs the role `editor`
/// or `admin`, and only on the caller's own tenant's rows; a national `admin` may write any.
enum Access {
    static let national = TsunaguWire.nationalTenant
    static let writerRoles = ["editor", "admin"]

    static func writer(_ context: RequestContext) throws(WireError) -> Principal {
        let principal = try context.requirePrincipal()
        guard writerRoles.contains(where: principal.hasRole) else {
            throw WireError(.forbidden, "writing to the registry needs the role editor or admin")
        }
        return principal
    }

    static func isNationalAdmin(_ principal: Principal) -> Bool {
        principal.tenant == national && principal.hasRole("admin")
    }

    /// Throws `forbidden` unless `principal` may write rows owned by `owner`.
    static func requireOwner(_ principal: Principal, owns owner: String) throws(WireError) {
        guard principal.tenant == owner || isNationalAdmin(principal) else {
            throw WireError(.forbidden, "this record belongs to tenant \(owner)")
        }
    }
}

import Wire

/// The tenancy rules (`TenancyPolicy`) asked of a principal.
extension Principal {
    /// Tenant `national` with the role `admin`: writes every tenant's rows.
    public var isNationalAdmin: Bool {
        tenant == TenancyPolicy.nationalTenant && hasRole(TenancyPolicy.adminRole)
    }

    /// Holds one of `TenancyPolicy.writerRoles` (`editor`, `admin`).
    public var isWriter: Bool {
        TenancyPolicy.writerRoles.contains(where: hasRole)
    }

    /// True when this principal may write rows owned by `owner`: a writer of that tenant, or a national admin.
    public func mayWrite(rowsOf owner: String) -> Bool {
        isWriter && (tenant == owner || isNationalAdmin)
    }

    /// Throws `forbidden` unless this principal holds a writer role.
    public func requireWriter() throws(WireError) {
        guard isWriter else {
            throw WireError(.forbidden, "writing needs the role \(TenancyPolicy.writerRoles.joined(separator: " or "))")
        }
    }

    /// Throws `forbidden` unless this principal may write rows owned by `owner` (`mayWrite(rowsOf:)`).
    public func requireOwner(of owner: String) throws(WireError) {
        try requireWriter()
        guard tenant == owner || isNationalAdmin else {
            throw WireError(.forbidden, "this record belongs to tenant \(owner)")
        }
    }
}

import Wire

/// The tenancy rules (`TenancyPolicy`) asked of a request's caller.
extension RequestContext {
    /// The caller, when it may write at all (a writer role); `unauthorized` without a principal,
    /// `forbidden` without the role. Write handlers call it first.
    public func writer() throws(WireError) -> Principal {
        let principal = try requirePrincipal()
        try principal.requireWriter()
        return principal
    }

    /// The caller, when it may write rows owned by `owner` (a writer of that tenant, or a national
    /// admin); `unauthorized` without a principal, `forbidden` otherwise.
    @discardableResult
    public func requireOwner(of owner: String) throws(WireError) -> Principal {
        let principal = try requirePrincipal()
        try principal.requireOwner(of: owner)
        return principal
    }
}

import Wire

/// Who may read and who may write which tenant's rows: the one tenancy policy of every service.
///
/// A row belongs to one tenant, named as the gateway names the principal's tenant (the registry's
/// tenants are 6-digit local-government codes). The rules:
///
/// - **Reading** needs only an authenticated caller. The gateway authenticates every request to
///   a Tsunagu service before it forwards it, so read handlers call nothing here; one that needs
///   the caller takes it with `context.requirePrincipal()` (`unauthorized` without one).
/// - **Writing** needs one of `writerRoles` (`editor` or `admin`): `context.writer()`.
/// - A writer writes only rows **its own tenant owns**; a **national admin** (a principal of
///   tenant `national` with the role `admin`, `Principal.isNationalAdmin`) writes any tenant's:
///   `context.requireOwner(of:)`, or `principal.requireOwner(of:)` once the owner is read from
///   the locked row. `principal.mayWrite(rowsOf:)` asks without throwing.
///
/// Each check throws `WireError`: `unauthorized` without a principal, `forbidden` otherwise.
/// Roles an operation needs whatever the tenant are declared on the operation (`roles:`) and
/// checked by the dispatcher before the handler runs.
public enum TenancyPolicy {
    /// The national secretariat's tenant (`TsunaguWire.nationalTenant`).
    public static let nationalTenant = TsunaguWire.nationalTenant
    /// A principal needs one of these to write at all.
    public static let writerRoles = ["editor", "admin"]
    /// With `nationalTenant`, the role that writes every tenant's rows.
    public static let adminRole = "admin"
}

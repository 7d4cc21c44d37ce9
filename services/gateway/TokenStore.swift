import Foundation
import Postgres
import Wire

/// A service credential as the gateway knows it once checked.
struct ServiceCredential: Sendable {
    let tokenID: String
    let service: String
}

/// Tokens in `gateway.tokens`. A token is 32 random bytes, shown once as `tsg_<hex>` (a client's
/// bearer token) or `tss_<hex>` (a service credential); the database keeps only its SHA-256, so
/// a leaked table does not leak credentials.
struct TokenStore: Sendable {
    let database: PostgresPool

    struct Issued: Codable, Sendable {
        let id: String
        let token: String
        let tenant: String
        let roles: [String]
        let label: String
        /// The events the token may see, when given (otherwise the default rule).
        let events: EventPermissions?
    }

    struct IssuedService: Codable, Sendable {
        let id: String
        let token: String
        let service: String
        let label: String
    }

    struct Listed: Codable, Sendable {
        let id: String
        let tenant: String
        let roles: [String]
        let service: String?
        let label: String
        let events: EventPermissions?
        let createdAt: String
        let revokedAt: String?

        enum CodingKeys: String, CodingKey {
            case id, tenant, roles, label, service, events
            case createdAt = "created_at"
            case revokedAt = "revoked_at"
        }
    }

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()  // getrandom(2): cryptographically secure
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// The principal a token stands for, or nil when it is unknown or revoked.
    func principal(for token: String) async throws -> Principal? {
        try await database.withConnection { connection in
            let rows = try connection.query("""
                SELECT id, tenant, array_to_string(roles, ',') AS roles, \(Self.eventColumns)
                FROM gateway.tokens
                WHERE token_hash = sha256(convert_to(\(token), 'UTF8')) AND revoked_at IS NULL AND service IS NULL
                """)
            guard let row = rows.first else { return nil }
            let roles: String = try row.decode("roles")
            return Principal(tenant: try row.decode("tenant"), roles: roles.split(separator: ",").map(String.init),
                             tokenID: try row.decode("id"), events: try Self.eventPermissions(row))
        }
    }

    /// `event_tenants` and `event_types` as comma-separated text (neither codes nor type prefixes
    /// may hold a comma); `event_tenants` NULL means the default rule.
    private static let eventColumns: PostgresQuery = """
        array_to_string(event_tenants, ',') AS event_tenants, array_to_string(event_types, ',') AS event_types
        """

    private static func eventPermissions(_ row: PostgresRow) throws -> EventPermissions? {
        guard let tenants = try row.decode("event_tenants", as: String?.self) else { return nil }
        let types = try row.decode("event_types", as: String?.self) ?? ""
        return EventPermissions(tenants: tenants.split(separator: ",").map(String.init),
                                types: types.split(separator: ",").map(String.init))
    }

    /// The service a credential was issued for, or nil when it is unknown, revoked or a client token.
    func serviceCredential(for token: String) async throws -> ServiceCredential? {
        try await database.withConnection { connection in
            guard let row = try connection.query("""
                SELECT id, service FROM gateway.tokens
                WHERE token_hash = sha256(convert_to(\(token), 'UTF8')) AND revoked_at IS NULL AND service IS NOT NULL
                """).first else { return nil }
            return ServiceCredential(tokenID: try row.decode("id"), service: try row.decode("service"))
        }
    }

    /// A new credential for instances of `service`.
    func issueService(_ service: String, label: String) async throws -> IssuedService {
        let id = "tok_" + Self.randomHex(bytes: 8)
        let token = "tss_" + Self.randomHex(bytes: 32)
        _ = try await database.withConnection { connection in
            try connection.query("""
                INSERT INTO gateway.tokens (id, token_hash, tenant, roles, label, service)
                VALUES (\(id), sha256(convert_to(\(token), 'UTF8')), \(TsunaguWire.nationalTenant), '{service}', \(label), \(service))
                """)
        }
        return IssuedService(id: id, token: token, service: service, label: label)
    }

    /// A new bearer token; `events` set gives it explicit event permissions.
    func issue(tenant: String, roles: [String], label: String, events: EventPermissions? = nil) async throws -> Issued {
        let id = "tok_" + Self.randomHex(bytes: 8)
        let token = "tsg_" + Self.randomHex(bytes: 32)
        try await insert(id: id, token: token, tenant: tenant, roles: roles, label: label, events: events, replace: false)
        return Issued(id: id, token: token, tenant: tenant, roles: roles, label: label, events: events)
    }

    /// Makes sure the configured first admin token exists (idempotent). A changed value replaces
    /// it and works; the same value once revoked stays revoked across restarts.
    func ensureBootstrapAdmin(token: String) async throws {
        try await insert(id: "tok_bootstrap_admin", token: token, tenant: TsunaguWire.nationalTenant, roles: ["admin"],
                         label: "first admin token (TSUNAGU_ADMIN_TOKEN)", events: nil, replace: true)
    }

    private func insert(id: String, token: String, tenant: String, roles: [String], label: String, events: EventPermissions?,
                        replace: Bool) async throws {
        _ = try await database.withConnection { connection in
            if replace {
                try connection.query("""
                    INSERT INTO gateway.tokens (id, token_hash, tenant, roles, label)
                    VALUES (\(id), sha256(convert_to(\(token), 'UTF8')), \(tenant), \(roles)::text[], \(label))
                    ON CONFLICT (id) DO UPDATE SET token_hash = EXCLUDED.token_hash,
                        revoked_at = CASE WHEN gateway.tokens.token_hash = EXCLUDED.token_hash THEN gateway.tokens.revoked_at END
                    """)
            } else {
                try connection.query("""
                    INSERT INTO gateway.tokens (id, token_hash, tenant, roles, label, event_tenants, event_types)
                    VALUES (\(id), sha256(convert_to(\(token), 'UTF8')), \(tenant), \(roles)::text[], \(label),
                            \(events?.tenants)::text[], \(events?.types)::text[])
                    """)
            }
        }
    }

    /// Revokes a token; false when no such token exists (or it is not of `tenant`, when given).
    func revoke(id: String, tenant: String?) async throws -> Bool {
        try await database.withConnection { connection in
            let rows = try connection.query("""
                UPDATE gateway.tokens SET revoked_at = coalesce(revoked_at, now())
                WHERE id = \(id) AND (\(tenant)::text IS NULL OR tenant = \(tenant)) RETURNING id
                """)
            return !rows.isEmpty
        }
    }

    /// Every token, or only `tenant`'s.
    func list(tenant: String?) async throws -> [Listed] {
        try await database.withConnection { connection in
            try connection.query("""
                SELECT id, tenant, array_to_string(roles, ',') AS roles, label, service, \(Self.eventColumns),
                       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_at,
                       to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS revoked_at
                FROM gateway.tokens WHERE \(tenant)::text IS NULL OR tenant = \(tenant) ORDER BY created_at, id
                """).map { row in
                let roles: String = try row.decode("roles")
                return Listed(id: try row.decode("id"), tenant: try row.decode("tenant"),
                              roles: roles.split(separator: ",").map(String.init), service: try row.decode("service", as: String?.self),
                              label: try row.decode("label"), events: try Self.eventPermissions(row),
                              createdAt: try row.decode("created_at"), revokedAt: try row.decode("revoked_at", as: String?.self))
            }
        }
    }
}

import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// The write rules shared by organisations and resources: each row belongs to a tenant, changes
/// only at the version the writer last read (optimistic concurrency), is retired rather than
/// deleted, and every version is kept in a history table with the token that wrote it.
struct VersionedTable: Sendable {
    /// Table and column names: constants of this file, spliced into the SQL (names cannot be bound).
    let table: StaticString
    let historyTable: StaticString
    let historyKey: StaticString
    let noun: String

    static let organizations = VersionedTable(table: "registry.organizations", historyTable: "registry.organization_history",
                                              historyKey: "organization_id", noun: "organisation")
    static let resources = VersionedTable(table: "registry.resources", historyTable: "registry.resource_history",
                                          historyKey: "resource_id", noun: "resource")

    /// Locks the row and checks that `principal` may change it at `version`.
    /// Returns the owner tenant.
    func lockForChange(id: String, version: Int?, principal: Principal, on tx: PostgresConnection) throws -> String {
        let rows = try tx.query(prepared: """
            SELECT tenant, version, retired_at IS NOT NULL AS retired FROM \(unsafeRaw: table) WHERE id = \(id)::uuid FOR UPDATE
            """)
        guard let row = rows.first else { throw WireError(.notFound, "no \(noun) \(id)") }
        let owner: String = try row.decode("tenant")
        try principal.requireOwner(of: owner)
        let current: Int = try row.decode("version")
        if try row.decode("retired", as: Bool.self) {
            throw WireError(.conflict, "the \(noun) is retired", details: .object(["version": .integer(Int64(current))]))
        }
        if let version, version != current {
            throw WireError(.conflict, "the \(noun) changed since version \(version); read it again",
                            details: .object(["version": .integer(Int64(current))]))
        }
        return owner
    }

    /// Records the row as it is now under its current version (sent with the next statement).
    func recordHistory(id: String, change: String, by principal: Principal, on tx: PostgresConnection) throws {
        try tx.queryWithNext("""
            INSERT INTO \(unsafeRaw: historyTable) (\(unsafeRaw: historyKey), version, changed_by, change, snapshot)
            SELECT id, version, \(principal.tokenID), \(change), to_jsonb(t) - 'search_text' FROM \(unsafeRaw: table) t WHERE id = \(id)::uuid
            """)
    }

    /// Sets `assignments` on the row (a new version, `updated_at` now) if `condition` holds too,
    /// records it in the history and returns it as the API shows it: one statement where the
    /// three steps would take three. Nil when the row did not match.
    func update(id: String, set assignments: PostgresQuery, when condition: PostgresQuery, change: String,
                by principal: Principal, on tx: PostgresConnection) throws -> JSONValue? {
        try tx.jsonRows("""
            WITH u AS (UPDATE \(unsafeRaw: table) SET \(assignments), version = version + 1, updated_at = now()
                       WHERE id = \(id)::uuid AND (\(condition)) RETURNING *),
                 h AS (INSERT INTO \(unsafeRaw: historyTable) (\(unsafeRaw: historyKey), version, changed_by, change, snapshot)
                       SELECT id, version, \(principal.tokenID), \(change), to_jsonb(u) - 'search_text' FROM u RETURNING snapshot)
            SELECT snapshot::text AS j FROM h
            """, prepared: true).first
    }

    /// The row as the API shows it.
    func fetch(id: String, on connection: PostgresConnection) throws -> JSONValue {
        try connection.jsonRow("SELECT to_jsonb(t) - 'search_text' AS j FROM \(unsafeRaw: table) t WHERE id = \(id)::uuid",
                               prepared: true, notFound: "no \(noun) \(id)")
    }

    func retire(id: String, version: Int, principal: Principal, on tx: PostgresConnection) throws -> String {
        let owner = try lockForChange(id: id, version: version, principal: principal, on: tx)
        try tx.query("""
            UPDATE \(unsafeRaw: table) SET retired_at = now(), updated_at = now(), version = version + 1 WHERE id = \(id)::uuid
            """)
        try recordHistory(id: id, change: "retired", by: principal, on: tx)
        return owner
    }

    func history(id: String, on connection: PostgresConnection) throws -> JSONValue {
        let versions = try connection.jsonRows("""
            SELECT jsonb_build_object('version', version, 'change', change, 'changed_by', changed_by,
                                      'changed_at', to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                      'snapshot', snapshot) AS j
            FROM \(unsafeRaw: historyTable) WHERE \(unsafeRaw: historyKey) = \(id)::uuid ORDER BY version
            """)
        guard !versions.isEmpty else { throw WireError(.notFound, "no \(noun) \(id)") }
        return .object(["id": .string(id), "versions": .array(versions)])
    }
}

/// `{"id": ..., "version": ...}`, the input of retire operations.
struct VersionedID: Decodable, Sendable {
    let id: String
    let version: Int
}

struct IDInput: Decodable, Sendable {
    let id: String
}

enum Schemas {
    static let uuid = #"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"#
    static let id = #"{"type":"object","additionalProperties":false,"required":["id"],"properties":{"id":{"type":"string","pattern":"\#(uuid)","maxLength":36}}}"#
    static let idAndVersion = """
        {"type":"object","additionalProperties":false,"required":["id","version"],
         "properties":{"id":{"type":"string","pattern":"\(uuid)","maxLength":36},"version":{"type":"integer","minimum":1,"maximum":2147483647}}}
        """

    /// An object schema from property schemas (JSON text each), with `required` names.
    static func object(_ properties: [(String, String)], required: [String]) -> String {
        let props = properties.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
        let req = required.map { "\"\($0)\"" }.joined(separator: ",")
        return #"{"type":"object","additionalProperties":false,"required":[\#(req)],"properties":{\#(props)}}"#
    }
}

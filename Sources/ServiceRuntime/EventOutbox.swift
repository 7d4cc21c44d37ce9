import Foundation
import JSONSchema
import Postgres
import Wire

/// A service's domain events, written in the transaction of the change (transactional outbox)
/// and read back by sequence number (`events.read`), so a consumer that was away replays what it
/// missed. Shaped as CloudEvents 1.0 (structured JSON) with a `sequence` extension attribute.
///
/// The service's migrations create `<schema>.outbox` with the columns of
/// services/registry/migrations/0006_outbox.sql (sequence, id, type, subject, tenant, time, data).
/// Events never carry personal data.
public struct EventOutbox: Sendable {
    public let schema: String
    /// CloudEvents `source`, e.g. `/tsunagu/registry`.
    public let source: String
    /// Prefix of every event type, e.g. `jp.tsunagu.registry.`.
    public let typePrefix: String

    /// - Parameter schema: a lower-case identifier (it names a table, so it cannot be bound).
    public init(schema: String, source: String, typePrefix: String) {
        precondition(schema.range(of: "^[a-z_][a-z0-9_]*$", options: .regularExpression) != nil, "bad schema name")
        self.schema = schema
        self.source = source
        self.typePrefix = typePrefix
    }

    /// Takes the transaction-scoped lock that orders event writers, so sequence numbers become
    /// visible in order and a reader never skips a late-committing smaller one. Call it before
    /// inserting into the outbox with SQL of your own (bulk writes).
    public func lock(on tx: PostgresConnection) throws {
        try tx.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock(hashtext($1))", bindings: ["\(schema).outbox"]))
    }

    /// Appends one event in the caller's transaction.
    public func append(on tx: PostgresConnection, type: String, subject: String, tenant: String, data: JSONValue) throws {
        try lock(on: tx)
        try tx.query(PostgresQuery(unsafeSQL: """
            INSERT INTO \(schema).outbox (type, subject, tenant, data) VALUES ($1, $2, $3, $4::jsonb)
            """, bindings: [typePrefix + type, subject, tenant, String(decoding: data.serialized(), as: UTF8.self)]))
    }

    struct ReadInput: Decodable, Sendable {
        let after: Int64?
        let limit: Int?
        let types: [String]?
    }

    /// `events.read`: events after a sequence number, oldest first.
    public func operations() throws -> [ServiceOperation] {
        let schema = self.schema
        let source = self.source
        return [
            try ServiceOperation(
                "events.read",
                summary: "Events after a sequence number, oldest first (CloudEvents 1.0 JSON with a sequence attribute).",
                schema: """
                    {"type":"object","additionalProperties":false,
                     "properties":{"after":{"type":"integer","minimum":0},
                                   "limit":{"type":"integer","minimum":1,"maximum":1000},
                                   "types":{"type":"array","maxItems":20,"items":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,100}$"}}}}
                    """,
                input: ReadInput.self
            ) { context, input in
                let after = input.after ?? 0
                let types = input.types ?? []
                let text: String = try await context.database.withConnection { connection in
                    try connection.query(PostgresQuery(unsafeSQL: """
                        WITH page AS (
                            SELECT * FROM \(schema).outbox
                            WHERE sequence > $2::bigint AND (cardinality($4::text[]) = 0 OR type = ANY($4::text[]))
                            ORDER BY sequence LIMIT $3::int)
                        SELECT jsonb_build_object(
                            'events', coalesce((SELECT jsonb_agg(jsonb_build_object('specversion', '1.0', 'id', id, 'source', $1::text,
                                'type', type, 'subject', subject,
                                'time', to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                'datacontenttype', 'application/json', 'sequence', sequence, 'tenant', tenant, 'data', data)
                                ORDER BY sequence) FROM page), '[]'),
                            'last_sequence', coalesce((SELECT max(sequence) FROM page), $2::bigint))::text AS j
                        """, bindings: [source, String(after), String(input.limit ?? 100),
                                        // Types are letters, digits and ._- (schema): an array literal needs no quoting.
                                        "{" + types.joined(separator: ",") + "}"]))[0].decode("j")
                }
                return RawJSON(text: text)
            },
        ]
    }
}

import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// Domain events, written in the transaction of the change (transactional outbox) and read back
/// by sequence number (`events.read`), so a consumer that was away replays what it missed.
/// Shaped as CloudEvents 1.0 (structured JSON) with a `sequence` extension attribute.
enum Outbox {
    static let source = "/tsunagu/registry"
    static let typePrefix = "jp.tsunagu.registry."

    /// Appends one event. The transaction-scoped advisory lock orders writers, so sequence
    /// numbers become visible in order and a reader never skips a late-committing smaller one.
    static func append(on tx: PostgresConnection, type: String, subject: String, tenant: String, data: JSONValue) throws {
        try tx.query("SELECT pg_advisory_xact_lock(hashtext('registry.outbox'))")
        try tx.query("""
            INSERT INTO registry.outbox (type, subject, tenant, data)
            VALUES (\(typePrefix + type), \(subject), \(tenant), \(data.jsonText)::jsonb)
            """)
    }

    struct ReadInput: Decodable, Sendable {
        let after: Int64?
        let limit: Int?
        let types: [String]?
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try ServiceOperation(
                "events.read",
                summary: "Events after a sequence number, oldest first (CloudEvents 1.0 JSON with a sequence attribute).",
                schema: """
                    {"type":"object","additionalProperties":false,
                     "properties":{"after":{"type":"integer","minimum":0},
                                   "limit":{"type":"integer","minimum":1,"maximum":1000},
                                   "types":{"type":"array","maxItems":20,"items":{"type":"string","maxLength":100}}}}
                    """,
                input: ReadInput.self
            ) { context, input in
                let after = input.after ?? 0
                let limit = input.limit ?? 100
                let types = JSONValue.array((input.types ?? []).map { .string($0) }).jsonText
                let events = try await context.database.withConnection { connection in
                    try connection.jsonRows("""
                        SELECT jsonb_build_object('specversion', '1.0', 'id', id, 'source', \(source)::text, 'type', type,
                                                  'subject', subject, 'time', to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                                  'datacontenttype', 'application/json', 'sequence', sequence,
                                                  'tenant', tenant, 'data', data) AS j
                        FROM registry.outbox
                        WHERE sequence > \(after)
                          AND (jsonb_array_length(\(types)::jsonb) = 0 OR type IN (SELECT jsonb_array_elements_text(\(types)::jsonb)))
                        ORDER BY sequence LIMIT \(limit)
                        """)
                }
                let last = events.last?["sequence"] ?? .integer(after)
                return JSONValue.object(["events": .array(events), "last_sequence": last])
            },
        ]
    }
}

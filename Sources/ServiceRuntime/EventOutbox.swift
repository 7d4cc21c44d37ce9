import Foundation
import JSONSchema
import Logging
import Postgres
import Wire

/// A service's domain events, written in the transaction of the change (transactional outbox)
/// and read back by sequence number (`events.read`), so a consumer that was away replays what it
/// missed. Shaped as CloudEvents 1.0 (structured JSON) with a `sequence` extension attribute.
///
/// Ordering: writers take no lock. A row is inserted with an `insert_order` (a database sequence:
/// no waiting) and no `sequence`. The publisher (`publish`, one at a time among the instances: it
/// holds the cursor row) numbers the committed rows that have none, in `insert_order`, and only
/// then pushes them; `events.read` shows numbered rows only. So `sequence` follows the order in
/// which the publisher saw commits: a reader that has seen N never later finds a smaller one,
/// numbers have no gaps (they come from the cursor row, in the publisher's transaction, not from
/// a database sequence), and a writer that holds its transaction open for long (a 300,000-row
/// import) holds up no other writer. An event becomes readable within a poll (100 ms) of its
/// commit, once numbered.
///
/// Its tables, `<schema>.outbox` and `<schema>.outbox_cursor`, are still made by the one service
/// with events, the registry (its migrations 0006, 0011 and 0014), not by the runtime: the
/// delivery is being replaced by one with authenticated subscribers, replay and heartbeats
/// (docs/architecture.md, "Events"), whose tables the runtime's migrations will make for every
/// service, the registry's rows moved into them. Events never carry personal data.
/// - Note: `Sendable`; immutable.
public struct EventOutbox: Sendable {
    public let schema: String
    /// CloudEvents `source`, e.g. `/tsunagu/registry`.
    public let source: String
    /// Prefix of every event type, e.g. `jp.tsunagu.registry.`.
    public let typePrefix: String
    /// `<schema>.outbox` and `<schema>.outbox_cursor` as SQL text, spliced into the queries below:
    /// table names cannot be bound, and these are made from the checked schema name only.
    private let outbox: PostgresQuery
    private let cursor: PostgresQuery

    /// - Parameter schema: a lower-case identifier (it names a table, so it cannot be bound).
    public init(schema: String, source: String, typePrefix: String) {
        precondition(schema.range(of: "^[a-z_][a-z0-9_]*$", options: .regularExpression) != nil, "bad schema name")
        self.schema = schema
        self.source = source
        self.typePrefix = typePrefix
        self.outbox = PostgresQuery(unsafeSQL: "\(schema).outbox")
        self.cursor = PostgresQuery(unsafeSQL: "\(schema).outbox_cursor")
    }

    /// Appends one event in the caller's transaction. Bulk writers may insert into
    /// `<schema>.outbox (type, subject, tenant, data)` with SQL of their own, in the same way:
    /// no lock, no sequence (the publisher numbers rows once they are committed).
    public func append(on tx: PostgresConnection, type: String, subject: String, tenant: String, data: JSONValue) throws {
        try tx.query("""
            INSERT INTO \(outbox) (type, subject, tenant, data)
            VALUES (\(typePrefix + type), \(subject), \(tenant), \(String(decoding: data.serialized(), as: UTF8.self))::jsonb)
            """)
    }

    /// The CloudEvent of outbox row `o`, with `source` bound.
    static func eventJSON(source: String) -> PostgresQuery {
        """
        jsonb_build_object('specversion', '1.0', 'id', o.id, 'source', \(source)::text, 'type', o.type, 'subject', o.subject,
            'time', to_char(o.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            'datacontenttype', 'application/json', 'sequence', o.sequence, 'tenant', o.tenant, 'data', o.data)
        """
    }

    /// Numbers committed events and pushes them to the gateway, oldest first, until the task is
    /// cancelled. The runtime runs it for every service that has an outbox, whether or not
    /// anyone subscribes: without it, events get no sequence and `events.read` shows none.
    ///
    /// A cursor row (`<schema>.outbox_cursor`, one row) holds the last sequence given out
    /// (`assigned`) and the last one pushed (`sequence`). Each poll locks it with SKIP LOCKED, so
    /// among several instances one publishes at a time; it numbers up to `numberingBatch`
    /// committed, unnumbered rows in insertion order, reads what follows the last pushed, moves
    /// the cursor, commits, then hands the events to the gateway. Delivery is best effort (an
    /// event is lost to subscribers if this instance dies between commit and send, or if a queue
    /// is full); every event stays in the outbox and subscribers that see a gap in `sequence`
    /// replay it with `events.read`.
    public func publish(to connection: WorkerConnection, database: PostgresPool, logger: Logger,
                        interval: Duration = .milliseconds(100)) async {
        let batchSize = 500
        let numberingBatch = 5000
        while !Task.isCancelled {
            var busy = false
            do {
                let (numbered, batch) = try await database.withTransaction { [outbox, cursor, source] tx -> (Int, [[Data]]) in
                    guard let position = try tx.query("""
                        SELECT sequence, assigned FROM \(cursor) WHERE id = 1 FOR UPDATE SKIP LOCKED
                        """).first else { return (0, []) }
                    let pushed: Int64 = try position.decode("sequence")
                    var assigned: Int64 = try position.decode("assigned")
                    // Rows of transactions still open are not visible here: they are numbered by
                    // a later poll, after whatever committed before them.
                    let numbering = try tx.query("""
                        WITH next AS (
                            SELECT insert_order, row_number() OVER (ORDER BY insert_order) AS n FROM \(outbox)
                            WHERE sequence IS NULL ORDER BY insert_order LIMIT \(numberingBatch)::int),
                        numbered AS (
                            UPDATE \(outbox) o SET sequence = \(assigned)::bigint + next.n FROM next
                            WHERE o.insert_order = next.insert_order RETURNING o.sequence)
                        SELECT count(*) AS n, coalesce(max(sequence), \(assigned)::bigint) AS last FROM numbered
                        """)[0]
                    let numbered: Int = try numbering.decode("n")
                    assigned = try numbering.decode("last")
                    let rows = try tx.query("""
                        SELECT o.sequence, o.type, o.tenant, \(Self.eventJSON(source: source))::text AS j FROM \(outbox) o
                        WHERE o.sequence > \(pushed)::bigint ORDER BY o.sequence LIMIT \(batchSize)::int
                        """)
                    let last = try rows.last?.decode("sequence", as: Int64.self) ?? pushed
                    if numbered > 0 || last != pushed {
                        try tx.query("""
                            UPDATE \(cursor) SET sequence = \(last)::bigint, assigned = \(assigned)::bigint WHERE id = 1
                            """)
                    }
                    let frames = try rows.map { row in
                        let topic = TsunaguWire.eventTopic(type: try row.decode("type"), tenant: try row.decode("tenant"))
                        return [Data(topic.utf8), Data((try row.decode("j", as: String.self)).utf8)]
                    }
                    return (numbered, frames)
                }
                for frames in batch { connection.publish(frames) }
                busy = numbered == numberingBatch || batch.count == batchSize
            } catch {
                logger.debug("event publishing paused", metadata: ["error": "\(error)"])
            }
            if !busy { try? await Task.sleep(for: interval) }
        }
    }

    struct ReadInput: Decodable, Sendable {
        let after: Int64?
        let limit: Int?
        let types: [String]?
    }

    /// `events.read`: events after a sequence number, oldest first.
    public func operations() throws -> [ServiceOperation] {
        let outbox = self.outbox
        let source = self.source
        return [
            try .read(
                "events.read",
                summary: "Events after a sequence number, oldest first (CloudEvents 1.0 JSON with a sequence attribute).",
                schema: """
                    {"type":"object","additionalProperties":false,
                     "properties":{"after":{"type":"integer","minimum":0,"maximum":9007199254740991},
                                   "limit":{"type":"integer","minimum":1,"maximum":1000},
                                   "types":{"type":"array","maxItems":20,"items":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,100}$","maxLength":100}}}}
                    """,
                input: ReadInput.self
            ) { context, input in
                let after = input.after ?? 0
                let types = input.types ?? []
                let text: String = try await context.database.withConnection { connection in
                    // Unnumbered rows (sequence NULL) never match `sequence > after`: only what the publisher numbered shows.
                    try connection.query("""
                        WITH page AS (
                            SELECT * FROM \(outbox)
                            WHERE sequence > \(after)::bigint AND (cardinality(\(types)::text[]) = 0 OR type = ANY(\(types)::text[]))
                            ORDER BY sequence LIMIT \(input.limit ?? 100)::int)
                        SELECT jsonb_build_object(
                            'events', coalesce((SELECT jsonb_agg(\(Self.eventJSON(source: source)) ORDER BY o.sequence) FROM page o), '[]'),
                            'last_sequence', coalesce((SELECT max(sequence) FROM page), \(after)::bigint))::text AS j
                        """)[0].decode("j")
                }
                return RawJSON(text: text)
            },
        ]
    }
}

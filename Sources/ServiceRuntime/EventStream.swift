import Foundation
import JSONSchema
import Logging
import Postgres
import Wire

/// A service's stream of domain events (docs/events.md): written in the transaction of the change
/// (transactional outbox), numbered and pushed to the gateway by the service's one publisher
/// (`EventPublisher`), and read back by sequence number (`events.read`), so a consumer that was
/// away replays what it missed. Shaped as CloudEvents 1.0 (structured JSON) with the extension
/// attributes `sequence`, `stream` and `tenant`.
///
/// Ordering: writers take no lock. A row is inserted with an `insert_order` (a database sequence:
/// no waiting) and no `sequence`. The publisher (one at a time among the instances) numbers the
/// committed rows that have none, in `insert_order`, and commits that before it pushes anything;
/// `events.read` shows numbered rows only. So `sequence` follows the order in which the publisher
/// saw commits: a row that commits late gets a later number, a reader that has seen N never later
/// finds a smaller one, numbers have no gaps (they come from the cursor row, in the publisher's
/// transaction, not from a database sequence), and a writer that holds its transaction open for
/// long (a 300,000-row import) holds up no other writer.
///
/// Its tables, `<schema>.events` and `<schema>.event_cursor`, are made by the runtime's migrations
/// (`RuntimeMigrations`) for every service whose definition has a stream. Events never carry
/// personal data.
/// - Note: `Sendable`; immutable.
public struct EventStream: Sendable {
    /// The stream's name: the service's name (`registry`), its events' `stream` attribute.
    public let name: String
    /// The schema that holds the stream's tables: the service's.
    public let schema: String
    /// CloudEvents `source`: `/tsunagu/<name>`.
    public let source: String
    /// Prefix of every event type, e.g. `jp.tsunagu.registry.`.
    public let typePrefix: String
    /// `<schema>.events` and `<schema>.event_cursor` as SQL text, spliced into the queries below:
    /// table names cannot be bound, and these are made from the checked schema name only.
    let events: PostgresQuery
    let cursor: PostgresQuery
    /// Woken by this instance's committed writes (`WriteRunner`), slept on by its publisher.
    let nudge = EventNudge()

    /// The most sequence numbers one `events.read` page looks at: a page may hold no visible
    /// event and still move `last_sequence` on (the rest is `withheld`), so its cost is bounded
    /// whatever the caller may see.
    static let readWindow: Int64 = 10_000

    /// - Parameters:
    ///   - name: the service's name (the gateway takes a stream's events only with that service's credential).
    ///   - schema: a lower-case identifier (it names tables, so it cannot be bound); the service's schema, by default its name.
    public init(name: String, schema: String? = nil, typePrefix: String) {
        let schema = schema ?? name
        precondition(schema.range(of: "^[a-z_][a-z0-9_]*$", options: .regularExpression) != nil, "bad schema name")
        self.name = name
        self.schema = schema
        self.source = EventStreamWire.source(ofStream: name)
        self.typePrefix = typePrefix
        self.events = PostgresQuery(unsafeSQL: "\(schema).events")
        self.cursor = PostgresQuery(unsafeSQL: "\(schema).event_cursor")
    }

    /// The events table, `<schema>.events`. Bulk writers may insert into
    /// `<table> (type, subject, tenant, data)` with SQL of their own, in the caller's transaction,
    /// as `append` does: no lock, no sequence (the publisher numbers rows once they are committed).
    public var table: String { "\(schema).events" }

    /// Appends one event in the caller's transaction. The insert is sent with the transaction's
    /// next statement or its COMMIT (`queryWithNext`): no round trip of its own.
    public func append(on tx: PostgresConnection, type: String, subject: String, tenant: String, data: JSONValue) throws {
        try tx.queryWithNext("""
            INSERT INTO \(events) (type, subject, tenant, data)
            VALUES (\(typePrefix + type), \(subject), \(tenant), \(String(decoding: data.serialized(), as: UTF8.self))::jsonb)
            """)
    }

    /// The CloudEvent of events row `o`.
    func eventJSON() -> PostgresQuery {
        """
        jsonb_build_object('specversion', '1.0', 'id', o.id, 'source', \(source)::text, 'type', o.type, 'subject', o.subject,
            'time', to_char(o.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            'datacontenttype', 'application/json', 'sequence', o.sequence, 'stream', \(name)::text, 'tenant', o.tenant,
            'data', o.data)
        """
    }

    /// The runtime's migrations for a service with events: its events table and cursor.
    static func migrations(schema: String) -> [PostgresMigration] {
        [
            // insert_order orders rows by insertion only; `sequence` is given by the publisher once
            // the row is committed (NULL until then). The cursor holds the last sequence given out
            // (`assigned`) and the last one pushed to the gateway (`pushed`).
            PostgresMigration(id: "0002_events", sql: """
                CREATE TABLE \(schema).events (
                    insert_order  bigserial PRIMARY KEY,
                    sequence      bigint UNIQUE,
                    id            uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
                    type          text NOT NULL,
                    subject       text NOT NULL,
                    tenant        text NOT NULL,
                    time          timestamptz NOT NULL DEFAULT now(),
                    data          jsonb NOT NULL
                );
                CREATE INDEX events_unnumbered ON \(schema).events (insert_order) WHERE sequence IS NULL;
                CREATE TABLE \(schema).event_cursor (
                    id        int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
                    assigned  bigint NOT NULL,
                    pushed    bigint NOT NULL CHECK (pushed <= assigned)
                );
                INSERT INTO \(schema).event_cursor (id, assigned, pushed) VALUES (1, 0, 0);
                """),
            // `time` is when the event's row was written, not when its transaction began: an append
            // goes with the transaction's next statement or its COMMIT, so this is about when the
            // change was committed, even for a transaction that ran long.
            PostgresMigration(id: "0003_event_time", sql: """
                ALTER TABLE \(schema).events ALTER COLUMN time SET DEFAULT clock_timestamp();
                """),
        ]
    }

    struct ReadInput: Decodable, Sendable {
        let after: Int64?
        let limit: Int?
        let types: [String]?
    }

    /// `events.read`: events after a sequence number, oldest first, as the caller may see them.
    public func operations() throws -> [ServiceOperation] {
        let stream = self
        return [
            try .read(
                "events.read",
                summary: "Events after a sequence number, oldest first (CloudEvents 1.0 JSON with sequence, stream and tenant), "
                    + "only those the caller may see; the sequences it may not see are given as withheld ranges.",
                schema: """
                    {"type":"object","additionalProperties":false,
                     "properties":{"after":{"type":"integer","minimum":0,"maximum":9007199254740991},
                                   "limit":{"type":"integer","minimum":1,"maximum":1000},
                                   "types":{"type":"array","maxItems":20,"items":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,100}$","maxLength":100}}}}
                    """,
                input: ReadInput.self
            ) { context, input in
                let permissions = try context.requirePrincipal().eventPermissions
                let query = stream.readQuery(after: input.after ?? 0, limit: input.limit ?? 100, types: input.types ?? [],
                                             permissions: permissions)
                let text: String = try await context.database.withConnection { connection in
                    try connection.query(query)[0].decode("j")
                }
                return RawJSON(text: text)
            },
        ]
    }

    /// One page of `events.read`, built in one statement (so one snapshot: every row numbered up
    /// to the cursor's `assigned` is there). It looks at the sequences in (after, bound], bound =
    /// min(head, after + `readWindow`); keeps the rows the caller may see (`permissions`, the rule
    /// of `EventPermissions.visible`) and asked for (`types`), up to `limit`; `last_sequence` is
    /// the last of them when the page is full, else the bound; and every sequence in
    /// (after, last_sequence] not among the events is in a `withheld` range (rows the caller may
    /// not see, did not ask for, or numbers the registry's pre-0014 history never used).
    func readQuery(after: Int64, limit: Int, types: [String], permissions: EventPermissions) -> PostgresQuery {
        """
        WITH head AS (SELECT coalesce((SELECT assigned FROM \(cursor) WHERE id = 1), 0) AS h),
        bound AS (SELECT least(h, \(after)::bigint + \(Self.readWindow)::bigint) AS b FROM head),
        page AS (
            SELECT o.* FROM \(events) o
            WHERE o.sequence > \(after)::bigint AND o.sequence <= (SELECT b FROM bound)
              AND (\(EventPermissions.allTenants)::text = ANY(\(permissions.tenants)::text[]) OR o.tenant = ANY(\(permissions.tenants)::text[]))
              AND (cardinality(\(permissions.types)::text[]) = 0
                   OR EXISTS (SELECT 1 FROM unnest(\(permissions.types)::text[]) AS p (prefix) WHERE starts_with(o.type, p.prefix)))
              AND (cardinality(\(types)::text[]) = 0 OR o.type = ANY(\(types)::text[]))
            ORDER BY o.sequence LIMIT \(limit)::int),
        last AS (
            SELECT CASE WHEN (SELECT count(*) FROM page) = \(limit)::int THEN (SELECT max(sequence) FROM page)
                        ELSE greatest(\(after)::bigint, (SELECT b FROM bound)) END AS l,
                   coalesce((SELECT max(sequence) FROM page), \(after)::bigint) AS shown),
        withheld AS (
            SELECT s.previous + 1 AS a, s.sequence - 1 AS z
            FROM (SELECT sequence, lag(sequence, 1, \(after)::bigint) OVER (ORDER BY sequence) AS previous FROM page) s
            WHERE s.sequence > s.previous + 1
            UNION ALL
            SELECT shown + 1, l FROM last WHERE l > shown)
        SELECT jsonb_build_object(
            'events', coalesce((SELECT jsonb_agg(\(eventJSON()) ORDER BY o.sequence) FROM page o), '[]'),
            'withheld', coalesce((SELECT jsonb_agg(jsonb_build_object('from', a, 'to', z) ORDER BY a) FROM withheld), '[]'),
            'last_sequence', (SELECT l FROM last),
            'head', (SELECT h FROM head))::text AS j
        """
    }
}

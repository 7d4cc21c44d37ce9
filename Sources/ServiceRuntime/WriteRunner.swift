import Foundation
import Postgres
import Wire

/// Runs a write operation's handler in one transaction and makes keyed writes apply once.
///
/// The idempotency record (tenant, operation, key, a SHA-256 of the canonical payload, the reply)
/// lives in the service's own schema (`<schema>.idempotency`, made by the runtime's migrations)
/// and is inserted in the transaction of the change, so either both commit or neither does. A
/// transaction-scoped advisory lock on the key serialises concurrent calls with the same key: the
/// second waits for the first and then finds its record. Records older than `retention` are
/// ignored and purged (`purgeExpired`).
///
/// The transaction gets `statement_timeout` from the time left before the request's deadline, and
/// is rolled back instead of committed once the deadline has passed: the caller has been told
/// `timeout` by then, and must not find the change made after all. A handler that throws
/// `CommittedRefusal` has its writes committed and its refusal answered.
/// - Note: `Sendable`; immutable.
struct WriteRunner: Sendable {
    let schema: String
    let retention: Duration
    /// Told after each write that committed: the service's event publisher, which then need not
    /// wait for its next poll to number and push what the write appended.
    let events: EventNudge?

    init(schema: String, retention: Duration, events: EventNudge? = nil) {
        precondition(schema.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil, "bad schema name")
        self.schema = schema
        self.retention = retention
        self.events = events
    }

    func run(_ context: RequestContext, _ body: @escaping @Sendable (PostgresConnection) throws -> Data) async throws -> Data {
        let schema = self.schema
        let retentionSeconds = String(max(1, retention.components.seconds))
        let deadline = context.deadline
        let key = context.idempotencyKey
        let tenant = context.principal?.tenant ?? ""
        let operation = context.operation
        let canonical = key == nil ? "" : context.canonicalInput()
        let outcome = try await context.database.withConnection(deadline: deadline) { connection -> Result<Data, WireError> in
            try connection.withTransaction(statementTimeoutMs: try Self.millisecondsLeft(until: deadline)) { connection in
                if let key {
                    // The lock goes with the lookup (and the BEGIN): one round trip.
                    try connection.queryWithNext(PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                                                               bindings: ["\(schema)/\(tenant)/\(operation)/\(key)"]))
                    let rows = try connection.query(prepared: PostgresQuery(unsafeSQL: """
                        SELECT request_hash = sha256(convert_to($4, 'UTF8')) AS same, reply FROM \(schema).idempotency
                        WHERE tenant = $1 AND operation = $2 AND key = $3
                          AND created_at > now() - make_interval(secs => $5::double precision)
                        """, bindings: [tenant, operation, key, canonical, retentionSeconds]))
                    if let row = rows.first {
                        guard try row.decode("same", as: Bool.self) else {
                            throw WireError(.conflict, "this idempotency key was used with a different payload",
                                            details: .object(["idempotency_key": .string(key)]))
                        }
                        // Done before: the stored reply, and nothing of this transaction kept.
                        return .rollback(Result<Data, WireError>.success(Data(try row.decode("reply", as: String.self).utf8)))
                    }
                }
                let reply: Data
                do { reply = try body(connection) } catch let refusal as CommittedRefusal {
                    // What the handler wrote before refusing is kept; the refusal is the answer.
                    return .commit(Result<Data, WireError>.failure(refusal.error))
                }
                if let key {
                    // Sent with the COMMIT.
                    try connection.queryWithNext(PostgresQuery(unsafeSQL: """
                        INSERT INTO \(schema).idempotency (tenant, operation, key, request_hash, reply)
                        VALUES ($1, $2, $3, sha256(convert_to($4, 'UTF8')), $5)
                        ON CONFLICT (tenant, operation, key) DO UPDATE
                            SET request_hash = EXCLUDED.request_hash, reply = EXCLUDED.reply, created_at = now()
                        """, bindings: [tenant, operation, key, canonical, String(decoding: reply, as: UTF8.self)]))
                }
                if let deadline, ContinuousClock.now >= deadline {
                    throw WireError(.timeout, "the deadline passed before the change was committed; nothing was changed")
                }
                return .commit(Result<Data, WireError>.success(reply))
            }
        }
        // A committed change may have appended events: the publisher need not wait for its poll.
        events?.nudge()
        return try outcome.get()
    }

    /// Milliseconds before `deadline` (at least 1; PostgreSQL reads 0 as "no timeout"), or
    /// `timeout` when it has passed. Without a deadline, no statement timeout (0).
    static func millisecondsLeft(until deadline: ContinuousClock.Instant?) throws(WireError) -> Int {
        guard let deadline else { return 0 }
        let left = deadline - ContinuousClock.now
        guard left > .zero else { throw WireError(.timeout, "the deadline passed before the work began; nothing was changed") }
        return max(1, left.milliseconds)
    }

    /// Deletes records past their retention; returns how many.
    func purgeExpired(database: PostgresPool) async throws -> Int {
        let (schema, seconds) = (self.schema, String(max(1, retention.components.seconds)))
        return try await database.withConnection { connection in
            try connection.query(PostgresQuery(unsafeSQL: """
                WITH gone AS (DELETE FROM \(schema).idempotency
                              WHERE created_at <= now() - make_interval(secs => $1::double precision) RETURNING 1)
                SELECT count(*) AS n FROM gone
                """, bindings: [seconds]))[0].decode("n")
        }
    }
}

/// The tables every service has because the runtime uses them, applied before the service's own
/// migrations and recorded apart from them (`<schema>.runtime_migrations`).
enum RuntimeMigrations {
    static let table = "runtime_migrations"

    /// - Parameter events: the service has an event stream (`EventStream.migrations`: its tables).
    static func all(schema: String, events: Bool) -> [PostgresMigration] {
        [
            PostgresMigration(id: "0001_idempotency", sql: """
                CREATE TABLE \(schema).idempotency (
                    tenant        text NOT NULL,
                    operation     text NOT NULL,
                    key           text NOT NULL,
                    request_hash  bytea NOT NULL,
                    reply         text NOT NULL,
                    created_at    timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (tenant, operation, key)
                );
                CREATE INDEX idempotency_created ON \(schema).idempotency (created_at);
                """),
        ] + (events ? EventStream.migrations(schema: schema) : [])
    }
}

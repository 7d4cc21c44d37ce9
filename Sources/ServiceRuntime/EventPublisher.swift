import Foundation
import JSONSchema
import Logging
import Postgres
import Synchronization
import Wire

/// Numbers a stream's committed events and pushes them to the gateway (docs/events.md,
/// "Delivery"). The runtime runs one in every instance of a service with events; one of them at a
/// time publishes.
///
/// - One publisher: it holds a session-level advisory lock on its own connection (`database`, a
///   pool of one), taken with `pg_try_advisory_lock` and kept for as long as the session lives; the
///   others try again every `standbyInterval`. An instance that dies (even by `kill -9`) closes its
///   connection, and PostgreSQL releases the lock at once. While it leads, a publisher asks whether
///   its session still holds the lock at most every `standbyInterval` and after any error (a
///   connection made again holds none): a round run without the lock in between is harmless, since
///   numbering takes the cursor row's lock and the pushed cursor only moves by compare-and-set, so
///   the worst it does is push events again (duplicates, which subscribers drop by id).
/// - Each round: number up to `numberingBatch` committed, unnumbered rows in insertion order and
///   commit; then push what follows the `pushed` cursor in batches of `pushBatch`, each followed by
///   a head; only once the events socket's queue has taken them move the cursor, with a
///   compare-and-set (`pushed` must still be what this round read), up to the last event taken. What
///   the socket cannot take within `sendTimeout` (the gateway is away or slow) is not dropped: the
///   cursor stays there and the next round sends the rest again (with `retryTimeout` while the
///   gateway still takes nothing, so numbering goes on meanwhile). A publisher that dies before
///   moving the cursor leaves it where it was, and the next one sends those events again:
///   duplicates (subscribers dedupe by id), never loss.
/// - Between rounds it sleeps `pollInterval`, less when a write commits: a write of this instance
///   nudges it directly (`EventNudge`); an instance that stands by passes its own commits
///   on as a PostgreSQL notification (`pg_notify('tsunagu_events', schema)`, at most one per
///   `relayGap`, committed without waiting for the disk), which the publishing instance's
///   `listener()` hears and turns into a nudge. Notifications only wake it early: one lost (the
///   listener reconnecting) costs at most a poll.
/// - Heads: `["tsunagu.head", {"stream":…,"sequence":N}]` after every pushed batch (N its last
///   sequence) and at least every `headInterval` (N the highest number given out), so a subscriber
///   notices a lost tail within a heartbeat.
/// - Note: `Sendable`; immutable. Its loop runs in one task (`run()`).
struct EventPublisher: Sendable {
    let stream: EventStream
    let connection: WorkerConnection
    /// A pool of one connection: its session holds the publisher's advisory lock.
    let database: PostgresPool
    let logger: Logger
    var headInterval: Duration = .seconds(1)
    var pollInterval: Duration = .milliseconds(1000)
    var standbyInterval: Duration = .milliseconds(500)
    var sendTimeout: Duration = .seconds(2)
    var retryTimeout: Duration = .milliseconds(200)
    var numberingBatch = 5000
    var pushBatch = 500
    var relayGap: Duration = .milliseconds(2)
    /// Whether this instance publishes now: only then do notifications wake it.
    let role = PublisherRole()

    /// The channel standing-by instances notify and the publishing one listens on; the payload is
    /// the stream's schema.
    static let notificationChannel = "tsunagu_events"

    /// The listener that wakes this publisher, while it publishes, when another instance commits.
    func listener(conninfo: String) -> PostgresListener {
        let (nudge, schema, role) = (stream.nudge, stream.schema, role)
        return PostgresListener(conninfo: conninfo, channel: Self.notificationChannel, logger: logger) { payloads in
            if role.isLeading && (payloads.isEmpty || payloads.contains(schema)) { nudge.nudge() }
        }
    }

    /// Rounds until the task is cancelled.
    func run() async {
        let clock = ContinuousClock()
        var lastHead: ContinuousClock.Instant?
        var leading: Bool?
        var stalled = false
        var leadCheckedAt: ContinuousClock.Instant?
        while !Task.isCancelled {
            var busy = false
            do {
                let leader: Bool
                if leading == true, let checked = leadCheckedAt, clock.now - checked < standbyInterval {
                    leader = true
                } else {
                    leadCheckedAt = nil
                    leader = try await database.withConnection { [stream] connection in try Self.lead(stream, on: connection) }
                    leadCheckedAt = clock.now
                }
                if leader != leading {
                    logger.info(leader ? "publishing events" : "standing by: another instance publishes events")
                    leading = leader
                    role.set(leader)
                }
                if leader {
                    let round = try await self.round(within: stalled ? retryTimeout : sendTimeout)
                    busy = round.busy
                    if let pushed = round.pushedAll { stalled = !pushed }
                    if round.pushedBatch { lastHead = clock.now }
                    if lastHead.map({ clock.now - $0 >= headInterval }) ?? true {
                        stalled = await connection.publish([head(round.assigned)], within: stalled ? retryTimeout : sendTimeout) == 0
                        if !stalled { lastHead = clock.now }
                    }
                }
            } catch {
                // The connection may have been made again, without the lock: ask before the next round.
                leadCheckedAt = nil
                logger.debug("event publishing paused", metadata: ["error": "\(error)"])
            }
            if !busy {
                // Heads are sent from rounds: a head interval shorter than the poll shortens the sleep.
                if leading == true { await stream.nudge.sleep(for: min(pollInterval, headInterval)) } else { await relayCommits(for: standbyInterval) }
            }
        }
    }

    /// While standing by, for `duration`: tells the publishing instance of each commit of this
    /// one (a notification), at most one per `relayGap`.
    private func relayCommits(for duration: Duration) async {
        let clock = ContinuousClock()
        let until = clock.now + duration
        while !Task.isCancelled, clock.now < until {
            guard await stream.nudge.sleep(for: until - clock.now) else { return }
            do {
                try await database.withConnection { [stream] connection in try Self.notify(stream, on: connection) }
            } catch {
                logger.debug("could not notify the publishing instance", metadata: ["error": "\(error)"])
                return
            }
            try? await Task.sleep(for: relayGap)
        }
    }

    /// Notifies the stream's channel. Committed without waiting for the disk: the notification is
    /// delivered at commit either way, and losing one in a crash costs a poll.
    static func notify(_ stream: EventStream, on connection: PostgresConnection) throws {
        try connection.withTransaction { tx in
            try tx.queryWithNext("SET LOCAL synchronous_commit = off")
            _ = try tx.query(prepared: "SELECT pg_notify(\(notificationChannel), \(stream.schema))")
        }
    }

    /// The publisher lock of `stream`: held already by this session, or taken now if free.
    /// Two keys: a constant for "event publisher" and the schema's hash (both non-negative, so
    /// pg_locks shows them as they are).
    static func lead(_ stream: EventStream, on connection: PostgresConnection) throws -> Bool {
        try connection.query("""
            SELECT CASE WHEN EXISTS (
                        SELECT 1 FROM pg_locks
                        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 2
                          AND classid = \(lockClass)::int::oid AND objid = (hashtext(\(stream.schema)) & 2147483647)::oid)
                   THEN true
                   ELSE pg_try_advisory_lock(\(lockClass)::int, hashtext(\(stream.schema)) & 2147483647) END AS leader
            """)[0].decode("leader")
    }

    /// "tsug": the first key of every publisher lock.
    static let lockClass = 0x7473_7567

    struct Round {
        var assigned: Int64
        var pushedBatch = false
        var busy = false
        /// Whether the events socket took all it was given in time; nil when there was nothing to give.
        var pushedAll: Bool?
    }

    /// Numbers, then pushes until the cursor reaches what is numbered (or a push fails).
    private func round(within timeout: Duration) async throws -> Round {
        let (numbered, pushed, assigned) = try await database.withConnection { [stream, numberingBatch] connection in
            try connection.withTransaction { tx in try Self.number(stream, batch: numberingBatch, on: tx) }
        }
        var result = Round(assigned: assigned, busy: numbered == numberingBatch)
        var through = pushed
        while through < assigned && !Task.isCancelled {
            let (events, last) = try await database.withConnection { [stream, pushBatch, through] connection in
                try Self.batch(stream, after: through, upTo: assigned, limit: pushBatch, on: connection)
            }
            let taken = await connection.publish(events.map(\.message) + [head(last)], within: timeout)
            // The events taken (all, with the head after them, or the first few) count as pushed.
            let reached = taken > events.count ? last : taken > 0 ? events[taken - 1].sequence : through
            if reached > through {
                let moved = try await database.withConnection { [stream, through] connection in
                    try Self.movePushed(stream, from: through, to: reached, on: connection)
                }
                result.pushedBatch = true
                // Another publisher moved it (this one had lost its lock): it carries on from there.
                guard moved else { return result }
                through = reached
            }
            guard taken > events.count else {
                logger.debug("the gateway took no more events in time; the rest go again next round", metadata: ["after": "\(through)"])
                result.busy = false
                result.pushedAll = false
                return result
            }
            result.pushedAll = true
        }
        return result
    }

    /// Numbers up to `batch` committed, unnumbered rows in insertion order, from the cursor's counter.
    /// Returns how many it numbered, the pushed cursor and the last number given out.
    static func number(_ stream: EventStream, batch: Int, on tx: PostgresConnection) throws -> (Int, Int64, Int64) {
        let position = try tx.query(prepared: "SELECT pushed, assigned FROM \(stream.cursor) WHERE id = 1 FOR UPDATE")[0]
        let pushed: Int64 = try position.decode("pushed")
        let assigned: Int64 = try position.decode("assigned")
        // Rows of transactions still open are not visible here: they are numbered by a later
        // round, after whatever committed before them.
        let numbering = try tx.query(prepared: """
            WITH next AS (
                SELECT insert_order, row_number() OVER (ORDER BY insert_order) AS n FROM \(stream.events)
                WHERE sequence IS NULL ORDER BY insert_order LIMIT \(batch)::int),
            numbered AS (
                UPDATE \(stream.events) o SET sequence = \(assigned)::bigint + next.n FROM next
                WHERE o.insert_order = next.insert_order RETURNING o.sequence)
            SELECT count(*) AS n, coalesce(max(sequence), \(assigned)::bigint) AS last FROM numbered
            """)[0]
        let numbered: Int = try numbering.decode("n")
        let last: Int64 = try numbering.decode("last")
        if numbered > 0 {
            try tx.queryWithNext("UPDATE \(stream.cursor) SET assigned = \(last)::bigint WHERE id = 1")
        }
        return (numbered, pushed, last)
    }

    /// The event messages after `after`, up to `upTo`, at most `limit`, with their sequences, and
    /// the last sequence they cover.
    static func batch(_ stream: EventStream, after: Int64, upTo: Int64, limit: Int,
                      on connection: PostgresConnection) throws -> ([(sequence: Int64, message: [Data])], Int64) {
        let rows = try connection.query(prepared: """
            SELECT o.sequence, o.type, o.tenant, \(stream.eventJSON())::text AS j FROM \(stream.events) o
            WHERE o.sequence > \(after)::bigint AND o.sequence <= \(upTo)::bigint ORDER BY o.sequence LIMIT \(limit)::int
            """)
        let messages = try rows.map { row in
            let topic = TsunaguWire.eventTopic(type: try row.decode("type"), tenant: try row.decode("tenant"))
            return (sequence: try row.decode("sequence", as: Int64.self),
                    message: [Data(topic.utf8), Data((try row.decode("j", as: String.self)).utf8)])
        }
        // A short page ends the range (numbers the registry's pre-0014 history never used are no rows).
        let last = rows.count < limit ? upTo : try rows[rows.count - 1].decode("sequence", as: Int64.self)
        return (messages, last)
    }

    /// Moves the pushed cursor from `from` to `to` if it is still at `from`. Committed without
    /// waiting for the disk: a move lost in a crash only means those events are pushed again
    /// (duplicates, never loss), and the next round need not wait for the flush.
    static func movePushed(_ stream: EventStream, from: Int64, to: Int64, on connection: PostgresConnection) throws -> Bool {
        try connection.withTransaction { tx in
            try tx.queryWithNext("SET LOCAL synchronous_commit = off")
            return !(try tx.query(prepared: """
                UPDATE \(stream.cursor) SET pushed = \(to)::bigint WHERE id = 1 AND pushed = \(from)::bigint RETURNING id
                """)).isEmpty
        }
    }

    /// A head message: the stream's highest sequence known to be numbered and sent.
    func head(_ sequence: Int64) -> [Data] {
        let body = JSONValue.object(["stream": .string(stream.name), "sequence": .integer(sequence)])
        return [EventStreamWire.headTopic, body.serialized()]
    }
}

/// Whether an instance's publisher leads, for its notification listener's thread to read.
/// - Note: `Sendable`: an atomic.
final class PublisherRole: Sendable {
    private let leading = Atomic<Bool>(false)

    var isLeading: Bool { leading.load(ordering: .relaxed) }

    func set(_ value: Bool) { leading.store(value, ordering: .relaxed) }
}

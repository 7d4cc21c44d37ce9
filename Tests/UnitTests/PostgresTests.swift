import Foundation
import Logging
import Postgres
import Synchronization
import Testing

/// Against the real PostgreSQL that deploy/test.sh starts (TSUNAGU_TEST_DATABASE_URL).
let testDatabaseURL = ProcessInfo.processInfo.environment["TSUNAGU_TEST_DATABASE_URL"]

@Suite(.enabled(if: testDatabaseURL != nil, "needs TSUNAGU_TEST_DATABASE_URL (set by deploy/test.sh)"), .serialized)
struct PostgresTests {
    let logger = Logger(label: "test")

    func connect() throws -> PostgresConnection { try PostgresConnection(conninfo: testDatabaseURL!) }

    func uniqueSchema(_ name: String) -> String { "t_\(name)_\(UInt32.random(in: 0...UInt32.max))" }

    @Test func bindsValuesNeverAsSQL() throws {
        let connection = try connect()
        defer { connection.close() }
        let hostile = "x'); DROP TABLE pg_class; --"
        let rows = try connection.query("SELECT \(hostile)::text AS s, \(42)::int AS n, \(Optional<String>.none)::text AS missing")
        #expect(try rows[0].decode("s", as: String.self) == hostile)
        #expect(try rows[0].decode("n", as: Int.self) == 42)
        #expect(try rows[0].decode("missing", as: String?.self) == nil)
    }

    /// Strings that a naive array literal (joined by commas, unquoted or quoted without escapes) breaks.
    static let awkwardStrings = [
        "", "plain", "a,b", "say \"hi\"", "back\\slash", "\\\"", "{braces}", "}", "{", "{}", "\"", " spaces around ",
        "NULL", "null", "'single'", "tab\tand\nnewline", "東京都千代田区", "ｶﾀｶﾅ　全角スペース", "emoji 🏥", "$1", "a\\,b\",c",
    ]

    @Test func stringArraysBindAsTextArraysAndEveryStringRoundTrips() throws {
        let connection = try connect()
        defer { connection.close() }
        for values in [Self.awkwardStrings, [], [""], ["NULL"], Self.awkwardStrings.reversed()] {
            let rows = try connection.query("""
                SELECT t.n, t.e, cardinality(\(values)::text[]) AS count, array_position(\(values)::text[], NULL) AS null_at
                FROM unnest(\(values)::text[]) WITH ORDINALITY AS t(e, n) ORDER BY t.n
                """)
            #expect(try rows.map { try $0.decode("e", as: String.self) } == values)
            #expect(try rows.first?.decode("count", as: Int.self) ?? 0 == values.count)
            #expect(try rows.allSatisfy { try $0.decode("null_at", as: Int?.self) == nil })
        }
        // The same through a prepared statement, and each string alone against its own binding.
        for value in Self.awkwardStrings {
            let row = try connection.query(prepared: "SELECT (\([value])::text[])[1] = \(value)::text AS same, cardinality(\([value])::text[]) AS n")[0]
            #expect(try row.decode("same", as: Bool.self))
            #expect(try row.decode("n", as: Int.self) == 1)
        }
        // Other element types read from text, and a missing array as NULL.
        let codes = ["131016", "011002"]
        let row = try connection.query("""
            SELECT '131016'::char(6) = ANY(\(codes)::char(6)[]) AS hit, '130001'::char(6) = ANY(\(codes)::char(6)[]) AS miss,
                   \(Optional<[String]>.none)::text[] IS NULL AS missing
            """)[0]
        #expect(try row.decode("hit", as: Bool.self))
        #expect(try !row.decode("miss", as: Bool.self))
        #expect(try row.decode("missing", as: Bool.self))
        #expect(["a\"b", "c\\d"].postgresText == #"{"a\"b","c\\d"}"#)
        #expect([String]().postgresText == "{}")
    }

    @Test func queriesSplicedIntoQueriesNumberTheirValuesWhereTheyLand() throws {
        let connection = try connect()
        defer { connection.close() }
        let kinds = ["a", "b,c"]
        var filters: [PostgresQuery] = ["TRUE"]
        filters.append("\(kinds)::text[] && ARRAY['b,c']")
        filters.append("\("x")::text || \("y")::text = 'xy'")
        let query: PostgresQuery = "SELECT \(1)::int AS one WHERE \(filters, joinedBy: " AND ") AND \(2)::int = 2"
        #expect(query.sql == "SELECT $1::int AS one WHERE TRUE AND $2::text[] && ARRAY['b,c'] AND $3::text || $4::text = 'xy' AND $5::int = 2")
        #expect(query.bindings == ["1", #"{"a","b,c"}"#, "x", "y", "2"])
        #expect(try connection.query(query)[0].decode("one", as: Int.self) == 1)
        // A part with multi-byte text before its values, spliced twice.
        let part: PostgresQuery = "'東京' || \("都")::text = '東京都'"
        let twice: PostgresQuery = "SELECT \(part) AND \(part) AND \(unsafeRaw: "'千代田'") = \("千代田")::text AS ok"
        #expect(twice.sql == "SELECT '東京' || $1::text = '東京都' AND '東京' || $2::text = '東京都' AND '千代田' = $3::text AS ok")
        #expect(try connection.query(twice)[0].decode("ok", as: Bool.self))
        let none: [PostgresQuery] = []
        let bare: PostgresQuery = "SELECT 1 AS n\(none, joinedBy: " AND ")"
        #expect(bare.sql == "SELECT 1 AS n" && bare.bindings.isEmpty)
    }

    @Test func preparedStatementsAreReusedWithNewValues() throws {
        let connection = try connect()
        defer { connection.close() }
        for value in [1, 2, 3] {
            let rows = try connection.query(prepared: "SELECT \(value)::int * 10 AS n, \(Optional<String>.none)::text AS t")
            #expect(try rows[0].decode("n", as: Int.self) == value * 10)
        }
        #expect(throws: PostgresError.self) { try connection.query(prepared: "SELEKT 1") }
        #expect(try connection.query(prepared: "SELECT 5 AS n")[0].decode("n", as: Int.self) == 5)
    }

    @Test func decodingAMissingColumnOrNullThrows() throws {
        let connection = try connect()
        defer { connection.close() }
        let row = try connection.query("SELECT NULL::text AS a")[0]
        #expect(throws: PostgresError.self) { try row.decode("a", as: String.self) }
        #expect(throws: PostgresError.self) { try row.decode("b", as: String.self) }
    }

    @Test func aValueHoldingNULIsRefusedNotCutShort() throws {
        let connection = try connect()
        defer { connection.close() }
        let value = "before\u{0}after"
        do {
            try connection.query("SELECT \(value)::text AS v")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidValue)
        }
        // The connection is still usable.
        #expect(try connection.query("SELECT 1 AS one")[0].decode("one", as: Int.self) == 1)
    }

    @Test func syntaxErrorsCarrySQLStateButDescriptionHidesTheText() throws {
        let connection = try connect()
        defer { connection.close() }
        do {
            try connection.query("SELEKT secret_value")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .queryFailed)
            #expect(error.sqlState == "42601")
            #expect(!error.description.contains("secret_value"))
        }
    }

    @Test func transactionRollsBackWhenTheBodyThrows() throws {
        let connection = try connect()
        defer { connection.close() }
        let schema = uniqueSchema("tx")
        try connection.execute(unsafeSQL: "CREATE SCHEMA \(schema); CREATE TABLE \(schema).t (v int PRIMARY KEY)")
        defer { try? connection.execute(unsafeSQL: "DROP SCHEMA \(schema) CASCADE") }
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try connection.withTransaction { tx in
                try tx.query(PostgresQuery(unsafeSQL: "INSERT INTO \(schema).t VALUES (1)"))
                throw Boom()
            }
        }
        #expect(try connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) AS n FROM \(schema).t"))[0].decode("n", as: Int.self) == 0)
        do {
            try connection.withTransaction { tx in
                try tx.query(PostgresQuery(unsafeSQL: "INSERT INTO \(schema).t VALUES (1)"))
                try tx.query(PostgresQuery(unsafeSQL: "INSERT INTO \(schema).t VALUES (1)"))
            }
        } catch let error as PostgresError {
            #expect(error.isUniqueViolation)
        }
    }

    func count(_ schema: String, on connection: PostgresConnection) throws -> Int {
        try connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) AS n FROM \(schema).t"))[0].decode("n")
    }

    @Test func heldStatementsRunInOrderWithTheNextStatementAndTheCommit() throws {
        let connection = try connect()
        defer { connection.close() }
        let schema = uniqueSchema("held")
        try connection.execute(unsafeSQL: "CREATE SCHEMA \(schema); CREATE TABLE \(schema).t (v int PRIMARY KEY)")
        defer { try? connection.execute(unsafeSQL: "DROP SCHEMA \(schema) CASCADE") }
        let insert = { (v: Int) in PostgresQuery(unsafeSQL: "INSERT INTO \(schema).t VALUES ($1)", bindings: [String(v)]) }
        try connection.withTransaction { tx in
            try tx.queryWithNext(insert(1))
            try tx.queryWithNext(insert(2))
            // The next statement sees what was held before it: the order is the order written.
            let seen: [Int] = try tx.query(PostgresQuery(unsafeSQL: "SELECT v FROM \(schema).t ORDER BY v")).map { try $0.decode("v") }
            #expect(seen == [1, 2])
            try tx.queryWithNext(insert(3))  // goes with the COMMIT
        }
        #expect(try count(schema, on: connection) == 3)
        // More than fit in one pipeline: sent in batches, all committed.
        try connection.withTransaction { tx in
            for v in 10..<210 { try tx.queryWithNext(insert(v)) }
        }
        #expect(try count(schema, on: connection) == 203)
        // A transaction of held statements only still commits them.
        try connection.withTransaction { tx in try tx.queryWithNext(insert(500)) }
        #expect(try count(schema, on: connection) == 204)
        // Outside a transaction a held statement runs at once.
        try connection.queryWithNext(insert(600))
        #expect(try count(schema, on: connection) == 205)
        // A rolled-back transaction sends none of what it held.
        try connection.withTransaction(statementTimeoutMs: 0) { tx -> PostgresConnection.TransactionEnd<Void> in
            try tx.queryWithNext(insert(700))
            return .rollback(())
        }
        #expect(try count(schema, on: connection) == 205)
    }

    @Test func aHeldStatementThatFailsRollsBackItsTransactionAndTheConnectionStaysUsable() throws {
        let connection = try connect()
        defer { connection.close() }
        let schema = uniqueSchema("heldfail")
        try connection.execute(unsafeSQL: "CREATE SCHEMA \(schema); CREATE TABLE \(schema).t (v int PRIMARY KEY)")
        defer { try? connection.execute(unsafeSQL: "DROP SCHEMA \(schema) CASCADE") }
        let insert = { (v: Int) in PostgresQuery(unsafeSQL: "INSERT INTO \(schema).t VALUES ($1)", bindings: [String(v)]) }
        // Failing at the COMMIT it went with: the error is the statement's, nothing is kept.
        do {
            try connection.withTransaction { tx in
                try tx.query(insert(1))
                try tx.queryWithNext(insert(2))
                try tx.queryWithNext(insert(1))
            }
            Issue.record("expected a unique violation")
        } catch let error as PostgresError {
            #expect(error.isUniqueViolation)
        }
        #expect(try count(schema, on: connection) == 0)
        // Failing at the next statement: that statement throws the held one's error.
        do {
            try connection.withTransaction { tx in
                try tx.queryWithNext(PostgresQuery(unsafeSQL: "INSERT INTO \(schema).t VALUES ('not a number')"))
                try tx.query(insert(5))
            }
            Issue.record("expected an error")
        } catch let error as PostgresError {
            #expect(error.sqlState == "22P02")
        }
        #expect(try count(schema, on: connection) == 0)
        #expect(connection.isHealthy)
        // A statement that failed to prepare in a pipeline is not taken for prepared.
        for _ in 0..<2 {
            #expect(throws: PostgresError.self) {
                try connection.withTransaction { tx in try tx.queryWithNext("SELEKT 1") }
            }
        }
        try connection.withTransaction { tx in _ = try tx.query(insert(9)) }
        #expect(try count(schema, on: connection) == 1)
        // A statement prepared in a transaction that then failed and rolled back stays prepared
        // on the session (PostgreSQL's prepared statements are not transactional): reusing it works.
        let probe = PostgresQuery(unsafeSQL: "SELECT $1::int + 1 AS n", bindings: ["41"])
        do {
            try connection.withTransaction { tx in
                _ = try tx.query(prepared: probe)
                try tx.query(insert(9))
            }
            Issue.record("expected a unique violation")
        } catch let error as PostgresError {
            #expect(error.isUniqueViolation)
        }
        #expect(try connection.query(prepared: probe)[0].decode("n", as: Int.self) == 42)
        let inTransaction: Int = try connection.withTransaction { tx in try tx.query(prepared: probe)[0].decode("n") }
        #expect(inTransaction == 42)
    }

    @Test func aTransactionsStatementTimeoutHoldsWithItsFirstStatement() throws {
        let connection = try connect()
        defer { connection.close() }
        do {
            try connection.withTransaction(statementTimeoutMs: 100) { tx -> PostgresConnection.TransactionEnd<Void> in
                try tx.query("SELECT pg_sleep(2)")
                return .commit(())
            }
            Issue.record("expected the statement timeout")
        } catch let error as PostgresError {
            #expect(error.sqlState == "57014")
        }
        // The timeout was the transaction's alone; a body that sends nothing begins nothing.
        #expect(try connection.query("SHOW statement_timeout")[0].decode("statement_timeout", as: String.self) == "0")
        let value = try connection.withTransaction(statementTimeoutMs: 100) { _ in PostgresConnection.TransactionEnd<Int>.commit(7) }
        #expect(value == 7)
        #expect(try connection.query("SELECT txid_current_if_assigned() IS NULL AS idle")[0].decode("idle", as: Bool.self))
    }

    @Test func aConnectionKilledUnderAPipelineIsUnhealthy() throws {
        let connection = try connect()
        defer { connection.close() }
        let other = try connect()
        defer { other.close() }
        let pid: Int = try connection.query("SELECT pg_backend_pid() AS pid")[0].decode("pid")
        try other.query("SELECT pg_terminate_backend(\(pid))")
        #expect(throws: PostgresError.self) {
            try connection.withTransaction { tx in try tx.query("SELECT 1") }
        }
        #expect(!connection.isHealthy)
    }

    @Test func aListenerHearsNotificationsAndComesBackAfterItsConnectionIsKilled() async throws {
        let heard = Mutex<[[String]]>([])
        let channel = "t_listen_\(UInt32.random(in: 0...UInt32.max))"
        let listener = PostgresListener(conninfo: testDatabaseURL!, channel: channel, logger: logger) { payloads in
            heard.withLock { $0.append(payloads) }
        }
        listener.start()
        defer { listener.stop() }
        let sender = try connect()
        defer { sender.close() }
        func waitFor(_ what: String, _ condition: () -> Bool) async throws {
            for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(50)) }
            #expect(condition(), "\(what)")
        }
        // Once connected it says so with no payloads (it may have missed some before).
        try await waitFor("connected") { heard.withLock { $0.contains([]) } }
        try sender.query("SELECT pg_notify(\(channel), 'first')")
        try await waitFor("the first notification") { heard.withLock { $0.contains { $0.contains("first") } } }
        // Its backend killed: it connects again, says so, and hears the next one.
        let backends: [Int] = try sender.query("SELECT pid FROM pg_stat_activity WHERE query = \("LISTEN " + channel)")
            .map { try $0.decode("pid") }
        #expect(backends.count == 1)
        let before = heard.withLock { $0.filter(\.isEmpty).count }
        for pid in backends { try sender.query("SELECT pg_terminate_backend(\(pid))") }
        try await waitFor("connected again") { heard.withLock { $0.filter(\.isEmpty).count } > before }
        try sender.query("SELECT pg_notify(\(channel), 'second')")
        try await waitFor("the notification after the reconnect") { heard.withLock { $0.contains { $0.contains("second") } } }
    }

    @Test func migratorAppliesInOrderOnceAndRecordsChecksums() throws {
        let connection = try connect()
        defer { connection.close() }
        let schema = uniqueSchema("mig")
        defer { try? connection.execute(unsafeSQL: "DROP SCHEMA \(schema) CASCADE") }
        let migrations = [
            PostgresMigration(id: "0001_t", sql: "CREATE TABLE \(schema).t (v int);"),
            PostgresMigration(id: "0002_row", sql: "INSERT INTO \(schema).t VALUES (7);"),
        ]
        let migrator = try PostgresMigrator(schema: schema, migrations: migrations)
        #expect(try migrator.run(on: connection, logger: logger) == ["0001_t", "0002_row"])
        #expect(try migrator.run(on: connection, logger: logger) == [])
        #expect(try connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) AS n FROM \(schema).t"))[0].decode("n", as: Int.self) == 1)

        let changed = try PostgresMigrator(schema: schema, migrations: [
            migrations[0], PostgresMigration(id: "0002_row", sql: "INSERT INTO \(schema).t VALUES (8);"),
        ])
        #expect(throws: PostgresError.self) { try changed.run(on: connection, logger: logger) }

        let forgotten = try PostgresMigrator(schema: schema, migrations: [migrations[0]])
        #expect(throws: PostgresError.self) { try forgotten.run(on: connection, logger: logger) }
    }

    @Test func aFailingMigrationLeavesNothingBehind() throws {
        let connection = try connect()
        defer { connection.close() }
        let schema = uniqueSchema("fail")
        defer { try? connection.execute(unsafeSQL: "DROP SCHEMA \(schema) CASCADE") }
        let migrator = try PostgresMigrator(schema: schema, migrations: [
            PostgresMigration(id: "0001_half", sql: "CREATE TABLE \(schema).a (v int); SELEKT;"),
        ])
        #expect(throws: PostgresError.self) { try migrator.run(on: connection, logger: logger) }
        let tables = try connection.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = \(schema) AND table_name = 'a'")
        #expect(try tables[0].decode("n", as: Int.self) == 0)
    }

    @Test func twoMigratorsStartingTogetherApplyOnce() async throws {
        let schema = uniqueSchema("race")
        let migrations = [PostgresMigration(id: "0001_t", sql: "CREATE TABLE \(schema).t (v int); SELECT pg_sleep(0.2);")]
        let migrator = try PostgresMigrator(schema: schema, migrations: migrations)
        let logger = self.logger
        let applied = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<2 {
                group.addTask {
                    try await Task.detached {
                        let connection = try PostgresConnection(conninfo: testDatabaseURL!)
                        defer { connection.close() }
                        return try migrator.run(on: connection, logger: logger)
                    }.value
                }
            }
            return try await group.reduce(into: [[String]]()) { $0.append($1) }
        }
        #expect(applied.flatMap { $0 } == ["0001_t"])
        let connection = try connect()
        defer { connection.close() }
        try connection.execute(unsafeSQL: "DROP SCHEMA \(schema) CASCADE")
    }

    @Test func migratorRejectsABadSchemaName() {
        #expect(throws: PostgresError.self) { try PostgresMigrator(schema: "x; DROP", migrations: []) }
    }

    @Test func poolReconnectsAfterItsConnectionIsKilled() async throws {
        let pool = PostgresPool(.init(conninfo: testDatabaseURL!, size: 1, initialBackoff: .milliseconds(10)), logger: logger)
        defer { pool.shutdown() }
        let pid = try await pool.withConnection { try $0.query("SELECT pg_backend_pid() AS pid")[0].decode("pid", as: Int.self) }
        let killer = try connect()
        try killer.query("SELECT pg_terminate_backend(\(pid))")
        killer.close()
        var sawConnectivityError = false
        var newPid: Int?
        for _ in 0..<50 where newPid == nil {
            do {
                newPid = try await pool.withConnection { try $0.query("SELECT pg_backend_pid() AS pid")[0].decode("pid", as: Int.self) }
            } catch let error as PostgresError {
                #expect(error.isConnectivity)
                sawConnectivityError = true
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(sawConnectivityError)
        #expect(newPid != nil && newPid != pid)
    }

    @Test func poolWaitersAreBoundedAndTimeOut() async throws {
        let pool = PostgresPool(.init(conninfo: testDatabaseURL!, size: 1, maxWaiting: 1, waitTimeout: .milliseconds(300)),
                                logger: logger)
        defer { pool.shutdown() }
        // One job holds the only connection for a second.
        let holder = Task { try await pool.withConnection { try $0.query("SELECT pg_sleep(1)") } }
        try await Task.sleep(for: .milliseconds(200))
        // One more may wait; it gives up at its wait timeout without running.
        let waiter = Task { try await pool.withConnection { _ in "ran" } }
        try await Task.sleep(for: .milliseconds(50))
        // A third finds the queue full at once.
        do {
            _ = try await pool.withConnection { _ in "ran" }
            Issue.record("expected poolBusy")
        } catch let error as PostgresError {
            #expect(error.code == .poolBusy)
        }
        do {
            _ = try await waiter.value
            Issue.record("expected waitTimedOut")
        } catch let error as PostgresError {
            #expect(error.code == .waitTimedOut)
        }
        _ = try await holder.value
        #expect(try await pool.withConnection { _ in "ran" } == "ran")
    }

    @Test func poolFailsFastWhenTheServerIsUnreachable() async throws {
        let pool = PostgresPool(.init(conninfo: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", size: 1), logger: logger)
        defer { pool.shutdown() }
        for _ in 0..<3 {
            await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in 1 } }
        }
    }
}

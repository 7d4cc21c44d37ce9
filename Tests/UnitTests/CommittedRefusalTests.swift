import Foundation
import Logging
import Postgres
import ServiceRuntime
import Testing
import TsunaguTesting
import Wire

/// A write handler that throws `CommittedRefusal` keeps what it wrote and answers the refusal;
/// any other error rolls the transaction back. Against the real PostgreSQL of deploy/test.sh.
@Suite(.enabled(if: testDatabaseURL != nil, "needs TSUNAGU_TEST_DATABASE_URL (set by deploy/test.sh)"), .serialized)
struct CommittedRefusalTests {
    struct Empty: Decodable, Sendable {}
    struct Nothing: Encodable, Sendable {}

    @Test func aCommittedRefusalKeepsItsWritesAndStoresNoIdempotentReply() async throws {
        let schema = "t_refusal_\(UInt32.random(in: 0...UInt32.max))"
        let admin = try PostgresConnection(conninfo: testDatabaseURL!)
        defer { admin.close() }
        try admin.execute(unsafeSQL: "CREATE SCHEMA \(schema)")
        defer { try? admin.execute(unsafeSQL: "DROP SCHEMA \(schema) CASCADE") }
        let table = "\(schema).attempts"
        let definition = ServiceDefinition(
            name: "refusals", version: "0", schema: schema,
            migrations: [PostgresMigration(id: "0001_attempts", sql: "CREATE TABLE \(table) (what text NOT NULL)")],
            operations: [
                try .write("refuse.kept", summary: "", schema: #"{"type":"object","additionalProperties":false}"#, input: Empty.self) {
                    _, _, tx -> Nothing in
                    try tx.query(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES ('kept')", bindings: []))
                    throw CommittedRefusal(WireError(.forbidden, "refused, and the attempt recorded"))
                },
                try .write("refuse.plain", summary: "", schema: #"{"type":"object","additionalProperties":false}"#, input: Empty.self) {
                    _, _, tx -> Nothing in
                    try tx.query(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES ('rolled back')", bindings: []))
                    throw WireError(.forbidden, "refused")
                },
            ])
        let logger = Logger(label: "test")
        let pool = PostgresPool(.init(conninfo: testDatabaseURL!, size: 1), logger: logger)
        defer { pool.shutdown() }
        try await ServiceRunner.migrate(definition, pool: pool, logger: logger)
        let harness = ServiceHarness(definition, database: pool, logger: logger)

        for _ in 0..<2 {
            let (reply, _) = try await harness.call("refuse.kept", idempotencyKey: "same-key")
            #expect(reply.error?.code == .forbidden)
        }
        let (plain, _) = try await harness.call("refuse.plain")
        #expect(plain.error?.code == .forbidden)

        let rows = try admin.query(PostgresQuery(unsafeSQL: "SELECT what FROM \(table) ORDER BY what", bindings: []))
        #expect(try rows.map { try $0.decode("what", as: String.self) } == ["kept", "kept"])
        let stored = try admin.query(PostgresQuery(unsafeSQL: "SELECT count(*) AS n FROM \(schema).idempotency", bindings: []))
        #expect(try stored[0].decode("n", as: Int.self) == 0)
    }
}

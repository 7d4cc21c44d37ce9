import Foundation
import Logging

/// One forward-only migration: `NNNN_what.sql`, applied in one transaction.
public struct PostgresMigration: Sendable {
    public let id: String
    public let sql: String

    public init(id: String, sql: String) {
        self.id = id
        self.sql = sql
    }

    /// Reads every `*.sql` file of a folder, ordered by name.
    public static func load(directory: URL) throws -> [PostgresMigration] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        return try names.map { name in
            let sql = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            return PostgresMigration(id: String(name.dropLast(4)), sql: sql)
        }
    }
}

/// Applies a service's migrations to its own schema: in order, each once, each recorded with a
/// SHA-256 checksum. A session advisory lock makes two instances starting together safe: the
/// second waits, then finds everything applied. A recorded id that the service does not know, or a
/// changed file, is an error (the code and the database disagree; a human must look).
public struct PostgresMigrator: Sendable {
    public let schema: String
    public let migrations: [PostgresMigration]
    /// The table in `schema` that records applied ids (the runtime keeps its own beside the service's).
    public let table: String

    public init(schema: String, migrations: [PostgresMigration], table: String = "schema_migrations") throws(PostgresError) {
        guard schema.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
            throw PostgresError(.migration, serverMessage: "schema name must be a lower-case identifier")
        }
        let ids = migrations.map(\.id)
        guard ids == ids.sorted(), Set(ids).count == ids.count else {
            throw PostgresError(.migration, serverMessage: "migration ids must be unique and sorted")
        }
        guard table.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
            throw PostgresError(.migration, serverMessage: "migration table name must be a lower-case identifier")
        }
        self.schema = schema
        self.migrations = migrations
        self.table = table
    }

    /// Applies what is missing; returns the ids applied now.
    @discardableResult
    public func run(on connection: PostgresConnection, logger: Logger) throws -> [String] {
        // `schema` is a checked identifier; it cannot be a bound parameter in DDL.
        let table = "\(schema).\(self.table)"
        let lockKey = "tsunagu.migrate.\(schema)"
        try connection.query("SELECT pg_advisory_lock(hashtext(\(lockKey)))")
        defer { _ = try? connection.query("SELECT pg_advisory_unlock(hashtext(\(lockKey)))") }

        // A service's role may own its schema without the right to create schemas: make it only
        // when it is missing (PostgreSQL checks that right even for CREATE SCHEMA IF NOT EXISTS).
        if try connection.query("SELECT 1 FROM pg_namespace WHERE nspname = \(schema)").isEmpty {
            try connection.execute(unsafeSQL: "CREATE SCHEMA \(schema)")
        }
        try connection.execute(unsafeSQL: """
            CREATE TABLE IF NOT EXISTS \(table) (
                id text PRIMARY KEY,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """)
        let recorded = try connection.query(PostgresQuery(unsafeSQL: "SELECT id, checksum FROM \(table) ORDER BY id"))
        var applied: [String: String] = [:]
        for row in recorded { applied[try row.decode("id")] = try row.decode("checksum") }

        let known = Set(migrations.map(\.id))
        if let unknown = applied.keys.sorted().first(where: { !known.contains($0) }) {
            throw PostgresError(.migration, serverMessage: "schema \(schema) has migration \(unknown) that this program does not know")
        }

        var appliedNow: [String] = []
        for migration in migrations {
            let checksum: String = try connection.query(
                "SELECT encode(sha256(convert_to(\(migration.sql), 'UTF8')), 'hex') AS sum"
            )[0].decode("sum")
            if let existing = applied[migration.id] {
                guard existing == checksum else {
                    throw PostgresError(.migration, serverMessage: "migration \(schema)/\(migration.id) changed after it was applied")
                }
                continue
            }
            try connection.withTransaction { tx in
                try tx.execute(unsafeSQL: migration.sql)
                try tx.query(PostgresQuery(
                    unsafeSQL: "INSERT INTO \(table) (id, checksum) VALUES ($1, $2)",
                    bindings: [migration.id, checksum]))
            }
            logger.info("migration applied", metadata: ["db.schema": "\(schema)", "db.migration": "\(migration.id)"])
            appliedNow.append(migration.id)
        }
        return appliedNow
    }
}

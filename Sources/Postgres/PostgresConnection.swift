import Foundation
internal import CLibPQ

/// One libpq connection; owns its `PGconn` until `close()`.
/// - Warning: Not thread-safe and blocking: one thread owns it (see `PostgresPool`).
public final class PostgresConnection {
    private var handle: OpaquePointer?
    /// Statements prepared on this connection, by SQL text.
    private var preparedNames: [String: String] = [:]
    private static let maxPrepared = 256
    /// Statements held back to go with the next one sent, in the same round trip: an open
    /// transaction's BEGIN until its first statement, and those given to `queryWithNext`.
    private var held: [Statement] = []
    private static let maxHeld = 64
    private var inTransaction = false
    /// Set when a pipeline broke off half-way: the connection's state is unknown, so it is not reused.
    private var broken = false

    /// Connects with a `postgresql://` URL or a `key=value` conninfo string (blocking).
    public init(conninfo: String) throws(PostgresError) {
        guard let conn = PQconnectdb(conninfo) else {
            throw PostgresError(.connectionFailed, serverMessage: "out of memory")
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(conn))
            PQfinish(conn)
            throw PostgresError(.connectionFailed, serverMessage: message)
        }
        tsunagu_pq_silence_notices(conn)
        self.handle = conn
    }

    deinit { assert(handle == nil, "leaked open PostgresConnection: call close()") }

    public func close() {
        guard let handle else { return }
        self.handle = nil
        PQfinish(handle)
    }

    /// False once the server went away (libpq noticed it on the last call) or after `close()`.
    public var isHealthy: Bool {
        guard let handle, !broken else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    private func withUnsafeHandle<T>(_ body: (OpaquePointer) throws(PostgresError) -> T) throws(PostgresError) -> T {
        guard let handle else { throw PostgresError(.closed) }
        return try body(handle)
    }

    /// Runs one parameterised statement and returns its rows (empty for commands).
    @discardableResult
    public func query(_ query: PostgresQuery) throws(PostgresError) -> [PostgresRow] {
        try send(Statement(query, prepared: false))
    }

    /// Runs a statement through a prepared statement kept on this connection: the server parses
    /// and plans it once instead of on every call. For hot statements whose SQL text is one of a
    /// few shapes (at most 256 are kept per connection; past that, statements run unprepared).
    @discardableResult
    public func query(prepared query: PostgresQuery) throws(PostgresError) -> [PostgresRow] {
        try send(Statement(query, prepared: true))
    }

    /// Inside a transaction: holds a statement whose rows the caller does not need, and sends it
    /// with the transaction's next statement (or its COMMIT) in the same round trip. Statements
    /// still run in the order they were written, in the same transaction; a held statement that
    /// fails makes that next call throw its error (and the transaction rolls back). At most 64
    /// are held; the 64th is sent at once with those before it. Outside a transaction it runs at
    /// once, like `query(prepared:)`.
    /// - Warning: what is held must answer little (a command tag, a few rows): libpq's pipeline
    ///   here is blocking, and the server must never wait to send while this side is sending.
    public func queryWithNext(_ query: PostgresQuery) throws(PostgresError) {
        held.append(Statement(query, prepared: true))
        if !inTransaction || held.count >= Self.maxHeld { try flushHeld() }
    }

    /// One statement to send: its query, whether it goes through a prepared statement, and
    /// whether it is the BEGIN of `withTransaction`.
    private struct Statement {
        let query: PostgresQuery
        let prepared: Bool
        let begins: Bool
        init(_ query: PostgresQuery, prepared: Bool, begins: Bool = false) {
            self.query = query
            self.prepared = prepared
            self.begins = begins
        }
    }

    /// Whether the open transaction's BEGIN is still held (nothing of it has reached the server).
    private var beginHeld: Bool { held.first?.begins == true }

    /// Sends what is held and then `statement`, in one round trip; returns `statement`'s rows.
    /// A statement to prepare first goes through the pipeline too, its PREPARE in the same trip.
    private func send(_ statement: Statement) throws(PostgresError) -> [PostgresRow] {
        let name = statement.prepared ? preparedNames[statement.query.sql] : nil
        guard held.isEmpty, name != nil || !statement.prepared || preparedNames.count >= Self.maxPrepared else {
            let steps = held + [statement]
            held = []
            return try pipeline(steps)
        }
        return try withUnsafeHandle { conn throws(PostgresError) in
            let result = try Self.withCValues(statement.query.bindings) { count, values in
                if let name { PQexecPrepared(conn, name, count, values, nil, nil, 0) }
                else { PQexecParams(conn, statement.query.sql, count, nil, values, nil, nil, 0) }
            }
            return try collect(result, conn: conn)
        }
    }

    /// Sends what is held, if anything, and waits for it.
    private func flushHeld() throws(PostgresError) {
        guard !held.isEmpty else { return }
        let steps = held
        held = []
        _ = try pipeline(steps)
    }

    /// Sends `statements` in one round trip (libpq's pipeline mode, one sync at the end) and
    /// returns the last one's rows. They run in order until one fails: its error is thrown after
    /// every result is read, and the server skipped the rest. A connection that breaks on the way
    /// is left unhealthy, so its pool drops it.
    private func pipeline(_ statements: [Statement]) throws(PostgresError) -> [PostgresRow] {
        return try withUnsafeHandle { conn throws(PostgresError) in
            guard PQenterPipelineMode(conn) == 1 else { throw connectionError(conn) }
            // What each result read back answers, in the order they come.
            enum Expected { case prepare(sql: String, name: String), statement(last: Bool) }
            var expected: [Expected] = []
            var preparing: [String: String] = [:]
            do throws(PostgresError) {
                for (index, statement) in statements.enumerated() {
                    let sql = statement.query.sql
                    let sent: Int32
                    if statement.prepared, let name = preparedNames[sql] ?? preparing[sql] {
                        sent = try Self.withCValues(statement.query.bindings) { count, values in
                            PQsendQueryPrepared(conn, name, count, values, nil, nil, 0)
                        }
                    } else if statement.prepared, preparedNames.count + preparing.count < Self.maxPrepared {
                        let name = "tsunagu_\(preparedNames.count + preparing.count)"
                        guard PQsendPrepare(conn, name, sql, 0, nil) == 1 else { throw connectionError(conn) }
                        preparing[sql] = name
                        expected.append(.prepare(sql: sql, name: name))
                        sent = try Self.withCValues(statement.query.bindings) { count, values in
                            PQsendQueryPrepared(conn, name, count, values, nil, nil, 0)
                        }
                    } else {
                        sent = try Self.withCValues(statement.query.bindings) { count, values in
                            PQsendQueryParams(conn, sql, count, nil, values, nil, nil, 0)
                        }
                    }
                    guard sent == 1 else { throw connectionError(conn) }
                    expected.append(.statement(last: index == statements.count - 1))
                }
                guard PQpipelineSync(conn) == 1 else { throw connectionError(conn) }
            } catch {
                broken = true
                throw error
            }
            var failure: PostgresError?
            var rows: [PostgresRow] = []
            for expectation in expected {
                guard let result = PQgetResult(conn) else {
                    broken = true
                    throw connectionError(conn)
                }
                if PQresultStatus(result) == PGRES_PIPELINE_ABORTED {
                    PQclear(result)
                } else {
                    do throws(PostgresError) {
                        let answer = try collect(result, conn: conn)
                        switch expectation {
                        case .prepare(let sql, let name): preparedNames[sql] = name
                        case .statement(let last): if last { rows = answer }
                        }
                    } catch {
                        if error.code == .connectionLost || error.code == .connectionFailed {
                            broken = true
                            throw error
                        }
                        failure = failure ?? error
                    }
                }
                // Each statement's results end with a NULL.
                guard PQgetResult(conn) == nil else {
                    broken = true
                    throw PostgresError(.connectionLost, serverMessage: "unexpected results in a pipeline")
                }
            }
            guard let sync = PQgetResult(conn) else {
                broken = true
                throw connectionError(conn)
            }
            let synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC
            PQclear(sync)
            guard synced, PQexitPipelineMode(conn) == 1 else {
                broken = true
                throw PostgresError(.connectionLost, serverMessage: "the pipeline did not end at its sync")
            }
            if let failure { throw failure }
            return rows
        }
    }

    /// Binding values as C strings (NULL for SQL NULL), alive for the duration of `body`. A value
    /// holding NUL is refused: as a C string it would be cut short silently, and no PostgreSQL
    /// text can hold it anyway.
    private static func withCValues<R>(
        _ bindings: [String?], _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> R
    ) throws(PostgresError) -> R {
        for case let value? in bindings where value.utf8.withContiguousStorageIfAvailable({ $0.count > 0 && memchr($0.baseAddress!, 0, $0.count) != nil }) ?? value.utf8.contains(0) {
            throw PostgresError(.invalidValue, serverMessage: "a bound value holds a NUL character")
        }
        let cStrings: [UnsafeMutablePointer<CChar>?] = bindings.map { $0.flatMap { strdup($0) } }
        defer { cStrings.forEach { free($0) } }
        return cStrings.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { values in body(Int32(bindings.count), values.baseAddress) }
        }
    }

    /// Runs SQL text that may hold several statements (a migration file). No parameters.
    public func execute(unsafeSQL sql: String) throws(PostgresError) {
        try flushHeld()
        try withUnsafeHandle { conn throws(PostgresError) in
            _ = try collect(PQexec(conn, sql), conn: conn)
        }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    public func withTransaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try withTransaction(statementTimeoutMs: 0) { .commit(try body($0)) }
    }

    /// How a transaction ends when its body returns.
    public enum TransactionEnd<T> {
        case commit(T)
        /// Nothing of it is kept (it only read, or found its work done before), yet `T` is the answer.
        case rollback(T)
    }

    /// Runs `body` in a transaction with `statement_timeout` set for it alone (0: none), ending as
    /// the body says; rolled back when it throws.
    ///
    /// The BEGIN is held and goes with the transaction's first statement, and the COMMIT goes with
    /// whatever is held then (`queryWithNext`): a transaction of n statements takes n round trips
    /// instead of n + 2. A body that sends nothing begins and commits nothing.
    public func withTransaction<T>(statementTimeoutMs: Int, _ body: (PostgresConnection) throws -> TransactionEnd<T>) throws -> T {
        precondition(!inTransaction && held.isEmpty, "a transaction inside a transaction")
        // Our own integer, not input: safe to write into the SQL text.
        held = [Statement("BEGIN", prepared: false, begins: true)]
            + (statementTimeoutMs > 0 ? [Statement(PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(statementTimeoutMs)"), prepared: false)] : [])
        let prelude = held.count
        inTransaction = true
        defer {
            inTransaction = false
            held = []
        }
        do {
            switch try body(self) {
            case .commit(let value):
                if !beginHeld || held.count > prelude { _ = try send(Statement("COMMIT", prepared: false)) }
                return value
            case .rollback(let value):
                if !beginHeld {
                    held = []
                    try execute(unsafeSQL: "ROLLBACK")
                }
                return value
            }
        } catch {
            let begun = !beginHeld
            held = []
            if begun, isHealthy { try? execute(unsafeSQL: "ROLLBACK") }
            throw error
        }
    }

    /// Copies the rows out and frees the `PGresult` (its one owner is this function).
    private func collect(_ result: OpaquePointer?, conn: OpaquePointer) throws(PostgresError) -> [PostgresRow] {
        guard let result else {
            throw connectionError(conn)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return []
        case PGRES_TUPLES_OK:
            let rowCount = PQntuples(result)
            let columnCount = PQnfields(result)
            let columns = PostgresColumns(names: (0..<columnCount).map { String(cString: PQfname(result, $0)) })
            var rows: [PostgresRow] = []
            rows.reserveCapacity(Int(rowCount))
            for row in 0..<rowCount {
                var values: [String?] = []
                values.reserveCapacity(Int(columnCount))
                for column in 0..<columnCount {
                    if PQgetisnull(result, row, column) == 1 {
                        values.append(nil)
                    } else {
                        values.append(String(cString: PQgetvalue(result, row, column)))
                    }
                }
                rows.append(PostgresRow(columns: columns, values: values))
            }
            return rows
        default:
            if PQstatus(conn) != CONNECTION_OK { throw connectionError(conn) }
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = String(cString: PQresultErrorMessage(result))
            // Admin shutdown / crash of the server arrive as errors on a still-open socket.
            if let state, state.hasPrefix("08") || state.hasPrefix("57P") {
                throw PostgresError(.connectionLost, sqlState: state, serverMessage: message)
            }
            throw PostgresError(.queryFailed, sqlState: state, serverMessage: message)
        }
    }

    private func connectionError(_ conn: OpaquePointer) -> PostgresError {
        PostgresError(.connectionLost, serverMessage: String(cString: PQerrorMessage(conn)))
    }
}

@available(*, unavailable)
extension PostgresConnection: Sendable {}

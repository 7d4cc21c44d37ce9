import Foundation
internal import CLibPQ

/// One libpq connection; owns its `PGconn` until `close()`.
/// - Warning: Not thread-safe and blocking: one thread owns it (see `PostgresPool`).
public final class PostgresConnection {
    private var handle: OpaquePointer?
    /// Statements prepared on this connection, by SQL text.
    private var preparedNames: [String: String] = [:]
    private static let maxPrepared = 256

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
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    private func withUnsafeHandle<T>(_ body: (OpaquePointer) throws(PostgresError) -> T) throws(PostgresError) -> T {
        guard let handle else { throw PostgresError(.closed) }
        return try body(handle)
    }

    /// Runs one parameterised statement and returns its rows (empty for commands).
    @discardableResult
    public func query(_ query: PostgresQuery) throws(PostgresError) -> [PostgresRow] {
        try withUnsafeHandle { conn throws(PostgresError) in
            let result = try Self.withCValues(query.bindings) { count, values in
                PQexecParams(conn, query.sql, count, nil, values, nil, nil, 0)
            }
            return try collect(result, conn: conn)
        }
    }

    /// Runs a statement through a prepared statement kept on this connection: the server plans
    /// it once instead of on every call. For hot queries whose SQL text is one of a few shapes.
    @discardableResult
    public func query(prepared query: PostgresQuery) throws(PostgresError) -> [PostgresRow] {
        try withUnsafeHandle { conn throws(PostgresError) in
            let name: String
            if let existing = preparedNames[query.sql] {
                name = existing
            } else {
                guard preparedNames.count < Self.maxPrepared else { return try self.query(query) }
                name = "tsunagu_\(preparedNames.count)"
                _ = try collect(PQprepare(conn, name, query.sql, 0, nil), conn: conn)
                preparedNames[query.sql] = name
            }
            let result = try Self.withCValues(query.bindings) { count, values in
                PQexecPrepared(conn, name, count, values, nil, nil, 0)
            }
            return try collect(result, conn: conn)
        }
    }

    /// Binding values as C strings (NULL for SQL NULL), alive for the duration of `body`. A value
    /// holding NUL is refused: as a C string it would be cut short silently, and no PostgreSQL
    /// text can hold it anyway.
    private static func withCValues(
        _ bindings: [String?], _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> OpaquePointer?
    ) throws(PostgresError) -> OpaquePointer? {
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
    public func withTransaction<T>(statementTimeoutMs: Int, _ body: (PostgresConnection) throws -> TransactionEnd<T>) throws -> T {
        // Our own integer, not input: safe to write into the SQL text; one round trip for both.
        try execute(unsafeSQL: statementTimeoutMs > 0 ? "BEGIN; SET LOCAL statement_timeout = \(statementTimeoutMs)" : "BEGIN")
        do {
            switch try body(self) {
            case .commit(let value):
                try execute(unsafeSQL: "COMMIT")
                return value
            case .rollback(let value):
                try execute(unsafeSQL: "ROLLBACK")
                return value
            }
        } catch {
            if isHealthy { try? execute(unsafeSQL: "ROLLBACK") }
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

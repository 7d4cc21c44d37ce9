/// A failure from PostgreSQL or this layer. `description` reveals no SQL, binds or server text;
/// `debugDescription` carries the server's message for logs a developer reads.
/// - Note: `Sendable`; a value type.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Base: Sendable, Hashable {
            case connectionFailed, connectionLost, unavailable, queryFailed, decoding, migration, closed, poolShutDown, waitTimedOut, poolBusy, invalidValue
        }
        fileprivate let base: Base
        /// A new connection could not be made (server down, bad URL, bad password).
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The connection broke during a call; whether the statement ran is unknown.
        public static let connectionLost = Code(base: .connectionLost)
        /// The pool is waiting out its reconnect back-off; try again later.
        public static let unavailable = Code(base: .unavailable)
        /// The server rejected the statement; see `sqlState`.
        public static let queryFailed = Code(base: .queryFailed)
        /// A column could not be read as the asked type.
        public static let decoding = Code(base: .decoding)
        /// A migration is unknown, changed since it was applied, or failed.
        public static let migration = Code(base: .migration)
        /// The connection was closed by this process.
        public static let closed = Code(base: .closed)
        public static let poolShutDown = Code(base: .poolShutDown)
        /// No connection became free before the job's deadline; the job did not run.
        public static let waitTimedOut = Code(base: .waitTimedOut)
        /// As many jobs wait for a connection as the pool admits; the job did not run.
        public static let poolBusy = Code(base: .poolBusy)
        /// A value to bind cannot be sent (it holds NUL); nothing was run.
        public static let invalidValue = Code(base: .invalidValue)

        public var description: String {
            switch base {
            case .connectionFailed: "connectionFailed"
            case .connectionLost: "connectionLost"
            case .unavailable: "unavailable"
            case .queryFailed: "queryFailed"
            case .decoding: "decoding"
            case .migration: "migration"
            case .closed: "closed"
            case .poolShutDown: "poolShutDown"
            case .waitTimedOut: "waitTimedOut"
            case .poolBusy: "poolBusy"
            case .invalidValue: "invalidValue"
            }
        }
    }

    public let code: Code
    /// The five-character SQLSTATE for `queryFailed` (e.g. "23505" unique violation).
    public let sqlState: String?
    /// The server's or this layer's message; may quote data, so it stays out of `description`.
    public let serverMessage: String?
    public let file: String
    public let line: Int

    public init(_ code: Code, sqlState: String? = nil, serverMessage: String? = nil,
                file: String = #fileID, line: Int = #line) {
        self.code = code
        self.sqlState = sqlState
        self.serverMessage = serverMessage
        self.file = file
        self.line = line
    }

    /// True when the database could not be reached: the caller should answer "unavailable".
    public var isConnectivity: Bool {
        code == .connectionFailed || code == .connectionLost || code == .unavailable || code == .poolShutDown
            || (sqlState.map { $0.hasPrefix("08") || $0 == "57P01" || $0 == "57P02" || $0 == "57P03" } ?? false)
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }

    public var description: String {
        if let sqlState { return "PostgresError(\(code), sqlstate \(sqlState))" }
        return "PostgresError(\(code))"
    }

    public var debugDescription: String {
        "\(description) at \(file):\(line): \(serverMessage ?? "-")"
    }
}

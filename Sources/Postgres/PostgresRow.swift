/// One row of a result, copied out of libpq so no C memory outlives the call.
/// - Note: `Sendable`; a value type.
public struct PostgresRow: Sendable {
    let columns: PostgresColumns
    let values: [String?]

    /// The raw text of a column, nil for SQL NULL.
    public func text(_ column: String) throws(PostgresError) -> String? {
        guard let index = columns.index[column] else {
            throw PostgresError(.decoding, serverMessage: "no column \(column)")
        }
        return values[index]
    }

    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws(PostgresError) -> T {
        guard let text = try self.text(column) else {
            throw PostgresError(.decoding, serverMessage: "column \(column) is NULL")
        }
        guard let value = T(postgresText: text) else {
            throw PostgresError(.decoding, serverMessage: "column \(column) is not \(T.self)")
        }
        return value
    }

    public func decode<T: PostgresDecodable>(_ column: String, as type: T?.Type = T?.self) throws(PostgresError) -> T? {
        guard let text = try self.text(column) else { return nil }
        guard let value = T(postgresText: text) else {
            throw PostgresError(.decoding, serverMessage: "column \(column) is not \(T.self)")
        }
        return value
    }
}

/// Column names of a result, shared by its rows.
final class PostgresColumns: Sendable {
    let names: [String]
    let index: [String: Int]
    init(names: [String]) {
        self.names = names
        var index: [String: Int] = [:]
        for (i, name) in names.enumerated() where index[name] == nil { index[name] = i }
        self.index = index
    }
}

/// A Swift value read from PostgreSQL's text form.
public protocol PostgresDecodable: Sendable {
    init?(postgresText: String)
}

extension String: PostgresDecodable { public init?(postgresText: String) { self = postgresText } }
extension Int: PostgresDecodable { public init?(postgresText: String) { self.init(postgresText) } }
extension Int64: PostgresDecodable { public init?(postgresText: String) { self.init(postgresText) } }
extension Double: PostgresDecodable { public init?(postgresText: String) { self.init(postgresText) } }
extension Bool: PostgresDecodable {
    public init?(postgresText: String) {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}

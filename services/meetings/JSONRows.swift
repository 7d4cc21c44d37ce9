import Foundation
import JSONSchema
import Postgres
import Wire

/// Meetings queries shape their output in SQL (`jsonb_build_object`, `jsonb_agg`) and return one
/// JSON column `j`, as the registry's do: the reply is built where the data is.
extension PostgresConnection {
    /// The `j` column of each row, parsed.
    func jsonRows(_ query: PostgresQuery) throws -> [JSONValue] {
        try self.query(query).map { row in
            guard let text = try row.text("j") else { return .null }
            return try JSONValue.parse(Data(text.utf8))
        }
    }

    /// The `j` column of the one row, or `not_found`.
    func jsonRow(_ query: PostgresQuery, notFound: @autoclosure () -> String) throws -> JSONValue {
        guard let first = try jsonRows(query).first else { throw WireError(.notFound, notFound()) }
        return first
    }
}

import Foundation
import JSONSchema
import Postgres
import Wire

/// Services shape most of their output in SQL (`jsonb_build_object`, `jsonb_agg`) and return one
/// JSON column `j`: the reply is built where the data is, with no column-by-column mapping (the
/// registry's and the meetings service's queries).
extension PostgresConnection {
    /// The `j` column of each row, parsed. `prepared`: through a statement prepared on the
    /// connection (`query(prepared:)`), for the hot ones.
    public func jsonRows(_ query: PostgresQuery, prepared: Bool = false) throws -> [JSONValue] {
        try (prepared ? self.query(prepared: query) : self.query(query)).map { row in
            guard let text = try row.text("j") else { return .null }
            return try JSONValue.parse(Data(text.utf8))
        }
    }

    /// The `j` column of the one row, or `not_found`.
    public func jsonRow(_ query: PostgresQuery, prepared: Bool = false, notFound: @autoclosure () -> String) throws -> JSONValue {
        guard let first = try jsonRows(query, prepared: prepared).first else { throw WireError(.notFound, notFound()) }
        return first
    }
}

extension JSONValue {
    /// Text for a `$n::jsonb` binding.
    public var jsonText: String { String(decoding: serialized(), as: UTF8.self) }
}

/// A statement with its values bound as `$1`, `$2`, ...: interpolated values never become SQL text.
///
///     let query: PostgresQuery = "SELECT name FROM registry.areas WHERE code = \(code)"
///
/// A query may be built from parts that are queries themselves, each bound where it lands: a
/// part's values are numbered after the values before it, so optional filters compose without
/// any SQL text being built by hand.
///
///     var filters: [PostgresQuery] = ["r.retired_at IS NULL"]
///     if let kinds { filters.append("r.kinds && \(kinds)::text[]") }
///     let query: PostgresQuery = "SELECT r.id FROM registry.resources r WHERE \(filters, joinedBy: " AND ")"
/// - Note: `Sendable`; a value type.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation {
    public private(set) var sql: String
    public private(set) var bindings: [String?]
    /// Where each binding's `$n` stands in `sql` (UTF-8 offsets), so that the query can be a part
    /// of another one; nil for `unsafeSQL` text, whose placeholders are not known.
    private var placeholders: [Range<Int>]?

    /// SQL text taken as it is. Never build it from input: use interpolation for values. Such a
    /// query can be a part of another only when it has no bindings.
    public init(unsafeSQL sql: String, bindings: [String?] = []) {
        self.sql = sql
        self.bindings = bindings
        self.placeholders = nil
    }

    public init(stringLiteral value: String) {
        self.sql = value
        self.bindings = []
        self.placeholders = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.bindings = stringInterpolation.bindings
        self.placeholders = stringInterpolation.placeholders
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var bindings: [String?] = []
        var placeholders: [Range<Int>] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        public mutating func appendLiteral(_ literal: String) { sql += literal }

        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            bind(value.postgresText)
        }

        public mutating func appendInterpolation(_ value: (some PostgresEncodable)?) {
            bind(value?.postgresText)
        }

        /// SQL text spliced in as it is: only for constants written in code, never for input.
        public mutating func appendInterpolation(unsafeRaw sqlFragment: StaticString) {
            sql += sqlFragment.description
        }

        /// Another query spliced in, its values bound as the next parameters.
        public mutating func appendInterpolation(_ part: PostgresQuery) {
            guard let partPlaceholders = part.placeholders else {
                precondition(part.bindings.isEmpty, "a PostgresQuery(unsafeSQL:bindings:) with bindings cannot be part of another query")
                sql += part.sql
                return
            }
            let text = part.sql.utf8
            func offset(_ n: Int) -> String.Index { text.index(text.startIndex, offsetBy: n) }
            var done = 0
            for (range, value) in zip(partPlaceholders, part.bindings) {
                sql += part.sql[offset(done)..<offset(range.lowerBound)]
                bind(value)
                done = range.upperBound
            }
            sql += part.sql[offset(done)...]
        }

        /// Queries spliced in one after another with `separator` between them (nothing when `parts` is empty).
        public mutating func appendInterpolation(_ parts: [PostgresQuery], joinedBy separator: StaticString) {
            for (index, part) in parts.enumerated() {
                if index > 0 { sql += separator.description }
                appendInterpolation(part)
            }
        }

        private mutating func bind(_ text: String?) {
            bindings.append(text)
            let start = sql.utf8.count
            sql += "$\(bindings.count)"
            placeholders.append(start..<sql.utf8.count)
        }
    }
}

/// A Swift value that PostgreSQL reads from its text form.
public protocol PostgresEncodable: Sendable {
    var postgresText: String { get }
}

extension String: PostgresEncodable { public var postgresText: String { self } }
extension Int: PostgresEncodable { public var postgresText: String { String(self) } }
extension Int32: PostgresEncodable { public var postgresText: String { String(self) } }
extension Int64: PostgresEncodable { public var postgresText: String { String(self) } }
extension Double: PostgresEncodable { public var postgresText: String { String(self) } }
extension Bool: PostgresEncodable { public var postgresText: String { self ? "t" : "f" } }

import Foundation
import JSONSchema
import Postgres
import Wire

/// The date an area read answers for (`as_of`, `YYYY-MM-DD`): the areas valid that day
/// (migration 0033). Without it, today in Japan (`registry.japan_today()`).
enum AsOf {
    static let property = ("as_of", #"{"type":"string","pattern":"^[0-9]{4}-[0-9]{2}-[0-9]{2}$","maxLength":10}"#)

    /// A day of the calendar between 1900 and 2200, or `invalid_input` at `pointer`.
    static func check(_ date: String?, pointer: String = "/as_of") throws {
        guard let date else { return }
        guard DirectoryFields.isDate(date), let year = Int(date.prefix(4)), (1900...2200).contains(year) else {
            throw WireError.invalidInput("\(pointer.dropFirst()) is not a day between 1900 and 2200",
                                         violations: [.init(path: pointer, message: "not a day of the calendar (YYYY-MM-DD)")])
        }
    }

    /// The day in SQL: the date given, or Japan's today.
    static func day(_ date: String?) -> PostgresQuery {
        "coalesce(\(date)::date, registry.japan_today())"
    }
}

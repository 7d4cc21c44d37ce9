import JSONSchema

/// A resource's opening hours, the `hours` field: `[{"days":["mo","tu"],"opens":"09:00","closes":"17:00"}]`
/// in Japan's local time, `holiday` standing for public holidays. Besides the field's schema, here
/// is its form in a CSV column, written by the export and read back by the import so that a file
/// round-trips: entries joined by `|`, each its days then `opens-closes`
/// (`mo tu we th fr 09:00-17:00|sa 09:00-12:00`).
enum OpeningHours {
    static let days = ["mo", "tu", "we", "th", "fr", "sa", "su", "holiday"]
    /// `days` as a Japanese reader writes them (月火水木金 09:00-17:00).
    static let dayNames = ["月", "火", "水", "木", "金", "土", "日", "祝"]
    static let maxEntries = 50

    static let schema = """
        {"type":"array","maxItems":\(maxEntries),"items":{"type":"object","additionalProperties":false,"required":["days","opens","closes"],\
        "properties":{"days":{"type":"array","minItems":1,"maxItems":\(days.count),"items":{"enum":[\(days.map { "\"\($0)\"" }.joined(separator: ","))]}},\
        "opens":{"type":"string","pattern":"^([01][0-9]|2[0-4]):[0-5][0-9]$","maxLength":5},\
        "closes":{"type":"string","pattern":"^([01][0-9]|2[0-4]):[0-5][0-9]$","maxLength":5}}}}
        """

    /// The CSV form of a stored `hours` value ("" for none).
    static func csvText(_ hours: JSONValue?) -> String {
        guard case .array(let entries)? = hours else { return "" }
        return entries.map { entry in
            guard case .array(let entryDays)? = entry["days"] else { return "" }
            let times = "\(entry["opens"]?.stringValue ?? "")-\(entry["closes"]?.stringValue ?? "")"
            return (entryDays.compactMap(\.stringValue) + [times]).joined(separator: " ")
        }.joined(separator: "|")
    }

    /// Reads the CSV form back into an `hours` value; nil unless `schema` would accept the result.
    static func parse(csvText text: String) -> JSONValue? {
        var entries: [JSONValue] = []
        for item in text.split(separator: "|") {
            let words = item.split(separator: " ")
            guard words.count >= 2, words.count - 1 <= days.count else { return nil }
            let times = words[words.count - 1].split(separator: "-", omittingEmptySubsequences: false)
            guard times.count == 2, times.allSatisfy(isClockTime) else { return nil }
            let entryDays = words.dropLast().map(String.init)
            guard entryDays.allSatisfy(days.contains) else { return nil }
            entries.append(.object(["days": .array(entryDays.map { .string($0) }), "opens": .string(String(times[0])),
                                    "closes": .string(String(times[1]))]))
        }
        return entries.count <= maxEntries ? .array(entries) : nil
    }

    /// `HH:MM` as the schema's pattern has it: hours 00–24, minutes 00–59.
    static func isClockTime(_ text: Substring) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 5, bytes[2] == UInt8(ascii: ":") else { return false }
        let digits = [bytes[0], bytes[1], bytes[3], bytes[4]].map { Int($0) - Int(UInt8(ascii: "0")) }
        guard digits.allSatisfy((0...9).contains) else { return false }
        return digits[0] * 10 + digits[1] <= 24 && digits[2] <= 5
    }
}

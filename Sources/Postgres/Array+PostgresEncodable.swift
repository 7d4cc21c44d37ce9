/// `[String]` binds as a PostgreSQL array: `\(names)::text[]` (or `::char(6)[]`, any element type
/// read from text with a comma delimiter). Its text form is an array literal with every element
/// double-quoted and `"` and `\` escaped by a backslash, so every string round-trips as it is —
/// empty, with commas, quotes, backslashes, braces, spaces, or spelled `NULL`. The array has no
/// NULL elements; an empty array is `{}`.
extension Array: PostgresEncodable where Element == String {
    public var postgresText: String {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(2 + reduce(0) { $0 + $1.utf8.count + 3 })
        for (index, element) in enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(quote)
            // Bytes of multi-byte UTF-8 sequences are never ASCII: only these two need escaping.
            for byte in element.utf8 {
                if byte == quote || byte == backslash { bytes.append(backslash) }
                bytes.append(byte)
            }
            bytes.append(quote)
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }
}

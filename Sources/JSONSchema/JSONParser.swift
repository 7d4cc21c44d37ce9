import Foundation

/// A strict RFC 8259 parser into `JSONValue`, several times faster than going through
/// `JSONDecoder` for the small envelopes on every request's path. Nesting is capped so hostile
/// input cannot exhaust the stack.
struct JSONParser {
    static let maxDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    static func parse(_ data: Data) throws(JSONParseError) -> JSONValue {
        try parseWhole(data) { (parser) throws(JSONParseError) in try parser.parseValue(depth: 0) }
    }

    /// The values of the members named `names` (nil where absent) of the object `data` holds;
    /// other members are read (so the text is checked whole) and dropped. Duplicates of any name
    /// are refused.
    static func parseObject(_ data: Data, members names: [StaticString]) throws(JSONParseError) -> [JSONValue?] {
        try parseWhole(data) { (parser) throws(JSONParseError) in
            guard parser.current == UInt8(ascii: "{") else { throw parser.failure("expected an object") }
            return try parser.parseSelectedMembers(names)
        }
    }

    /// Runs `read` over all of `data`: whitespace around the value is allowed, anything else after it is not.
    private static func parseWhole<T>(_ data: Data, _ read: (inout JSONParser) throws(JSONParseError) -> T) throws(JSONParseError) -> T {
        let result: Result<T, JSONParseError> = data.withUnsafeBytes { raw in
            var parser = JSONParser(bytes: raw)
            return Result { () throws(JSONParseError) -> T in
                parser.skipWhitespace()
                let value = try read(&parser)
                parser.skipWhitespace()
                guard parser.index == raw.count else { throw parser.failure("unexpected text after the value") }
                return value
            }
        }
        return try result.get()
    }

    private func failure(_ message: String) -> JSONParseError {
        JSONParseError(message: "body is not valid JSON: \(message) at byte \(index)")
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < Self.maxDepth else { throw failure("nested more than \(Self.maxDepth) levels") }
        guard let byte = current else { throw failure("unexpected end") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw failure("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw failure("unexpected end") }
        let start = literal.utf8Start
        for offset in 0..<count where bytes[index + offset] != start[offset] {
            throw failure("unexpected literal")
        }
        index += count
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        var object: [String: JSONValue] = [:]
        try forEachMember(depth: depth) { name, value in
            guard case .other(let key) = name else { return false }  // no names were given to match
            return object.updateValue(value, forKey: key) == nil
        }
        return .object(object)
    }

    /// The named members' values, for small objects read once (the envelope on every request's
    /// path): names are matched as bytes, with no String made for them and no dictionary built.
    private mutating func parseSelectedMembers(_ names: [StaticString]) throws(JSONParseError) -> [JSONValue?] {
        var values = [JSONValue?](repeating: nil, count: names.count)
        var others: Set<String> = []
        try forEachMember(depth: 0, among: names) { name, value in
            switch name {
            case .known(let position):
                guard values[position] == nil else { return false }
                values[position] = value
                return true
            case .other(let text):
                return others.insert(text).inserted
            }
        }
        return values
    }

    private enum MemberName { case known(Int), other(String) }

    /// A member name: which of `names` it is, compared as bytes when it has no escapes (the usual
    /// case), or its text.
    private mutating func parseName(among names: [StaticString]) throws(JSONParseError) -> MemberName {
        var end = index + 1
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            let raw = UnsafeRawBufferPointer(rebasing: bytes[(index + 1)..<end])
            for (position, name) in names.enumerated() where name.utf8CodeUnitCount == raw.count {
                if memcmp(raw.baseAddress!, name.utf8Start, raw.count) == 0 {
                    index = end + 1
                    return .known(position)
                }
            }
        }
        let text = try parseString()  // escapes, or not one of ours
        if let position = names.firstIndex(where: { $0.description == text }) { return .known(position) }
        return .other(text)
    }

    /// Reads `{ "name": value, ... }` from the current `{`, handing each member to `body`, which
    /// says whether it was new; names that are one of `among` come as `.known` (matched as bytes),
    /// others as their text. Duplicate names are refused: parsers disagree on which one wins
    /// (Foundation keeps the first, many keep the last), so a checked value and a used value could differ.
    private mutating func forEachMember(depth: Int, among names: [StaticString] = [],
                                        _ body: (MemberName, JSONValue) -> Bool) throws(JSONParseError) {
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw failure("expected a member name") }
            let name = names.isEmpty ? .other(try parseString()) : try parseName(among: names)
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw failure("expected ':'") }
            index += 1
            skipWhitespace()
            guard body(name, try parseValue(depth: depth + 1)) else {
                let text = switch name {
                case .known(let position): names[position].description
                case .other(let text): String(text.prefix(64))
                }
                throw failure("duplicate member name \"\(text)\"")
            }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): index += 1; return
            default: throw failure("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        index += 1
        var array: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            index += 1
            return .array(array)
        }
        while true {
            skipWhitespace()
            array.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return .array(array)
            default: throw failure("expected ',' or ']'")
            }
        }
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1  // opening quote
        let start = index
        var seen: UInt8 = 0  // every byte OR-ed: below 0x80, the text is ASCII and needs no UTF-8 check
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            seen |= byte
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                let text = seen < 0x80 ? String(decoding: raw, as: UTF8.self) : String(validating: raw, as: UTF8.self)
                index += 1
                guard let text else { throw failure("string is not UTF-8") }
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw failure("control character in string") }
            index += 1
        }
        var buffer = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while true {
            guard let byte = current else { throw failure("unterminated string") }
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: buffer, as: UTF8.self) else { throw failure("string is not UTF-8") }
                return text
            case UInt8(ascii: "\\"):
                guard let escaped = current else { throw failure("unterminated escape") }
                index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(escaped)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                            throw failure("lone surrogate")
                        }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw failure("lone surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw failure("lone surrogate")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw failure("bad \\u escape") }
                    buffer.append(contentsOf: Array(String(unicode).utf8))
                default:
                    throw failure("bad escape")
                }
            default:
                if byte < 0x20 { throw failure("control character in string") }
                buffer.append(byte)
            }
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw failure("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw failure("bad hex digit")
            }
            value = value * 16 + digit
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw failure("bad number") }
        if first == UInt8(ascii: "0") {
            index += 1
        } else {
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
        }
        var isInteger = true
        if current == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { throw failure("bad fraction") }
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { throw failure("bad exponent") }
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
        }
        // Integers of up to 18 digits (every one the suite's schemas allow) fit in Int64 without
        // a check; longer ones go through the text.
        let digits = index - start - (bytes[start] == UInt8(ascii: "-") ? 1 : 0)
        if isInteger, digits <= 18 {
            var value: Int64 = 0
            for position in (index - digits)..<index { value = value * 10 + Int64(bytes[position] &- UInt8(ascii: "0")) }
            return .integer(bytes[start] == UInt8(ascii: "-") ? -value : value)
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if isInteger, let integer = Int64(text) { return .integer(integer) }
        guard let double = Double(text), double.isFinite else { throw failure("number out of range") }
        return .number(double)
    }
}

extension JSONValue {
    /// Compact JSON text with object keys sorted (stable output for logs and tests).
    public func serialized() -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        write(to: &out)
        return Data(out)
    }

    func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .integer(let value): out.append(contentsOf: String(value).utf8)
        case .number(let value): out.append(contentsOf: "\(value)".utf8)
        case .string(let value): JSONValue.appendQuoted(value, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.appendQuoted(key, to: &out)
                out.append(UInt8(ascii: ":"))
                members[key]!.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `text` as a JSON string literal, escaping what RFC 8259 requires.
    public static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            // Most text needs no escape: copied in one go.
            if !bytes.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                out.append(contentsOf: bytes)
                return
            }
            for byte in bytes { appendEscaped(byte, to: &out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func appendEscaped(_ byte: UInt8, to out: inout [UInt8]) {
        switch byte {
        case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
        case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
        case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
        case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        case 0..<0x20:
            let hex = Array("0123456789abcdef".utf8)
            out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                    hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
        default: out.append(byte)
        }
    }
}

import Foundation

/// A JSON Schema (draft 2020-12 vocabulary, the subset operations use to describe their input):
/// `type`, `properties`, `required`, `additionalProperties` (boolean), `items`, `enum`, `const`,
/// `minLength`/`maxLength`, `pattern`, `minimum`/`maximum`, `minItems`/`maxItems`.
/// Unknown keywords are ignored, as the specification asks.
/// - Note: `Sendable`; a value type. Patterns are compiled once, when the schema is made.
public struct JSONSchema: Sendable {
    public let json: JSONValue
    private let patterns: [String: NSRegularExpressionBox]

    public init(_ json: JSONValue) throws(JSONSchemaError) {
        self.json = json
        var patterns: [String: NSRegularExpressionBox] = [:]
        try Self.compilePatterns(json, into: &patterns)
        self.patterns = patterns
    }

    /// Parses a schema written as JSON text.
    public init(jsonText: String) throws(JSONSchemaError) {
        let value: JSONValue
        do { value = try JSONValue.parse(Data(jsonText.utf8)) } catch {
            throw JSONSchemaError(message: "schema is not valid JSON")
        }
        try self.init(value)
    }

    private static func compilePatterns(_ schema: JSONValue, into patterns: inout [String: NSRegularExpressionBox]) throws(JSONSchemaError) {
        guard case .object(let object) = schema else { return }
        if case .string(let pattern)? = object["pattern"], patterns[pattern] == nil {
            guard let regex = try? NSRegularExpression(pattern: pattern) else {
                throw JSONSchemaError(message: "invalid pattern \(pattern)")
            }
            patterns[pattern] = NSRegularExpressionBox(regex)
        }
        if case .object(let properties)? = object["properties"] {
            for (_, sub) in properties { try compilePatterns(sub, into: &patterns) }
        }
        if let items = object["items"] { try compilePatterns(items, into: &patterns) }
    }

    /// Every way `value` breaks the schema, each with a JSON Pointer to the place; empty when valid.
    public func violations(of value: JSONValue) -> [JSONSchemaViolation] {
        var found: [JSONSchemaViolation] = []
        check(value, against: json, at: "", into: &found)
        return found
    }

    private func check(_ value: JSONValue, against schema: JSONValue, at path: String, into found: inout [JSONSchemaViolation]) {
        guard case .object(let s) = schema else {
            if case .bool(false) = schema { found.append(.init(path: path, message: "no value is allowed here")) }
            return
        }
        func fail(_ message: String) { found.append(.init(path: path, message: message)) }

        if let type = s["type"] {
            let allowed: [String]
            switch type {
            case .string(let one): allowed = [one]
            case .array(let many): allowed = many.compactMap(\.stringValue)
            default: allowed = []
            }
            if !allowed.isEmpty && !allowed.contains(where: { Self.matches(value, type: $0) }) {
                fail("expected \(allowed.joined(separator: " or ")), got \(value.typeName)")
                return
            }
        }
        if case .array(let options)? = s["enum"], !options.contains(value) {
            fail("must be one of the allowed values")
        }
        if let constant = s["const"], constant != value { fail("must equal the fixed value") }

        switch value {
        case .string(let string):
            let length = string.count
            if case .integer(let min)? = s["minLength"], length < min { fail("shorter than \(min) characters") }
            if case .integer(let max)? = s["maxLength"], length > max { fail("longer than \(max) characters") }
            if case .string(let pattern)? = s["pattern"], let regex = patterns[pattern]?.regex {
                let range = NSRange(string.startIndex..., in: string)
                if regex.firstMatch(in: string, range: range) == nil { fail("does not match \(pattern)") }
            }
        case .integer, .number:
            let number: Double = if case .integer(let i) = value { Double(i) } else if case .number(let d) = value { d } else { 0 }
            if let min = Self.double(s["minimum"]), number < min { fail("less than \(min)") }
            if let max = Self.double(s["maximum"]), number > max { fail("greater than \(max)") }
        case .array(let items):
            if case .integer(let min)? = s["minItems"], items.count < min { fail("fewer than \(min) items") }
            if case .integer(let max)? = s["maxItems"], items.count > max { fail("more than \(max) items") }
            if let itemSchema = s["items"] {
                for (index, item) in items.enumerated() {
                    check(item, against: itemSchema, at: "\(path)/\(index)", into: &found)
                }
            }
        case .object(let object):
            if case .array(let required)? = s["required"] {
                for case .string(let key) in required where object[key] == nil {
                    found.append(.init(path: "\(path)/\(Self.escape(key))", message: "is required"))
                }
            }
            var properties: [String: JSONValue] = [:]
            if case .object(let p)? = s["properties"] { properties = p }
            for (key, child) in object.sorted(by: { $0.key < $1.key }) {
                let childPath = "\(path)/\(Self.escape(key))"
                if let childSchema = properties[key] {
                    check(child, against: childSchema, at: childPath, into: &found)
                } else if case .bool(false)? = s["additionalProperties"] {
                    found.append(.init(path: childPath, message: "is not an allowed property"))
                } else if let extra = s["additionalProperties"], case .object = extra {
                    check(child, against: extra, at: childPath, into: &found)
                }
            }
        default:
            break
        }
    }

    private static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object): true
        case ("integer", .integer), ("number", .integer), ("number", .number): true
        case ("integer", .number(let d)): d.rounded() == d
        default: false
        }
    }

    private static func double(_ value: JSONValue?) -> Double? {
        switch value {
        case .integer(let i)?: Double(i)
        case .number(let d)?: d
        default: nil
        }
    }

    /// JSON Pointer escaping (RFC 6901).
    private static func escape(_ key: String) -> String {
        guard key.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) else { return key }
        return key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}

/// One place where a value breaks its schema.
public struct JSONSchemaViolation: Sendable, Hashable, Codable {
    /// JSON Pointer into the input ("" is the whole input).
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

public struct JSONSchemaError: Error, Sendable {
    public let message: String
}

/// `NSRegularExpression` is immutable once made and documented thread-safe for matching.
final class NSRegularExpressionBox: @unchecked Sendable {
    let regex: NSRegularExpression
    init(_ regex: NSRegularExpression) { self.regex = regex }
}

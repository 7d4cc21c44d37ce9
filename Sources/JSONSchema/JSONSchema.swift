import Foundation

/// A JSON Schema (draft 2020-12 vocabulary, the subset operations use to describe their input):
/// `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`,
/// `minLength`/`maxLength`, `pattern`, `minimum`/`maximum`, `minItems`/`maxItems`, and the
/// annotations `title`, `description`, `$comment`, `$schema`, `default`, `examples`.
/// Any other keyword is refused when the schema is made: a keyword this validator ignored would
/// be a check the author believes in and nobody runs.
/// `pattern` follows ECMA-262 as JSON Schema asks: `$` matches only at the very end, not before a
/// trailing newline as ICU's `$` does.
/// - Note: `Sendable`; a value type. Patterns are compiled once, when the schema is made.
public struct JSONSchema: Sendable {
    public let json: JSONValue
    private let patterns: [String: NSRegularExpressionBox]

    static let validationKeywords: Set<String> = [
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "minLength", "maxLength", "pattern", "minimum", "maximum", "minItems", "maxItems",
    ]
    static let annotationKeywords: Set<String> = ["title", "description", "$comment", "$schema", "default", "examples"]
    static let typeNames: Set<String> = ["null", "boolean", "integer", "number", "string", "array", "object"]

    public init(_ json: JSONValue) throws(JSONSchemaError) {
        self.json = json
        var patterns: [String: NSRegularExpressionBox] = [:]
        try Self.checkAndCompile(json, at: "", into: &patterns)
        self.patterns = patterns
    }

    /// Parses a schema written as JSON text.
    public init(jsonText: String) throws(JSONSchemaError) {
        let value: JSONValue
        do { value = try JSONValue.parse(Data(jsonText.utf8)) } catch {
            throw JSONSchemaError(message: "schema is not valid JSON: \(error.message)")
        }
        try self.init(value)
    }

    /// Refuses unknown keywords and malformed keyword values; compiles every pattern.
    private static func checkAndCompile(_ schema: JSONValue, at path: String,
                                        into patterns: inout [String: NSRegularExpressionBox]) throws(JSONSchemaError) {
        let object: [String: JSONValue]
        switch schema {
        case .bool: return
        case .object(let o): object = o
        default: throw JSONSchemaError(message: "\(path.isEmpty ? "/" : path): a schema must be an object or a boolean")
        }
        func bad(_ keyword: String, _ expected: String) -> JSONSchemaError {
            JSONSchemaError(message: "\(path)/\(keyword): must be \(expected)")
        }
        for key in object.keys.sorted() where !validationKeywords.contains(key) && !annotationKeywords.contains(key) {
            throw JSONSchemaError(message: "\(path)/\(key): keyword not implemented by this validator")
        }
        switch object["type"] {
        case nil: break
        case .string(let name)? where typeNames.contains(name): break
        case .array(let names)? where !names.isEmpty && names.allSatisfy({ $0.stringValue.map(typeNames.contains) ?? false }): break
        default: throw bad("type", "a type name or a non-empty array of type names")
        }
        for keyword in ["minLength", "maxLength", "minItems", "maxItems"] {
            if let value = object[keyword] {
                guard case .integer(let n) = value, n >= 0 else { throw bad(keyword, "a non-negative integer") }
            }
        }
        for keyword in ["minimum", "maximum"] {
            if let value = object[keyword] {
                switch value { case .integer, .number: break; default: throw bad(keyword, "a number") }
            }
        }
        if let value = object["enum"] {
            guard case .array(let options) = value, !options.isEmpty else { throw bad("enum", "a non-empty array") }
        }
        if let value = object["required"] {
            guard case .array(let names) = value, names.allSatisfy({ $0.stringValue != nil }) else {
                throw bad("required", "an array of strings")
            }
        }
        if let value = object["pattern"] {
            guard case .string(let pattern) = value else { throw bad("pattern", "a string") }
            if patterns[pattern] == nil {
                guard let regex = try? NSRegularExpression(pattern: ecmaEndAnchors(pattern)) else {
                    throw JSONSchemaError(message: "\(path)/pattern: invalid pattern \(pattern)")
                }
                patterns[pattern] = NSRegularExpressionBox(regex)
            }
        }
        if let value = object["properties"] {
            guard case .object(let properties) = value else { throw bad("properties", "an object") }
            for (name, sub) in properties.sorted(by: { $0.key < $1.key }) {
                try checkAndCompile(sub, at: "\(path)/properties/\(name)", into: &patterns)
            }
        }
        if let items = object["items"] { try checkAndCompile(items, at: "\(path)/items", into: &patterns) }
        if let extra = object["additionalProperties"] {
            try checkAndCompile(extra, at: "\(path)/additionalProperties", into: &patterns)
        }
    }

    /// ICU's `$` also matches before a final line terminator; ECMA-262's (which JSON Schema uses)
    /// only at the end. Every unescaped `$` outside a character class becomes `\z`.
    static func ecmaEndAnchors(_ pattern: String) -> String {
        var out = ""
        var escaped = false
        var inClass = false
        for character in pattern {
            if escaped {
                out.append(character)
                escaped = false
                continue
            }
            switch character {
            case "\\": escaped = true; out.append(character)
            case "[": inClass = true; out.append(character)
            case "]": inClass = false; out.append(character)
            case "$" where !inClass: out.append("\\z")
            default: out.append(character)
            }
        }
        return out
    }

    /// Places where the schema admits a value of unbounded size: a string without `maxLength`, a
    /// number without both `minimum` and `maximum`, an array without `maxItems` (each unless `enum`
    /// or `const` fixes the value). Empty when every value it admits is bounded. A service refuses to
    /// start with an operation whose input schema is not bounded: handlers then never see a number
    /// their arithmetic cannot hold or a string no column can take.
    public func unboundedPlaces() -> [String] {
        var found: [String] = []
        Self.findUnbounded(json, at: "", into: &found)
        return found
    }

    private static func findUnbounded(_ schema: JSONValue, at path: String, into found: inout [String]) {
        guard case .object(let s) = schema else {
            if case .bool(true) = schema { found.append("\(path.isEmpty ? "/" : path): admits any value") }
            return
        }
        let place = path.isEmpty ? "/" : path
        if s["enum"] == nil && s["const"] == nil {
            let types: Set<String> = switch s["type"] {
            case .string(let one)?: [one]
            case .array(let many)?: Set(many.compactMap(\.stringValue))
            default: typeNames
            }
            if types.contains("string") && s["maxLength"] == nil { found.append("\(place): string without maxLength") }
            if (types.contains("integer") || types.contains("number")) && (s["minimum"] == nil || s["maximum"] == nil) {
                found.append("\(place): number without minimum and maximum")
            }
            if types.contains("array") && s["maxItems"] == nil { found.append("\(place): array without maxItems") }
            if types.contains("array") && s["items"] == nil { found.append("\(place): array without items") }
            if types.contains("object") && s["additionalProperties"] != .bool(false) {
                if let extra = s["additionalProperties"] {
                    findUnbounded(extra, at: "\(path)/additionalProperties", into: &found)
                } else {
                    found.append("\(place): object without additionalProperties")
                }
            }
        }
        if case .object(let properties)? = s["properties"] {
            for (name, sub) in properties.sorted(by: { $0.key < $1.key }) {
                findUnbounded(sub, at: "\(path)/properties/\(name)", into: &found)
            }
        }
        if let items = s["items"] { findUnbounded(items, at: "\(path)/items", into: &found) }
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
            // JSON Schema counts code points; Swift's `count` counts grapheme clusters, and one
            // cluster can hold any number of combining marks.
            let length = string.unicodeScalars.count
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

public struct JSONSchemaError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { "invalid schema: \(message)" }
}

/// `NSRegularExpression` is immutable once made and documented thread-safe for matching.
final class NSRegularExpressionBox: @unchecked Sendable {
    let regex: NSRegularExpression
    init(_ regex: NSRegularExpression) { self.regex = regex }
}

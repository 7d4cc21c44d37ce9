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
    /// The schema as a tree of checks, made once: validating a request looks up no keyword by name.
    private let compiled: CompiledSchema

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
        self.compiled = CompiledSchema(json, patterns: patterns)
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

    /// Every way `value` breaks the schema, each with a JSON Pointer to the place (sorted by
    /// place); empty when valid.
    public func violations(of value: JSONValue) -> [JSONSchemaViolation] {
        var found: [JSONSchemaViolation] = []
        var path: [PathSegment] = []
        compiled.check(value, at: &path, into: &found)
        if found.count > 1 { found.sort { $0.path < $1.path } }
        return found
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

/// One step of a JSON Pointer, kept as it is until a violation needs the text.
enum PathSegment {
    case key(String)
    case index(Int)
}

/// A schema's checks with its keywords read once. Immutable.
final class CompiledSchema: Sendable {
    private struct Types: OptionSet, Sendable {
        let rawValue: UInt8
        static let null = Types(rawValue: 1), boolean = Types(rawValue: 2), integer = Types(rawValue: 4)
        static let number = Types(rawValue: 8), string = Types(rawValue: 16), array = Types(rawValue: 32)
        static let object = Types(rawValue: 64)

        init(rawValue: UInt8) { self.rawValue = rawValue }

        init?(name: String) {
            switch name {
            case "null": self = .null
            case "boolean": self = .boolean
            case "integer": self = .integer
            case "number": self = .number
            case "string": self = .string
            case "array": self = .array
            case "object": self = .object
            default: return nil
            }
        }
    }

    private enum Extra: Sendable {
        case allowed
        case forbidden
        case schema(CompiledSchema)
    }

    private let allowsNothing: Bool
    private let types: Types?
    private let typeNames: String
    private let options: [JSONValue]?
    private let constant: JSONValue?
    private let minLength: Int64?, maxLength: Int64?
    private let pattern: (text: String, regex: NSRegularExpressionBox)?
    private let minimum: Double?, maximum: Double?
    private let minItems: Int64?, maxItems: Int64?
    private let items: CompiledSchema?
    private let required: [String]
    private let properties: [String: CompiledSchema]
    private let extra: Extra

    init(_ schema: JSONValue, patterns: [String: NSRegularExpressionBox]) {
        guard case .object(let s) = schema else {
            allowsNothing = schema == .bool(false)
            types = nil; typeNames = ""; options = nil; constant = nil; minLength = nil; maxLength = nil; pattern = nil
            minimum = nil; maximum = nil; minItems = nil; maxItems = nil; items = nil; required = []; properties = [:]
            extra = .allowed
            return
        }
        allowsNothing = false
        let names: [String] = switch s["type"] {
        case .string(let one)?: [one]
        case .array(let many)?: many.compactMap(\.stringValue)
        default: []
        }
        types = names.isEmpty ? nil : names.compactMap(Types.init(name:)).reduce(into: Types()) { $0.formUnion($1) }
        typeNames = names.joined(separator: " or ")
        if case .array(let list)? = s["enum"] { options = list } else { options = nil }
        constant = s["const"]
        func integer(_ key: String) -> Int64? { if case .integer(let n)? = s[key] { n } else { nil } }
        func double(_ key: String) -> Double? {
            switch s[key] {
            case .integer(let i)?: Double(i)
            case .number(let d)?: d
            default: nil
            }
        }
        minLength = integer("minLength"); maxLength = integer("maxLength")
        minItems = integer("minItems"); maxItems = integer("maxItems")
        minimum = double("minimum"); maximum = double("maximum")
        if case .string(let text)? = s["pattern"], let regex = patterns[text] { pattern = (text, regex) } else { pattern = nil }
        items = s["items"].map { CompiledSchema($0, patterns: patterns) }
        if case .array(let names)? = s["required"] { required = names.compactMap(\.stringValue) } else { required = [] }
        if case .object(let p)? = s["properties"] {
            properties = p.mapValues { CompiledSchema($0, patterns: patterns) }
        } else {
            properties = [:]
        }
        switch s["additionalProperties"] {
        case .bool(false)?: extra = .forbidden
        case .object(let o)?: extra = .schema(CompiledSchema(.object(o), patterns: patterns))
        default: extra = .allowed
        }
    }

    private static func pointer(_ path: [PathSegment]) -> String {
        var out = ""
        for segment in path {
            out += "/"
            switch segment {
            case .index(let i): out += String(i)
            case .key(let key):
                out += key.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") })
                    ? key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1") : key
            }
        }
        return out
    }

    private func matches(_ value: JSONValue, _ types: Types) -> Bool {
        switch value {
        case .null: types.contains(.null)
        case .bool: types.contains(.boolean)
        case .integer: types.contains(.integer) || types.contains(.number)
        case .number(let d): types.contains(.number) || (types.contains(.integer) && d.rounded() == d)
        case .string: types.contains(.string)
        case .array: types.contains(.array)
        case .object: types.contains(.object)
        }
    }

    func check(_ value: JSONValue, at path: inout [PathSegment], into found: inout [JSONSchemaViolation]) {
        func fail(_ message: String) { found.append(.init(path: Self.pointer(path), message: message)) }
        if allowsNothing {
            fail("no value is allowed here")
            return
        }
        if let types, !matches(value, types) {
            fail("expected \(typeNames), got \(value.typeName)")
            return
        }
        if let options, !options.contains(value) { fail("must be one of the allowed values") }
        if let constant, constant != value { fail("must equal the fixed value") }

        switch value {
        case .string(let string):
            if minLength != nil || maxLength != nil {
                // JSON Schema counts code points; Swift's `count` counts grapheme clusters, and one
                // cluster can hold any number of combining marks.
                let length = Int64(string.unicodeScalars.count)
                if let minLength, length < minLength { fail("shorter than \(minLength) characters") }
                if let maxLength, length > maxLength { fail("longer than \(maxLength) characters") }
            }
            if let pattern {
                let range = NSRange(string.startIndex..., in: string)
                if pattern.regex.regex.firstMatch(in: string, range: range) == nil { fail("does not match \(pattern.text)") }
            }
        case .integer, .number:
            let number: Double = if case .integer(let i) = value { Double(i) } else if case .number(let d) = value { d } else { 0 }
            if let minimum, number < minimum { fail("less than \(minimum)") }
            if let maximum, number > maximum { fail("greater than \(maximum)") }
        case .array(let list):
            if let minItems, Int64(list.count) < minItems { fail("fewer than \(minItems) items") }
            if let maxItems, Int64(list.count) > maxItems { fail("more than \(maxItems) items") }
            if let items {
                for (index, item) in list.enumerated() {
                    path.append(.index(index))
                    items.check(item, at: &path, into: &found)
                    path.removeLast()
                }
            }
        case .object(let object):
            for key in required where object[key] == nil {
                path.append(.key(key))
                fail("is required")
                path.removeLast()
            }
            for (key, child) in object {
                path.append(.key(key))
                if let schema = properties[key] {
                    schema.check(child, at: &path, into: &found)
                } else {
                    switch extra {
                    case .allowed: break
                    case .forbidden: fail("is not an allowed property")
                    case .schema(let schema): schema.check(child, at: &path, into: &found)
                    }
                }
                path.removeLast()
            }
        default:
            break
        }
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

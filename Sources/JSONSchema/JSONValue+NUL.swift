import Foundation

extension JSONValue {
    /// True when a string or member name holds U+0000 (the cheap check on every request).
    public var containsNUL: Bool {
        switch self {
        case .string(let text): text.containsNUL
        case .array(let items): items.contains { $0.containsNUL }
        case .object(let members): members.contains { $0.key.containsNUL || $0.value.containsNUL }
        default: false
        }
    }

    /// The JSON Pointer of the first string or member name holding U+0000, which no PostgreSQL
    /// text or jsonb value can store; nil when there is none.
    public func firstNULPlace(at path: String = "") -> String? {
        switch self {
        case .string(let text):
            return text.containsNUL ? (path.isEmpty ? "/" : path) : nil
        case .array(let items):
            for (index, item) in items.enumerated() {
                if let found = item.firstNULPlace(at: "\(path)/\(index)") { return found }
            }
            return nil
        case .object(let members):
            for (key, value) in members.sorted(by: { $0.key < $1.key }) {
                let escaped = key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
                if key.containsNUL { return "\(path)/\(escaped)" }
                if let found = value.firstNULPlace(at: "\(path)/\(escaped)") { return found }
            }
            return nil
        default:
            return nil
        }
    }
}

extension String {
    /// Whether the text holds U+0000 (which a C string would cut short), found with `memchr`.
    public var containsNUL: Bool {
        utf8.withContiguousStorageIfAvailable { $0.count > 0 && memchr($0.baseAddress!, 0, $0.count) != nil } ?? utf8.contains(0)
    }
}

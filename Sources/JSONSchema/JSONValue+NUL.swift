import Foundation

extension JSONValue {
    /// True when a string or member name holds U+0000 (the cheap check on every request).
    public var containsNUL: Bool {
        switch self {
        case .string(let text): text.utf8.contains(0)
        case .array(let items): items.contains { $0.containsNUL }
        case .object(let members): members.contains { $0.key.utf8.contains(0) || $0.value.containsNUL }
        default: false
        }
    }

    /// The JSON Pointer of the first string or member name holding U+0000, which no PostgreSQL
    /// text or jsonb value can store; nil when there is none.
    public func firstNULPlace(at path: String = "") -> String? {
        switch self {
        case .string(let text):
            return text.utf8.contains(0) ? (path.isEmpty ? "/" : path) : nil
        case .array(let items):
            for (index, item) in items.enumerated() {
                if let found = item.firstNULPlace(at: "\(path)/\(index)") { return found }
            }
            return nil
        case .object(let members):
            for (key, value) in members.sorted(by: { $0.key < $1.key }) {
                let escaped = key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
                if key.utf8.contains(0) { return "\(path)/\(escaped)" }
                if let found = value.firstNULPlace(at: "\(path)/\(escaped)") { return found }
            }
            return nil
        default:
            return nil
        }
    }
}

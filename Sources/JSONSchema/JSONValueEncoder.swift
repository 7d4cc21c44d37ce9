import Foundation

/// Encodes an `Encodable` value into a `JSONValue`, to be written by `JSONValue.serialized()`:
/// together several times cheaper than `JSONEncoder` on a request's path. Keys come out sorted
/// (the writer sorts them), as with `WireCoding.encoder()`; non-finite numbers are refused, as
/// `JSONEncoder` refuses them.
/// - Note: `Sendable`; stateless.
public struct JSONValueEncoder: Sendable {
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let same = value as? JSONValue { return same }
        let root = Node()
        try value.encode(to: NodeEncoder(node: root, codingPath: []))
        return root.value
    }
}

/// A value being built. Containers hold references to their children, so a nested container
/// can be filled after its parent has moved on; the tree becomes a `JSONValue` at the end.
private final class Node {
    enum Content {
        case empty
        case leaf(JSONValue)
        case object([String: Node])
        case array([Node])
    }

    var content: Content = .empty

    var value: JSONValue {
        switch content {
        case .empty: .object([:])
        case .leaf(let value): value
        case .object(let members): .object(members.mapValues(\.value))
        case .array(let items): .array(items.map(\.value))
        }
    }

    func becomeObject() {
        if case .object = content { return }
        content = .object([:])
    }

    func becomeArray() {
        if case .array = content { return }
        content = .array([])
    }

    /// The child node under `key` (made and added now).
    func child(_ key: String) -> Node {
        becomeObject()
        let node = Node()
        if case .object(var members) = content {
            content = .empty  // mutate the dictionary in place
            members[key] = node
            content = .object(members)
        }
        return node
    }

    /// A new last element.
    func appended() -> Node {
        becomeArray()
        let node = Node()
        if case .array(var items) = content {
            content = .empty
            items.append(node)
            content = .array(items)
        }
        return node
    }

    var count: Int { if case .array(let items) = content { items.count } else { 0 } }
}

private func scalar(_ value: Double, _ path: [any CodingKey]) throws -> JSONValue {
    guard value.isFinite else {
        throw EncodingError.invalidValue(value, .init(codingPath: path, debugDescription: "\(value) is not a JSON number"))
    }
    return .number(value)
}

private func scalar<T: BinaryInteger>(_ value: T) -> JSONValue {
    if let exact = Int64(exactly: value) { return .integer(exact) }
    return .number(Double(value))
}

private func put<T: Encodable>(_ value: T, into node: Node, _ path: [any CodingKey]) throws {
    if let json = value as? JSONValue {
        node.content = .leaf(json)
    } else {
        try value.encode(to: NodeEncoder(node: node, codingPath: path))
    }
}

private struct NodeEncoder: Encoder {
    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.becomeObject()
        return KeyedEncodingContainer(KeyedContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.becomeArray()
        return UnkeyedContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleContainer(node: node, codingPath: codingPath) }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    let codingPath: [any CodingKey]

    private func leaf(_ value: JSONValue, _ key: Key) { node.child(key.stringValue).content = .leaf(value) }

    mutating func encodeNil(forKey key: Key) throws { leaf(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { leaf(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { leaf(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { leaf(try scalar(value, codingPath + [key]), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { leaf(try scalar(Double(value), codingPath + [key]), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { leaf(scalar(value), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try put(value, into: node.child(key.stringValue), codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        NodeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { NodeEncoder(node: node.child("super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { NodeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]) }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]

    var count: Int { node.count }

    private func leaf(_ value: JSONValue) { node.appended().content = .leaf(value) }
    private var nextPath: [any CodingKey] { codingPath + [IndexKey(node.count)] }

    mutating func encodeNil() throws { leaf(.null) }
    mutating func encode(_ value: Bool) throws { leaf(.bool(value)) }
    mutating func encode(_ value: String) throws { leaf(.string(value)) }
    mutating func encode(_ value: Double) throws { leaf(try scalar(value, nextPath)) }
    mutating func encode(_ value: Float) throws { leaf(try scalar(Double(value), nextPath)) }
    mutating func encode(_ value: Int) throws { leaf(scalar(value)) }
    mutating func encode(_ value: Int8) throws { leaf(scalar(value)) }
    mutating func encode(_ value: Int16) throws { leaf(scalar(value)) }
    mutating func encode(_ value: Int32) throws { leaf(scalar(value)) }
    mutating func encode(_ value: Int64) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt8) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt16) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt32) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt64) throws { leaf(scalar(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = nextPath
        try put(value, into: node.appended(), path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = nextPath
        return NodeEncoder(node: node.appended(), codingPath: path).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = nextPath
        return NodeEncoder(node: node.appended(), codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let path = nextPath
        return NodeEncoder(node: node.appended(), codingPath: path)
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]

    private func leaf(_ value: JSONValue) { node.content = .leaf(value) }

    mutating func encodeNil() throws { leaf(.null) }
    mutating func encode(_ value: Bool) throws { leaf(.bool(value)) }
    mutating func encode(_ value: String) throws { leaf(.string(value)) }
    mutating func encode(_ value: Double) throws { leaf(try scalar(value, codingPath)) }
    mutating func encode(_ value: Float) throws { leaf(try scalar(Double(value), codingPath)) }
    mutating func encode(_ value: Int) throws { leaf(scalar(value)) }
    mutating func encode(_ value: Int8) throws { leaf(scalar(value)) }
    mutating func encode(_ value: Int16) throws { leaf(scalar(value)) }
    mutating func encode(_ value: Int32) throws { leaf(scalar(value)) }
    mutating func encode(_ value: Int64) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt8) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt16) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt32) throws { leaf(scalar(value)) }
    mutating func encode(_ value: UInt64) throws { leaf(scalar(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws { try put(value, into: node, codingPath) }
}

private struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}

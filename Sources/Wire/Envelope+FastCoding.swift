import Foundation
import JSONSchema

// Envelopes are read and written on every request's path (twice in the gateway, twice in each
// worker), so they go through JSONValue's parser and writer instead of Codable. The output has
// sorted keys, the same text `WireCoding.encoder()` makes; WireTests checks the two agree.

extension RequestEnvelope {
    /// Reads an envelope; a malformed one is a `bad_request` naming the field.
    public static func decode(_ data: Data) throws(WireError) -> RequestEnvelope {
        let members: [JSONValue?]
        do { members = try JSONValue.parseObject(data, members: fieldNames) } catch {
            guard (try? JSONValue.parse(data)) == nil else {
                throw WireError(.badRequest, "the request envelope must be a JSON object")
            }
            throw WireError(.badRequest, "the request envelope is not valid JSON")
        }
        // Fields of later versions are read and ignored.
        let (v, op, id, deadline, key, token, principal) = (members[0], members[1], members[2], members[3], members[4], members[5], members[6])
        func bad(_ field: String, _ expected: String) -> WireError {
            WireError(.badRequest, "envelope field \"\(field)\" must be \(expected)")
        }
        guard let version = v?.integerValue else { throw bad("v", "an integer") }
        guard let op = op?.stringValue, !op.isEmpty else { throw bad("op", "a non-empty string") }
        guard let id = id?.stringValue, id.utf8.count <= 128 else { throw bad("id", "a string of at most 128 bytes") }
        var envelope = RequestEnvelope(op: op, id: id)
        envelope.v = Int(clamping: version)
        if let deadline, deadline != .null {
            guard let ms = deadline.integerValue else { throw bad("deadline_ms", "an integer") }
            // Clamped to a day: the value is added to clock instants, whose arithmetic traps on overflow.
            envelope.deadlineMs = Int(clamping: min(max(ms, -1), TsunaguWire.maxDeadlineMs))
        }
        if let key, key != .null {
            guard let text = key.stringValue, text.utf8.count <= 200 else { throw bad("idempotency_key", "a string of at most 200 bytes") }
            envelope.idempotencyKey = text
        }
        if let token, token != .null {
            guard let text = token.stringValue else { throw bad("token", "a string") }
            envelope.token = text
        }
        if let principal, principal != .null {
            guard let tenant = principal["tenant"]?.stringValue,
                  case .array(let roles)? = principal["roles"] else { throw bad("principal", "an object with tenant and roles") }
            var events: EventPermissions?
            if let value = principal["events"], value != .null {
                guard case .array(let tenants)? = value["tenants"] else { throw bad("principal", "an object whose events have tenants") }
                let types: [JSONValue] = if case .array(let items)? = value["types"] { items } else { [] }
                events = EventPermissions(tenants: tenants.compactMap(\.stringValue), types: types.compactMap(\.stringValue))
            }
            envelope.principal = Principal(tenant: tenant, roles: roles.compactMap(\.stringValue),
                                           tokenID: principal["token_id"]?.stringValue, events: events)
        }
        return envelope
    }

    private static let fieldNames: [StaticString] = ["v", "op", "id", "deadline_ms", "idempotency_key", "token", "principal"]

    /// Written field by field in sorted key order, with no intermediate dictionary.
    public func encoded() -> Data { encoded(principalJSON: nil) }

    /// The envelope with `principalJSON` (`principal.encodedJSON()`, written once by a caller that
    /// sends many envelopes for one principal) in place of writing the principal again.
    public func encoded(principalJSON: [UInt8]?) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(160 + (token?.utf8.count ?? 0))
        var writer = ObjectWriter()
        writer.begin(&out)
        if let deadlineMs { writer.key("deadline_ms", &out); appendInteger(deadlineMs, to: &out) }
        writer.key("id", &out); JSONValue.appendQuoted(id, to: &out)
        if let idempotencyKey { writer.key("idempotency_key", &out); JSONValue.appendQuoted(idempotencyKey, to: &out) }
        writer.key("op", &out); JSONValue.appendQuoted(op, to: &out)
        if let principal {
            writer.key("principal", &out)
            if let principalJSON { out.append(contentsOf: principalJSON) } else { principal.write(to: &out) }
        }
        if let token { writer.key("token", &out); JSONValue.appendQuoted(token, to: &out) }
        writer.key("v", &out); appendInteger(v, to: &out)
        out.append(UInt8(ascii: "}"))
        return Data(out)
    }
}

extension Principal {
    /// `{"events":{"tenants":[...],"types":[...]},"roles":[...],"tenant":...,"token_id":...}`, as the
    /// envelope carries it (`events` only when the token has explicit event permissions).
    public func encodedJSON() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96)
        write(to: &out)
        return out
    }

    fileprivate func write(to out: inout [UInt8]) {
        var writer = ObjectWriter()
        writer.begin(&out)
        if let events {
            writer.key("events", &out)
            var inner = ObjectWriter()
            inner.begin(&out)
            inner.key("tenants", &out); appendStrings(events.tenants, to: &out)
            inner.key("types", &out); appendStrings(events.types, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        writer.key("roles", &out)
        appendStrings(roles, to: &out)
        writer.key("tenant", &out); JSONValue.appendQuoted(tenant, to: &out)
        if let tokenID { writer.key("token_id", &out); JSONValue.appendQuoted(tokenID, to: &out) }
        out.append(UInt8(ascii: "}"))
    }
}

/// `["a","b"]`.
private func appendStrings(_ strings: [String], to out: inout [UInt8]) {
    out.append(UInt8(ascii: "["))
    for (index, string) in strings.enumerated() {
        if index > 0 { out.append(UInt8(ascii: ",")) }
        JSONValue.appendQuoted(string, to: &out)
    }
    out.append(UInt8(ascii: "]"))
}

/// Decimal digits of `value` without making a String.
private func appendInteger(_ value: Int, to out: inout [UInt8]) {
    if value < 0 { out.append(UInt8(ascii: "-")) }
    var magnitude = value.magnitude
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var count = 0
    withUnsafeMutableBytes(of: &digits) { buffer in
        repeat {
            buffer[19 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
            count += 1
        } while magnitude > 0
        out.append(contentsOf: buffer[(20 - count)...])
    }
}

/// Writes the punctuation of one JSON object; keys must come in sorted order.
private struct ObjectWriter {
    private var first = true

    mutating func begin(_ out: inout [UInt8]) { out.append(UInt8(ascii: "{")) }

    mutating func key(_ name: StaticString, _ out: inout [UInt8]) {
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
    }
}

extension ReplyEnvelope {
    public func encoded() -> Data {
        guard let error else {
            // The ok reply is the hot path: one string to escape.
            var out: [UInt8] = Array(#"{"id":"#.utf8)
            JSONValue.appendQuoted(id, to: &out)
            out.append(contentsOf: #","status":"ok","v":"#.utf8)
            appendInteger(v, to: &out)
            out.append(UInt8(ascii: "}"))
            return Data(out)
        }
        var e: [String: JSONValue] = ["code": .string(error.code.rawValue), "message": .string(error.message)]
        if let details = error.details { e["details"] = details }
        let fields: [String: JSONValue] = ["v": .integer(Int64(v)), "id": .string(id), "status": .string(status.rawValue), "error": .object(e)]
        return JSONValue.object(fields).serialized()
    }
}

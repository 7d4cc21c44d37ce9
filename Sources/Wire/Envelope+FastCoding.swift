import Foundation
import JSONSchema

// Envelopes are read and written on every request's path (twice in the gateway, twice in each
// worker), so they go through JSONValue's parser and writer instead of Codable. The output has
// sorted keys, the same text `WireCoding.encoder()` makes; WireTests checks the two agree.

extension RequestEnvelope {
    /// Reads an envelope; a malformed one is a `bad_request` naming the field.
    public static func decode(_ data: Data) throws(WireError) -> RequestEnvelope {
        let value: JSONValue
        do { value = try JSONValue.parse(data) } catch {
            throw WireError(.badRequest, "the request envelope is not valid JSON")
        }
        guard case .object(let fields) = value else { throw WireError(.badRequest, "the request envelope must be a JSON object") }
        func bad(_ field: String, _ expected: String) -> WireError {
            WireError(.badRequest, "envelope field \"\(field)\" must be \(expected)")
        }
        guard let version = fields["v"]?.integerValue else { throw bad("v", "an integer") }
        guard let op = fields["op"]?.stringValue, !op.isEmpty else { throw bad("op", "a non-empty string") }
        guard let id = fields["id"]?.stringValue, id.utf8.count <= 128 else { throw bad("id", "a string of at most 128 bytes") }
        var envelope = RequestEnvelope(op: op, id: id)
        envelope.v = Int(clamping: version)
        if let deadline = fields["deadline_ms"], deadline != .null {
            guard let ms = deadline.integerValue else { throw bad("deadline_ms", "an integer") }
            envelope.deadlineMs = Int(clamping: ms)
        }
        if let key = fields["idempotency_key"], key != .null {
            guard let text = key.stringValue, text.utf8.count <= 200 else { throw bad("idempotency_key", "a string of at most 200 bytes") }
            envelope.idempotencyKey = text
        }
        if let token = fields["token"], token != .null {
            guard let text = token.stringValue else { throw bad("token", "a string") }
            envelope.token = text
        }
        if let principal = fields["principal"], principal != .null {
            guard let tenant = principal["tenant"]?.stringValue,
                  case .array(let roles)? = principal["roles"] else { throw bad("principal", "an object with tenant and roles") }
            envelope.principal = Principal(tenant: tenant, roles: roles.compactMap(\.stringValue),
                                           tokenID: principal["token_id"]?.stringValue)
        }
        return envelope
    }

    public func encoded() -> Data {
        var fields: [String: JSONValue] = ["v": .integer(Int64(v)), "op": .string(op), "id": .string(id)]
        if let deadlineMs { fields["deadline_ms"] = .integer(Int64(deadlineMs)) }
        if let idempotencyKey { fields["idempotency_key"] = .string(idempotencyKey) }
        if let token { fields["token"] = .string(token) }
        if let principal {
            var p: [String: JSONValue] = ["tenant": .string(principal.tenant), "roles": .array(principal.roles.map { .string($0) })]
            if let tokenID = principal.tokenID { p["token_id"] = .string(tokenID) }
            fields["principal"] = .object(p)
        }
        return JSONValue.object(fields).serialized()
    }
}

extension ReplyEnvelope {
    public func encoded() -> Data {
        var fields: [String: JSONValue] = ["v": .integer(Int64(v)), "id": .string(id), "status": .string(status.rawValue)]
        if let error {
            var e: [String: JSONValue] = ["code": .string(error.code.rawValue), "message": .string(error.message)]
            if let details = error.details { e["details"] = details }
            fields["error"] = .object(e)
        }
        return JSONValue.object(fields).serialized()
    }
}

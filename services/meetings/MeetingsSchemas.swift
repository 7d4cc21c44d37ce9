/// JSON Schema fragments of the meetings operations. Every string has a `maxLength`, every number
/// a `minimum` and `maximum`, every array `maxItems` (the runtime refuses to start otherwise).
enum MeetingsSchemas {
    static let uuidPattern = #"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"#
    static let uuid = #"{"type":"string","pattern":"\#(uuidPattern)","maxLength":36}"#
    static let nullableUUID = #"{"type":["string","null"],"pattern":"\#(uuidPattern)","maxLength":36}"#
    static let code = #"{"type":"string","pattern":"^[0-9]{6}$","maxLength":6}"#
    static let tenant = #"{"type":"string","minLength":1,"maxLength":100}"#
    /// A calendar date `YYYY-MM-DD` (PostgreSQL refuses an impossible one: `invalid_input`).
    static let date = #"{"type":"string","pattern":"^[0-9]{4}-[0-9]{2}-[0-9]{2}$","maxLength":10}"#
    static let nullableDate = #"{"type":["string","null"],"pattern":"^[0-9]{4}-[0-9]{2}-[0-9]{2}$","maxLength":10}"#
    static let version = #"{"type":"integer","minimum":1,"maximum":2147483647}"#
    static let fiscalYear = #"{"type":"integer","minimum":2000,"maximum":2100}"#
    static let id = object([("id", uuid)], required: ["id"])
    static let idAndVersion = object([("id", uuid), ("version", version)], required: ["id", "version"])

    static func text(_ max: Int, min: Int = 0) -> String { #"{"type":"string","minLength":\#(min),"maxLength":\#(max)}"# }
    static func nullableText(_ max: Int) -> String { #"{"type":["string","null"],"maxLength":\#(max)}"# }
    static func oneOf(_ values: [String]) -> String {
        #"{"enum":[\#(values.map { "\"\($0)\"" }.joined(separator: ","))]}"#
    }

    /// An object schema from property schemas (JSON text each), with `required` names.
    static func object(_ properties: [(String, String)], required: [String]) -> String {
        let props = properties.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
        let req = required.map { "\"\($0)\"" }.joined(separator: ",")
        return #"{"type":"object","additionalProperties":false,"required":[\#(req)],"properties":{\#(props)}}"#
    }
}

/// `{"id": …}`.
struct IDInput: Decodable, Sendable {
    let id: String
}

/// `{"id": …, "version": …}`.
struct VersionedID: Decodable, Sendable {
    let id: String
    let version: Int
}

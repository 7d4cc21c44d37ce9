import Foundation
import JSONSchema
import Wire

/// The other places a service is given at, beside its own address (migration 0034): a branch
/// office's consultation day, a second building. `locations` is a list of
/// `{"name", "municipality_code", "postal_code", "address", "latitude", "longitude",
/// "accessibility", "hours"}` (HSDS `service_at_location` with its `location` and `address`); the
/// resource's own `postal_code`, `address`, coordinates, `accessibility` and `hours` stay its
/// first location. A location is public: the staff-only `staff_address` may not be one.
enum Locations {
    static let maxLocations = 10

    static let schema = """
        {"type":"array","maxItems":\(maxLocations),"items":{"type":"object","additionalProperties":false,"required":["address"],\
        "properties":{"name":{"type":"string","maxLength":200},\
        "municipality_code":{"type":["string","null"],"pattern":"^[0-9]{6}$","maxLength":6},\
        "postal_code":{"type":"string","pattern":"^([0-9]{3}-?[0-9]{4})?$","maxLength":8},\
        "address":{"type":"string","minLength":1,"maxLength":300},\
        "latitude":{"type":["number","null"],"minimum":-90,"maximum":90},\
        "longitude":{"type":["number","null"],"minimum":-180,"maximum":180},\
        "accessibility":{"type":"string","maxLength":2000},\
        "hours":\(OpeningHours.schema)}}}
        """
    /// The same rules for a CSV cell (the import reads the cell as JSON, the API's shape).
    static let validator: JSONSchema = {
        do { return try JSONSchema(jsonText: schema) } catch { preconditionFailure("Locations.schema: \(error)") }
    }()

    /// Every location is stored in full by `registry.canonical_locations` (migration 0034), so a
    /// stored list compares equal to the same list read back from a CSV.

    /// Places in `locations` that give the staff-only address (compared folded, without spaces):
    /// a group home's street address must not become public by being listed as a location.
    static func staffAddressViolations(_ input: JSONValue) -> [JSONSchemaViolation] {
        guard let staff = input["staff_address"]?.stringValue.map(folded), !staff.isEmpty,
              case .array(let locations)? = input["locations"] else { return [] }
        return locations.enumerated().compactMap { index, location in
            guard let address = location["address"]?.stringValue, folded(address) == staff else { return nil }
            return .init(path: "/locations/\(index)/address", message: "the staff-only address cannot be a public location")
        }
    }

    static func folded(_ text: String) -> String {
        SearchText.normalise(text).filter { !$0.isWhitespace }
    }

    /// A CSV cell: "" for none, else the list as JSON.
    static func csvText(_ locations: JSONValue?) -> String {
        guard case .array(let items)? = locations, !items.isEmpty else { return "" }
        return JSONValue.array(items).jsonText
    }

    /// Reads a CSV cell back: `.success` with the list, or a message for the line's error.
    static func parse(csvText text: String) -> Result<JSONValue, ImportProblem> {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return .success(.array([])) }
        guard let value = try? JSONValue.parse(Data(trimmed.utf8)) else {
            return .failure(ImportProblem(message: "locations is not a JSON list like [{\"address\":\"…\",\"postal_code\":\"…\"}]"))
        }
        if value.firstNULPlace() != nil { return .failure(ImportProblem(message: "locations contains a NUL character")) }
        if let first = validator.violations(of: value).first {
            return .failure(ImportProblem(message: "locations\(first.path): \(first.message)"))
        }
        return .success(value)
    }

    struct ImportProblem: Error { let message: String }
}

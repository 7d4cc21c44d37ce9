import Foundation
import JSONSchema
import Wire

/// The areas a resource serves when it is responsible for more than its municipality (migration
/// 0032): `serves_areas`, an ordered list of area codes, defined areas' ids or `national` (a
/// 保健所 serving two 圏域, a centre serving the prefecture). `serves_area`, the one area of
/// before, stays readable as the first of the list, and a writer that knows only it still works:
/// a write takes whichever of the two the writer changed.
enum ServesAreas {
    static let maxAreas = 20
    static let schema = #"{"type":["array","null"],"maxItems":\#(maxAreas),"items":{"type":"string","minLength":1,"maxLength":100}}"#

    /// Where a write's list came from, for JSON Pointers in errors.
    enum Source {
        case list    // `serves_areas`
        case single  // `serves_area`
        case stored  // neither changed

        func pointer(_ index: Int) -> String {
            switch self {
            case .list, .stored: "/serves_areas/\(index)"
            case .single: "/serves_area"
            }
        }
    }

    /// The input with `serves_areas` set to the list to store (and `serves_area` removed). A
    /// record read and sent back carries both: the one that differs from `stored` is the one the
    /// writer changed (an older client changes only `serves_area`, which then becomes the whole
    /// list). Both changed and disagreeing (the single one not the list's first) is `invalid_input`;
    /// on create, `stored` is nil and the list wins when both are sent and agree.
    static func resolve(_ input: JSONValue, stored: [String]?) throws -> (input: JSONValue, source: Source) {
        guard case .object(var fields) = input else { return (input, .stored) }
        var list: [String]?
        if case .array(let items)? = fields["serves_areas"] { list = dedupe(items.compactMap(\.stringValue)) }
        var single: [String]?
        if let value = fields["serves_area"] { single = value.stringValue.map { [$0] } ?? [] }
        fields["serves_area"] = nil
        let listChanged = list != nil && (stored == nil || list != stored)
        let singleChanged = single != nil && (stored == nil || single?.first != stored?.first)
        let chosen: [String]
        let source: Source
        if let list, listChanged {
            if let single, singleChanged, single.first != list.first {
                throw WireError.invalidInput(
                    "serves_area and serves_areas disagree: send one of them, or serves_area as the first of serves_areas",
                    violations: [.init(path: "/serves_area", message: "not the first of serves_areas")])
            }
            (chosen, source) = (list, .list)
        } else if let single, singleChanged {
            (chosen, source) = (single, .single)
        } else {
            (chosen, source) = (stored ?? [], .stored)
        }
        fields["serves_areas"] = .array(chosen.map { .string($0) })
        return (.object(fields), source)
    }

    /// The list without repeats, in its order.
    static func dedupe(_ areas: [String]) -> [String] {
        var seen = Set<String>()
        return areas.filter { seen.insert($0).inserted }
    }

    /// `serves_areas` of a stored record (`resource.fetch`).
    static func stored(_ resource: JSONValue) -> [String] {
        guard case .array(let items)? = resource["serves_areas"] else { return [] }
        return items.compactMap(\.stringValue)
    }
}

import Foundation
import JSONSchema
import Testing

@Suite struct JSONSchemaTests {
    let schema = try! JSONSchema(jsonText: """
        {"type":"object","additionalProperties":false,"required":["code"],
         "properties":{"code":{"type":"string","pattern":"^[0-9]{6}$"},
                       "limit":{"type":"integer","minimum":1,"maximum":10},
                       "level":{"enum":["prefecture","municipality"]},
                       "tags":{"type":"array","maxItems":2,"items":{"type":"string","minLength":1}}}}
        """)

    func violations(_ json: String) throws -> [JSONSchemaViolation] {
        schema.violations(of: try JSONValue.parse(Data(json.utf8)))
    }

    @Test func acceptsValidInput() throws {
        #expect(try violations(#"{"code":"131016","limit":5,"level":"prefecture","tags":["a"]}"#).isEmpty)
    }

    @Test func reportsEachViolationWithItsPointer() throws {
        let found = try violations(#"{"limit":0,"level":"town","tags":["","b","c"],"x/y":1}"#)
        let paths = Set(found.map(\.path))
        #expect(paths == ["/code", "/limit", "/level", "/tags", "/tags/0", "/x~1y"])
    }

    @Test func integerIsNotAString() throws {
        let found = try violations(#"{"code":131016}"#)
        #expect(found == [JSONSchemaViolation(path: "/code", message: "expected string, got integer")])
    }

    @Test func wholeNumberDoubleCountsAsInteger() throws {
        #expect(try violations(#"{"code":"131016","limit":2.0}"#).isEmpty)
        #expect(try violations(#"{"code":"131016","limit":2.5}"#).map(\.path) == ["/limit"])
    }

    @Test func rejectsABadPatternWhenMade() {
        #expect(throws: JSONSchemaError.self) { try JSONSchema(jsonText: #"{"pattern":"("}"#) }
    }

    @Test func parseRejectsText() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data("{nope".utf8)) }
    }
}

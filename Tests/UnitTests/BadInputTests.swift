import Foundation
import JSONSchema
import Testing

/// What keeps one hostile value from killing a process: duplicate keys refused by the one parser,
/// numbers that do not fit refused by the decoder (never an arithmetic trap), schemas that refuse
/// keywords they do not implement, ECMA-262 `$`, code-point lengths, and the bounds check.
@Suite struct BadInputTests {
    struct Page: Decodable, Equatable { let limit: Int; let name: String?; let tags: [String] }

    @Test func duplicateMemberNamesAreRefusedAtAnyDepth() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data(#"{"a":1,"a":2}"#.utf8)) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data(#"{"x":[{"b":true,"b":true}]}"#.utf8)) }
        // The same name under escapes is the same name.
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data(#"{"a":1,"\u0061":2}"#.utf8)) }
        #expect((try? JSONValue.parse(Data(#"{"a":1,"b":{"a":2}}"#.utf8))) != nil)
    }

    @Test func theDecoderReadsTheParsedValue() throws {
        let value = try JSONValue.parse(Data(#"{"limit":5,"tags":["x","y"]}"#.utf8))
        #expect(try JSONValueDecoder().decode(Page.self, from: value) == Page(limit: 5, name: nil, tags: ["x", "y"]))
    }

    @Test func numbersThatDoNotFitAreDecodingErrorsNotTraps() throws {
        for text in [#"{"limit":1e300,"tags":[]}"#, #"{"limit":-1e300,"tags":[]}"#, #"{"limit":1.5,"tags":[]}"#,
                     #"{"limit":18446744073709551616,"tags":[]}"#] {
            let value = try JSONValue.parse(Data(text.utf8))
            #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(Page.self, from: value) }
        }
        struct Small: Decodable { let n: Int8 }
        #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(Small.self, from: .object(["n": .integer(300)])) }
        #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(Page.self, from: .object(["limit": .string("5"), "tags": .array([])])) }
    }

    @Test func unknownKeywordsAreRefusedWhenTheSchemaIsMade() {
        for text in [#"{"type":"string","format":"email"}"#, #"{"type":"object","patternProperties":{}}"#,
                     #"{"properties":{"a":{"type":"string","uniqueItems":true}}}"#, #"{"type":"strin"}"#,
                     #"{"maxLength":-1}"#, #"{"items":{"oneOf":[]}}"#] {
            #expect(throws: JSONSchemaError.self) { try JSONSchema(jsonText: text) }
        }
        #expect((try? JSONSchema(jsonText: #"{"type":"string","description":"a note","maxLength":3}"#)) != nil)
    }

    @Test func aPatternEndAnchorDoesNotAcceptATrailingNewline() throws {
        let schema = try JSONSchema(jsonText: #"{"type":"string","pattern":"^[0-9]{6}$","maxLength":7}"#)
        #expect(schema.violations(of: .string("131016")).isEmpty)
        #expect(!schema.violations(of: .string("131016\n")).isEmpty)
        // A `$` inside a character class or escaped is a literal, as before.
        let literal = try JSONSchema(jsonText: #"{"type":"string","pattern":"^[$]\\$$","maxLength":2}"#)
        #expect(literal.violations(of: .string("$$")).isEmpty)
    }

    @Test func lengthsCountCodePointsSoCombiningMarksCannotHideLength() {
        let schema = try! JSONSchema(jsonText: #"{"type":"string","maxLength":3}"#)
        let oneGrapheme = "e" + String(repeating: "\u{301}", count: 100)
        #expect(oneGrapheme.count == 1)
        #expect(!schema.violations(of: .string(oneGrapheme)).isEmpty)
    }

    @Test func unboundedPlacesAreNamed() throws {
        let schema = try JSONSchema(jsonText: """
            {"type":"object","additionalProperties":false,"properties":{
              "s":{"type":"string"},"n":{"type":"integer","minimum":0},"a":{"type":"array","items":{"enum":["x"]}},
              "ok":{"type":"string","maxLength":5},"any":{},"e":{"enum":[1,2]}}}
            """)
        #expect(Set(schema.unboundedPlaces()) == [
            "/properties/s: string without maxLength", "/properties/n: number without minimum and maximum",
            "/properties/a: array without maxItems", "/properties/any: string without maxLength",
            "/properties/any: number without minimum and maximum", "/properties/any: array without maxItems",
            "/properties/any: array without items", "/properties/any: object without additionalProperties",
        ])
        #expect(try JSONSchema(jsonText: #"{"type":"object","additionalProperties":false}"#).unboundedPlaces().isEmpty)
    }
}

@Suite struct JSONValueEncoderTests {
    struct Inner: Codable, Equatable { let name: String; let tags: [String]; let score: Double? }
    struct Outer: Codable, Equatable {
        let id: Int
        let big: UInt64
        let inner: Inner
        let list: [Inner]
        let nested: [[Int]]
        let map: [String: Int]
        let missing: String?
        let flag: Bool
    }

    @Test func encodesWhatJSONEncoderEncodes() throws {
        let value = Outer(id: -7, big: UInt64(Int64.max), inner: Inner(name: "千代田\"区\n", tags: ["a", "b/c"], score: 1.5),
                          list: [Inner(name: "x", tags: [], score: nil)], nested: [[1, 2], []], map: ["k": 1], missing: nil, flag: true)
        let ours = try JSONValueEncoder().encode(value)
        let foundation = try JSONValue.parse(JSONEncoder().encode(value))
        #expect(ours == foundation)
        #expect(try JSONValueDecoder().decode(Outer.self, from: try JSONValue.parse(ours.serialized())) == value)
    }

    @Test func refusesNonFiniteNumbers() {
        #expect(throws: EncodingError.self) { try JSONValueEncoder().encode(Inner(name: "", tags: [], score: .infinity)) }
    }
}

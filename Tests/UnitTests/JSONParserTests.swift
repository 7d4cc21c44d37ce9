import Foundation
import JSONSchema
import Testing

@Suite struct JSONParserTests {
    func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(Data(text.utf8)) }

    @Test func parsesEveryKindOfValue() throws {
        let value = try parse(#" {"a":[1,-2.5e1,true,false,null],"s":"x\"\\\/\n\u00e9\ud83d\ude00","o":{}} "#)
        #expect(value == .object([
            "a": .array([.integer(1), .number(-25), .bool(true), .bool(false), .null]),
            "s": .string("x\"\\/\né😀"),
            "o": .object([:]),
        ]))
    }

    @Test func agreesWithFoundationOnJapaneseText() throws {
        let text = #"{"name":"千代田区","kana":"ﾁﾖﾀﾞｸ"}"#
        #expect(try parse(text) == (try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"\\x\"", "\"\\ud800\"", "{} {}", "\"\u{01}\"",
        "1e999", String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func rejectsMalformedText(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data([0x22, 0xFF, 0x22])) }
    }

    @Test func selectedMembersAreReadAndEveryDuplicateIsRefused() throws {
        let names: [StaticString] = ["a", "c", "é", "zz"]
        let values = try JSONValue.parseObject(Data(#" {"b":1,"a":{"x":[2]},"c":null,"\u00e9":"e"} "#.utf8), members: names)
        #expect(values == [.object(["x": .array([.integer(2)])]), .null, .string("e"), nil])
        #expect(throws: JSONParseError.self) { try JSONValue.parseObject(Data("[1]".utf8), members: names) }
        for text in [#"{"a":1,"a":2}"#, #"{"a":1,"\u0061":2}"#, #"{"b":1,"b":2}"#, #"{"c":null,"c":null}"#, #"{"a":1} 2"#, #"{"a":1,}"#] {
            #expect(throws: JSONParseError.self, "\(text)") { try JSONValue.parseObject(Data(text.utf8), members: names) }
        }
    }

    @Test(arguments: ["0", "-0", "7", "-42", "999999999999999999", "-999999999999999999", "9223372036854775807",
                      "-9223372036854775808", "9223372036854775808", "123456789012345678901"])
    func integersAgreeWithTheirText(_ text: String) throws {
        let value = try JSONValue.parse(Data(text.utf8))
        if let exact = Int64(text) { #expect(value == .integer(exact)) } else { #expect(value == .number(Double(text)!)) }
    }

    @Test func serialisesWithSortedKeysAndEscapes() throws {
        let value = JSONValue.object(["b": .string("a\"\n\u{01}"), "a": .array([.integer(1), .null])])
        #expect(String(decoding: value.serialized(), as: UTF8.self) == #"{"a":[1,null],"b":"a\"\n\u0001"}"#)
        #expect(try JSONValue.parse(value.serialized()) == value)
    }
}

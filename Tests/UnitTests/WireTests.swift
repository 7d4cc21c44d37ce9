import Foundation
import JSONSchema
import Testing
import Wire

@Suite struct WireTests {
    @Test func requestEnvelopeUsesSnakeCaseKeys() throws {
        let envelope = RequestEnvelope(op: "area.get", id: "r1", deadlineMs: 500, idempotencyKey: "k",
                                       principal: Principal(tenant: "pref-13", roles: ["staff"], tokenID: "tok_1"))
        let text = String(decoding: try WireCoding.encoder().encode(envelope), as: UTF8.self)
        #expect(text == #"{"deadline_ms":500,"id":"r1","idempotency_key":"k","op":"area.get","principal":{"roles":["staff"],"tenant":"pref-13","token_id":"tok_1"},"v":1}"#)
        #expect(try WireCoding.decoder().decode(RequestEnvelope.self, from: Data(text.utf8)) == envelope)
    }

    @Test func errorReplyCarriesCodeAndDetails() throws {
        let reply = ReplyEnvelope.failure(id: "r2", WireError(.invalidInput, "bad", details: .object(["x": .integer(1)])))
        let text = String(decoding: try WireCoding.encoder().encode(reply), as: UTF8.self)
        #expect(text == #"{"error":{"code":"invalid_input","details":{"x":1},"message":"bad"},"id":"r2","status":"error","v":1}"#)
    }

    @Test func everyErrorCodeIsSnakeCase() {
        for code in ErrorCode.allCases {
            #expect(code.rawValue.range(of: "^[a-z_]+$", options: .regularExpression) != nil)
        }
    }

    @Test func mdpConstantsMatchTheRFC() {
        #expect(MDP.clientHeader == Data("MDPC01".utf8))
        #expect(MDP.workerHeader == Data("MDPW01".utf8))
        #expect(MDP.Command.ready.rawValue == 1 && MDP.Command.disconnect.rawValue == 5)
    }
}

@Suite struct EnvelopeFastCodingTests {
    @Test func fastEncodingMatchesCodable() throws {
        let envelope = RequestEnvelope(op: "area.get", id: "r\"1", deadlineMs: 5, idempotencyKey: "k", token: "t",
                                       principal: Principal(tenant: "pref-13", roles: ["a", "b"], tokenID: nil))
        #expect(envelope.encoded() == (try WireCoding.encoder().encode(envelope)))
        #expect(try RequestEnvelope.decode(envelope.encoded()) == envelope)
        let reply = ReplyEnvelope.failure(id: "x", WireError(.conflict, "stale", details: .object(["version": .integer(3)])))
        #expect(reply.encoded() == (try WireCoding.encoder().encode(reply)))
        let okReply = ReplyEnvelope(id: "a\"b\u{7}", status: .ok)
        #expect(okReply.encoded() == (try WireCoding.encoder().encode(okReply)))
        let bare = RequestEnvelope(op: "x", id: "")
        #expect(bare.encoded() == (try WireCoding.encoder().encode(bare)))
        for (v, deadline) in [(0, 0), (-3, -1), (Int.max, Int.min), (10, 86_400_000)] {
            var numbers = RequestEnvelope(op: "x", id: "1", deadlineMs: deadline)
            numbers.v = v
            #expect(numbers.encoded() == (try WireCoding.encoder().encode(numbers)))
        }
    }

    @Test func aSplicedPrincipalIsTheSameTextAsAWrittenOne() throws {
        let principal = Principal(tenant: "pref-01", roles: ["prefecture_staff", "x\"y"], tokenID: "tok_1")
        let envelope = RequestEnvelope(op: "area.get", id: "7", deadlineMs: 100, principal: principal)
        #expect(envelope.encoded(principalJSON: principal.encodedJSON()) == envelope.encoded())
        #expect(try RequestEnvelope.decode(envelope.encoded(principalJSON: principal.encodedJSON())) == envelope)
    }

    @Test(arguments: [
        #"[]"#, #"{"v":"1","op":"a","id":"x"}"#, #"{"v":1,"id":"x"}"#, #"{"v":1,"op":"","id":"x"}"#,
        #"{"v":1,"op":"a"}"#, #"{"v":1,"op":"a","id":"x","deadline_ms":"soon"}"#, #"{"v":1,"op":"a","id":"x","token":5}"#,
        #"{"v":1,"op":"a","id":"x","token":"t","token":"u"}"#, #"{"v":1,"op":"a","id":"x"} x"#, "",
    ])
    func malformedEnvelopesAreBadRequests(_ text: String) {
        #expect(throws: WireError.self) { try RequestEnvelope.decode(Data(text.utf8)) }
        do { _ = try RequestEnvelope.decode(Data(text.utf8)) } catch { #expect(error.code == .badRequest) }
    }
}

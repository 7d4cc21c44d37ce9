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

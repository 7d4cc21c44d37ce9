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

@Suite struct EventPermissionsTests {
    @Test func anEventIsVisibleWhenItsTenantAndTypeAreAllowed() {
        let tokyoMeetings = EventPermissions(tenants: ["130001"], types: ["jp.tsunagu.meetings."])
        #expect(tokyoMeetings.visible(tenant: "130001", type: "jp.tsunagu.meetings.meeting.held"))
        #expect(!tokyoMeetings.visible(tenant: "130001", type: "jp.tsunagu.registry.resource.created"))
        #expect(!tokyoMeetings.visible(tenant: "270008", type: "jp.tsunagu.meetings.meeting.held"))
        let everything = EventPermissions(tenants: ["*"])
        #expect(everything.visible(tenant: "270008", type: "anything"))
        let twoTenants = EventPermissions(tenants: ["130001", "270008"], types: ["jp.tsunagu.registry.resource.created"])
        #expect(twoTenants.visible(tenant: "270008", type: "jp.tsunagu.registry.resource.created"))
        #expect(!twoTenants.visible(tenant: "270008", type: "jp.tsunagu.registry.resource.updated"))
        #expect(!EventPermissions(tenants: []).visible(tenant: "130001", type: "t"))
        // "*" is a whole tenant code, never a pattern.
        #expect(!EventPermissions(tenants: ["13*"]).visible(tenant: "130001", type: "t"))
    }

    @Test func withoutExplicitPermissionsNationalSeesAllAndOthersTheirOwnTenant() {
        let national = Principal(tenant: "national", roles: ["admin"], tokenID: nil)
        #expect(national.eventPermissions == EventPermissions(tenants: ["*"], types: []))
        let tokyo = Principal(tenant: "130001", roles: ["staff"], tokenID: nil)
        #expect(tokyo.eventPermissions == EventPermissions(tenants: ["130001"], types: []))
        #expect(tokyo.eventPermissions.visible(tenant: "130001", type: "x") && !tokyo.eventPermissions.visible(tenant: "270008", type: "x"))
        let explicit = EventPermissions(tenants: ["270008"], types: ["jp.tsunagu.registry."])
        #expect(Principal(tenant: "130001", roles: [], tokenID: nil, events: explicit).eventPermissions == explicit)
    }

    @Test func thePrincipalCarriesItsEventsInTheEnvelope() throws {
        let principal = Principal(tenant: "130001", roles: ["staff"], tokenID: "tok_1",
                                  events: EventPermissions(tenants: ["130001", "*"], types: ["jp.tsunagu.\"q\"."]))
        let envelope = RequestEnvelope(op: "events.read", id: "r", principal: principal)
        #expect(envelope.encoded() == (try WireCoding.encoder().encode(envelope)))
        #expect(envelope.encoded(principalJSON: principal.encodedJSON()) == envelope.encoded())
        #expect(try RequestEnvelope.decode(envelope.encoded()) == envelope)
        #expect(String(decoding: principal.encodedJSON(), as: UTF8.self)
                == #"{"events":{"tenants":["130001","*"],"types":["jp.tsunagu.\"q\"."]},"roles":["staff"],"tenant":"130001","token_id":"tok_1"}"#)
        // Without events the text is as before.
        let plain = Principal(tenant: "130001", roles: [], tokenID: nil)
        #expect(String(decoding: plain.encodedJSON(), as: UTF8.self) == #"{"roles":[],"tenant":"130001"}"#)
        #expect(try RequestEnvelope.decode(RequestEnvelope(op: "x", id: "1", principal: plain).encoded()).principal?.events == nil)
        // Malformed events in a principal are a bad request.
        let bad = Data(#"{"v":1,"op":"x","id":"1","principal":{"tenant":"t","roles":[],"events":{"types":[]}}}"#.utf8)
        #expect(throws: WireError.self) { try RequestEnvelope.decode(bad) }
    }
}

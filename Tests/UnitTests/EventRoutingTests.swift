import Foundation
@testable import Gateway
import JSONSchema
import Testing
import Wire

/// The gateway's event routing driven through `RoutingCore` without sockets: events and heads
/// from services, subscribers' messages, token lookups answered by hand, a clock the test moves.
@Suite struct EventRoutingTests {
    let tokyo = Data("sub-tokyo".utf8), nation = Data("sub-national".utf8), osaka = Data("sub-osaka".utf8)
    static let said = "jp.tsunagu.echo.said"

    // MARK: Events in

    @Test func eventsAreTakenOnlyWithALiveCredentialOfTheirOwnStream() {
        var gateway = Harness()
        _ = gateway.subscribe(nation, principal: .national)
        // The first event waits for its credential; then it goes on, as it came.
        let event = Self.event(1, tenant: "130001")
        #expect(gateway.push(event, credential: "tss_echo", lookUps: false) == gateway.actions(.lookUpCredential("tss_echo")))
        let found = gateway.core.credentialLookupFinished("tss_echo", outcome: .found(.init(tokenID: "tok_echo", service: "echo")),
                                                          now: gateway.now)
        #expect(found.toSubscribers == [.init(nation, .event, String(decoding: event, as: UTF8.self))])
        // The source names the stream when `stream` is absent (publishers that do not send it).
        let bySource = Data(#"{"id":"e2","source":"/tsunagu/echo","type":"jp.tsunagu.echo.said","tenant":"130001","sequence":2}"#.utf8)
        #expect(gateway.push(bySource, credential: "tss_echo").toSubscribers.map(\.command) == [.event])
        // Another service's credential cannot speak for this stream, whatever the event claims.
        let claimed = gateway.push(Self.event(3, tenant: "130001", stream: "registry"), credential: "tss_echo")
        #expect(claimed.toSubscribers.isEmpty && claimed.logs == ["dropped an event for a stream its credential was not issued for"])
        #expect(claimed.logMetadata.first?[EventStreams.LogKeys.stream] == "registry")
        let bySourceClaimed = Data(#"{"source":"/tsunagu/registry","type":"t","tenant":"130001","sequence":3}"#.utf8)
        #expect(gateway.push(bySourceClaimed, credential: "tss_echo").toSubscribers.isEmpty)
        // An invented credential: looked up, unknown, dropped and logged.
        #expect(gateway.push(Self.event(3, tenant: "130001"), credential: "tss_forged", lookUps: false)
                == gateway.actions(.lookUpCredential("tss_forged")))
        let forged = gateway.core.credentialLookupFinished("tss_forged", outcome: .unknown, now: gateway.now)
        #expect(forged.toSubscribers.isEmpty && forged.logs == ["dropped events pushed with an unknown or revoked service credential"])
        // No credential frame.
        let bare = gateway.core.eventReceived([Data("t/130001".utf8), Self.event(3, tenant: "130001")], truncated: false, now: gateway.now)
        #expect(bare.logs == ["dropped a malformed event message (or one without a service credential)"])
        #expect(gateway.core.events.heads["echo"] == 2 && gateway.core.events.heads["registry"] == nil)
    }

    @Test(arguments: [
        #"[1]"#, #"not json"#, #"{"stream":"echo","type":"t","tenant":"a"}"#, #"{"stream":"echo","type":"t","tenant":"a","sequence":0}"#,
        #"{"stream":"echo","type":"t","tenant":"a","sequence":"1"}"#, #"{"stream":"echo","type":"t","tenant":"a","sequence":9007199254740992}"#,
        #"{"stream":"echo","type":"t","sequence":1}"#, #"{"stream":"echo","tenant":"a","sequence":1}"#,
        #"{"type":"t","tenant":"a","sequence":1}"#, #"{"source":"/elsewhere/echo","type":"t","tenant":"a","sequence":1}"#,
        #"{"stream":"Echo!","type":"t","tenant":"a","sequence":1}"#, #"{"stream":"echo","type":"t","tenant":"a","sequence":1,"sequence":2}"#,
    ])
    func malformedEventsAreDroppedWithoutTheirContentInTheLog(_ text: String) {
        var gateway = Harness()
        _ = gateway.subscribe(nation, principal: .national)
        let dropped = gateway.push(Data(text.utf8), topic: Data("t/a".utf8), credential: "tss_echo")
        #expect(dropped.toSubscribers.isEmpty && dropped.logs == ["dropped a malformed event message"])
        #expect(dropped.logMetadata.allSatisfy { $0["reason"].map { !"\($0)".contains("\"") } ?? false })
    }

    @Test func headsCountOnlyFromTheirOwnStreamAndShowInHeartbeats() {
        var gateway = Harness()
        _ = gateway.push(Self.head("echo", 10), credential: "tss_echo")
        _ = gateway.push(Self.head("registry", 99), credential: "tss_echo")  // not echo's to tell
        _ = gateway.push(Self.head("echo", 4), credential: "tss_echo")       // an older head changes nothing
        #expect(gateway.push(Data(#"{"stream":"echo"}"#.utf8), topic: EventStreamWire.headTopic, credential: "tss_echo").logs
                == ["dropped a malformed event message"])
        let subscribed = gateway.subscribe(tokyo, principal: .tokyo, streams: ["echo", "registry"])
        #expect(subscribed.toSubscribers == [.init(tokyo, .subscribed, #"{"streams":{"echo":10,"registry":0}}"#)])
        _ = gateway.push(Self.event(12, tenant: "130001"), credential: "tss_echo")
        #expect(gateway.advance(.seconds(1)).toSubscribers.last == .init(tokyo, .heartbeat, #"{"streams":{"echo":12,"registry":0}}"#))
    }

    // MARK: Visibility and WITHHELD

    @Test func eachSubscriberGetsWhatItMaySeeAndWithheldRangesForTheRest() {
        var gateway = Harness()
        _ = gateway.subscribe(tokyo, principal: .tokyo)
        _ = gateway.subscribe(nation, principal: .national)
        var sent: [RoutingActions.ToSubscriber] = []
        for (sequence, tenant) in [(1, "130001"), (2, "270008"), (3, "270008"), (4, "130001"), (5, "270008")] {
            sent += gateway.push(Self.event(Int64(sequence), tenant: tenant), credential: "tss_echo").toSubscribers
        }
        sent += gateway.advance(.seconds(1)).toSubscribers
        #expect(sent.filter { $0.identity == nation }.map(\.command) == [.event, .event, .event, .event, .event, .heartbeat])
        #expect(sent.filter { $0.identity == tokyo }.map(\.summary) == [
            "EVENT 1", #"WITHHELD {"from":2,"stream":"echo","to":3}"#, "EVENT 4", #"WITHHELD {"from":5,"stream":"echo","to":5}"#,
            #"HEARTBEAT {"streams":{"echo":5}}"#,
        ])
        // Nothing pending is sent twice.
        #expect(gateway.advance(.seconds(1)).toSubscribers.filter { $0.identity == tokyo }.map(\.command) == [.heartbeat])
    }

    @Test func typePrefixesAndExplicitTenantsChooseTheEvents() {
        var gateway = Harness()
        let saidOnly = Principal(tenant: "130001", roles: [], tokenID: "tok_t", events: .init(tenants: ["130001", "270008"], types: [Self.said]))
        _ = gateway.subscribe(osaka, principal: saidOnly)
        var sent: [String] = []
        sent += gateway.push(Self.event(1, tenant: "270008", type: Self.said), credential: "tss_echo").toSubscribers.map(\.summary)
        sent += gateway.push(Self.event(2, tenant: "270008", type: "jp.tsunagu.echo.other"), credential: "tss_echo").toSubscribers.map(\.summary)
        sent += gateway.push(Self.event(3, tenant: "010006", type: Self.said), credential: "tss_echo").toSubscribers.map(\.summary)
        sent += gateway.push(Self.event(4, tenant: "130001", type: Self.said), credential: "tss_echo").toSubscribers.map(\.summary)
        #expect(sent == ["EVENT 1", #"WITHHELD {"from":2,"stream":"echo","to":3}"#, "EVENT 4"])
    }

    @Test func withheldRangesHoldOnlySequencesTheGatewaySaw() {
        var gateway = Harness()
        _ = gateway.subscribe(tokyo, principal: .tokyo)
        var sent: [String] = []
        for sequence: Int64 in [1, 2, 5, 5, 6] {  // 3 and 4 never arrive; 5 is sent twice
            sent += gateway.push(Self.event(sequence, tenant: "270008"), credential: "tss_echo").toSubscribers.map(\.summary)
        }
        sent += gateway.push(Self.event(7, tenant: "130001"), credential: "tss_echo").toSubscribers.map(\.summary)
        #expect(sent == [#"WITHHELD {"from":1,"stream":"echo","to":2}"#, #"WITHHELD {"from":5,"stream":"echo","to":6}"#, "EVENT 7"])
    }

    @Test func subscribersGetOnlyTheStreamsTheyNamed() {
        var gateway = Harness()
        _ = gateway.subscribe(nation, principal: .national, streams: ["registry"])
        #expect(gateway.push(Self.event(1, tenant: "130001"), credential: "tss_echo").toSubscribers.isEmpty)
        #expect(gateway.advance(.seconds(1)).toSubscribers.map(\.summary) == [#"HEARTBEAT {"streams":{"registry":0}}"#])
    }

    // MARK: SUBSCRIBE

    @Test func subscribeIsAuthenticatedLikeARequest() {
        var gateway = Harness()
        // Waits for the lookup; an UNSUBSCRIBE meanwhile means no subscription when it is answered.
        #expect(gateway.subscribe(tokyo, principal: .tokyo, token: "tsg_t", lookUps: false) == gateway.actions(.lookUpToken("tsg_t")))
        _ = gateway.subscriber(tokyo, .unsubscribe, "{}")
        let late = gateway.core.tokenLookupFinished("tsg_t", outcome: .found(.tokyo), now: gateway.now)
        #expect(late.toSubscribers.isEmpty && gateway.core.events.subscriptions.isEmpty && gateway.core.subscribing.isEmpty)
        // Now known: subscribed at once.
        #expect(gateway.subscribe(tokyo, principal: .tokyo, token: "tsg_t", lookUps: false).toSubscribers.map(\.command) == [.subscribed])
        // Unknown and failed lookups.
        _ = gateway.subscribe(osaka, principal: .tokyo, token: "tsg_bad", lookUps: false)
        #expect(gateway.core.tokenLookupFinished("tsg_bad", outcome: .unknown, now: gateway.now).errorCodes(to: osaka) == ["unauthorized"])
        _ = gateway.subscribe(osaka, principal: .tokyo, token: "tsg_down", lookUps: false)
        #expect(gateway.core.tokenLookupFinished("tsg_down", outcome: .failed, now: gateway.now).errorCodes(to: osaka) == ["unavailable"])
        #expect(gateway.core.events.subscriptions.keys.sorted { $0.hexString < $1.hexString } == [tokyo])
    }

    @Test(arguments: [
        (#"{"streams":["echo"]}"#, "unauthorized"), (#"{"token":"","streams":["echo"]}"#, "unauthorized"),
        (#"{"token":"tsg_x","streams":[]}"#, "bad_request"), (#"{"token":"tsg_x"}"#, "bad_request"),
        (#"{"token":"tsg_x","streams":["Echo"]}"#, "bad_request"), (#"{"token":"tsg_x","streams":[1]}"#, "bad_request"),
        (#"["tsg_x"]"#, "bad_request"), (#"{"token":"tsg_x","streams":["echo"]"#, "bad_request"),
        (#"{"token":"\#(String(repeating: "x", count: 300))","streams":["echo"]}"#, "unauthorized"),
    ])
    func badSubscribesGetTypedErrorsAndEndTheSubscription(_ body: String, _ code: String) {
        var gateway = Harness()
        _ = gateway.subscribe(tokyo, principal: .tokyo)
        let refused = gateway.subscriber(tokyo, .subscribe, body)
        #expect(refused.errorCodes(to: tokyo) == [code])
        #expect(gateway.core.events.subscriptions.isEmpty)
    }

    @Test func tooManyStreamsAreABadRequest() {
        var gateway = Harness()
        let streams = (0...EventStreamWire.maxStreamsPerSubscription).map { "s\($0)" }
        #expect(gateway.subscribe(tokyo, principal: .tokyo, streams: streams).errorCodes(to: tokyo) == ["bad_request"])
    }

    @Test func messagesThatAreNotTheProtocolGetAnErrorAndNoEvents() {
        var gateway = Harness()
        let garbage = gateway.core.subscriberMessageReceived([osaka, Data("hello".utf8)], truncated: false, now: gateway.now)
        #expect(garbage.errorCodes(to: osaka) == ["bad_request"] && garbage.logs == ["dropped a message with an unknown header on the events-out endpoint"])
        let wrongHeader = gateway.core.subscriberMessageReceived([osaka, Data("TSUNAGU-EVENTS/2".utf8), Data("PING".utf8), Data("{}".utf8)],
                                                                 truncated: false, now: gateway.now)
        #expect(wrongHeader.errorCodes(to: osaka) == ["bad_request"])
        #expect(gateway.subscriber(osaka, .ping, "{}").errorCodes(to: osaka) == ["bad_request"])      // not subscribed
        #expect(gateway.subscriber(osaka, .event, "{}").errorCodes(to: osaka) == ["bad_request"])     // a gateway command
        let truncated = gateway.core.subscriberMessageReceived([osaka, EventStreamWire.header], truncated: true, now: gateway.now)
        #expect(truncated.errorCodes(to: osaka) == ["bad_request"])
        _ = gateway.subscribe(nation, principal: .national)
        #expect(gateway.push(Self.event(1, tenant: "130001"), credential: "tss_echo").toSubscribers.map(\.identity) == [nation])
    }

    @Test func subscribersAreBounded() {
        var gateway = Harness { $0.maxSubscribers = 2 }
        _ = gateway.subscribe(tokyo, principal: .tokyo)
        _ = gateway.subscribe(nation, principal: .national, token: "tsg_n", lookUps: false)  // waiting for its lookup counts
        #expect(gateway.subscribe(osaka, principal: .tokyo).errorCodes(to: osaka) == ["unavailable"])
        // A subscriber already in may subscribe again (to other streams).
        #expect(gateway.subscribe(tokyo, principal: .tokyo, streams: ["registry"]).toSubscribers.map(\.command) == [.subscribed])
        _ = gateway.subscriber(tokyo, .unsubscribe, "{}")
        #expect(gateway.subscribe(osaka, principal: .tokyo).toSubscribers.map(\.command) == [.subscribed])
    }

    @Test func aStoppingGatewayTakesNoNewSubscriberAndTellsItsSubscribers() {
        var gateway = Harness()
        _ = gateway.subscribe(nation, principal: .national)
        gateway.core.beginDraining()
        #expect(gateway.subscribe(tokyo, principal: .tokyo).errorCodes(to: tokyo) == ["unavailable"])
        #expect(gateway.core.stop().errorCodes(to: nation) == ["unavailable"])
        #expect(gateway.core.events.subscriptions.isEmpty)
    }

    // MARK: Liveness, revocation, slow subscribers

    @Test func silentSubscribersAreForgottenAfterThreeIntervals() {
        var gateway = Harness()
        _ = gateway.subscribe(tokyo, principal: .tokyo)
        _ = gateway.subscribe(osaka, principal: .tokyo, token: "tsg_o")
        for _ in 0..<4 {
            _ = gateway.subscriber(tokyo, .ping, "{}")
            _ = gateway.advance(.milliseconds(1001))
        }
        #expect(gateway.core.events.subscriptions.keys.map { $0 } == [tokyo])
        // Forgotten, it is told so when it comes back, and may subscribe again.
        #expect(gateway.subscriber(osaka, .ping, "{}").errorCodes(to: osaka) == ["bad_request"])
    }

    @Test func revokingATokenEndsItsSubscriptionsHereAndAtTheNextCheckElsewhere() {
        var gateway = Harness { $0.tokenCacheTTL = .seconds(5) }
        _ = gateway.subscribe(tokyo, principal: .tokyo)
        _ = gateway.subscribe(osaka, principal: .osaka, token: "tsg_o")
        let revoked = gateway.core.tokenRevoked(id: Principal.tokyo.tokenID!, now: gateway.now)
        #expect(revoked.errorCodes(to: tokyo) == ["unauthorized"] && gateway.core.events.subscriptions[tokyo] == nil)
        // Revoked on another gateway: the token is asked for again once the cache time is up.
        var asked: [RoutingAction] = []
        for _ in 0..<6 {
            _ = gateway.subscriber(osaka, .ping, "{}")
            asked += gateway.advance(.milliseconds(1001)).filter { if case .lookUpToken = $0 { true } else { false } }
        }
        #expect(asked == [.lookUpToken("tsg_o")])
        let ended = gateway.core.tokenLookupFinished("tsg_o", outcome: .unknown, now: gateway.now)
        #expect(ended.errorCodes(to: osaka) == ["unauthorized"] && gateway.core.events.subscriptions.isEmpty)
    }

    @Test func aSlowSubscribersDropsAreItsOwnAndAGoneOneIsForgotten() {
        var gateway = Harness()
        _ = gateway.subscribe(tokyo, principal: .tokyo)
        _ = gateway.subscribe(nation, principal: .national)
        #expect(gateway.core.subscriberSendsFailed([(tokyo, false), (tokyo, false)]).isEmpty)
        #expect(gateway.core.events.subscriptions[tokyo]?.dropped == 2)
        #expect(gateway.advance(.seconds(1)).logs == ["messages to a slow subscriber dropped (its queue is full; it replays the gap)"])
        #expect(gateway.core.subscriberSendsFailed([(nation, true)]).logs == ["subscriber left"])
        #expect(gateway.core.events.subscriptions.keys.map { $0 } == [tokyo])
        // Every later event still goes to the slow one: the socket decides, per subscriber, what fits.
        #expect(gateway.push(Self.event(1, tenant: "130001"), credential: "tss_echo").toSubscribers.map(\.identity) == [tokyo])
    }

    // MARK: Frames

    static func event(_ sequence: Int64, tenant: String, type: String = said, stream: String = "echo") -> Data {
        Data(#"{"id":"e\#(sequence)","source":"/tsunagu/\#(stream)","stream":"\#(stream)","type":"\#(type)","tenant":"\#(tenant)","sequence":\#(sequence),"data":{}}"#.utf8)
    }

    static func head(_ stream: String, _ sequence: Int64) -> Data { Data(#"{"stream":"\#(stream)","sequence":\#(sequence)}"#.utf8) }
}

extension Principal {
    static let tokyo = Principal(tenant: "130001", roles: ["staff"], tokenID: "tok_tokyo")
    static let osaka = Principal(tenant: "270008", roles: ["staff"], tokenID: "tok_osaka")
    static let national = Principal(tenant: "national", roles: ["admin"], tokenID: "tok_national")
}

extension Harness {
    /// An event (or head) pushed with `credential`; with `lookUps`, a credential lookup it starts is
    /// answered at once as echo's (`tss_echo`) or unknown.
    mutating func push(_ body: Data, topic: Data? = nil, credential: String, lookUps: Bool = true) -> RoutingActions {
        let topicFrame = topic ?? (body.starts(with: Data(#"{"stream":"#.utf8)) && !body.contains(Data("tenant".utf8))
                                   ? EventStreamWire.headTopic : Data("jp.tsunagu.echo.said/130001".utf8))
        var actions = core.eventReceived([topicFrame, body, Data(credential.utf8)], truncated: false, now: now)
        if lookUps, case .lookUpCredential(let credential)? = actions.first, actions.count == 1 {
            let outcome: RoutingCore.CredentialLookups.Outcome = credential == "tss_echo" ? .found(.init(tokenID: "tok_echo", service: "echo")) : .unknown
            actions = core.credentialLookupFinished(credential, outcome: outcome, now: now)
        }
        return actions
    }

    /// `[identity, "TSUNAGU-EVENTS/1", command, body]`.
    mutating func subscriber(_ identity: Data, _ command: EventStreamWire.Command, _ body: String) -> RoutingActions {
        core.subscriberMessageReceived([identity, EventStreamWire.header, command.frame, Data(body.utf8)], truncated: false, now: now)
    }

    /// SUBSCRIBE with `token`; with `lookUps`, a lookup it starts is answered at once with `principal`.
    mutating func subscribe(_ identity: Data, principal: Principal, token: String? = nil, streams: [String] = ["echo"],
                            lookUps: Bool = true) -> RoutingActions {
        let token = token ?? "tsg_" + (principal.tokenID ?? "x")
        let names = streams.map { "\"\($0)\"" }.joined(separator: ",")
        var actions = subscriber(identity, .subscribe, #"{"token":"\#(token)","streams":[\#(names)]}"#)
        if lookUps, case .lookUpToken(let token)? = actions.first, actions.count == 1 {
            actions = core.tokenLookupFinished(token, outcome: .found(principal), now: now)
        }
        return actions
    }
}

extension RoutingActions {
    struct ToSubscriber: Equatable, CustomStringConvertible {
        let identity: Data
        let command: EventStreamWire.Command
        let body: String

        init(_ identity: Data, _ command: EventStreamWire.Command, _ body: String) {
            self.identity = identity
            self.command = command
            self.body = body
        }

        /// `EVENT <sequence>` for events, else the command and its body.
        var summary: String {
            if command == .event, let value = try? JSONValue.parse(Data(body.utf8)), let sequence = value["sequence"]?.integerValue {
                return "EVENT \(sequence)"
            }
            return "\(command.rawValue) \(body)"
        }

        var description: String { "\(String(decoding: identity, as: UTF8.self)): \(summary)" }
    }

    var toSubscribers: [ToSubscriber] {
        compactMap {
            if case .sendToSubscriber(let identity, let command, let body) = $0 {
                ToSubscriber(identity, command, String(decoding: body, as: UTF8.self))
            } else { nil }
        }
    }

    /// The codes of the ERRORs sent to `identity`.
    func errorCodes(to identity: Data) -> [String] {
        toSubscribers.filter { $0.identity == identity && $0.command == .error }.compactMap {
            (try? JSONValue.parse(Data($0.body.utf8)))?["code"]?.stringValue
        }
    }
}

import Foundation
@testable import Gateway
import Testing
import ZMQ

/// The gateway's decisions that need no socket: token lookups under a flood, the deadline a
/// worker is given, and the ZAP allow-list.
@Suite struct GatewayDecisionTests {
    typealias Lookups = TokenLookups<String, Int>
    let start = ContinuousClock.now

    @Test func oneLookupPerTokenAtATime() {
        var lookups = Lookups(positiveTTL: .seconds(30), negativeTTL: .seconds(2), maxRunning: 2, maxQueued: 1)
        guard case .startLookup = lookups.begin("a", waiter: 1, now: start) else { Issue.record("first asks"); return }
        guard case .waiting = lookups.begin("a", waiter: 2, now: start) else { Issue.record("second waits"); return }
        let (waiters, next) = lookups.finish("a", outcome: .found("principal"), now: start)
        #expect(waiters == [1, 2] && next == nil)
        guard case .known(.found("principal")) = lookups.begin("a", waiter: 3, now: start + .seconds(1)) else {
            Issue.record("answered from memory"); return
        }
        guard case .startLookup = lookups.begin("a", waiter: 4, now: start + .seconds(31)) else {
            Issue.record("asked again after the TTL"); return
        }
    }

    @Test func aFloodOfDistinctTokensIsCappedAndRefused() {
        var lookups = Lookups(positiveTTL: .seconds(30), negativeTTL: .seconds(2), maxRunning: 2, maxQueued: 3)
        var started = 0, waiting = 0, refused = 0
        for n in 0..<100 {
            switch lookups.begin("t\(n)", waiter: n, now: start) {
            case .startLookup: started += 1
            case .waiting: waiting += 1
            case .refused: refused += 1
            case .known: Issue.record("nothing is known yet")
            }
        }
        #expect(started == 2 && waiting == 3 && refused == 95)
        // A finished lookup starts the oldest queued one; an unknown token is remembered briefly.
        let (_, next) = lookups.finish("t0", outcome: .unknown, now: start)
        #expect(next == "t2")
        guard case .known(.unknown) = lookups.begin("t0", waiter: 0, now: start + .seconds(1)) else { Issue.record("negative cache"); return }
        // After the negative TTL it is asked again: queued, as both lookup slots are busy (t1, t2).
        guard case .waiting = lookups.begin("t0", waiter: 0, now: start + .seconds(3)) else { Issue.record("negative TTL"); return }
        #expect(lookups.running == 2 && lookups.queued == 3)
    }

    @Test func forgettingARevokedTokenAndUnknownOnes() {
        var lookups = Lookups(positiveTTL: .seconds(30), negativeTTL: .seconds(30), maxRunning: 4, maxQueued: 4)
        for token in ["kept", "revoked", "unknown"] { _ = lookups.begin(token, waiter: 0, now: start) }
        _ = lookups.finish("kept", outcome: .found("p1"), now: start)
        _ = lookups.finish("revoked", outcome: .found("p2"), now: start)
        _ = lookups.finish("unknown", outcome: .unknown, now: start)
        lookups.forget { $0 == "p2" }
        lookups.forgetUnknown()
        guard case .known(.found("p1")) = lookups.begin("kept", waiter: 0, now: start) else { Issue.record("kept"); return }
        guard case .startLookup = lookups.begin("revoked", waiter: 0, now: start) else { Issue.record("revoked"); return }
        guard case .startLookup = lookups.begin("unknown", waiter: 0, now: start) else { Issue.record("unknown"); return }
    }

    @Test func unknownTokensNeverPushOutAKnownOne() {
        var lookups = Lookups(positiveTTL: .seconds(30), negativeTTL: .seconds(30), maxRunning: 1, maxQueued: 0, maxRemembered: 10)
        _ = lookups.begin("valid", waiter: 0, now: start)
        _ = lookups.finish("valid", outcome: .found("p"), now: start)
        for n in 0..<1000 {
            guard case .startLookup = lookups.begin("bad\(n)", waiter: n, now: start) else { Issue.record("lookup \(n)"); return }
            _ = lookups.finish("bad\(n)", outcome: .unknown, now: start)
        }
        guard case .known(.found("p")) = lookups.begin("valid", waiter: 0, now: start) else { Issue.record("evicted"); return }
    }

    @Test func theWorkerGetsLessTimeThanTheClientWaits() {
        #expect(RoutingCore.workerDeadlineMs(left: .seconds(30)) == 29_500)
        #expect(RoutingCore.workerDeadlineMs(left: .milliseconds(1000)) == 930)
        #expect(RoutingCore.workerDeadlineMs(left: .milliseconds(10)) == 1)
        #expect(RoutingCore.workerDeadlineMs(left: .milliseconds(-5)) == 1)
    }

    @Test func zapAdmitsOnlyListedServiceKeys() throws {
        let listed = try ZMQCurveKeyPair.generate(), other = try ZMQCurveKeyPair.generate()
        let zap = ZAPHandler(allowedServiceKeys: [listed.publicKey])
        func request(_ domain: String, _ mechanism: String, key: String?) -> [Data] {
            var frames = [Data("1.0".utf8), Data("7".utf8), Data(domain.utf8), Data("127.0.0.1".utf8), Data(), Data(mechanism.utf8)]
            if let key { frames.append(z85Decode(key)) }
            return frames
        }
        let admitted = zap.reply(to: request(ZAPHandler.serviceDomain, "CURVE", key: listed.publicKey))
        #expect(admitted.reply[2] == Data("200".utf8) && admitted.reply[1] == Data("7".utf8) && admitted.refusedKey == nil)
        let refused = zap.reply(to: request(ZAPHandler.serviceDomain, "CURVE", key: other.publicKey))
        #expect(refused.reply[2] == Data("400".utf8) && refused.refusedKey == other.publicKey)
        #expect(zap.reply(to: request(ZAPHandler.serviceDomain, "NULL", key: nil)).reply[2] == Data("400".utf8))
        #expect(zap.reply(to: request(ZAPHandler.clientDomain, "CURVE", key: other.publicKey)).reply[2] == Data("200".utf8))
        #expect(zap.reply(to: [Data("junk".utf8)]).reply[2] == Data("400".utf8))
    }

    /// Z85 decoding for the test's fake ZAP requests (libzmq sends raw 32-byte keys).
    func z85Decode(_ text: String) -> Data {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
        var index = [UInt8: UInt32]()
        for (i, c) in alphabet.enumerated() { index[c] = UInt32(i) }
        var out = Data()
        let bytes = Array(text.utf8)
        for chunk in stride(from: 0, to: bytes.count, by: 5) {
            var value: UInt32 = 0
            for c in bytes[chunk..<chunk + 5] { value = value &* 85 &+ index[c]! }
            out.append(contentsOf: [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)])
        }
        return out
    }
}

@Suite struct ServiceQueueTests {
    @Test func clientsTakeTurnsSoABurstWaitsBehindItself() {
        var state = ServiceState(name: "registry")
        let flooder = Data([1]), honest = Data([2])
        for id in 1...100 { state.enqueue(UInt64(id), client: flooder) }
        state.enqueue(1000, client: honest)
        #expect(state.queued == 101)
        let first = (0..<3).compactMap { _ in state.popQueued() }
        #expect(first == [1, 1000, 2])  // the honest request is second, not 101st
        #expect(state.queued == 98)
    }

    @Test func retriesGoFirstInTheirLineAndAnsweredOnesLeave() {
        var state = ServiceState(name: "registry")
        let a = Data([1])
        state.enqueue(1, client: a)
        state.enqueue(2, client: a)
        state.enqueueFirst(9, client: a)
        state.dropQueued { $0 == 1 }
        #expect(state.queued == 2)
        #expect(state.popQueued() == 9 && state.popQueued() == 2 && state.popQueued() == nil && state.queued == 0)
    }
}

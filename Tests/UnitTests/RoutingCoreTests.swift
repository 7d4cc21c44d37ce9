import Foundation
@testable import Gateway
import JSONSchema
import Logging
import Testing
import Wire

/// The gateway's routing core driven directly: made-up frames, a made-up clock, lookups answered
/// by hand. No socket, no database. Each test checks the actions returned and the state left.
@Suite struct RoutingCoreTests {
    let alice = Data("client-alice".utf8), bob = Data("client-bob".utf8)
    let a = Data("worker-A".utf8), b = Data("worker-B".utf8)

    // MARK: Admission

    @Test func aRequestWaitsForItsTokenLookupAndThenGoesOn() {
        var gateway = Harness()
        _ = gateway.join(a, concurrency: 4)
        // The first request with a token asks the database; a second one with it waits for that answer.
        let first = gateway.request(from: alice, "echo", op: "get", id: "r1", lookUps: false)
        #expect(first == gateway.actions(.lookUpToken("tsg_alice")))
        #expect(gateway.request(from: bob, "echo", op: "get", id: "r2", lookUps: false).isEmpty)
        #expect(gateway.core.pending.isEmpty)
        let answered = gateway.core.tokenLookupFinished("tsg_alice", outcome: .found(Harness.principal), now: gateway.now)
        #expect(answered.requests == [.init(worker: a, correlation: 1), .init(worker: a, correlation: 2)])
        // The envelope the worker gets: token gone, principal set, deadline less the margin.
        guard case .sendToWorker(_, .request(_, let body)) = answered[0] else { Issue.record("a request"); return }
        let envelope = try? RequestEnvelope.decode(body[1])
        #expect(envelope?.token == nil && envelope?.principal == Harness.principal && envelope?.deadlineMs == 29_500)
        // Now known: no lookup. An unknown token is refused once looked up, and remembered.
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r3", lookUps: false).requests.count == 1)
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r4", token: "tsg_bad", lookUps: false)
                == gateway.actions(.lookUpToken("tsg_bad")))
        let refused = gateway.core.tokenLookupFinished("tsg_bad", outcome: .unknown, now: gateway.now)
        #expect(refused.errors == [.init(client: alice, requestID: "r4", code: .unauthorized)])
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r5", token: "tsg_bad", lookUps: false).errors
                == [.init(client: alice, requestID: "r5", code: .unauthorized)])
        // The gateway's own service is run by the shell, with the caller it was given.
        let own = gateway.request(from: alice, TsunaguWire.gatewayService, op: "services.list", id: "r6")
        guard case .runGatewayOperation(let call) = own.first else { Issue.record("a gateway call: \(own)"); return }
        #expect(call.identity == alice && call.envelope.op == "services.list" && call.principal == Harness.principal)
    }

    @Test func malformedRequestsGetTypedErrors() {
        var gateway = Harness { $0.maxMessageBytes = 100 }
        _ = gateway.join(a)
        let truncated = gateway.core.clientMessageReceived([alice, Data()], truncated: true, now: gateway.now)
        #expect(truncated.errors == [.init(client: alice, requestID: "", code: .badRequest)])
        let notMDP = gateway.core.clientMessageReceived([alice, Data(), Data("MDPC02".utf8), Data("echo".utf8)],
                                                        truncated: false, now: gateway.now)
        #expect(notMDP.errors == [.init(client: alice, requestID: "", code: .badRequest)])
        let noService = gateway.core.clientMessageReceived([alice, Data(), MDP.clientHeader], truncated: false, now: gateway.now)
        #expect(noService.errors == [.init(client: alice, requestID: "", code: .badRequest)])
        let large = gateway.request(from: alice, "echo", op: "get", id: "big", payload: Data(repeating: 0x20, count: 200))
        #expect(large.errors == [.init(client: alice, requestID: "big", code: .tooLarge)])
        #expect(gateway.request(from: alice, "echo", op: "get", id: "anon", token: nil).errors
                == [.init(client: alice, requestID: "anon", code: .unauthorized)])
        let version = gateway.core.clientMessageReceived(
            [alice, Data(), MDP.clientHeader, Data("echo".utf8), TsunaguWire.marker, Data(#"{"v":2,"op":"get","id":"v2","token":"t"}"#.utf8)],
            truncated: false, now: gateway.now)
        #expect(version.errors == [.init(client: alice, requestID: "v2", code: .badRequest)])
        #expect(gateway.request(from: alice, "echo", op: "nope", id: "op").errors == [.init(client: alice, requestID: "op", code: .unknownOperation)])
        // A plain body for a Tsunagu service.
        let plain = gateway.core.clientMessageReceived([alice, Data(), MDP.clientHeader, Data("echo".utf8), Data("hi".utf8)],
                                                       truncated: false, now: gateway.now)
        #expect(plain.errors == [.init(client: alice, requestID: "", code: .badRequest)])
        #expect(gateway.core.pending.isEmpty)
    }

    @Test func unknownServiceAndNoInstanceUp() {
        var gateway = Harness()
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r1").errors == [.init(client: alice, requestID: "r1", code: .unknownService)])
        _ = gateway.join(a)
        let left = gateway.worker(a, .disconnect)  // nothing in flight: it leaves at once
        #expect(left.logs == ["instance left"] && gateway.core.workers.isEmpty && gateway.core.services["echo"]?.liveInstances == 0)
        let refused = gateway.request(from: alice, "echo", op: "get", id: "r2")
        #expect(refused.errors == [.init(client: alice, requestID: "r2", code: .unavailable)])
        #expect(refused.errorMessages == ["no instance of echo is up"])
        #expect(gateway.core.pending.isEmpty && gateway.core.services["echo"]?.queued == 0)
    }

    @Test func aFullQueueRefusesMore() {
        var gateway = Harness { $0.maxQueuedPerService = 2 }
        _ = gateway.join(a)
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r1").requests == [.init(worker: a, correlation: 1)])
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r2").isEmpty)
        #expect(gateway.request(from: bob, "echo", op: "get", id: "r3").isEmpty)
        #expect(gateway.core.services["echo"]?.queued == 2)
        let refused = gateway.request(from: bob, "echo", op: "get", id: "r4")
        #expect(refused.errors == [.init(client: bob, requestID: "r4", code: .unavailable)])
        #expect(refused.errorMessages == ["echo is overloaded; retry later"])
        #expect(gateway.core.pending.count == 3)
    }

    @Test func oneConnectionHoldsAtMostItsShareOfPendingRequests() {
        var gateway = Harness { $0.maxPendingPerClient = 2 }
        _ = gateway.join(a)
        _ = gateway.request(from: alice, "echo", op: "get", id: "r1")
        _ = gateway.request(from: alice, "echo", op: "get", id: "r2")
        let refused = gateway.request(from: alice, "echo", op: "get", id: "r3")
        #expect(refused.errors == [.init(client: alice, requestID: "r3", code: .unavailable)])
        #expect(gateway.core.pendingPerClient[alice] == 2)
        // Another connection is not affected; once alice is answered she may send again.
        #expect(gateway.request(from: bob, "echo", op: "get", id: "b1").errors.isEmpty)
        let answered = gateway.reply(from: a, to: 1)
        #expect(answered.clientReplies.map(\.client) == [alice] && answered.requests == [.init(worker: a, correlation: 2)])
        #expect(gateway.core.pendingPerClient[alice] == 1)
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r4").errors.isEmpty)
    }

    // MARK: Round robin with credit

    @Test func requestsGoRoundRobinAndNoInstanceGetsMoreThanItsConcurrency() {
        var gateway = Harness()
        _ = gateway.join(a, concurrency: 2)
        _ = gateway.join(b, concurrency: 1)
        let sent = (1...4).flatMap { gateway.request(from: alice, "echo", op: "get", id: "r\($0)").requests }
        #expect(sent == [.init(worker: a, correlation: 1), .init(worker: b, correlation: 2), .init(worker: a, correlation: 3)])
        #expect(gateway.core.services["echo"]?.queued == 1)
        #expect(gateway.core.workers[a]?.inFlight == [1, 3] && gateway.core.workers[b]?.inFlight == [2])
        // B answers: the reply goes to the client and B, the one with a free slot, gets the queued request.
        let answered = gateway.reply(from: b, to: 2, [Data("payload".utf8)])
        #expect(answered.clientReplies == [.init(client: alice, body: [Data("payload".utf8)])])
        #expect(answered.requests == [.init(worker: b, correlation: 4)])
        #expect(gateway.core.services["echo"]?.queued == 0 && gateway.core.workers[b]?.served == 1)
        // Each request gets one reply: a second one is dropped.
        #expect(gateway.reply(from: b, to: 2).clientReplies.isEmpty)
    }

    // MARK: Retries after an instance dies

    @Test func readOnlyAndKeyedRequestsAreSentAgainOnceAndAnUnkeyedWriteIsUnavailable() {
        var gateway = Harness()
        _ = gateway.join(a, concurrency: 4)
        _ = gateway.request(from: alice, "echo", op: "get", id: "read")
        _ = gateway.request(from: alice, "echo", op: "put", id: "keyed", key: "k1")
        _ = gateway.request(from: alice, "echo", op: "put", id: "write")
        #expect(gateway.core.workers[a]?.inFlight == [1, 2, 3])
        _ = gateway.join(b, concurrency: 4)
        // A heartbeat to A finds it gone.
        let lost = gateway.core.workerSendsFailed([.init(worker: a, request: nil, unreachable: true)], now: gateway.now)
        #expect(lost.logs == ["instance left"])
        #expect(lost.requests == [.init(worker: b, correlation: 1), .init(worker: b, correlation: 2)])
        #expect(lost.errors == [.init(client: alice, requestID: "write", code: .unavailable)])
        #expect(lost.errorDetails == [.object(["outcome": .string("unknown")])])
        #expect(gateway.core.pending[1]?.retried == true && gateway.core.pending[2]?.worker == b)
        #expect(gateway.core.workers[a] == nil && gateway.core.services["echo"]?.workers == [b])
        // A second loss: no third try.
        _ = gateway.join(a, concurrency: 4)
        let again = gateway.core.workerSendsFailed([.init(worker: b, request: nil, unreachable: true)], now: gateway.now)
        #expect(again.requests.isEmpty)
        #expect(again.errors == [.init(client: alice, requestID: "read", code: .unavailable),
                                 .init(client: alice, requestID: "keyed", code: .unavailable)])
        #expect(again.errorMessages.allSatisfy { $0 == "the instance serving this request stopped" })
        #expect(gateway.core.pending.isEmpty && gateway.core.pendingPerClient.isEmpty)
    }

    @Test func aRetryWithNoInstanceLeftIsUnavailable() {
        var gateway = Harness()
        _ = gateway.join(a)
        _ = gateway.request(from: alice, "echo", op: "get", id: "read")
        let lost = gateway.core.workerSendsFailed([.init(worker: a, request: nil, unreachable: true)], now: gateway.now)
        #expect(lost.errors == [.init(client: alice, requestID: "read", code: .unavailable)])
        #expect(lost.errorMessages == ["no instance of echo is up"])
        #expect(gateway.core.pending.isEmpty)
        #expect(gateway.core.services["echo"]?.queued == 0, "an answered retry does not count as waiting")
    }

    // MARK: Deadlines

    @Test func aQueuedRequestLeavesTheQueueAtItsDeadline() {
        var gateway = Harness()
        _ = gateway.join(a)
        #expect(gateway.request(from: alice, "echo", op: "get", id: "long", deadlineMs: 1000).requests.count == 1)
        #expect(gateway.request(from: alice, "echo", op: "get", id: "short", deadlineMs: 500).isEmpty)
        #expect(gateway.core.services["echo"]?.queued == 1)
        #expect(gateway.advance(.milliseconds(400)).isEmpty)
        let expired = gateway.advance(.milliseconds(200))
        #expect(expired.errors == [.init(client: alice, requestID: "short", code: .timeout)])
        #expect(gateway.core.services["echo"]?.queued == 0 && gateway.core.pending.count == 1)
    }

    @Test func anInFlightRequestKeepsItsSlotUntilTheInstanceAnswers() {
        var gateway = Harness()
        _ = gateway.join(a)
        _ = gateway.request(from: alice, "echo", op: "get", id: "slow", deadlineMs: 300)
        let expired = gateway.advance(.milliseconds(400))
        #expect(expired.errors == [.init(client: alice, requestID: "slow", code: .timeout)])
        #expect(gateway.core.pending.isEmpty && gateway.core.workers[a]?.inFlight == [1])
        // A is still working on it: the next request waits for the slot.
        #expect(gateway.request(from: alice, "echo", op: "get", id: "next").isEmpty)
        #expect(gateway.core.services["echo"]?.queued == 1)
        // The late reply is dropped, and frees the slot.
        let late = gateway.reply(from: a, to: 1)
        #expect(late.clientReplies.isEmpty && late.requests == [.init(worker: a, correlation: 2)])
    }

    // MARK: Heartbeats

    @Test func everyInstanceGetsAHeartbeatEachInterval() {
        var gateway = Harness()
        _ = gateway.join(a)
        _ = gateway.join(b)
        #expect(gateway.advance(.milliseconds(500)).heartbeats.isEmpty)
        #expect(Set(gateway.advance(.milliseconds(500)).heartbeats) == [a, b])
        #expect(gateway.advance(.milliseconds(500)).heartbeats.isEmpty)
        #expect(Set(gateway.advance(.milliseconds(500)).heartbeats) == [a, b])
        #expect(gateway.core.nextTick <= gateway.now + .milliseconds(100))
        // A heartbeat from an instance it does not know is answered DISCONNECT ("I do not know you").
        #expect(gateway.worker(Data("stranger".utf8), .heartbeat) == gateway.actions(.sendToWorker(identity: Data("stranger".utf8), .disconnect)))
    }

    @Test func aSilentInstanceIsForgottenAfterLivenessAndItsRequestsHandledAsWhenItDies() {
        var gateway = Harness()
        _ = gateway.join(a, concurrency: 2)
        _ = gateway.request(from: alice, "echo", op: "get", id: "read")
        _ = gateway.request(from: alice, "echo", op: "put", id: "write")
        _ = gateway.join(b, concurrency: 2)
        // B keeps talking, A falls silent: 3 intervals (of 1 s) later A is gone.
        for _ in 1...3 {
            #expect(gateway.advance(.seconds(1)).logs.isEmpty)
            _ = gateway.worker(b, .heartbeat)
        }
        let purged = gateway.advance(.milliseconds(100))
        #expect(purged.logs == ["instance left"] && purged.logMetadata.first?["reason"] == "heartbeats stopped")
        #expect(purged.requests == [.init(worker: b, correlation: 1)])
        #expect(purged.errors == [.init(client: alice, requestID: "write", code: .unavailable)])
        #expect(purged.errorDetails == [.object(["outcome": .string("unknown")])])
        #expect(Array(gateway.core.workers.keys) == [b])
    }

    // MARK: Draining

    @Test func aDrainingInstanceGetsNothingNewButItsRepliesAreTakenAndThenItLeaves() {
        var gateway = Harness()
        _ = gateway.join(a)
        _ = gateway.join(b)
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r1").requests == [.init(worker: a, correlation: 1)])
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r2").requests == [.init(worker: b, correlation: 2)])
        #expect(gateway.worker(a, .disconnect).isEmpty)
        #expect(gateway.core.workers[a]?.draining == true && gateway.core.services["echo"]?.liveInstances == 1)
        #expect(gateway.mmi("echo") == MDP.mmiFound)  // B is still up
        // A holds r1 and gets nothing new: r3 waits for B.
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r3").isEmpty)
        let drained = gateway.reply(from: a, to: 1)
        #expect(drained.clientReplies.map(\.client) == [alice] && drained.requests.isEmpty)
        #expect(drained.logs == ["instance left"] && drained.logMetadata.first?["reason"] == "drained")
        #expect(gateway.core.workers[a] == nil && gateway.core.services["echo"]?.workers == [b])
        #expect(gateway.core.services["echo"]?.liveInstances == 1)
        #expect(gateway.reply(from: b, to: 2).requests == [.init(worker: b, correlation: 3)])
        // With its only instance draining, the service takes no new request.
        #expect(gateway.worker(b, .disconnect).isEmpty && gateway.worker(b, .disconnect).isEmpty)  // twice: still one instance
        #expect(gateway.core.services["echo"]?.liveInstances == 0 && gateway.core.services["echo"]?.workers == [b])
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r4").errorMessages == ["no instance of echo is up"])
        #expect(gateway.mmi("echo") == MDP.mmiNotFound)
    }

    // MARK: Registration

    @Test func readyWaitsForItsCredentialToBeCheckedThenTheInstanceJoins() {
        var gateway = Harness()
        let ready = gateway.worker(a, .ready, Harness.readyFrames("echo", concurrency: 2, credential: "tss_echo"))
        #expect(ready == gateway.actions(.lookUpCredential("tss_echo")))
        #expect(gateway.core.registering == [a] && gateway.core.workers.isEmpty)
        // Not registered yet: it gets no request, and the service is not known.
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r1").errors.first?.code == .unknownService)
        // A second instance with the same credential waits for the same lookup.
        #expect(gateway.worker(b, .ready, Harness.readyFrames("echo", concurrency: 2, credential: "tss_echo")).isEmpty)
        let found = gateway.core.credentialLookupFinished("tss_echo", outcome: .found(.init(tokenID: "tok_echo", service: "echo")),
                                                          now: gateway.now)
        #expect(found.logs == ["instance joined", "instance joined"])
        #expect(gateway.core.registering.isEmpty && gateway.core.workers[a]?.capacity == 2 && gateway.core.workers[a]?.tokenID == "tok_echo")
        #expect(gateway.core.services["echo"]?.readOnly == ["get"] && gateway.core.services["echo"]?.operations == ["get", "put"])
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r2").requests.count == 1)
    }

    @Test func readyWithoutAValidCredentialIsRefusedAndChangesNothing() {
        var gateway = Harness()
        func refused(_ actions: RoutingActions, _ worker: Data, reason: String) {
            #expect(actions.logs == ["refused an instance"] && actions.logMetadata.first?["reason"] == "\(reason)")
            #expect(actions.disconnects == [worker])
        }
        // Issued for another service.
        _ = gateway.worker(a, .ready, Harness.readyFrames("echo", concurrency: 1, credential: "tss_other"))
        refused(gateway.core.credentialLookupFinished("tss_other", outcome: .found(.init(tokenID: "tok_o", service: "other")), now: gateway.now),
                a, reason: "a credential issued for service other")
        // Unknown or revoked.
        _ = gateway.worker(a, .ready, Harness.readyFrames("echo", concurrency: 1, credential: "tss_nobody"))
        refused(gateway.core.credentialLookupFinished("tss_nobody", outcome: .unknown, now: gateway.now),
                a, reason: "an unknown or revoked service credential")
        // None at all, a broken manifest, a reserved name, a plain worker for a service that is not open.
        refused(gateway.worker(a, .ready, [Data("echo".utf8), Harness.manifest("echo", concurrency: 1)]), a, reason: "no service credential")
        refused(gateway.worker(a, .ready, [Data("echo".utf8), Data("{".utf8), Data("tss_echo".utf8)]), a, reason: "an invalid manifest")
        refused(gateway.worker(a, .ready, [Data("echo".utf8), Harness.manifest("echo", concurrency: 0), Data("tss_echo".utf8)]), a,
                reason: "a manifest for another service, protocol version or concurrency")
        refused(gateway.worker(a, .ready, [Data("mmi.echo".utf8)]), a, reason: "a missing or reserved service name")
        refused(gateway.worker(a, .ready, [Data("echo".utf8)]), a,
                reason: "a plain 7/MDP worker (no credential) for a service not listed in TSUNAGU_OPEN_SERVICES")
        #expect(gateway.core.workers.isEmpty && gateway.core.services.isEmpty && gateway.core.registering.isEmpty)
    }

    @Test func aPlainWorkerServesAnOpenServiceOneRequestAtATime() {
        var gateway = Harness { $0.openServices = ["legacy"] }
        #expect(gateway.worker(a, .ready, [Data("legacy".utf8)]).logs == ["instance joined"])
        #expect(gateway.core.workers[a]?.capacity == 1 && gateway.core.services["legacy"]?.manifest == nil)
        // A Tsunagu client: the worker gets the payload only; its reply comes back wrapped.
        let sent = gateway.request(from: alice, "legacy", op: "anything", id: "t1", payload: Data("hello".utf8))
        guard case .sendToWorker(_, .request(_, let body)) = sent.first else { Issue.record("sent: \(sent)"); return }
        #expect(body == [Data("hello".utf8)])
        let wrapped = gateway.reply(from: a, to: 1, [Data("world".utf8)])
        #expect(wrapped.clientReplies.first?.body.first == TsunaguWire.marker && wrapped.clientReplies.first?.body.last == Data("world".utf8))
        // A plain client: its body goes as it is, and the reply comes back as it is.
        let plain = gateway.core.clientMessageReceived([bob, Data(), MDP.clientHeader, Data("legacy".utf8), Data("ping".utf8)],
                                                       truncated: false, now: gateway.now)
        #expect(plain.requests == [.init(worker: a, correlation: 2)])
        #expect(gateway.reply(from: a, to: 2, [Data("pong".utf8)]).clientReplies == [.init(client: bob, body: [Data("pong".utf8)])])
    }

    @Test func readyTwiceIsAProtocolError() {
        var gateway = Harness()
        _ = gateway.join(a)
        _ = gateway.join(b)
        _ = gateway.request(from: alice, "echo", op: "get", id: "read")
        let twice = gateway.worker(a, .ready, Harness.readyFrames("echo", concurrency: 1, credential: "tss_echo"))
        #expect(twice.disconnects == [a] && twice.logMetadata.first?["reason"] == "sent READY twice")
        #expect(twice.requests == [.init(worker: b, correlation: 1)])  // what it held goes elsewhere
        #expect(gateway.core.workers[a] == nil)
        // READY again while the first one's credential is being checked: refused, and the check's
        // answer registers nothing.
        let c = Data("worker-C".utf8)
        _ = gateway.worker(c, .ready, Harness.readyFrames("echo", concurrency: 1, credential: "tss_new"))
        #expect(gateway.worker(c, .ready, Harness.readyFrames("echo", concurrency: 1, credential: "tss_new")).disconnects == [c])
        #expect(gateway.core.credentialLookupFinished("tss_new", outcome: .found(.init(tokenID: "t", service: "echo")), now: gateway.now).isEmpty)
        #expect(gateway.core.workers[c] == nil)
    }

    // MARK: Sends that fail

    @Test func anUnreachableInstanceIsRemovedAndTheRequestGoesFirstInLineElsewhere() {
        var gateway = Harness()
        _ = gateway.join(a, concurrency: 4)
        _ = gateway.join(b, concurrency: 4)
        let sent = (1...4).flatMap { gateway.request(from: alice, "echo", op: "get", id: "r\($0)").requests }
        #expect(sent.map(\.worker) == [a, b, a, b])
        // The send of r4 to B fails: B's connection is gone. r2 (delivered earlier) is a retry; r4,
        // never delivered, just goes again.
        let failed = gateway.core.workerSendsFailed([.init(worker: b, request: 4, unreachable: true)], now: gateway.now)
        #expect(failed.logMetadata.first?["reason"] == "unreachable (the connection is gone)")
        #expect(Set(failed.requests.map(\.correlation)) == [2, 4] && failed.requests.allSatisfy { $0.worker == a })
        #expect(gateway.core.pending[2]?.retried == true && gateway.core.pending[4]?.retried == false)
        #expect(gateway.core.workers[b] == nil && gateway.core.workers[a]?.inFlight == [1, 2, 3, 4])
    }

    @Test func aSendToAFullInstanceWaitsFirstInLineForTheNextChance() {
        var gateway = Harness()
        _ = gateway.join(a, concurrency: 2)
        _ = gateway.join(b, concurrency: 2)
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r1").requests == [.init(worker: a, correlation: 1)])
        let blocked = gateway.core.workerSendsFailed([.init(worker: a, request: 1, unreachable: false)], now: gateway.now)
        #expect(blocked.isEmpty)
        #expect(gateway.core.workers[a]?.inFlight == [] && gateway.core.services["echo"]?.queued == 1 && gateway.core.pending[1]?.worker == nil)
        // The next request: r1 goes first (to the next instance in turn), then r2.
        let next = gateway.request(from: alice, "echo", op: "get", id: "r2")
        #expect(next.requests == [.init(worker: b, correlation: 1), .init(worker: a, correlation: 2)])
    }

    // MARK: Revocation, events, MMI, stopping

    @Test func revokingACredentialDisconnectsItsInstancesAndTokensAreAskedForAgain() {
        var gateway = Harness()
        _ = gateway.join(a)
        _ = gateway.request(from: alice, "echo", op: "put", id: "write")
        let revoked = gateway.core.tokenRevoked(id: "tok_echo", now: gateway.now)
        #expect(revoked.disconnects == [a] && revoked.logMetadata.first?["reason"] == "its credential was revoked")
        #expect(revoked.errors == [.init(client: alice, requestID: "write", code: .unavailable)])
        #expect(gateway.worker(a, .ready, Harness.readyFrames("echo", concurrency: 1, credential: "tss_echo"))
                == gateway.actions(.lookUpCredential("tss_echo")))
        // A client token: revoked, it is looked up again; an unknown one is asked again once a token is made.
        _ = gateway.core.tokenRevoked(id: Harness.principal.tokenID!, now: gateway.now)
        #expect(gateway.request(from: alice, "echo", op: "get", id: "r2", lookUps: false) == gateway.actions(.lookUpToken("tsg_alice")))
        _ = gateway.request(from: bob, "echo", op: "get", id: "r3", token: "tsg_new", lookUps: false)
        _ = gateway.core.tokenLookupFinished("tsg_new", outcome: .unknown, now: gateway.now)
        #expect(gateway.request(from: bob, "echo", op: "get", id: "r4", token: "tsg_new", lookUps: false).errors.first?.code == .unauthorized)
        gateway.core.tokenCreated()
        #expect(gateway.request(from: bob, "echo", op: "get", id: "r5", token: "tsg_new", lookUps: false) == gateway.actions(.lookUpToken("tsg_new")))
    }

    @Test func mmiAnswersFromTheCatalogue() {
        var gateway = Harness()
        #expect(gateway.mmi("echo") == MDP.mmiNotFound)
        _ = gateway.join(a)
        #expect(gateway.mmi("echo") == MDP.mmiFound && gateway.mmi(TsunaguWire.gatewayService) == MDP.mmiFound)
        let other = gateway.core.clientMessageReceived([alice, Data(), MDP.clientHeader, Data("mmi.other".utf8)], truncated: false, now: gateway.now)
        #expect(other.clientReplies == [.init(client: alice, body: [MDP.mmiNotImplemented])])
    }

    @Test func stoppingDisconnectsInstancesAndAnswersEveryPendingRequest() {
        var gateway = Harness()
        _ = gateway.join(a)
        _ = gateway.request(from: alice, "echo", op: "get", id: "held")
        _ = gateway.request(from: bob, "echo", op: "get", id: "queued")
        let stopped = gateway.core.stop()
        #expect(stopped.disconnects == [a])
        #expect(Set(stopped.errors.map(\.requestID)) == ["held", "queued"] && stopped.errors.allSatisfy { $0.code == .unavailable })
        #expect(gateway.core.pending.isEmpty && gateway.core.isStopped)
        #expect(gateway.core.workerSendsFailed([.init(worker: a, request: nil, unreachable: true)], now: gateway.now).isEmpty)
    }

    @Test func aGracefulStopRefusesNewRequestsAndAnswersAcceptedOnes() {
        var gateway = Harness()
        _ = gateway.join(a)
        #expect(gateway.request(from: alice, "echo", op: "get", id: "held").requests == [.init(worker: a, correlation: 1)])
        gateway.core.beginDraining()
        #expect(!gateway.core.isDrained)
        let refused = gateway.request(from: bob, "echo", op: "get", id: "new")
        #expect(refused.errors.map(\.code) == [.unavailable] && refused.requests.isEmpty)
        #expect(gateway.reply(from: a, to: 1).clientReplies.map(\.client) == [alice])
        #expect(gateway.core.isDrained)
        #expect(gateway.core.stop().disconnects == [a])
    }

    @Test func actionsBeyondTwoSpillIntoAnArrayInOrder() {
        var actions = RoutingActions()
        for n in 0..<5 { actions.append(.lookUpToken("t\(n)")) }
        #expect(actions.count == 5 && Array(actions) == (0..<5).map { .lookUpToken("t\($0)") })
    }
}

/// A routing core, a clock the test moves, and the frames peers send.
struct Harness {
    static let principal = Principal(tenant: "130001", roles: ["staff"], tokenID: "tok_alice")

    var core: RoutingCore
    var now: ContinuousClock.Instant

    init(_ configure: (inout RoutingCore.Configuration) -> Void = { _ in }) {
        var configuration = RoutingCore.Configuration(heartbeatInterval: .seconds(1))
        configure(&configuration)
        now = .now
        core = RoutingCore(configuration: configuration, now: now)
    }

    func actions(_ list: RoutingAction...) -> RoutingActions {
        var actions = RoutingActions()
        for action in list { actions.append(action) }
        return actions
    }

    /// Time passes.
    mutating func advance(_ duration: Duration) -> RoutingActions {
        now += duration
        return core.tick(now: now)
    }

    /// A Tsunagu request; with `lookUps`, a token lookup it starts is answered at once with `principal`.
    mutating func request(from client: Data, _ service: String, op: String, id: String, token: String? = "tsg_alice",
                          deadlineMs: Int? = nil, key: String? = nil, payload: Data = Data("{}".utf8),
                          lookUps: Bool = true) -> RoutingActions {
        let envelope = RequestEnvelope(op: op, id: id, deadlineMs: deadlineMs, idempotencyKey: key, token: token)
        var actions = core.clientMessageReceived([client, Data(), MDP.clientHeader, Data(service.utf8), TsunaguWire.marker,
                                                  envelope.encoded(), payload], truncated: false, now: now)
        if lookUps, case .lookUpToken(let token)? = actions.first, actions.count == 1 {
            actions = core.tokenLookupFinished(token, outcome: .found(Self.principal), now: now)
        }
        return actions
    }

    mutating func worker(_ identity: Data, _ command: MDP.Command, _ rest: [Data] = []) -> RoutingActions {
        core.workerMessageReceived([identity, Data(), MDP.workerHeader, command.frame] + rest, truncated: false, now: now)
    }

    mutating func reply(from worker: Data, to correlation: UInt64, _ body: [Data] = [TsunaguWire.marker, Data("{}".utf8)]) -> RoutingActions {
        var address = correlation.bigEndian
        return self.worker(worker, .reply, [Data(bytes: &address, count: 8), Data()] + body)
    }

    /// An instance of `echo` (operations `get`, read-only, and `put`) registered with its credential.
    mutating func join(_ identity: Data, concurrency: Int = 1) -> RoutingActions {
        var actions = worker(identity, .ready, Self.readyFrames("echo", concurrency: concurrency, credential: "tss_echo"))
        if case .lookUpCredential(let credential)? = actions.first {
            actions = core.credentialLookupFinished(credential, outcome: .found(.init(tokenID: "tok_echo", service: "echo")), now: now)
        }
        return actions
    }

    mutating func mmi(_ service: String) -> Data? {
        let answer = core.clientMessageReceived([Data("mmi-client".utf8), Data(), MDP.clientHeader, Data("mmi.service".utf8),
                                                 Data(service.utf8)], truncated: false, now: now)
        return answer.clientReplies.first?.body.first
    }

    static func readyFrames(_ service: String, concurrency: Int, credential: String) -> [Data] {
        [Data(service.utf8), manifest(service, concurrency: concurrency), Data(credential.utf8)]
    }

    static func manifest(_ service: String, concurrency: Int) -> Data {
        Data("""
            {"v":1,"service":"\(service)","version":"1.0.0","concurrency":\(concurrency),"operations":[
              {"name":"get","summary":"","input":{},"roles":[],"read_only":true},
              {"name":"put","summary":"","input":{},"roles":[]}]}
            """.utf8)
    }
}

/// What tests look for in a batch of actions.
extension RoutingActions {
    struct Sent: Equatable { let worker: Data; let correlation: UInt64 }
    struct Failed: Equatable { let client: Data; let requestID: String; let code: ErrorCode }
    struct Replied: Equatable { let client: Data; let body: [Data] }

    var requests: [Sent] {
        compactMap { if case .sendToWorker(let worker, .request(let correlation, _)) = $0 { Sent(worker: worker, correlation: correlation) } else { nil } }
    }

    var heartbeats: [Data] { compactMap { if case .sendToWorker(let worker, .heartbeat) = $0 { worker } else { nil } } }
    var disconnects: [Data] { compactMap { if case .sendToWorker(let worker, .disconnect) = $0 { worker } else { nil } } }

    var errors: [Failed] {
        compactMap { if case .replyError(let client, _, let id, let error) = $0 { Failed(client: client, requestID: id, code: error.code) } else { nil } }
    }

    var errorMessages: [String] { compactMap { if case .replyError(_, _, _, let error) = $0 { error.message } else { nil } } }
    var errorDetails: [JSONValue?] { compactMap { if case .replyError(_, _, _, let error) = $0 { error.details } else { nil } } }

    var clientReplies: [Replied] {
        compactMap { if case .sendToClient(let client, _, let body) = $0 { Replied(client: client, body: body) } else { nil } }
    }

    var logs: [String] { compactMap { if case .log(_, let message, _) = $0 { message.description } else { nil } } }
    var logMetadata: [Logger.Metadata] { compactMap { if case .log(_, _, let metadata) = $0 { metadata } else { nil } } }
}

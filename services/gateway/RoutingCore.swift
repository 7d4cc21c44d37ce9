import Foundation
import JSONSchema
import Logging
import ServiceRuntime
import Wire

/// The gateway's routing decisions: a 7/MDP broker with Tsunagu's envelope, auth and catalogue,
/// as a state machine that does no I/O and reads no clock.
///
/// Each mutating method is an event — a client's message, a worker's message, an event pushed
/// by a service, a subscriber's message, a token or credential lookup finished, time passing
/// (`tick`), sends the shell could not make, a token revoked, the gateway stopping — given with
/// the current time, and
/// returns the actions to perform, in order (`RoutingAction`). `Broker` is the shell around it:
/// it owns the sockets, the loop thread and the lookup tasks, feeds events in and performs the
/// actions.
/// - Note: A value; the broker's loop thread is its only user.
struct RoutingCore {
    /// The settings routing depends on (the socket settings stay with `Broker.Settings`).
    struct Configuration: Sendable {
        var heartbeatInterval: Duration = MDP.defaultHeartbeatInterval
        var maxMessageBytes = 1_048_576
        var defaultDeadline: Duration = .seconds(30)
        var maxDeadline: Duration = .seconds(600)
        /// Opaque services that plain 7/MDP clients (no envelope, so no token) may call.
        var openServices: Set<String> = []
        var maxQueuedPerService = 10_000
        var tokenCacheTTL: Duration = .seconds(30)
        /// How long an unknown token or a failed lookup is remembered.
        var tokenNegativeTTL: Duration = .seconds(2)
        /// Token lookups running at once, and distinct tokens that may wait for one.
        var maxTokenLookups = 4
        var maxQueuedTokenLookups = 256
        /// Requests one client connection may have waiting for answers.
        var maxPendingPerClient = 256
        /// How often requests past their deadline and silent instances are looked for.
        var sweepInterval: Duration = .milliseconds(100)
        /// How often subscribers get a HEARTBEAT; one silent for three of these is forgotten.
        var eventsHeartbeatInterval: Duration = EventStreamWire.defaultHeartbeatInterval
        /// Subscriptions at once on the events-out endpoint (and SUBSCRIBEs waiting for their token).
        var maxSubscribers = 1000
    }

    /// A `sendToWorker` action the shell could not perform.
    struct SendFailure: Equatable {
        let worker: Data
        /// The request it carried (nil for HEARTBEAT and DISCONNECT).
        let request: UInt64?
        /// The connection is gone (EHOSTUNREACH from the `ZMQ_ROUTER_MANDATORY` worker socket);
        /// otherwise the instance's queue was full (or another send error).
        let unreachable: Bool
    }

    typealias Instant = ContinuousClock.Instant
    typealias ServiceIndex = Dictionary<String, ServiceState>.Index
    typealias WorkerIndex = Dictionary<Data, WorkerState>.Index
    typealias ClientLookups = TokenLookups<CachedPrincipal, ClientWaiter>
    typealias CredentialLookups = TokenLookups<ServiceCredential, CredentialWaiter>

    let configuration: Configuration
    private(set) var services: [String: ServiceState] = [:]
    private(set) var workers: [Data: WorkerState] = [:]
    /// Accepted requests not answered yet, by correlation number (the worker's "client address").
    private(set) var pending: [UInt64: PendingRequest] = [:]
    /// Requests each client connection has waiting for an answer (bounded by `maxPendingPerClient`).
    private(set) var pendingPerClient: [Data: Int] = [:]
    private var nextCorrelation: UInt64 = 1
    private var clientTokens: ClientLookups
    private var serviceCredentials: CredentialLookups
    /// Workers whose READY waits for their credential to be checked.
    private(set) var registering: Set<Data> = []
    /// The live event streams and their subscribers.
    private(set) var events: EventStreams
    /// Subscribers whose SUBSCRIBE waits for its token, with the number of that attempt.
    private(set) var subscribing: [Data: UInt64] = [:]
    private var nextAttempt: UInt64 = 1
    private(set) var nextHeartbeat: Instant
    private(set) var nextSweep: Instant
    private(set) var isStopped = false
    private(set) var isDraining = false

    init(configuration: Configuration, now: Instant) {
        self.configuration = configuration
        self.clientTokens = ClientLookups(positiveTTL: configuration.tokenCacheTTL, negativeTTL: configuration.tokenNegativeTTL,
                                          maxRunning: configuration.maxTokenLookups, maxQueued: configuration.maxQueuedTokenLookups)
        self.serviceCredentials = CredentialLookups(positiveTTL: configuration.tokenCacheTTL, negativeTTL: configuration.tokenNegativeTTL,
                                                    maxRunning: 2, maxQueued: configuration.maxQueuedTokenLookups)
        self.nextHeartbeat = now + configuration.heartbeatInterval
        self.nextSweep = now + configuration.sweepInterval
        self.events = EventStreams(configuration: .init(heartbeatInterval: configuration.eventsHeartbeatInterval,
                                                        maxSubscribers: configuration.maxSubscribers,
                                                        recheckInterval: configuration.tokenCacheTTL), now: now)
    }

    /// When `tick` next has something to do: the shell waits for its sockets at most until then.
    var nextTick: Instant { min(nextHeartbeat, nextSweep, events.nextHeartbeat) }

    // MARK: Events

    /// A message read from the client socket: `[identity, "", "MDPC01", service, body...]`;
    /// `truncated` when it had more than `MDP.maxFrames` frames (the rest were discarded).
    mutating func clientMessageReceived(_ frames: [Data], truncated: Bool, now: Instant) -> RoutingActions {
        var actions = RoutingActions()
        if truncated, let identity = frames.first {
            replyError(to: identity, service: "", requestID: "",
                       WireError(.badRequest, "a message may have at most \(MDP.maxFrames) frames"), &actions)
        } else {
            handleClientMessage(frames, now: now, &actions)
        }
        return actions
    }

    /// A message read from the worker socket: `[identity, "", "MDPW01", command, ...]`.
    mutating func workerMessageReceived(_ frames: [Data], truncated: Bool, now: Instant) -> RoutingActions {
        var actions = RoutingActions()
        if truncated {
            actions.append(.log(.warning, "dropped a message of more than \(MDP.maxFrames) frames on the worker endpoint"))
        } else {
            handleWorkerMessage(frames, now: now, &actions)
        }
        return actions
    }

    /// A message read from the events-in socket: `[topic, CloudEvent JSON, service credential]`
    /// or `["tsunagu.head", {"stream","sequence"}, service credential]`.
    mutating func eventReceived(_ frames: [Data], truncated: Bool, now: Instant) -> RoutingActions {
        var actions = RoutingActions()
        if truncated {
            actions.append(.log(.warning, "dropped an event message of more than \(MDP.maxFrames) frames"))
        } else {
            acceptEvent(frames, now: now, &actions)
        }
        return actions
    }

    /// A message read from the events-out socket: `[identity, "TSUNAGU-EVENTS/1", command, JSON]`.
    mutating func subscriberMessageReceived(_ frames: [Data], truncated: Bool, now: Instant) -> RoutingActions {
        var actions = RoutingActions()
        handleSubscriberMessage(frames, truncated: truncated, now: now, &actions)
        return actions
    }

    /// The outcome of a `lookUpToken` action: every request and subscriber that waited for this
    /// token goes on.
    mutating func tokenLookupFinished(_ token: String, outcome: TokenLookups<Principal, ClientWaiter>.Outcome,
                                      now: Instant) -> RoutingActions {
        var actions = RoutingActions()
        let outcome = outcome.map(CachedPrincipal.init)
        let (waiters, next) = clientTokens.finish(token, outcome: outcome, now: now)
        for waiter in waiters {
            switch waiter {
            case .request(let request): answer(request, outcome, now: now, &actions)
            case .subscription(let subscriber): answer(subscriber, outcome, now: now, &actions)
            }
        }
        if let next { actions.append(.lookUpToken(next)) }
        return actions
    }

    /// The outcome of a `lookUpCredential` action: registrations and events that waited for it go on.
    mutating func credentialLookupFinished(_ credential: String, outcome: CredentialLookups.Outcome, now: Instant) -> RoutingActions {
        var actions = RoutingActions()
        let (waiters, next) = serviceCredentials.finish(credential, outcome: outcome, now: now)
        if outcome.value == nil, waiters.contains(where: \.isEvent) {
            actions.append(.log(.warning, "dropped events pushed with an unknown or revoked service credential"))
        }
        for waiter in waiters { answer(waiter, outcome, now: now, &actions) }
        if let next { actions.append(.lookUpCredential(next)) }
        return actions
    }

    /// Time passes: every `heartbeatInterval` each instance gets a HEARTBEAT; every
    /// `sweepInterval` silent instances are forgotten and requests past their deadline answered;
    /// every `eventsHeartbeatInterval` subscribers get theirs (`EventStreams.tick`) and silent
    /// ones are forgotten, and the tokens of subscriptions due for it are checked again.
    mutating func tick(now: Instant) -> RoutingActions {
        var actions = RoutingActions()
        for (identity, token) in events.tick(now: now, &actions) {
            let waiter = ClientWaiter.subscription(.recheck(identity: identity, token: token))
            switch clientTokens.begin(token, waiter: waiter, now: now) {
            case .known(let outcome): answer(.recheck(identity: identity, token: token), outcome, now: now, &actions)
            case .waiting: break
            case .startLookup: actions.append(.lookUpToken(token))
            case .refused: break  // too many lookups now: checked again at its next turn
            }
        }
        if now >= nextHeartbeat {
            for identity in workers.keys { actions.append(.sendToWorker(identity: identity, .heartbeat)) }
            nextHeartbeat = now + configuration.heartbeatInterval
        }
        if now >= nextSweep {
            purgeDeadWorkers(now: now, &actions)
            expireRequests(now: now, &actions)
            nextSweep = now + configuration.sweepInterval
        }
        return actions
    }

    /// Sends the shell could not make, in the order it tried them. A request not sent waits
    /// again, first in its client's line (it was never delivered, so it may always go again); an
    /// instance found gone is removed, and what it held is handled as when an instance dies.
    mutating func workerSendsFailed(_ failures: [SendFailure], now: Instant) -> RoutingActions {
        var actions = RoutingActions()
        guard !isStopped else { return actions }
        // Last first, so the first one tried ends up first in line.
        for failure in failures.reversed() {
            guard let id = failure.request, let index = pending.index(forKey: id),
                  pending.values[index].worker == failure.worker else { continue }
            pending.values[index].worker = nil
            workers[failure.worker]?.inFlight.remove(id)
            let request = pending.values[index]
            services[request.service]?.enqueueFirst(id, client: request.clientIdentity)
        }
        for failure in failures where failure.unreachable {
            removeWorker(failure.worker, reason: "unreachable (the connection is gone)", now: now, &actions)
        }
        return actions
    }

    /// Sends to subscribers the shell could not make: a full queue drops the message for that
    /// subscriber only (it sees the gap and replays); one found gone is forgotten.
    mutating func subscriberSendsFailed(_ failures: [(identity: Data, unreachable: Bool)]) -> RoutingActions {
        var actions = RoutingActions()
        for failure in failures { events.sendsFailed(to: failure.identity, unreachable: failure.unreachable, &actions) }
        return actions
    }

    /// A token was revoked here: it stops working at once on this gateway. Its cached principal is
    /// dropped, its subscriptions end, and instances registered with it (a service credential)
    /// are disconnected.
    mutating func tokenRevoked(id: String, now: Instant) -> RoutingActions {
        var actions = RoutingActions()
        clientTokens.forget { $0.principal.tokenID == id }
        serviceCredentials.forget { $0.tokenID == id }
        events.endSubscriptions(ofToken: id, &actions)
        let registered = workers.values.filter { $0.tokenID == id }.map(\.identity)
        for identity in registered {
            actions.append(.sendToWorker(identity: identity, .disconnect))
            removeWorker(identity, reason: "its credential was revoked", now: now, &actions)
        }
        return actions
    }

    /// A token was made here: it works at once, even if it was asked for (and unknown) moments ago.
    mutating func tokenCreated() {
        clientTokens.forgetUnknown()
        serviceCredentials.forgetUnknown()
    }

    /// A graceful stop begins: from now on new requests are refused (`unavailable`), while the
    /// ones already accepted are answered as their instances reply (or expire). The shell keeps
    /// the loop running until `isDrained` (or its drain timeout), then calls `stop()`.
    mutating func beginDraining() { isDraining = true }

    /// Draining, and no accepted request is still waiting for its answer.
    var isDrained: Bool { isDraining && pending.isEmpty }

    /// The gateway stops: workers are told (DISCONNECT), every pending request is answered
    /// `unavailable`, and every subscriber gets `ERROR unavailable`. Later events change nothing.
    mutating func stop() -> RoutingActions {
        var actions = RoutingActions()
        guard !isStopped else { return actions }
        isStopped = true
        for identity in workers.keys { actions.append(.sendToWorker(identity: identity, .disconnect)) }
        let answered = pending
        pending.removeAll()
        pendingPerClient.removeAll()
        for request in answered.values {
            replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                       WireError(.unavailable, "the gateway is shutting down"), &actions)
        }
        // Subscribers are told, so they subscribe again (elsewhere, or here once it is back) at once.
        subscribing.removeAll()
        events.endAll(WireError(.unavailable, "the gateway is shutting down; subscribe again"), &actions)
        return actions
    }

    /// The deadline a worker is given: what is left here, less a margin for the reply's way back,
    /// so a worker gives up (and rolls back) before this gateway tells the client `timeout`.
    static func workerDeadlineMs(left: Duration) -> Int {
        let ms = max(0, left.milliseconds)
        return max(1, ms - min(500, 20 + ms / 20))
    }

    // MARK: Clients

    private mutating func handleClientMessage(_ frames: [Data], now: Instant, _ actions: inout RoutingActions) {
        // [identity, empty, MDPC01, service, body...]
        guard let identity = frames.first else { return }
        guard frames.count >= 3, frames[1].isEmpty, frames[2] == MDP.clientHeader else {
            replyError(to: identity, service: "", requestID: "",
                       WireError(.badRequest, "not a 7/MDP client message: expected an empty delimiter frame and MDPC01"), &actions)
            return
        }
        let size = frames.dropFirst(3).reduce(0) { $0 + $1.count }
        guard frames.count >= 4, let service = String(validating: frames[3], as: UTF8.self), !service.isEmpty else {
            replyError(to: identity, service: "", requestID: "",
                       WireError(.badRequest, "the service name frame is missing or not UTF-8"), &actions)
            return
        }
        let body = Array(frames[4...])
        if size > configuration.maxMessageBytes {
            let id = body.count >= 2 && body[0] == TsunaguWire.marker ? ((try? RequestEnvelope.decode(body[1]))?.id ?? "") : ""
            replyError(to: identity, service: service, requestID: id,
                       WireError(.tooLarge, "the message has \(size) bytes; this gateway accepts at most \(configuration.maxMessageBytes)"),
                       &actions)
            return
        }
        if service.hasPrefix(MDP.mmiPrefix) {
            handleMMI(identity: identity, service: service, body: body, &actions)
            return
        }
        if body.first == TsunaguWire.marker {
            acceptEnvelopeRequest(identity: identity, service: service, body: body, now: now, &actions)
        } else {
            acceptPlainRequest(identity: identity, service: service, body: body, now: now, &actions)
        }
    }

    private mutating func acceptPlainRequest(identity: Data, service: String, body: [Data], now: Instant,
                                             _ actions: inout RoutingActions) {
        guard let index = services.index(forKey: service) else {
            replyError(to: identity, service: service, requestID: "", WireError(.unknownService, "no service named \(service)"), &actions)
            return
        }
        guard withService(index, { $0.manifest == nil }) else {
            replyError(to: identity, service: service, requestID: "",
                       WireError(.badRequest, "\(service) needs the Tsunagu envelope (TSUNAGU/1 frame, then envelope JSON)"), &actions)
            return
        }
        guard configuration.openServices.contains(service) else {
            replyError(to: identity, service: service, requestID: "",
                       WireError(.unauthorized, "\(service) needs a token: send the Tsunagu envelope"), &actions)
            return
        }
        admit(PendingRequest(clientIdentity: identity, service: service, requestID: "", workerBody: body,
                             wrapReply: false, deadline: now + configuration.defaultDeadline, retryable: false), at: index, &actions)
    }

    private mutating func acceptEnvelopeRequest(identity: Data, service: String, body: [Data], now: Instant,
                                                _ actions: inout RoutingActions) {
        guard body.count >= 2 else {
            replyError(to: identity, service: service, requestID: "", WireError(.badRequest, "the request envelope frame is missing"), &actions)
            return
        }
        let envelope: RequestEnvelope
        do { envelope = try RequestEnvelope.decode(body[1]) } catch {
            replyError(to: identity, service: service, requestID: "", error, &actions)
            return
        }
        guard envelope.v == TsunaguWire.version else {
            replyError(to: identity, service: service, requestID: envelope.id,
                       WireError(.badRequest, "envelope version \(envelope.v) is not supported; this gateway speaks \(TsunaguWire.version)"),
                       &actions)
            return
        }
        guard let token = envelope.token, !token.isEmpty else {
            replyError(to: identity, service: service, requestID: envelope.id,
                       WireError(.unauthorized, "no token: set \"token\" in the envelope"), &actions)
            return
        }
        // No token we issue is longer or holds NUL: such a one is unknown without asking anybody.
        guard token.utf8.count <= 256, !token.containsNUL else {
            replyError(to: identity, service: service, requestID: envelope.id,
                       WireError(.unauthorized, "the token is unknown or revoked"), &actions)
            return
        }
        let waiter = AuthWaiter(identity: identity, service: service, envelope: envelope, payload: Array(body.dropFirst(2)),
                                received: now)
        switch clientTokens.begin(token, waiter: .request(waiter), now: now) {
        case .known(let outcome): answer(waiter, outcome, now: now, &actions)
        case .waiting: break
        case .startLookup: actions.append(.lookUpToken(token))
        case .refused:
            replyError(to: identity, service: service, requestID: envelope.id,
                       WireError(.unavailable, "too many tokens are being checked at once; retry shortly"), &actions)
        }
    }

    private mutating func answer(_ waiter: AuthWaiter, _ outcome: ClientLookups.Outcome, now: Instant,
                                 _ actions: inout RoutingActions) {
        switch outcome {
        case .found(let principal):
            route(waiter, principal: principal, now: now, &actions)
        case .unknown:
            replyError(to: waiter.identity, service: waiter.service, requestID: waiter.envelope.id,
                       WireError(.unauthorized, "the token is unknown or revoked"), &actions)
        case .failed:
            replyError(to: waiter.identity, service: waiter.service, requestID: waiter.envelope.id,
                       WireError(.unavailable, "cannot check the token now; retry later"), &actions)
        }
    }

    private mutating func route(_ waiter: AuthWaiter, principal cached: CachedPrincipal, now: Instant,
                                _ actions: inout RoutingActions) {
        let (identity, service, principal) = (waiter.identity, waiter.service, cached.principal)
        var envelope = waiter.envelope
        if service == TsunaguWire.gatewayService {
            actions.append(.runGatewayOperation(.init(identity: identity, envelope: envelope, payload: waiter.payload.first ?? Data(),
                                                      principal: principal)))
            return
        }
        let requested = envelope.deadlineMs.map { Duration.milliseconds(max(0, $0)) } ?? configuration.defaultDeadline
        let deadline = waiter.received + min(requested, configuration.maxDeadline)
        guard let index = services.index(forKey: service) else {
            replyError(to: identity, service: service, requestID: envelope.id,
                       WireError(.unknownService, "no service named \(service)"), &actions)
            return
        }
        let op = envelope.op
        let (isTsunagu, hasOperation, isReadOnly) = withService(index) {
            ($0.manifest != nil, $0.operations.contains(op), $0.readOnly.contains(op))
        }
        if isTsunagu, !hasOperation {
            let operations = withService(index) { $0.operations.sorted() }
            replyError(to: identity, service: service, requestID: envelope.id,
                       WireError(.unknownOperation, "\(service) has no operation \(envelope.op)",
                                 details: .object(["operations": .array(operations.map { .string($0) })])), &actions)
            return
        }
        let workerBody: [Data]
        if isTsunagu {
            envelope.token = nil
            envelope.principal = principal
            envelope.deadlineMs = Self.workerDeadlineMs(left: deadline - now)
            workerBody = [TsunaguWire.marker, envelope.encoded(principalJSON: cached.json)] + waiter.payload
        } else {
            workerBody = waiter.payload.isEmpty ? [Data()] : waiter.payload
        }
        // Sent again after an instance dies only when that cannot apply a change twice.
        let retryable = isTsunagu && (isReadOnly || envelope.idempotencyKey != nil)
        admit(PendingRequest(clientIdentity: identity, service: service, requestID: envelope.id, workerBody: workerBody,
                             wrapReply: !isTsunagu, deadline: deadline, retryable: retryable), at: index, &actions)
    }

    /// Takes a request into `pending` and sends it to an instance, or queues it, or refuses it.
    private mutating func admit(_ request: PendingRequest, at serviceIndex: ServiceIndex, _ actions: inout RoutingActions) {
        guard !isDraining else {
            replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                       WireError(.unavailable, "the gateway is stopping; retry (another gateway, or this one once it is back)"), &actions)
            return
        }
        let (live, queued) = withService(serviceIndex) { ($0.liveInstances > 0, $0.queued) }
        guard live else {
            replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                       WireError(.unavailable, "no instance of \(request.service) is up"), &actions)
            return
        }
        guard queued < configuration.maxQueuedPerService else {
            replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                       WireError(.unavailable, "\(request.service) is overloaded; retry later"), &actions)
            return
        }
        let waiting = pendingPerClient[request.clientIdentity, default: 0]
        guard waiting < configuration.maxPendingPerClient else {
            replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                       WireError(.unavailable, "this connection has \(waiting) requests waiting for answers; read them before sending more"),
                       &actions)
            return
        }
        pendingPerClient[request.clientIdentity] = waiting + 1
        let id = nextCorrelation
        nextCorrelation &+= 1
        // Nobody waiting and a free slot: straight to that instance, without queueing.
        if queued == 0, let worker = nextFreeWorker(serviceIndex) {
            var request = request
            request.worker = worker
            pending[id] = request
            hand(id, body: request.workerBody, to: worker, &actions)
            return
        }
        pending[id] = request
        services.values[serviceIndex].enqueue(id, client: request.clientIdentity)
        dispatchQueued(at: serviceIndex, &actions)
    }

    /// Whether the service has an instance that takes new work (known, not draining).
    private mutating func hasLiveInstance(_ service: String) -> Bool {
        guard let index = services.index(forKey: service) else { return false }
        return withService(index) { $0.liveInstances > 0 }
    }

    /// Reads (or changes) one service's state in place. Reading through the dictionary's getter
    /// would copy the whole state out (retaining each of its collections) on every request.
    private mutating func withService<R>(_ index: ServiceIndex, _ body: (inout ServiceState) -> R) -> R {
        body(&services.values[index])
    }

    /// Sends waiting requests to instances with free slots, round-robin. A request counts as held
    /// by its instance from here on; a send that fails comes back through `workerSendsFailed`.
    private mutating func dispatchQueued(service name: String, _ actions: inout RoutingActions) {
        guard let serviceIndex = services.index(forKey: name) else { return }
        dispatchQueued(at: serviceIndex, &actions)
    }

    private mutating func dispatchQueued(at serviceIndex: ServiceIndex, _ actions: inout RoutingActions) {
        while withService(serviceIndex, { $0.queued > 0 }) {
            guard let worker = nextFreeWorker(serviceIndex) else { return }
            guard let id = services.values[serviceIndex].popQueued() else { return }
            guard let index = pending.index(forKey: id) else { continue }  // answered (timed out) while queued
            pending.values[index].worker = worker
            hand(id, body: pending.values[index].workerBody, to: worker, &actions)
        }
    }

    /// The instance holds the request from here on (its slot is taken until it answers or dies).
    private mutating func hand(_ id: UInt64, body: [Data], to worker: Data, _ actions: inout RoutingActions) {
        workers[worker]!.inFlight.insert(id)
        actions.append(.sendToWorker(identity: worker, .request(correlation: id, body: body)))
    }

    /// The next instance of the service, round-robin from the last one chosen, with a free slot.
    private mutating func nextFreeWorker(_ serviceIndex: ServiceIndex) -> Data? {
        let (instances, start) = withService(serviceIndex) { ($0.workers, $0.nextWorker) }
        let count = instances.count
        for step in 0..<count {
            let candidate = instances[(start + step) % count]
            if workers[candidate]?.hasFreeSlot == true {
                services.values[serviceIndex].nextWorker = (start + step + 1) % count
                return candidate
            }
        }
        return nil
    }

    // MARK: Workers

    private mutating func handleWorkerMessage(_ frames: [Data], now: Instant, _ actions: inout RoutingActions) {
        // [identity, empty, MDPW01, command, ...]
        guard frames.count >= 4, frames[1].isEmpty, frames[2] == MDP.workerHeader, frames[3].count == 1,
              let command = MDP.Command(rawValue: frames[3][frames[3].startIndex]) else {
            actions.append(.log(.warning, "dropped a message with an unknown header on the worker endpoint"))
            return
        }
        let identity = frames[0]
        let index = workers.index(forKey: identity)
        let known = index != nil
        if let index { workers.values[index].expiry = now + configuration.heartbeatInterval * MDP.liveness }
        switch command {
        case .ready:
            if known || registering.contains(identity) {
                // 7/MDP: READY from a registered worker is a protocol error.
                registering.remove(identity)
                removeWorker(identity, reason: "sent READY twice", now: now, &actions)
                actions.append(.sendToWorker(identity: identity, .disconnect))
            } else {
                acceptReady(identity, frames: Array(frames[4...]), now: now, &actions)
            }
        case .reply:
            // [.., REPLY, client address, empty, body...]; accepted even from a worker we dropped,
            // as long as the request still waits for it.
            guard frames.count >= 6, frames[4].count == 8 else {
                actions.append(.log(.warning, "dropped a malformed REPLY"))
                return
            }
            let id = frames[4].withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) }
            completeRequest(id, from: identity, at: index, body: Array(frames[6...]), now: now, &actions)
        case .heartbeat:
            if !known && !registering.contains(identity) { actions.append(.sendToWorker(identity: identity, .disconnect)) }
        case .disconnect:
            guard let index else { return }
            if !workers.values[index].draining {
                workers.values[index].draining = true
                services[workers.values[index].service]?.instanceStartedDraining()
            }
            if workers.values[index].inFlight.isEmpty { removeWorker(identity, reason: "disconnected", now: now, &actions) }
        case .request:
            actions.append(.log(.warning, "dropped a REQUEST sent by a worker"))
        }
    }

    /// READY: `[service, manifest JSON, service credential]` from a Tsunagu worker, `[service]`
    /// from a plain 7/MDP worker. A Tsunagu worker is registered once its credential is checked
    /// and names this service; a plain one only for a service the operator lists as open.
    private mutating func acceptReady(_ identity: Data, frames: [Data], now: Instant, _ actions: inout RoutingActions) {
        guard let nameFrame = frames.first, let name = String(data: nameFrame, encoding: .utf8), !name.isEmpty,
              name.utf8.count <= 128, !name.hasPrefix(MDP.mmiPrefix), name != TsunaguWire.gatewayService else {
            refuseWorker(identity, service: nil, "a missing or reserved service name", &actions)
            return
        }
        guard frames.count >= 2 else {
            guard configuration.openServices.contains(name) else {
                refuseWorker(identity, service: name,
                             "a plain 7/MDP worker (no credential) for a service not listed in TSUNAGU_OPEN_SERVICES", &actions)
                return
            }
            registerWorker(identity, name: name, manifest: nil, tokenID: nil, now: now, &actions)
            return
        }
        let manifest: Manifest
        do {
            manifest = try JSONValueDecoder().decode(Manifest.self, from: try JSONValue.parse(frames[1]))
        } catch {
            refuseWorker(identity, service: name, "an invalid manifest", &actions)
            return
        }
        guard manifest.service == name, manifest.v == TsunaguWire.version, (1...100_000).contains(manifest.concurrency) else {
            refuseWorker(identity, service: name, "a manifest for another service, protocol version or concurrency", &actions)
            return
        }
        guard frames.count == 3, let credential = String(data: frames[2], encoding: .utf8), !credential.isEmpty,
              credential.utf8.count <= 256, !credential.containsNUL else {
            refuseWorker(identity, service: name, "no service credential", &actions)
            return
        }
        let waiter = CredentialWaiter.registration(identity: identity, service: name, manifest: manifest)
        registering.insert(identity)
        switch serviceCredentials.begin(credential, waiter: waiter, now: now) {
        case .known(let outcome): answer(waiter, outcome, now: now, &actions)
        case .waiting: break
        case .startLookup: actions.append(.lookUpCredential(credential))
        case .refused:
            registering.remove(identity)
            refuseWorker(identity, service: name, "too many credentials are being checked at once", &actions)
        }
    }

    private func refuseWorker(_ identity: Data, service: String?, _ reason: String, _ actions: inout RoutingActions) {
        actions.append(.log(.warning, "refused an instance",
                            [LogKey.service: "\(service ?? "-")", LogKey.worker: "\(identity.hexString)", "reason": "\(reason)"]))
        actions.append(.sendToWorker(identity: identity, .disconnect))
    }

    private mutating func answer(_ waiter: CredentialWaiter, _ outcome: CredentialLookups.Outcome, now: Instant,
                                 _ actions: inout RoutingActions) {
        switch waiter {
        case .registration(let identity, let name, let manifest):
            guard registering.remove(identity) != nil else { return }  // it left (or misbehaved) meanwhile
            switch outcome {
            case .found(let credential) where credential.service == name:
                registerWorker(identity, name: name, manifest: manifest, tokenID: credential.tokenID, now: now, &actions)
            case .found(let credential):
                refuseWorker(identity, service: name, "a credential issued for service \(credential.service)", &actions)
            case .unknown:
                refuseWorker(identity, service: name, "an unknown or revoked service credential", &actions)
            case .failed:
                refuseWorker(identity, service: name, "its credential could not be checked now (it will reconnect)", &actions)
            }
        case .event(let message):
            if let credential = outcome.value { accept(message, credential: credential, &actions) }
        }
    }

    private mutating func registerWorker(_ identity: Data, name: String, manifest: Manifest?, tokenID: String?, now: Instant,
                                         _ actions: inout RoutingActions) {
        if services[name] == nil { services[name] = ServiceState(name: name) }
        if let manifest {
            services[name]!.manifest = manifest
            services[name]!.operations = Set(manifest.operations.map(\.name))
            services[name]!.readOnly = Set(manifest.operations.filter { $0.readOnly == true }.map(\.name))
        } else if services[name]!.workers.isEmpty {
            services[name]!.manifest = nil
            services[name]!.operations = []
            services[name]!.readOnly = []
        }
        services[name]!.instanceJoined(identity)
        workers[identity] = WorkerState(identity: identity, service: name, capacity: max(1, manifest?.concurrency ?? 1),
                                        expiry: now + configuration.heartbeatInterval * MDP.liveness, tokenID: tokenID)
        actions.append(.log(.info, "instance joined", [LogKey.service: "\(name)", LogKey.worker: "\(identity.hexString)",
                                                       "version": "\(manifest?.version ?? "opaque")"]))
        dispatchQueued(service: name, &actions)
    }

    /// - Parameter index: where the sender is in `workers` (nil: an instance no longer known).
    private mutating func completeRequest(_ id: UInt64, from identity: Data, at index: WorkerIndex?, body: [Data], now: Instant,
                                          _ actions: inout RoutingActions) {
        var freedSlot: String?  // the service of the instance whose slot this reply frees
        if let index {
            let held = workers.values[index].inFlight.remove(id) != nil
            workers.values[index].served += 1
            if workers.values[index].draining && workers.values[index].inFlight.isEmpty {
                removeWorker(identity, reason: "drained", now: now, &actions)
            } else if held {
                freedSlot = workers.values[index].service
            }
        }
        // A late reply from an instance we gave up on is dropped: the retry or the timeout answers.
        // The slot it frees takes the next waiting request at once.
        guard pending[id]?.worker == identity, let request = forgetPending(id) else {
            if let freedSlot { dispatchQueued(service: freedSlot, &actions) }
            return
        }
        var replyBody = body
        if request.wrapReply {
            replyBody = [TsunaguWire.marker, ReplyEnvelope(id: request.requestID, status: .ok).encoded()] + body
        }
        actions.append(.sendToClient(identity: request.clientIdentity, service: request.service, body: replyBody))
        dispatchQueued(service: request.service, &actions)
    }

    private mutating func purgeDeadWorkers(now: Instant, _ actions: inout RoutingActions) {
        var dead: [Data] = []
        for (identity, worker) in workers where worker.expiry < now { dead.append(identity) }
        for identity in dead { removeWorker(identity, reason: "heartbeats stopped", now: now, &actions) }
    }

    /// Forgets an instance; its in-flight requests go once to another instance if they are
    /// read-only or keyed and their deadline allows, otherwise they are answered `unavailable`.
    private mutating func removeWorker(_ identity: Data, reason: String, now: Instant, _ actions: inout RoutingActions) {
        guard let worker = workers.removeValue(forKey: identity) else { return }
        actions.append(.log(.info, "instance left", [LogKey.service: "\(worker.service)", LogKey.worker: "\(identity.hexString)",
                                                     "reason": "\(reason)", "in_flight": "\(worker.inFlight.count)"]))
        services[worker.service]?.instanceLeft(identity, wasDraining: worker.draining)
        var retry: [UInt64] = []
        for id in worker.inFlight.sorted() {
            guard let index = pending.index(forKey: id), pending.values[index].worker == identity else { continue }
            let request = pending.values[index]
            if request.retryable && !request.retried && request.deadline > now {
                pending.values[index].retried = true
                pending.values[index].worker = nil
                retry.append(id)
            } else if request.retryable {
                forgetPending(id)
                replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                           WireError(.unavailable, "the instance serving this request stopped"), &actions)
            } else {
                forgetPending(id)
                replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                           WireError(.unavailable, """
                               the instance serving this request stopped before answering: whether it took effect is unknown. \
                               It was not sent again because it may change data; send writes with an idempotency key to make retries safe
                               """, details: .object(["outcome": .string("unknown")])), &actions)
            }
        }
        if !retry.isEmpty, services[worker.service] != nil {
            if hasLiveInstance(worker.service) {
                // Retries go to the front: they have waited longest.
                for id in retry.reversed() {
                    if let client = pending[id]?.clientIdentity { services[worker.service]!.enqueueFirst(id, client: client) }
                }
            } else {
                // Answered at once, and never queued: they must not count as waiting.
                for id in retry { failPending(id, WireError(.unavailable, "no instance of \(worker.service) is up"), &actions) }
            }
        }
        dispatchQueued(service: worker.service, &actions)
    }

    /// Answers `timeout` to requests past their deadline. A request an instance holds keeps its
    /// slot until the instance answers (or dies): the instance is still working on it. Waiting
    /// requests leave their queue, so they stop counting against `TSUNAGU_MAX_QUEUED`.
    private mutating func expireRequests(now: Instant, _ actions: inout RoutingActions) {
        var expired: [UInt64] = []
        var affected: Set<String> = []
        for (id, request) in pending where request.deadline <= now {
            expired.append(id)
            if request.worker == nil { affected.insert(request.service) }
        }
        for id in expired { failPending(id, WireError(.timeout, "no answer before the deadline"), &actions) }
        for name in affected {
            let pending = self.pending
            services[name]?.dropQueued { pending[$0] == nil }
        }
    }

    /// Takes a request out of `pending` (answered, failed or expired) and out of its client's count.
    @discardableResult
    private mutating func forgetPending(_ id: UInt64) -> PendingRequest? {
        guard let request = pending.removeValue(forKey: id) else { return nil }
        let left = (pendingPerClient[request.clientIdentity] ?? 1) - 1
        pendingPerClient[request.clientIdentity] = left > 0 ? left : nil
        return request
    }

    private mutating func failPending(_ id: UInt64, _ error: WireError, _ actions: inout RoutingActions) {
        guard let request = forgetPending(id) else { return }
        replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID, error, &actions)
    }

    // MARK: Events in

    /// A message from a service on the events-in endpoint, read once: an event, or a head. It is
    /// taken once its credential is known to be one the operator issued for the stream it claims
    /// (`stream`, or the source `/tsunagu/<stream>`); anything else is dropped and logged, without
    /// what it held. Events are not stored here: a subscriber that missed some sees the gap and
    /// replays them from the service (`events.read`).
    private mutating func acceptEvent(_ frames: [Data], now: Instant, _ actions: inout RoutingActions) {
        guard frames.count == 3, !frames[0].isEmpty, frames[0].count <= 256,
              let credential = String(data: frames[2], encoding: .utf8), !credential.isEmpty, credential.utf8.count <= 256,
              !credential.containsNUL else {
            actions.append(.log(.warning, "dropped a malformed event message (or one without a service credential)"))
            return
        }
        let message: EventsInMessage
        switch EventsInMessage.parse(topic: frames[0], body: frames[1]) {
        case .success(let parsed): message = parsed
        case .failure(let failure):
            actions.append(.log(.warning, "dropped a malformed event message", ["reason": "\(failure.reason)"]))
            return
        }
        switch serviceCredentials.begin(credential, waiter: .event(message), now: now) {
        case .known(.found(let found)): accept(message, credential: found, &actions)
        case .known: actions.append(.log(.debug, "dropped an event pushed with an unknown or revoked service credential"))
        case .waiting: break
        case .startLookup: actions.append(.lookUpCredential(credential))
        case .refused: actions.append(.log(.warning, "dropped an event: too many credentials are being checked at once"))
        }
    }

    /// An event or head with a live service credential: taken when the credential is that stream's.
    private mutating func accept(_ message: EventsInMessage, credential: ServiceCredential, _ actions: inout RoutingActions) {
        guard credential.service == message.stream else {
            actions.append(.log(.warning, "dropped an event for a stream its credential was not issued for",
                                [EventStreams.LogKeys.stream: "\(message.stream)", LogKey.service: "\(credential.service)"]))
            return
        }
        switch message {
        case .event(let event): events.publish(event, &actions)
        case .head(let stream, let sequence): events.headReceived(stream: stream, sequence: sequence)
        }
    }

    // MARK: Subscribers

    /// `[identity, "TSUNAGU-EVENTS/1", command, JSON body]` from a subscriber.
    private mutating func handleSubscriberMessage(_ frames: [Data], truncated: Bool, now: Instant, _ actions: inout RoutingActions) {
        guard let identity = frames.first else { return }
        guard !truncated, frames.count == 4, frames[1] == EventStreamWire.header,
              let name = String(data: frames[2], encoding: .utf8), let command = EventStreamWire.Command(rawValue: name) else {
            actions.append(.log(.debug, "dropped a message with an unknown header on the events-out endpoint"))
            EventStreams.sendError(to: identity, WireError(.badRequest, """
                not a subscriber message: expected ["TSUNAGU-EVENTS/1", SUBSCRIBE|PING|UNSUBSCRIBE, JSON]
                """), &actions)
            return
        }
        let known = events.heard(from: identity, now: now)
        switch command {
        case .subscribe:
            subscribe(identity, body: frames[3], now: now, &actions)
        case .ping:
            if !known && subscribing[identity] == nil {
                EventStreams.sendError(to: identity, WireError(.badRequest, "not subscribed: send SUBSCRIBE first"), &actions)
            }
        case .unsubscribe:
            subscribing[identity] = nil
            events.end(identity, reason: "unsubscribed", &actions)
        case .subscribed, .event, .withheld, .heartbeat, .error:
            EventStreams.sendError(to: identity, WireError(.badRequest, "\(name) is sent by the gateway, not to it"), &actions)
        }
    }

    /// SUBSCRIBE `{"token":"…","streams":[…]}`: authenticated as a client request is (the token
    /// lookups are shared and bounded), then subscribed. Anything wrong ends a subscription the
    /// connection had.
    private mutating func subscribe(_ identity: Data, body: Data, now: Instant, _ actions: inout RoutingActions) {
        func refuse(_ error: WireError, _ actions: inout RoutingActions) {
            subscribing[identity] = nil
            events.end(identity, reason: "refused: \(error.code.rawValue)", &actions)
            EventStreams.sendError(to: identity, error, &actions)
        }
        guard let members = try? JSONValue.parseObject(body, members: ["token", "streams"]) else {
            refuse(WireError(.badRequest, "SUBSCRIBE takes a JSON object {\"token\":…,\"streams\":[…]}"), &actions)
            return
        }
        guard let token = members[0]?.stringValue, !token.isEmpty else {
            refuse(WireError(.unauthorized, "no token: set \"token\" in SUBSCRIBE"), &actions)
            return
        }
        guard case .array(let items)? = members[1], (1...EventStreamWire.maxStreamsPerSubscription).contains(items.count),
              items.allSatisfy({ $0.stringValue.map(EventStreamWire.isStreamName) ?? false }) else {
            refuse(WireError(.badRequest, """
                "streams" must be 1 to \(EventStreamWire.maxStreamsPerSubscription) stream names (service names, e.g. "registry")
                """), &actions)
            return
        }
        // No token we issue is longer or holds NUL: such a one is unknown without asking anybody.
        guard token.utf8.count <= 256, !token.containsNUL else {
            refuse(WireError(.unauthorized, "the token is unknown or revoked"), &actions)
            return
        }
        guard !isDraining else {
            refuse(WireError(.unavailable, "the gateway is stopping; subscribe again (to another gateway, or this one once it is back)"),
                   &actions)
            return
        }
        guard events.subscriptions[identity] != nil || subscribing[identity] != nil
                || events.subscriptions.count + subscribing.count < configuration.maxSubscribers else {
            refuse(WireError(.unavailable, "this gateway has \(configuration.maxSubscribers) subscribers already; retry later"), &actions)
            return
        }
        let attempt = nextAttempt
        nextAttempt &+= 1
        subscribing[identity] = attempt
        let streams = items.compactMap(\.stringValue)
        let waiter = SubscriptionWaiter.subscribe(identity: identity, token: token, streams: streams, attempt: attempt)
        switch clientTokens.begin(token, waiter: .subscription(waiter), now: now) {
        case .known(let outcome): answer(waiter, outcome, now: now, &actions)
        case .waiting: break
        case .startLookup: actions.append(.lookUpToken(token))
        case .refused: refuse(WireError(.unavailable, "too many tokens are being checked at once; retry shortly"), &actions)
        }
    }

    private mutating func answer(_ waiter: SubscriptionWaiter, _ outcome: ClientLookups.Outcome, now: Instant,
                                 _ actions: inout RoutingActions) {
        switch waiter {
        case .subscribe(let identity, let token, let streams, let attempt):
            guard subscribing[identity] == attempt else { return }  // a later SUBSCRIBE or UNSUBSCRIBE came meanwhile
            subscribing[identity] = nil
            switch outcome {
            case .found(let cached):
                let principal = cached.principal
                events.subscribe(identity, permissions: principal.eventPermissions, tokenID: principal.tokenID, token: token,
                                 streams: streams, now: now, &actions)
            case .unknown:
                events.end(identity, reason: "refused: unauthorized", &actions)
                EventStreams.sendError(to: identity, WireError(.unauthorized, "the token is unknown or revoked"), &actions)
            case .failed:
                events.end(identity, reason: "refused: unavailable", &actions)
                EventStreams.sendError(to: identity, WireError(.unavailable, "cannot check the token now; retry later"), &actions)
            }
        case .recheck(let identity, let token):
            // Only the subscription still made with this token; a failed check keeps it (checked again later).
            guard events.subscription(identity, usingToken: token) != nil, case .unknown = outcome else { return }
            events.end(identity, reason: "its token was revoked", error: WireError(.unauthorized, "the token was revoked"), &actions)
        }
    }

    // MARK: MMI

    private mutating func handleMMI(identity: Data, service: String, body: [Data], _ actions: inout RoutingActions) {
        let answer: Data
        if service == "mmi.service" {
            let asked = body.first.flatMap { String(data: $0, encoding: .utf8) } ?? ""
            answer = asked == TsunaguWire.gatewayService || hasLiveInstance(asked) ? MDP.mmiFound : MDP.mmiNotFound
        } else {
            answer = MDP.mmiNotImplemented
        }
        actions.append(.sendToClient(identity: identity, service: service, body: [answer]))
    }

    private func replyError(to identity: Data, service: String, requestID: String, _ error: WireError,
                            _ actions: inout RoutingActions) {
        actions.append(.replyError(identity: identity, service: service, requestID: requestID, error))
    }
}

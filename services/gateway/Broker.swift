import Foundation
import Synchronization
import Logging
import ServiceRuntime
import Wire
import ZMQ

/// The shell around the gateway's routing core (`RoutingCore`): it owns the sockets, the loop
/// thread, the mailbox and the tasks that look tokens up in the database; it feeds the core the
/// messages it reads, lookup results, failed sends and the passing of time, and performs the
/// actions the core returns. It decides nothing about routing itself.
///
/// One thread owns every socket and the core (`run()`); nothing else touches them. Work from
/// other threads (a finished token lookup, a built-in operation's reply) arrives through
/// `post(_:)`, which queues a closure and wakes the loop.
/// - Note: `Sendable`: only `mailbox` and `stopRequested` (both locked) and `wakeup` are shared;
///   everything else is confined to the loop thread.
final class Broker: @unchecked Sendable {
    struct Settings: Sendable {
        var clientEndpoint: String
        var workerEndpoint: String
        var eventsInEndpoint: String
        var eventsOutEndpoint: String
        var heartbeatInterval: Duration
        var maxMessageBytes: Int
        var defaultDeadline: Duration
        var maxDeadline: Duration
        /// Opaque services that plain 7/MDP clients (no envelope, so no token) may call.
        var openServices: Set<String>
        var maxQueuedPerService: Int
        var tokenCacheTTL: Duration
        /// How long an unknown token or a failed lookup is remembered.
        var tokenNegativeTTL: Duration
        /// Token lookups running at once, and distinct tokens that may wait for one.
        var maxTokenLookups: Int
        var maxQueuedTokenLookups: Int
        /// When set (Z85), every endpoint is a CURVE server with this secret key.
        var curveSecretKey: String?
        /// With CURVE: the keys services must hold (nil: any key may connect).
        var zap: ZAPHandler?
        /// The largest reply a worker may send (the runtime answers `too_large` below it).
        var maxReplyBytes: Int
        /// Messages queued per client connection in each direction: a client that never reads holds
        /// at most this many replies of gateway memory (further ones are dropped), and one that
        /// sends faster than it is served is slowed by TCP instead of filling the gateway's memory.
        var clientHighWaterMark: Int32
        /// Requests one client connection may have waiting for answers: one client cannot fill a
        /// service's queue for everybody.
        var maxPendingPerClient: Int
        /// How long a graceful stop waits for accepted requests to be answered.
        var drainTimeout: Duration = .seconds(10)
        /// How often subscribers get a HEARTBEAT (`TSUNAGU_EVENTS_HEARTBEAT_MS`).
        var eventsHeartbeatInterval: Duration = EventStreamWire.defaultHeartbeatInterval
        /// Subscriptions at once (`TSUNAGU_MAX_SUBSCRIBERS`).
        var maxSubscribers = 1000
        /// Messages queued for each subscriber (`TSUNAGU_SUBSCRIBER_HWM`): past it, messages to
        /// that subscriber are dropped, and nobody else waits.
        var subscriberHighWaterMark: Int32 = 10_000

        /// The settings the routing core uses.
        var routing: RoutingCore.Configuration {
            RoutingCore.Configuration(
                heartbeatInterval: heartbeatInterval, maxMessageBytes: maxMessageBytes, defaultDeadline: defaultDeadline,
                maxDeadline: maxDeadline, openServices: openServices, maxQueuedPerService: maxQueuedPerService,
                tokenCacheTTL: tokenCacheTTL, tokenNegativeTTL: tokenNegativeTTL, maxTokenLookups: maxTokenLookups,
                maxQueuedTokenLookups: maxQueuedTokenLookups, maxPendingPerClient: maxPendingPerClient,
                eventsHeartbeatInterval: eventsHeartbeatInterval, maxSubscribers: maxSubscribers)
        }
    }

    let settings: Settings
    let logger: Logger
    private let context: ZMQContext
    private let tokens: TokenStore
    private let wakeup: WakeupPipe
    private let mailbox = Mutex<[@Sendable (Broker) -> Void]>([])
    private let stopRequested = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)
    private let clock = ContinuousClock()

    // Loop-thread state.
    private var frontend: ZMQSocket?
    private var backend: ZMQSocket?
    private var eventsIn: ZMQSocket?
    private var eventsOut: ZMQSocket?
    private var zapSocket: ZMQSocket?
    /// Every routing decision and its state; read by `GatewayOperations` for the catalogue.
    private(set) var core: RoutingCore
    private let encoder = WireCoding.encoder()
    private lazy var builtins = GatewayOperations(broker: self, tokens: tokens)

    private let loopFailed = Mutex(false)

    init(settings: Settings, context: ZMQContext, tokens: TokenStore, logger: Logger) throws(ZMQError) {
        self.settings = settings
        self.context = context
        self.tokens = tokens
        self.logger = logger
        self.wakeup = try WakeupPipe()
        self.core = RoutingCore(configuration: settings.routing, now: ContinuousClock.now)
    }

    // MARK: Lifecycle

    /// Binds the endpoints (so a bind error reaches the caller) and starts the loop thread.
    /// Returns the endpoints bound (a `*` port resolved).
    @discardableResult
    func start() throws(ZMQError) -> RunningGateway.Endpoints {
        let frontend = try context.socket(.router)
        let backend = try context.socket(.router)
        let eventsIn = try context.socket(.pull)
        let eventsOut = try context.socket(.router)
        var sockets = [frontend, backend, eventsIn, eventsOut]
        let bound: RunningGateway.Endpoints
        do {
            // The authentication handler is bound first: libzmq asks it about every CURVE peer
            // from the first connection on.
            if settings.curveSecretKey != nil, settings.zap != nil {
                let zap = try context.socket(.rep)
                sockets.append(zap)
                try zap.setLinger(milliseconds: 0)
                try zap.bind(ZAPHandler.endpoint)
                self.zapSocket = zap
            }
            for (socket, domain) in [(frontend, ZAPHandler.clientDomain), (backend, ZAPHandler.serviceDomain),
                                     (eventsIn, ZAPHandler.serviceDomain), (eventsOut, ZAPHandler.clientDomain)] {
                try socket.setLinger(milliseconds: 0)
                try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
                if let key = settings.curveSecretKey {
                    try socket.setOption(.zapDomain, Data(domain.utf8))
                    try socket.makeCurveServer(secretKey: Data(key.utf8))
                }
            }
            try frontend.setHighWaterMarks(send: settings.clientHighWaterMark, receive: settings.clientHighWaterMark)
            try frontend.setOption(.routerMandatory, Int32(0))
            // A send to an instance that is gone fails at once (EHOSTUNREACH) instead of being
            // dropped silently: its requests go to another instance without waiting for heartbeats.
            try backend.setOption(.routerMandatory, Int32(1))
            // Hard caps per frame, well above the soft limits: past them libzmq drops the peer;
            // below them a client gets a typed `too_large` reply.
            try frontend.setMaxMessageSize(Int64(max(settings.maxMessageBytes * 4, 65_536)))
            try backend.setMaxMessageSize(Int64(settings.maxReplyBytes + 1_048_576))
            try eventsIn.setMaxMessageSize(Int64(max(settings.maxMessageBytes * 4, 65_536)))
            // Each subscriber's queue is its own: a full one fails the send at once (EAGAIN, the
            // message is dropped for that subscriber only), a gone one too (EHOSTUNREACH).
            try eventsOut.setHighWaterMarks(send: settings.subscriberHighWaterMark, receive: 1000)
            try eventsOut.setOption(.routerMandatory, Int32(1))
            // Subscribers send only small messages (SUBSCRIBE, PING).
            try eventsOut.setMaxMessageSize(65_536)
            try frontend.bind(settings.clientEndpoint)
            try backend.bind(settings.workerEndpoint)
            try eventsIn.bind(settings.eventsInEndpoint)
            try eventsOut.bind(settings.eventsOutEndpoint)
            bound = RunningGateway.Endpoints(client: try frontend.lastEndpoint(), worker: try backend.lastEndpoint(),
                                             eventsIn: try eventsIn.lastEndpoint(), eventsOut: try eventsOut.lastEndpoint())
        } catch {
            for socket in sockets { try? socket.close() }
            zapSocket = nil
            throw error
        }
        self.frontend = frontend
        self.backend = backend
        self.eventsIn = eventsIn
        self.eventsOut = eventsOut
        let thread = Thread { [self] in
            do { try self.run() } catch {
                self.logger.critical("broker loop failed", metadata: ["error": "\(error)"])
                self.loopFailed.withLock { $0 = true }
            }
            for socket in [self.frontend, self.backend, self.eventsIn, self.eventsOut, self.zapSocket] { try? socket?.close() }
            self.zapSocket = nil
            self.frontend = nil
            self.backend = nil
            self.eventsIn = nil
            self.eventsOut = nil
            self.finished.signal()
        }
        thread.name = "gateway-broker"
        thread.start()
        return bound
    }

    /// Tells workers we are going (DISCONNECT), stops the loop and waits for it.
    func stopAndWait() async {
        requestStop()
        await waitUntilStopped()
    }

    /// Whether the loop ended because of a libzmq error (rather than a requested stop).
    var hasFailed: Bool { loopFailed.withLock { $0 } }

    /// Asks the loop to stop; returns at once.
    func requestStop() {
        stopRequested.withLock { $0 = true }
        wakeup.wake()
    }

    /// Returns when the loop thread has ended (stopped, or failed).
    func waitUntilStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.finished.wait()
                self.finished.signal()  // later waiters return at once too
                continuation.resume()
            }
        }
    }

    /// Runs `work` on the loop thread; safe from any thread.
    func post(_ work: @escaping @Sendable (Broker) -> Void) {
        mailbox.withLock { $0.append(work) }
        wakeup.wake()
    }

    // MARK: The loop

    private func run() throws(ZMQError) {
        guard let frontend, let backend, let eventsIn, let eventsOut else { return }
        var items: [ZMQPollItem] = [.socket(frontend), .socket(backend), .fileDescriptor(wakeup.readDescriptor), .socket(eventsIn),
                                    .socket(eventsOut)]
        if let zapSocket { items.append(.socket(zapSocket)) }

        var drainDeadline: ContinuousClock.Instant?
        while true {
            // A graceful stop drains: new requests are refused, accepted ones get their answers
            // (up to the drain timeout), and only then are the workers told and the sockets closed.
            if drainDeadline == nil, stopRequested.withLock({ $0 }) {
                core.beginDraining()
                drainDeadline = clock.now + settings.drainTimeout
                logger.info("draining", metadata: ["in_flight": "\(core.pending.count)"])
            }
            if let drainDeadline, core.isDrained || clock.now >= drainDeadline { break }
            var timeout = max(0, (core.nextTick - clock.now).milliseconds)
            if drainDeadline != nil { timeout = min(timeout, 50) }
            let ready = try zmqPoll(items, timeoutMs: timeout)
            // Drain each socket in bounded batches so neither side can starve the other.
            if ready[1] {
                var count = 0
                while count < 1000, let (frames, truncated) = try backend.receiveIfReady(maxFrames: MDP.maxFrames) {
                    perform(core.workerMessageReceived(frames, truncated: truncated, now: clock.now))
                    count += 1
                }
            }
            if ready[0] {
                var count = 0
                while count < 1000, let (frames, truncated) = try frontend.receiveIfReady(maxFrames: MDP.maxFrames) {
                    perform(core.clientMessageReceived(frames, truncated: truncated, now: clock.now))
                    count += 1
                }
            }
            if ready[3] {
                var count = 0
                while count < 1000, let (frames, truncated) = try eventsIn.receiveIfReady(maxFrames: MDP.maxFrames) {
                    perform(core.eventReceived(frames, truncated: truncated, now: clock.now))
                    count += 1
                }
            }
            if ready[4] {
                var count = 0
                while count < 1000, let (frames, truncated) = try eventsOut.receiveIfReady(maxFrames: MDP.maxFrames) {
                    perform(core.subscriberMessageReceived(frames, truncated: truncated, now: clock.now))
                    count += 1
                }
            }
            if items.count > 5, ready[5], let zapSocket, let zap = settings.zap {
                while let request = try zapSocket.receiveIfReady(maxFrames: MDP.maxFrames) {
                    let (reply, refused) = zap.reply(to: request.frames)
                    if let refused {
                        logger.warning("refused a CURVE connection to a service endpoint", metadata: ["curve.key": "\(refused)"])
                    }
                    try zapSocket.send(reply)
                }
            }
            if ready[2] {
                wakeup.drain()
                let work = mailbox.withLock { queue -> [@Sendable (Broker) -> Void] in
                    defer { queue.removeAll(keepingCapacity: true) }
                    return queue
                }
                for item in work { item(self) }
            }
            perform(core.tick(now: clock.now))
        }
        perform(core.stop())
        // The last answers (and the DISCONNECTs) are still queued: give them time to leave.
        try? frontend.setLinger(milliseconds: 2000)
        try? backend.setLinger(milliseconds: 1000)
        try? eventsOut.setLinger(milliseconds: 500)
    }

    // MARK: Performing the core's actions

    /// Does what the core asked, in order. Sends to instances that fail are handed back to the
    /// core together, once the batch is done (it requeues their requests and removes instances
    /// found gone), and what it asks then is done in turn.
    private func perform(_ actions: RoutingActions) {
        var failures: [RoutingCore.SendFailure] = []
        var subscriberFailures: [(identity: Data, unreachable: Bool)] = []
        for action in actions {
            switch action {
            case .sendToClient(let identity, let service, let body):
                sendToClient(identity, service: service, body: body)
            case .replyError(let identity, let service, let requestID, let error):
                replyError(to: identity, service: service, requestID: requestID, error)
            case .sendToWorker(let identity, let command):
                if let failure = send(command, to: identity) { failures.append(failure) }
            case .sendToSubscriber(let identity, let command, let body):
                if let unreachable = sendToSubscriber(identity, command, body) {
                    subscriberFailures.append((identity, unreachable))
                }
            case .lookUpToken(let token):
                startClientLookup(token)
            case .lookUpCredential(let credential):
                startCredentialLookup(credential)
            case .runGatewayOperation(let call):
                builtins.handle(identity: call.identity, envelope: call.envelope, payload: call.payload, principal: call.principal)
            case .log(let level, let message, let metadata):
                logger.log(level: level, message, metadata: metadata.isEmpty ? nil : metadata)
            }
        }
        if !failures.isEmpty { perform(core.workerSendsFailed(failures, now: clock.now)) }
        if !subscriberFailures.isEmpty { perform(core.subscriberSendsFailed(subscriberFailures)) }
    }

    /// Asks the database who a token stands for, off the loop thread; the answer comes back
    /// through the mailbox.
    private func startClientLookup(_ token: String) {
        let tokens = self.tokens
        lookUp("token lookup failed", { try await tokens.principal(for: token) }) { broker, outcome in
            broker.core.tokenLookupFinished(token, outcome: outcome, now: broker.clock.now)
        }
    }

    private func startCredentialLookup(_ credential: String) {
        let tokens = self.tokens
        lookUp("service credential lookup failed", { try await tokens.serviceCredential(for: credential) }) { broker, outcome in
            broker.core.credentialLookupFinished(credential, outcome: outcome, now: broker.clock.now)
        }
    }

    /// Runs `query` off the loop thread and hands its outcome (found, unknown, or failed: logged)
    /// to `finish` on the loop thread, whose actions are then performed.
    private func lookUp<Value: Sendable, Waiter>(
        _ failure: Logger.Message, _ query: @escaping @Sendable () async throws -> Value?,
        finish: @escaping @Sendable (Broker, TokenLookups<Value, Waiter>.Outcome) -> RoutingActions
    ) {
        Task {
            let outcome: TokenLookups<Value, Waiter>.Outcome
            do { outcome = try await query().map { .found($0) } ?? .unknown } catch {
                outcome = .failed
                self.logger.warning(failure, metadata: ["error": "\(error)"])
            }
            self.post { broker in broker.perform(finish(broker, outcome)) }
        }
    }

    // MARK: Sending

    func sendToClient(_ identity: Data, service: String, body: [Data]) {
        var frames: [Data] = []
        frames.reserveCapacity(4 + body.count)
        frames.append(identity)
        frames.append(Data())
        frames.append(MDP.clientHeader)
        frames.append(Data(service.utf8))
        frames.append(contentsOf: body)
        do {
            try frontend?.send(frames, dontWait: true)
        } catch {
            logger.debug("reply to a client dropped", metadata: ["error": "\(error)"])
        }
    }

    func replyError(to identity: Data, service: String, requestID: String, _ error: WireError) {
        sendToClient(identity, service: service, body: [TsunaguWire.marker, ReplyEnvelope.failure(id: requestID, error).encoded()])
    }

    func replyOK(to identity: Data, service: String, requestID: String, _ output: some Encodable) {
        guard let payload = try? encoder.encode(output) else {
            replyError(to: identity, service: service, requestID: requestID, WireError(.internal, "cannot encode the reply"))
            return
        }
        sendToClient(identity, service: service, body: [TsunaguWire.marker, ReplyEnvelope(id: requestID, status: .ok).encoded(), payload])
    }

    /// Sends to an instance; what failed, for the core, when it was not sent.
    private func send(_ command: RoutingAction.WorkerCommand, to identity: Data) -> RoutingCore.SendFailure? {
        var frames: [Data] = []
        var request: UInt64?
        switch command {
        case .request(let correlation, let body):
            request = correlation
            var bigEndian = correlation.bigEndian
            frames.reserveCapacity(6 + body.count)
            frames.append(identity)
            frames.append(Data())
            frames.append(MDP.workerHeader)
            frames.append(MDP.Command.request.frame)
            frames.append(Data(bytes: &bigEndian, count: 8))
            frames.append(Data())
            frames.append(contentsOf: body)
        case .heartbeat:
            frames = [identity, Data(), MDP.workerHeader, MDP.Command.heartbeat.frame]
        case .disconnect:
            frames = [identity, Data(), MDP.workerHeader, MDP.Command.disconnect.frame]
        }
        do {
            try backend?.send(frames, dontWait: true)
            return nil
        } catch {
            logger.debug("message to an instance not sent", metadata: ["error": "\(error)"])
            return RoutingCore.SendFailure(worker: identity, request: request, unreachable: error.code == .hostUnreachable)
        }
    }

    /// Sends to a subscriber without waiting; nil when sent, else whether the subscriber is gone
    /// (otherwise its queue was full: the message is dropped for it alone).
    private func sendToSubscriber(_ identity: Data, _ command: EventStreamWire.Command, _ body: Data) -> Bool? {
        do {
            try eventsOut?.send([identity, EventStreamWire.header, command.frame, body], dontWait: true)
            return nil
        } catch {
            return error.code == .hostUnreachable
        }
    }

    // MARK: Token administration (from `GatewayOperations`, on the loop thread)

    /// A revoked token stops working at once on this gateway: its cached principal is dropped,
    /// and instances registered with it (a service credential) are disconnected.
    func forgetToken(id: String) {
        perform(core.tokenRevoked(id: id, now: clock.now))
    }

    /// A token made here works at once, even if it was asked for (and unknown) moments ago.
    func tokenCreated() {
        core.tokenCreated()
    }
}

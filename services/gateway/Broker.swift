import Foundation
import JSONSchema
import Logging
import ServiceRuntime
import Wire
import ZMQ

/// The gateway's routing core: a 7/MDP broker with Tsunagu's envelope, auth and catalogue.
///
/// One thread owns both ROUTER sockets and all routing state (`run()`); nothing else touches them.
/// Work from other threads (a finished token lookup, a built-in operation's reply) arrives through
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
    }

    let settings: Settings
    let logger: Logger
    private let context: ZMQContext
    private let tokens: TokenStore
    private let wakeup: WakeupPipe
    private let mailbox = Locked<[@Sendable (Broker) -> Void]>([])
    private let stopRequested = Locked(false)
    private let finished = DispatchSemaphore(value: 0)
    private let clock = ContinuousClock()

    // Loop-thread state.
    private var frontend: ZMQSocket?
    private var backend: ZMQSocket?
    private var eventsIn: ZMQSocket?
    private var eventsOut: ZMQSocket?
    private var zapSocket: ZMQSocket?
    private(set) var services: [String: ServiceState] = [:]
    private(set) var workers: [Data: WorkerState] = [:]
    private var pending: [UInt64: PendingRequest] = [:]
    /// Requests each client connection has waiting for an answer (bounded by `maxPendingPerClient`).
    private var pendingPerClient: [Data: Int] = [:]
    private var nextCorrelation: UInt64 = 1
    private var clientTokens: TokenLookups<Principal, AuthWaiter>
    private var serviceCredentials: TokenLookups<ServiceCredential, CredentialWaiter>
    /// Workers whose READY waits for their credential to be checked.
    private var registering: Set<Data> = []
    /// Instances found gone on a send (ZMQ_ROUTER_MANDATORY), removed after the current step.
    private var unreachable: Set<Data> = []
    private let encoder = WireCoding.encoder()
    private lazy var builtins = GatewayOperations(broker: self, tokens: tokens)

    private let onFailure: @Sendable () -> Void

    /// - Parameter onFailure: called (on the loop thread) if the loop dies of a libzmq error.
    init(settings: Settings, context: ZMQContext, tokens: TokenStore, logger: Logger,
         onFailure: @escaping @Sendable () -> Void) throws(ZMQError) {
        self.onFailure = onFailure
        self.settings = settings
        self.context = context
        self.tokens = tokens
        self.logger = logger
        self.wakeup = try WakeupPipe()
        self.clientTokens = TokenLookups(positiveTTL: settings.tokenCacheTTL, negativeTTL: settings.tokenNegativeTTL,
                                         maxRunning: settings.maxTokenLookups, maxQueued: settings.maxQueuedTokenLookups)
        self.serviceCredentials = TokenLookups(positiveTTL: settings.tokenCacheTTL, negativeTTL: settings.tokenNegativeTTL,
                                               maxRunning: 2, maxQueued: settings.maxQueuedTokenLookups)
    }

    // MARK: Lifecycle

    /// Binds both endpoints (so a bind error reaches the caller) and starts the loop thread.
    func start() throws(ZMQError) {
        let frontend = try context.socket(.router)
        let backend = try context.socket(.router)
        let eventsIn = try context.socket(.pull)
        let eventsOut = try context.socket(.pub)
        var sockets = [frontend, backend, eventsIn, eventsOut]
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
            try frontend.bind(settings.clientEndpoint)
            try backend.bind(settings.workerEndpoint)
            try eventsIn.bind(settings.eventsInEndpoint)
            try eventsOut.bind(settings.eventsOutEndpoint)
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
                self.onFailure()
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
    }

    /// Tells workers we are going (DISCONNECT), stops the loop and waits for it.
    func stopAndWait() async {
        stopRequested.withLock { $0 = true }
        wakeup.wake()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.finished.wait()
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
        guard let frontend, let backend, let eventsIn else { return }
        let tick = Duration.milliseconds(100)
        var heartbeatAt = clock.now + settings.heartbeatInterval
        var sweepAt = clock.now + tick
        var items: [ZMQPollItem] = [.socket(frontend), .socket(backend), .fileDescriptor(wakeup.readDescriptor), .socket(eventsIn)]
        if let zapSocket { items.append(.socket(zapSocket)) }

        while !stopRequested.withLock({ $0 }) {
            let now = clock.now
            let ready = try zmqPoll(items, timeoutMs: max(0, min(heartbeatAt - now, sweepAt - now).milliseconds))
            // Drain each socket in bounded batches so neither side can starve the other.
            if ready[1] {
                var count = 0
                while count < 1000, let (frames, truncated) = try backend.receiveIfReady(maxFrames: MDP.maxFrames) {
                    if truncated {
                        logger.warning("dropped a message of more than \(MDP.maxFrames) frames on the worker endpoint")
                    } else {
                        handleWorkerMessage(frames)
                    }
                    count += 1
                }
            }
            if ready[0] {
                var count = 0
                while count < 1000, let (frames, truncated) = try frontend.receiveIfReady(maxFrames: MDP.maxFrames) {
                    if truncated, let identity = frames.first {
                        replyError(to: identity, service: "", requestID: "",
                                   WireError(.badRequest, "a message may have at most \(MDP.maxFrames) frames"))
                    } else {
                        handleClientMessage(frames)
                    }
                    count += 1
                }
            }
            if ready[3] {
                var count = 0
                while count < 1000, let (frames, truncated) = try eventsIn.receiveIfReady(maxFrames: MDP.maxFrames) {
                    if truncated {
                        logger.warning("dropped an event message of more than \(MDP.maxFrames) frames")
                    } else {
                        acceptEvent(frames)
                    }
                    count += 1
                }
            }
            if items.count > 4, ready[4], let zapSocket, let zap = settings.zap {
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
            let after = clock.now
            if after >= heartbeatAt {
                for identity in workers.keys { sendToWorker(identity, command: .heartbeat) }
                heartbeatAt = after + settings.heartbeatInterval
            }
            removeUnreachableWorkers()
            if after >= sweepAt {
                purgeDeadWorkers(now: after)
                expireRequests(now: after)
                sweepAt = after + tick
            }
        }
        for identity in workers.keys { sendToWorker(identity, command: .disconnect) }
        for (id, request) in pending {
            replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                       WireError(.unavailable, "the gateway is shutting down"))
            forgetPending(id)
        }
    }

    // MARK: Clients

    private func handleClientMessage(_ frames: [Data]) {
        // [identity, empty, MDPC01, service, body...]
        guard let identity = frames.first else { return }
        guard frames.count >= 3, frames[1].isEmpty, frames[2] == MDP.clientHeader else {
            replyError(to: identity, service: "", requestID: "",
                       WireError(.badRequest, "not a 7/MDP client message: expected an empty delimiter frame and MDPC01"))
            return
        }
        let size = frames.dropFirst(3).reduce(0) { $0 + $1.count }
        guard frames.count >= 4, let service = String(data: frames[3], encoding: .utf8), !service.isEmpty else {
            replyError(to: identity, service: "", requestID: "", WireError(.badRequest, "the service name frame is missing or not UTF-8"))
            return
        }
        let body = Array(frames[4...])
        if size > settings.maxMessageBytes {
            let id = body.count >= 2 && body[0] == TsunaguWire.marker ? ((try? RequestEnvelope.decode(body[1]))?.id ?? "") : ""
            replyError(to: identity, service: service, requestID: id,
                       WireError(.tooLarge, "the message has \(size) bytes; this gateway accepts at most \(settings.maxMessageBytes)"))
            return
        }
        if service.hasPrefix(MDP.mmiPrefix) {
            handleMMI(identity: identity, service: service, body: body)
            return
        }
        if body.first == TsunaguWire.marker {
            acceptEnvelopeRequest(identity: identity, service: service, body: body)
        } else {
            acceptPlainRequest(identity: identity, service: service, body: body)
        }
    }

    private func acceptPlainRequest(identity: Data, service: String, body: [Data]) {
        guard let state = services[service] else {
            replyError(to: identity, service: service, requestID: "", WireError(.unknownService, "no service named \(service)"))
            return
        }
        guard state.manifest == nil else {
            replyError(to: identity, service: service, requestID: "",
                       WireError(.badRequest, "\(service) needs the Tsunagu envelope (TSUNAGU/1 frame, then envelope JSON)"))
            return
        }
        guard settings.openServices.contains(service) else {
            replyError(to: identity, service: service, requestID: "",
                       WireError(.unauthorized, "\(service) needs a token: send the Tsunagu envelope"))
            return
        }
        admit(PendingRequest(clientIdentity: identity, service: service, requestID: "", workerBody: body,
                             wrapReply: false, deadline: clock.now + settings.defaultDeadline, retryable: false))
    }

    private func acceptEnvelopeRequest(identity: Data, service: String, body: [Data]) {
        guard body.count >= 2 else {
            replyError(to: identity, service: service, requestID: "", WireError(.badRequest, "the request envelope frame is missing"))
            return
        }
        var envelope: RequestEnvelope
        do { envelope = try RequestEnvelope.decode(body[1]) } catch {
            replyError(to: identity, service: service, requestID: "", error)
            return
        }
        guard envelope.v == TsunaguWire.version else {
            replyError(to: identity, service: service, requestID: envelope.id,
                       WireError(.badRequest, "envelope version \(envelope.v) is not supported; this gateway speaks \(TsunaguWire.version)"))
            return
        }
        guard let token = envelope.token, !token.isEmpty else {
            replyError(to: identity, service: service, requestID: envelope.id, WireError(.unauthorized, "no token: set \"token\" in the envelope"))
            return
        }
        // No token we issue is longer or holds NUL: such a one is unknown without asking anybody.
        guard token.utf8.count <= 256, !token.utf8.contains(0) else {
            replyError(to: identity, service: service, requestID: envelope.id, WireError(.unauthorized, "the token is unknown or revoked"))
            return
        }
        let waiter = AuthWaiter(identity: identity, service: service, envelope: envelope, payload: Array(body.dropFirst(2)),
                                received: clock.now)
        switch clientTokens.begin(token, waiter: waiter, now: waiter.received) {
        case .known(let outcome): answer(waiter, outcome)
        case .waiting: break
        case .startLookup: startClientLookup(token)
        case .refused:
            replyError(to: identity, service: service, requestID: envelope.id,
                       WireError(.unavailable, "too many tokens are being checked at once; retry shortly"))
        }
    }

    /// Asks the database who a token stands for, off the loop thread; the answer comes back
    /// through the mailbox and is given to every request that waited for this token.
    private func startClientLookup(_ token: String) {
        let tokens = self.tokens
        Task {
            let outcome: TokenLookups<Principal, AuthWaiter>.Outcome
            do { outcome = try await tokens.principal(for: token).map { .found($0) } ?? .unknown } catch {
                outcome = .failed
                self.logger.warning("token lookup failed", metadata: ["error": "\(error)"])
            }
            self.post { broker in
                let (waiters, next) = broker.clientTokens.finish(token, outcome: outcome, now: broker.clock.now)
                for waiter in waiters { broker.answer(waiter, outcome) }
                if let next { broker.startClientLookup(next) }
            }
        }
    }

    private func answer(_ waiter: AuthWaiter, _ outcome: TokenLookups<Principal, AuthWaiter>.Outcome) {
        switch outcome {
        case .found(let principal):
            var envelope = waiter.envelope
            route(identity: waiter.identity, service: waiter.service, envelope: &envelope, payload: waiter.payload,
                  principal: principal, received: waiter.received)
        case .unknown:
            replyError(to: waiter.identity, service: waiter.service, requestID: waiter.envelope.id,
                       WireError(.unauthorized, "the token is unknown or revoked"))
        case .failed:
            replyError(to: waiter.identity, service: waiter.service, requestID: waiter.envelope.id,
                       WireError(.unavailable, "cannot check the token now; retry later"))
        }
    }

    private func route(identity: Data, service: String, envelope: inout RequestEnvelope, payload: [Data],
                       principal: Principal, received: ContinuousClock.Instant) {
        let requested = envelope.deadlineMs.map { Duration.milliseconds(max(0, $0)) } ?? settings.defaultDeadline
        let deadline = received + min(requested, settings.maxDeadline)
        if service == TsunaguWire.gatewayService {
            builtins.handle(identity: identity, envelope: envelope, payload: payload.first ?? Data(), principal: principal)
            return
        }
        guard let state = services[service] else {
            replyError(to: identity, service: service, requestID: envelope.id, WireError(.unknownService, "no service named \(service)"))
            return
        }
        if state.manifest != nil, !state.operations.contains(envelope.op) {
            replyError(to: identity, service: service, requestID: envelope.id,
                       WireError(.unknownOperation, "\(service) has no operation \(envelope.op)",
                                 details: .object(["operations": .array(state.operations.sorted().map { .string($0) })])))
            return
        }
        let workerBody: [Data]
        if state.manifest != nil {
            envelope.token = nil
            envelope.principal = principal
            envelope.deadlineMs = Self.workerDeadlineMs(left: deadline - clock.now)
            workerBody = [TsunaguWire.marker, envelope.encoded()] + payload
        } else {
            workerBody = payload.isEmpty ? [Data()] : payload
        }
        // Sent again after an instance dies only when that cannot apply a change twice.
        let retryable = state.manifest != nil && (state.readOnly.contains(envelope.op) || envelope.idempotencyKey != nil)
        admit(PendingRequest(clientIdentity: identity, service: service, requestID: envelope.id, workerBody: workerBody,
                             wrapReply: state.manifest == nil, deadline: deadline, retryable: retryable))
    }

    /// The deadline a worker is given: what is left here, less a margin for the reply's way back,
    /// so a worker gives up (and rolls back) before this gateway tells the client `timeout`.
    static func workerDeadlineMs(left: Duration) -> Int {
        let ms = max(0, left.milliseconds)
        return max(1, ms - min(500, 20 + ms / 20))
    }

    /// Takes a request into `pending` and sends it to an instance, or queues it, or refuses it.
    private func admit(_ request: PendingRequest) {
        guard let state = services[request.service], state.workers.contains(where: { workers[$0]?.draining == false }) else {
            replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                       WireError(.unavailable, "no instance of \(request.service) is up"))
            return
        }
        guard state.queued < settings.maxQueuedPerService else {
            replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                       WireError(.unavailable, "\(request.service) is overloaded; retry later"))
            return
        }
        let waiting = pendingPerClient[request.clientIdentity, default: 0]
        guard waiting < settings.maxPendingPerClient else {
            replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                       WireError(.unavailable, "this connection has \(waiting) requests waiting for answers; read them before sending more"))
            return
        }
        pendingPerClient[request.clientIdentity] = waiting + 1
        let id = nextCorrelation
        nextCorrelation &+= 1
        pending[id] = request
        services[request.service]?.enqueue(id, client: request.clientIdentity)
        dispatchQueued(service: request.service)
    }

    /// Sends waiting requests to instances with free slots, round-robin.
    private func dispatchQueued(service name: String) {
        guard let state = services[name] else { return }
        while state.queued > 0 {
            let count = state.workers.count
            guard count > 0 else { return }
            var chosen: Data?
            for step in 0..<count {
                let candidate = state.workers[(state.nextWorker + step) % count]
                if workers[candidate]?.hasFreeSlot == true {
                    chosen = candidate
                    state.nextWorker = (state.nextWorker + step + 1) % count
                    break
                }
            }
            guard let worker = chosen else { return }
            guard let id = state.popQueued() else { return }
            guard let request = pending[id] else { continue }  // answered (timed out) while queued
            var correlation = id.bigEndian
            let address = Data(bytes: &correlation, count: 8)
            guard sendToWorker(worker, command: .request, [address, Data()] + request.workerBody) else {
                // Not sent (the instance is gone, or its queue is full): the request waits again,
                // first in line; a gone instance leaves the rotation now, and is removed after this step.
                state.enqueueFirst(id, client: request.clientIdentity)
                if unreachable.contains(worker) { state.workers.removeAll { $0 == worker } } else { return }
                continue
            }
            request.worker = worker
            workers[worker]?.inFlight.insert(id)
        }
    }

    /// Removes the instances a send found gone; their in-flight requests go to another instance.
    private func removeUnreachableWorkers() {
        while let identity = unreachable.popFirst() {
            removeWorker(identity, reason: "unreachable (the connection is gone)")
        }
    }

    // MARK: Workers

    private func handleWorkerMessage(_ frames: [Data]) {
        // [identity, empty, MDPW01, command, ...]
        guard frames.count >= 4, frames[1].isEmpty, frames[2] == MDP.workerHeader, frames[3].count == 1,
              let command = MDP.Command(rawValue: frames[3][frames[3].startIndex]) else {
            logger.warning("dropped a message with an unknown header on the worker endpoint")
            return
        }
        let identity = frames[0]
        let known = workers[identity] != nil
        if known { workers[identity]?.expiry = clock.now + settings.heartbeatInterval * MDP.liveness }
        switch command {
        case .ready:
            if known || registering.contains(identity) {
                // 7/MDP: READY from a registered worker is a protocol error.
                registering.remove(identity)
                removeWorker(identity, reason: "sent READY twice")
                sendToWorker(identity, command: .disconnect)
            } else {
                acceptReady(identity, frames: Array(frames[4...]))
            }
        case .reply:
            // [.., REPLY, client address, empty, body...]; accepted even from a worker we dropped,
            // as long as the request still waits for it.
            guard frames.count >= 6, frames[4].count == 8 else {
                logger.warning("dropped a malformed REPLY")
                return
            }
            let id = frames[4].withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) }
            completeRequest(id, from: identity, body: Array(frames[6...]))
        case .heartbeat:
            if !known && !registering.contains(identity) { sendToWorker(identity, command: .disconnect) }
        case .disconnect:
            guard known else { return }
            workers[identity]?.draining = true
            if workers[identity]?.inFlight.isEmpty == true { removeWorker(identity, reason: "disconnected") }
        case .request:
            logger.warning("dropped a REQUEST sent by a worker")
        }
    }

    /// READY: `[service, manifest JSON, service credential]` from a Tsunagu worker, `[service]`
    /// from a plain 7/MDP worker. A Tsunagu worker is registered once its credential is checked
    /// and names this service; a plain one only for a service the operator lists as open.
    private func acceptReady(_ identity: Data, frames: [Data]) {
        guard let nameFrame = frames.first, let name = String(data: nameFrame, encoding: .utf8), !name.isEmpty,
              name.utf8.count <= 128, !name.hasPrefix(MDP.mmiPrefix), name != TsunaguWire.gatewayService else {
            refuseWorker(identity, service: nil, "a missing or reserved service name")
            return
        }
        guard frames.count >= 2 else {
            guard settings.openServices.contains(name) else {
                refuseWorker(identity, service: name, "a plain 7/MDP worker (no credential) for a service not listed in TSUNAGU_OPEN_SERVICES")
                return
            }
            registerWorker(identity, name: name, manifest: nil, tokenID: nil)
            return
        }
        let manifest: Manifest
        do {
            manifest = try JSONValueDecoder().decode(Manifest.self, from: try JSONValue.parse(frames[1]))
        } catch {
            refuseWorker(identity, service: name, "an invalid manifest")
            return
        }
        guard manifest.service == name, manifest.v == TsunaguWire.version, (1...100_000).contains(manifest.concurrency) else {
            refuseWorker(identity, service: name, "a manifest for another service, protocol version or concurrency")
            return
        }
        guard frames.count == 3, let credential = String(data: frames[2], encoding: .utf8), !credential.isEmpty,
              credential.utf8.count <= 256, !credential.utf8.contains(0) else {
            refuseWorker(identity, service: name, "no service credential")
            return
        }
        let waiter = CredentialWaiter.registration(identity: identity, service: name, manifest: manifest)
        registering.insert(identity)
        switch serviceCredentials.begin(credential, waiter: waiter, now: clock.now) {
        case .known(let outcome): answer(waiter, outcome)
        case .waiting: break
        case .startLookup: startCredentialLookup(credential)
        case .refused:
            registering.remove(identity)
            refuseWorker(identity, service: name, "too many credentials are being checked at once")
        }
    }

    private func refuseWorker(_ identity: Data, service: String?, _ reason: String) {
        logger.warning("refused an instance", metadata: [LogKey.service: "\(service ?? "-")", LogKey.worker: "\(identity.hexString)",
                                                         "reason": "\(reason)"])
        sendToWorker(identity, command: .disconnect)
    }

    private func startCredentialLookup(_ credential: String) {
        let tokens = self.tokens
        Task {
            let outcome: TokenLookups<ServiceCredential, CredentialWaiter>.Outcome
            do { outcome = try await tokens.serviceCredential(for: credential).map { .found($0) } ?? .unknown } catch {
                outcome = .failed
                self.logger.warning("service credential lookup failed", metadata: ["error": "\(error)"])
            }
            self.post { broker in
                let (waiters, next) = broker.serviceCredentials.finish(credential, outcome: outcome, now: broker.clock.now)
                if outcome.value == nil, waiters.contains(where: \.isEvent) {
                    broker.logger.warning("dropped events pushed with an unknown or revoked service credential")
                }
                for waiter in waiters { broker.answer(waiter, outcome) }
                if let next { broker.startCredentialLookup(next) }
            }
        }
    }

    private func answer(_ waiter: CredentialWaiter, _ outcome: TokenLookups<ServiceCredential, CredentialWaiter>.Outcome) {
        switch waiter {
        case .registration(let identity, let name, let manifest):
            guard registering.remove(identity) != nil else { return }  // it left (or misbehaved) meanwhile
            switch outcome {
            case .found(let credential) where credential.service == name:
                registerWorker(identity, name: name, manifest: manifest, tokenID: credential.tokenID)
            case .found(let credential):
                refuseWorker(identity, service: name, "a credential issued for service \(credential.service)")
            case .unknown:
                refuseWorker(identity, service: name, "an unknown or revoked service credential")
            case .failed:
                refuseWorker(identity, service: name, "its credential could not be checked now (it will reconnect)")
            }
        case .event(let frames):
            if outcome.value != nil { publish(frames) }
        }
    }

    private func registerWorker(_ identity: Data, name: String, manifest: Manifest?, tokenID: String?) {
        let state = services[name] ?? ServiceState(name: name)
        if let manifest {
            state.manifest = manifest
            state.operations = Set(manifest.operations.map(\.name))
            state.readOnly = Set(manifest.operations.filter { $0.readOnly == true }.map(\.name))
        } else if state.workers.isEmpty {
            state.manifest = nil
            state.operations = []
            state.readOnly = []
        }
        state.workers.append(identity)
        services[name] = state
        workers[identity] = WorkerState(identity: identity, service: name, capacity: max(1, manifest?.concurrency ?? 1),
                                        expiry: clock.now + settings.heartbeatInterval * MDP.liveness, tokenID: tokenID)
        logger.info("instance joined", metadata: [LogKey.service: "\(name)", LogKey.worker: "\(identity.hexString)",
                                                  "version": "\(manifest?.version ?? "opaque")"])
        dispatchQueued(service: name)
    }

    private func completeRequest(_ id: UInt64, from identity: Data, body: [Data]) {
        if let worker = workers[identity] {
            worker.inFlight.remove(id)
            worker.served += 1
            if worker.draining && worker.inFlight.isEmpty { removeWorker(identity, reason: "drained") }
        }
        // A late reply from an instance we gave up on is dropped: the retry or the timeout answers.
        guard let request = pending[id], request.worker == identity else { return }
        forgetPending(id)
        var replyBody = body
        if request.wrapReply {
            replyBody = [TsunaguWire.marker, ReplyEnvelope(id: request.requestID, status: .ok).encoded()] + body
        }
        sendToClient(request.clientIdentity, service: request.service, body: replyBody)
        dispatchQueued(service: request.service)
    }

    private func purgeDeadWorkers(now: ContinuousClock.Instant) {
        for (identity, worker) in workers where worker.expiry < now {
            removeWorker(identity, reason: "heartbeats stopped")
        }
    }

    /// Forgets an instance; its in-flight requests go once to another instance if their deadline
    /// allows, otherwise they are answered `unavailable`.
    private func removeWorker(_ identity: Data, reason: String) {
        guard let worker = workers.removeValue(forKey: identity) else { return }
        logger.info("instance left", metadata: [LogKey.service: "\(worker.service)", LogKey.worker: "\(identity.hexString)",
                                                "reason": "\(reason)", "in_flight": "\(worker.inFlight.count)"])
        if let state = services[worker.service] {
            state.workers.removeAll { $0 == identity }
            state.nextWorker = 0
        }
        let now = clock.now
        var retry: [UInt64] = []
        for id in worker.inFlight.sorted() {
            guard let request = pending[id], request.worker == identity else { continue }
            if request.retryable && !request.retried && request.deadline > now {
                request.retried = true
                request.worker = nil
                retry.append(id)
            } else if request.retryable {
                forgetPending(id)
                replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                           WireError(.unavailable, "the instance serving this request stopped"))
            } else {
                forgetPending(id)
                replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                           WireError(.unavailable, """
                               the instance serving this request stopped before answering: whether it took effect is unknown. \
                               It was not sent again because it may change data; send writes with an idempotency key to make retries safe
                               """, details: .object(["outcome": .string("unknown")])))
            }
        }
        if !retry.isEmpty, let state = services[worker.service] {
            // Retries go to the front: they have waited longest.
            for id in retry.reversed() {
                if let request = pending[id] { state.enqueueFirst(id, client: request.clientIdentity) }
            }
            if !state.workers.contains(where: { workers[$0]?.draining == false }) {
                for id in retry { failPending(id, WireError(.unavailable, "no instance of \(worker.service) is up")) }
            }
        }
        dispatchQueued(service: worker.service)
    }

    /// Answers `timeout` to requests past their deadline. A request an instance holds keeps its
    /// slot until the instance answers (or dies): the instance is still working on it. Waiting
    /// requests leave their queue, so they stop counting against `TSUNAGU_MAX_QUEUED`.
    private func expireRequests(now: ContinuousClock.Instant) {
        var affected: Set<String> = []
        for (id, request) in pending where request.deadline <= now {
            if request.worker == nil { affected.insert(request.service) }
            failPending(id, WireError(.timeout, "no answer before the deadline"))
        }
        for name in affected { services[name]?.dropQueued { pending[$0] == nil } }
    }

    /// Takes a request out of `pending` (answered, failed or expired) and out of its client's count.
    @discardableResult
    private func forgetPending(_ id: UInt64) -> PendingRequest? {
        guard let request = pending.removeValue(forKey: id) else { return nil }
        let left = (pendingPerClient[request.clientIdentity] ?? 1) - 1
        pendingPerClient[request.clientIdentity] = left > 0 ? left : nil
        return request
    }

    private func failPending(_ id: UInt64, _ error: WireError) {
        guard let request = forgetPending(id) else { return }
        replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID, error)
    }

    // MARK: Events

    /// An event message from a service: `[topic, CloudEvent JSON, service credential]`. It goes on
    /// (without the credential) to every subscriber whose topic prefix matches, once the credential
    /// is known to be one the operator issued; anything else is dropped, and logged. Events are not
    /// stored here: a subscriber that missed some sees the gap in `sequence` and replays them from
    /// the service (`events.read`).
    private func acceptEvent(_ frames: [Data]) {
        guard frames.count == 3, !frames[0].isEmpty, frames[0].count <= 256,
              let credential = String(data: frames[2], encoding: .utf8), !credential.isEmpty, credential.utf8.count <= 256,
              !credential.utf8.contains(0) else {
            logger.warning("dropped a malformed event message (or one without a service credential)")
            return
        }
        let event = [frames[0], frames[1]]
        switch serviceCredentials.begin(credential, waiter: .event(event), now: clock.now) {
        case .known(.found): publish(event)
        case .known: logger.debug("dropped an event pushed with an unknown or revoked service credential")
        case .waiting: break
        case .startLookup: startCredentialLookup(credential)
        case .refused: logger.warning("dropped an event: too many credentials are being checked at once")
        }
    }

    private func publish(_ event: [Data]) {
        do {
            try eventsOut?.send(event, dontWait: true)
        } catch {
            logger.debug("event dropped", metadata: ["error": "\(error)"])
        }
    }

    // MARK: MMI

    private func handleMMI(identity: Data, service: String, body: [Data]) {
        let answer: Data
        if service == "mmi.service" {
            let asked = body.first.flatMap { String(data: $0, encoding: .utf8) } ?? ""
            let up = asked == TsunaguWire.gatewayService
                || (services[asked]?.workers.contains { workers[$0]?.draining == false } ?? false)
            answer = up ? MDP.mmiFound : MDP.mmiNotFound
        } else {
            answer = MDP.mmiNotImplemented
        }
        sendToClient(identity, service: service, body: [answer])
    }

    // MARK: Sending

    func sendToClient(_ identity: Data, service: String, body: [Data]) {
        do {
            try frontend?.send([identity, Data(), MDP.clientHeader, Data(service.utf8)] + body, dontWait: true)
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

    /// Sends to an instance; false when it was not sent. An instance whose connection is gone
    /// is marked unreachable and removed after the current step.
    @discardableResult
    private func sendToWorker(_ identity: Data, command: MDP.Command, _ rest: [Data] = []) -> Bool {
        do {
            try backend?.send([identity, Data(), MDP.workerHeader, command.frame] + rest, dontWait: true)
            return true
        } catch {
            if error.code == .hostUnreachable, workers[identity] != nil { unreachable.insert(identity) }
            logger.debug("message to an instance not sent", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// A revoked token stops working at once on this gateway: its cached principal is dropped,
    /// and instances registered with it (a service credential) are disconnected.
    func forgetToken(id: String) {
        clientTokens.forget { $0.tokenID == id }
        serviceCredentials.forget { $0.tokenID == id }
        for (identity, worker) in workers where worker.tokenID == id {
            sendToWorker(identity, command: .disconnect)
            removeWorker(identity, reason: "its credential was revoked")
        }
    }

    /// A token made here works at once, even if it was asked for (and unknown) moments ago.
    func tokenCreated() {
        clientTokens.forgetUnknown()
        serviceCredentials.forgetUnknown()
    }
}

import Foundation
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
        /// When set (Z85), every endpoint is a CURVE server with this secret key.
        var curveSecretKey: String?
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
    private(set) var services: [String: ServiceState] = [:]
    private(set) var workers: [Data: WorkerState] = [:]
    private var pending: [UInt64: PendingRequest] = [:]
    private var nextCorrelation: UInt64 = 1
    private var tokenCache: [String: (principal: Principal, expires: ContinuousClock.Instant)] = [:]
    private let encoder = WireCoding.encoder()
    private let decoder = WireCoding.decoder()
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
    }

    // MARK: Lifecycle

    /// Binds both endpoints (so a bind error reaches the caller) and starts the loop thread.
    func start() throws(ZMQError) {
        let frontend = try context.socket(.router)
        let backend = try context.socket(.router)
        let eventsIn = try context.socket(.pull)
        let eventsOut = try context.socket(.pub)
        let sockets = [frontend, backend, eventsIn, eventsOut]
        do {
            for socket in sockets {
                try socket.setLinger(milliseconds: 0)
                try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
                if let key = settings.curveSecretKey { try socket.makeCurveServer(secretKey: Data(key.utf8)) }
            }
            try frontend.setOption(.routerMandatory, Int32(0))
            try backend.setOption(.routerMandatory, Int32(0))
            // A hard cap well above the soft limit: past it libzmq drops the peer; below it the
            // client gets a typed `too_large` reply.
            try frontend.setMaxMessageSize(Int64(max(settings.maxMessageBytes * 4, 65_536)))
            try eventsIn.setMaxMessageSize(Int64(max(settings.maxMessageBytes * 4, 65_536)))
            try frontend.bind(settings.clientEndpoint)
            try backend.bind(settings.workerEndpoint)
            try eventsIn.bind(settings.eventsInEndpoint)
            try eventsOut.bind(settings.eventsOutEndpoint)
        } catch {
            for socket in sockets { try? socket.close() }
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
            for socket in [self.frontend, self.backend, self.eventsIn, self.eventsOut] { try? socket?.close() }
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
        let items: [ZMQPollItem] = [.socket(frontend), .socket(backend), .fileDescriptor(wakeup.readDescriptor), .socket(eventsIn)]

        while !stopRequested.withLock({ $0 }) {
            let now = clock.now
            let ready = try zmqPoll(items, timeoutMs: max(0, min(heartbeatAt - now, sweepAt - now).milliseconds))
            // Drain each socket in bounded batches so neither side can starve the other.
            if ready[1] {
                var count = 0
                while count < 1000, let frames = try backend.receiveIfReady() {
                    handleWorkerMessage(frames)
                    count += 1
                }
            }
            if ready[0] {
                var count = 0
                while count < 1000, let frames = try frontend.receiveIfReady() {
                    handleClientMessage(frames)
                    count += 1
                }
            }
            if ready[3] {
                var count = 0
                while count < 1000, let frames = try eventsIn.receiveIfReady() {
                    fanOut(frames)
                    count += 1
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
            pending[id] = nil
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
                             wrapReply: false, deadline: clock.now + settings.defaultDeadline))
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
        let payload = Array(body.dropFirst(2))
        let received = clock.now
        let captured = envelope
        if let cached = tokenCache[token], cached.expires > received {
            route(identity: identity, service: service, envelope: &envelope, payload: payload, principal: cached.principal, received: received)
            return
        }
        // A cache miss asks the database off the loop thread and resumes here through the mailbox.
        let tokens = self.tokens
        let ttl = settings.tokenCacheTTL
        Task {
            let result: Result<Principal?, Error>
            do { result = .success(try await tokens.principal(for: token)) } catch { result = .failure(error) }
            self.post { broker in
                var envelope = captured
                switch result {
                case .success(let principal?):
                    if broker.tokenCache.count > 10_000 { broker.tokenCache.removeAll() }
                    broker.tokenCache[token] = (principal, broker.clock.now + ttl)
                    broker.route(identity: identity, service: service, envelope: &envelope, payload: payload,
                                 principal: principal, received: received)
                case .success(nil):
                    broker.replyError(to: identity, service: service, requestID: envelope.id,
                                      WireError(.unauthorized, "the token is unknown or revoked"))
                case .failure(let error):
                    broker.logger.warning("token lookup failed", metadata: ["error": "\(error)"])
                    broker.replyError(to: identity, service: service, requestID: envelope.id,
                                      WireError(.unavailable, "cannot check the token now; retry later"))
                }
            }
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
            envelope.deadlineMs = max(0, (deadline - clock.now).milliseconds)
            workerBody = [TsunaguWire.marker, envelope.encoded()] + payload
        } else {
            workerBody = payload.isEmpty ? [Data()] : payload
        }
        admit(PendingRequest(clientIdentity: identity, service: service, requestID: envelope.id, workerBody: workerBody,
                             wrapReply: state.manifest == nil, deadline: deadline))
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
        let id = nextCorrelation
        nextCorrelation &+= 1
        pending[id] = request
        services[request.service]?.queue.append(id)
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
            request.worker = worker
            workers[worker]?.inFlight.insert(id)
            var correlation = id.bigEndian
            let address = Data(bytes: &correlation, count: 8)
            sendToWorker(worker, command: .request, [address, Data()] + request.workerBody)
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
            if known {
                // 7/MDP: READY from a registered worker is a protocol error.
                removeWorker(identity, reason: "sent READY twice")
                sendToWorker(identity, command: .disconnect)
            } else {
                registerWorker(identity, frames: Array(frames[4...]))
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
            if !known { sendToWorker(identity, command: .disconnect) }
        case .disconnect:
            guard known else { return }
            workers[identity]?.draining = true
            if workers[identity]?.inFlight.isEmpty == true { removeWorker(identity, reason: "disconnected") }
        case .request:
            logger.warning("dropped a REQUEST sent by a worker")
        }
    }

    private func registerWorker(_ identity: Data, frames: [Data]) {
        guard let nameFrame = frames.first, let name = String(data: nameFrame, encoding: .utf8), !name.isEmpty,
              !name.hasPrefix(MDP.mmiPrefix), name != TsunaguWire.gatewayService else {
            logger.warning("refused READY with a missing or reserved service name")
            sendToWorker(identity, command: .disconnect)
            return
        }
        var manifest: Manifest?
        if frames.count >= 2 {
            guard let decoded = try? decoder.decode(Manifest.self, from: frames[1]), decoded.service == name,
                  decoded.v == TsunaguWire.version else {
                logger.warning("refused READY with an invalid manifest", metadata: [LogKey.service: "\(name)"])
                sendToWorker(identity, command: .disconnect)
                return
            }
            manifest = decoded
        }
        let state = services[name] ?? ServiceState(name: name)
        if let manifest {
            state.manifest = manifest
            state.operations = Set(manifest.operations.map(\.name))
        } else if state.workers.isEmpty {
            state.manifest = nil
            state.operations = []
        }
        state.workers.append(identity)
        services[name] = state
        workers[identity] = WorkerState(identity: identity, service: name, capacity: max(1, manifest?.concurrency ?? 1),
                                        expiry: clock.now + settings.heartbeatInterval * MDP.liveness)
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
        pending[id] = nil
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
            guard let request = pending[id] else { continue }
            if !request.retried && request.deadline > now {
                request.retried = true
                request.worker = nil
                retry.append(id)
            } else {
                pending[id] = nil
                replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID,
                           WireError(.unavailable, "the instance serving this request stopped"))
            }
        }
        if !retry.isEmpty, let state = services[worker.service] {
            // Retries go to the front: they have waited longest.
            state.queue.replaceSubrange(state.queueHead..<state.queueHead, with: retry)
            if !state.workers.contains(where: { workers[$0]?.draining == false }) {
                for id in retry { failPending(id, WireError(.unavailable, "no instance of \(worker.service) is up")) }
            }
        }
        dispatchQueued(service: worker.service)
    }

    private func expireRequests(now: ContinuousClock.Instant) {
        for (id, request) in pending where request.deadline <= now {
            if let worker = request.worker { workers[worker]?.inFlight.remove(id) }
            failPending(id, WireError(.timeout, "no answer before the deadline"))
        }
    }

    private func failPending(_ id: UInt64, _ error: WireError) {
        guard let request = pending.removeValue(forKey: id) else { return }
        replyError(to: request.clientIdentity, service: request.service, requestID: request.requestID, error)
    }

    // MARK: Events

    /// Sends a service's event on to every subscriber whose topic prefix matches. Events are
    /// not stored here: a subscriber that missed some sees the gap in `sequence` and replays
    /// them from the service (`events.read`).
    private func fanOut(_ frames: [Data]) {
        guard frames.count == 2, !frames[0].isEmpty, frames[0].count <= 256 else {
            logger.warning("dropped a malformed event message")
            return
        }
        do {
            try eventsOut?.send(frames, dontWait: true)
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

    private func sendToWorker(_ identity: Data, command: MDP.Command, _ rest: [Data] = []) {
        do {
            try backend?.send([identity, Data(), MDP.workerHeader, command.frame] + rest, dontWait: true)
        } catch {
            logger.debug("message to an instance dropped", metadata: ["error": "\(error)"])
        }
    }

    /// Drops cached principals of a revoked token so the revocation takes effect at once here.
    func forgetToken(id: String) {
        tokenCache = tokenCache.filter { $0.value.principal.tokenID != id }
    }
}

extension Data {
    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}


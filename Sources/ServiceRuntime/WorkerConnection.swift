import Foundation
import Synchronization
import Logging
import Wire
import ZMQ

/// A request as it arrived from the gateway: the address to answer and the MDP body frames.
public struct WorkerRequest: Sendable {
    /// Opaque correlation frame; the reply must carry it back unchanged (7/MDP "client address").
    public let replyTo: Data
    public let body: [Data]
}

/// The worker side of 7/MDP: one DEALER socket to the gateway, owned by a dedicated thread that
/// registers (READY + manifest), heartbeats, reconnects when the gateway goes silent or tells it
/// to, hands requests to `onRequests` (all that arrived together, as one batch, so the handler side
/// is woken once per batch rather than once per request), and sends replies queued from any thread.
/// - Note: `Sendable`: other threads only touch `outbox`, `events` and `stopRequested` (all locked)
///   and wake the loop through `wakeup`. The sockets never leave the loop thread.
public final class WorkerConnection: @unchecked Sendable {
    public struct Settings: Sendable {
        public var endpoint: String
        public var service: String
        /// Manifest JSON sent after READY; nil makes this a plain 7/MDP worker.
        public var manifest: Data?
        public var heartbeatInterval: Duration
        public var drainTimeout: Duration
        /// The gateway's events-in endpoint, for services that publish events.
        public var eventsEndpoint: String?
        /// The gateway's CURVE public key (Z85); when set, both sockets connect with CURVE.
        public var curveServerKey: String?
        /// Requests run at once, as announced; one more is answered by `onOverload` at once.
        public var maxInFlight: Int
        /// The service credential sent with READY and with every event (a Tsunagu worker needs one).
        public var credential: String?
        /// This process's CURVE key pair; nil makes a throwaway pair per socket.
        public var curveKeyPair: ZMQCurveKeyPair?

        public init(endpoint: String, service: String, manifest: Data?, heartbeatInterval: Duration,
                    drainTimeout: Duration = .seconds(10), eventsEndpoint: String? = nil, curveServerKey: String? = nil,
                    maxInFlight: Int = .max, credential: String? = nil, curveKeyPair: ZMQCurveKeyPair? = nil) {
            self.maxInFlight = maxInFlight
            self.credential = credential
            self.curveKeyPair = curveKeyPair
            self.eventsEndpoint = eventsEndpoint
            self.curveServerKey = curveServerKey
            self.endpoint = endpoint
            self.service = service
            self.manifest = manifest
            self.heartbeatInterval = heartbeatInterval
            self.drainTimeout = drainTimeout
        }
    }

    /// A batch of event messages being handed to the events socket, and whom to tell when it is.
    private struct PendingEvents {
        let messages: [[Data]]
        /// How many of `messages` the socket has taken.
        var sent = 0
        let deadline: ContinuousClock.Instant
        let done: CheckedContinuation<Int, Never>
    }

    /// The most event messages one `publish` call may hand over: the whole queue of events
    /// waiting for the socket is one batch, so it is bounded by this.
    public static let maxEventBatch = 1000

    private struct Shared {
        var outbox: [(replyTo: Data, body: [Data])] = []
        /// At most one batch: its publisher waits for it (backpressure), so nothing piles up here.
        var events: PendingEvents?
        /// Set when the loop has ended: batches are refused from then on.
        var ended = false
        var stopRequested = false
        var failed = false
        var inFlight = 0
        var connects = 0
        /// True while the loop thread runs `onRequests`: replies given then (inline ones) are
        /// sent by the loop right after, so they need no wakeup.
        var dispatching = false
    }

    private let settings: Settings
    private let context: ZMQContext
    private let logger: Logger
    private let onRequests: @Sendable (WorkerConnection, [WorkerRequest]) -> Void
    private let wakeup: WakeupPipe
    private let shared = Mutex(Shared())
    private let finished = DispatchSemaphore(value: 0)

    private let onFailure: @Sendable () -> Void
    private let onOverload: @Sendable ([Data]) -> [Data]

    /// - Parameters:
    ///   - onRequests: called on the loop thread with each batch of requests that arrived together;
    ///     replies it gives at once (`reply(to:body:)`) leave in the same turn of the loop.
    ///   - onFailure: called if the loop dies of a libzmq error (the instance can serve no more).
    ///   - onOverload: makes the reply body for a request past `maxInFlight` from its body.
    public init(settings: Settings, context: ZMQContext, logger: Logger,
                onFailure: @escaping @Sendable () -> Void = {},
                onOverload: @escaping @Sendable ([Data]) -> [Data] = { _ in [] },
                onRequests: @escaping @Sendable (WorkerConnection, [WorkerRequest]) -> Void) throws(ZMQError) {
        self.onFailure = onFailure
        self.onOverload = onOverload
        self.settings = settings
        self.context = context
        self.logger = logger
        self.onRequests = onRequests
        self.wakeup = try WakeupPipe()
    }

    /// Starts the loop on its own thread.
    public func start() {
        let thread = Thread { [self] in
            do { try self.runLoop() } catch {
                self.logger.critical("worker loop failed", metadata: ["error": "\(error)"])
                self.shared.withLock { $0.failed = true }
                self.onFailure()
            }
            let unsent = self.shared.withLock { state -> PendingEvents? in
                state.ended = true
                defer { state.events = nil }
                return state.events
            }
            unsent.map { $0.done.resume(returning: $0.sent) }
            self.finished.signal()
        }
        thread.name = "zmq-worker-\(settings.service)"
        thread.start()
    }

    /// Queues a reply; safe from any thread.
    public func reply(to replyTo: Data, body: [Data]) {
        // Only the first reply into an empty outbox wakes the loop; it drains all that follow.
        let wasEmpty = shared.withLock { state -> Bool in
            state.outbox.append((replyTo, body))
            return state.outbox.count == 1 && !state.dispatching
        }
        if wasEmpty { wakeup.wake() }
    }

    /// Hands event messages (`[topic, CloudEvent JSON]` or a head, without the credential, which
    /// the loop adds) to the gateway's events-in socket, in order, and returns how many the socket
    /// took: all of them, unless `timeout` passed first. A message the socket cannot take now (its
    /// queue is full, or no gateway is connected) waits and is tried again, never dropped; past
    /// `timeout` the rest of the batch is given up (the caller sends it again). Nothing is taken
    /// when there is no events endpoint, the loop has ended, or another batch is still on its way
    /// (one publisher per connection). Safe from any thread.
    public func publish(_ messages: [[Data]], within timeout: Duration) async -> Int {
        precondition(messages.count <= Self.maxEventBatch, "an event batch holds at most \(Self.maxEventBatch) messages")
        guard settings.eventsEndpoint != nil, !messages.isEmpty else { return 0 }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            let accepted = shared.withLock { state -> Bool in
                guard state.events == nil, !state.ended else { return false }
                state.events = PendingEvents(messages: messages, deadline: .now + timeout, done: continuation)
                return true
            }
            if accepted { wakeup.wake() } else { continuation.resume(returning: 0) }
        }
    }

    /// How many times the loop has (re)connected and sent READY; for tests and metrics.
    public var connectCount: Int { shared.withLock { $0.connects } }

    /// Graceful stop: announce DISCONNECT so no new work comes, answer what is in flight (up to
    /// `drainTimeout`), then close. Returns at once; `waitUntilStopped()` waits for the end.
    public func requestStop() {
        shared.withLock { $0.stopRequested = true }
        wakeup.wake()
    }

    /// Returns when the loop thread has ended (after a graceful stop, or when it failed).
    public func waitUntilStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.finished.wait()
                self.finished.signal()  // later waiters return at once too
                continuation.resume()
            }
        }
    }

    /// True when the loop died of a libzmq error.
    public var failed: Bool { shared.withLock { $0.failed } }

    /// `requestStop()`, then `waitUntilStopped()`.
    public func stopAndWait() async {
        requestStop()
        await waitUntilStopped()
    }

    // MARK: The loop (runs on its own thread only)

    private func makeSocket() throws(ZMQError) -> ZMQSocket {
        let socket = try context.socket(.dealer)
        do {
            try socket.setLinger(milliseconds: 0)
            try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
            try makeCurveClient(socket)
            try socket.connect(settings.endpoint)
            var ready = [Data(), MDP.workerHeader, MDP.Command.ready.frame, Data(settings.service.utf8)]
            if let manifest = settings.manifest {
                ready.append(manifest)
                ready.append(Data((settings.credential ?? "").utf8))
            }
            try socket.send(ready)
        } catch {
            try? socket.close()
            throw error
        }
        shared.withLock { $0.connects += 1 }
        logger.info("registered with gateway", metadata: [LogKey.service: "\(settings.service)", "endpoint": "\(settings.endpoint)"])
        return socket
    }

    private func makeCurveClient(_ socket: ZMQSocket) throws(ZMQError) {
        guard let server = settings.curveServerKey else { return }
        if let own = settings.curveKeyPair {
            try socket.makeCurveClient(serverKey: Data(server.utf8), publicKey: Data(own.publicKey.utf8), secretKey: Data(own.secretKey.utf8))
        } else {
            try socket.makeCurveClient(serverKey: server)
        }
    }

    private func runLoop() throws(ZMQError) {
        var socket = try makeSocket()
        defer { try? socket.close() }
        var events: ZMQSocket?
        if let endpoint = settings.eventsEndpoint {
            let push = try context.socket(.push)
            try? push.setLinger(milliseconds: 0)
            try? push.setHighWaterMarks(send: 10_000, receive: 10_000)
            // Queue only on a connection that is up: with no gateway a send waits (and the
            // publisher keeps its cursor) instead of filling a queue nobody may ever read.
            try? push.setOption(.immediate, Int32(1))
            do {
                try makeCurveClient(push)
                try push.connect(endpoint)
            } catch {
                try? push.close()
                throw error
            }
            events = push
        }
        defer { try? events?.close() }
        let interval = settings.heartbeatInterval
        let clock = ContinuousClock()
        var heartbeatAt = clock.now + interval
        var gatewayExpiry = clock.now + interval * MDP.liveness
        var drainDeadline: ContinuousClock.Instant?

        var eventsWaiting = false
        while true {
            let now = clock.now
            var waitMs = max(0, min(heartbeatAt - now, gatewayExpiry - now).milliseconds)
            // A batch the events socket could not take is tried again soon (zmqPoll watches for input only).
            if eventsWaiting { waitMs = min(waitMs, 5) }
            let ready = try zmqPoll([.socket(socket), .fileDescriptor(wakeup.readDescriptor)], timeoutMs: waitMs)

            if ready[0] {
                var batch: [WorkerRequest] = []
                while let (frames, truncated) = try socket.receiveIfReady(maxFrames: MDP.maxFrames) {
                    gatewayExpiry = clock.now + interval * MDP.liveness
                    if truncated {
                        logger.warning("dropped a message of more than \(MDP.maxFrames) frames from the gateway")
                        continue
                    }
                    if handleFromGateway(frames, into: &batch) == .reconnect {
                        logger.info("gateway asked us to reconnect")
                        try? socket.close()
                        socket = try makeSocket()
                        heartbeatAt = clock.now + interval
                    }
                }
                if !batch.isEmpty {
                    // Never more at once than announced: the gateway keeps to it, and anything
                    // else (a retry racing a reply, a peer that is not our gateway) is refused here.
                    let admitted = shared.withLock { state -> Int in
                        let room = max(0, settings.maxInFlight - state.inFlight)
                        let admitted = min(room, batch.count)
                        state.inFlight += admitted
                        return admitted
                    }
                    for request in batch[admitted...] {
                        try send([Data(), MDP.workerHeader, MDP.Command.reply.frame, request.replyTo, Data()] + onOverload(request.body),
                                 on: socket)
                    }
                    if admitted > 0 {
                        shared.withLock { $0.dispatching = true }
                        onRequests(self, Array(batch[..<admitted]))
                        shared.withLock { $0.dispatching = false }
                    }
                }
            }
            if ready[1] { wakeup.drain() }

            let (outgoing, stop, inFlight) = shared.withLock { state -> ([(replyTo: Data, body: [Data])], Bool, Int) in
                let out = state.outbox
                state.outbox.removeAll(keepingCapacity: true)
                state.inFlight -= out.count
                return (out, state.stopRequested, state.inFlight)
            }
            for item in outgoing {
                try send([Data(), MDP.workerHeader, MDP.Command.reply.frame, item.replyTo, Data()] + item.body, on: socket)
            }
            if let events { eventsWaiting = try sendEvents(on: events) }

            if stop {
                if drainDeadline == nil {
                    // Tell the gateway to send nothing new; it keeps waiting for our in-flight replies.
                    try send([Data(), MDP.workerHeader, MDP.Command.disconnect.frame], on: socket)
                    drainDeadline = clock.now + settings.drainTimeout
                    logger.info("draining", metadata: ["in_flight": "\(inFlight)"])
                }
                if inFlight <= 0 || clock.now >= drainDeadline! { return }
            }

            let afterWork = clock.now
            if afterWork >= heartbeatAt {
                try send([Data(), MDP.workerHeader, MDP.Command.heartbeat.frame], on: socket)
                heartbeatAt = afterWork + interval
            }
            if afterWork >= gatewayExpiry && drainDeadline == nil {
                logger.warning("gateway silent; reconnecting", metadata: ["endpoint": "\(settings.endpoint)"])
                try? socket.close()
                socket = try makeSocket()
                heartbeatAt = afterWork + interval
                gatewayExpiry = afterWork + interval * MDP.liveness
            }
        }
    }

    /// Sends without blocking: while the gateway is away the queue fills, and a blocked loop could
    /// neither notice the silence nor reconnect. What cannot be queued is dropped; the gateway
    /// retries or times out the request it belongs to.
    private func send(_ frames: [Data], on socket: ZMQSocket) throws(ZMQError) {
        do {
            try socket.send(frames, dontWait: true)
        } catch where error.code == .wouldBlock {
            logger.debug("gateway queue full; message dropped")
        }
    }

    /// Hands the waiting batch of events to the events socket as far as it takes them; tells the
    /// publisher when all are taken, or when the batch's deadline passed. Returns true while some
    /// still wait.
    private func sendEvents(on socket: ZMQSocket) throws(ZMQError) -> Bool {
        // Only this thread changes a batch once it is set, so it is safe to work on a copy.
        guard var pending = shared.withLock({ $0.events }) else { return false }
        let credential = Data((settings.credential ?? "").utf8)
        var blocked = false
        while pending.sent < pending.messages.count {
            do {
                try socket.send(pending.messages[pending.sent] + [credential], dontWait: true)
            } catch where error.code == .wouldBlock {
                blocked = true
                break
            }
            pending.sent += 1
        }
        let over = !blocked || ContinuousClock.now >= pending.deadline
        shared.withLock { $0.events = over ? nil : pending }
        if over { pending.done.resume(returning: pending.sent) }
        return !over
    }

    private enum Next { case keep, reconnect }

    private func handleFromGateway(_ frames: [Data], into batch: inout [WorkerRequest]) -> Next {
        // [empty, MDPW01, command, ...]
        guard frames.count >= 3, frames[0].isEmpty, frames[1] == MDP.workerHeader, frames[2].count == 1,
              let command = MDP.Command(rawValue: frames[2][frames[2].startIndex]) else {
            logger.warning("dropped a frame with an unknown header from the gateway")
            return .keep
        }
        switch command {
        case .request:
            // [empty, MDPW01, REQUEST, client address, empty, body...]
            guard frames.count >= 5, frames[4].isEmpty else {
                logger.warning("dropped a malformed REQUEST")
                return .keep
            }
            batch.append(WorkerRequest(replyTo: frames[3], body: Array(frames[5...])))
            return .keep
        case .heartbeat:
            return .keep
        case .disconnect:
            return .reconnect
        case .ready, .reply:
            logger.warning("dropped a worker-only command from the gateway")
            return .keep
        }
    }
}

extension Duration {
    /// Whole milliseconds, rounded up so a poll never wakes just before its deadline.
    public var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }
}

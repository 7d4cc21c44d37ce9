import Foundation
internal import CLibZMQ

/// One libzmq socket; owns its handle until `close()`.
/// - Warning: Not thread-safe, like every libzmq socket: one thread owns it, others message it.
public final class ZMQSocket {
    private var handle: UnsafeMutableRawPointer?
    public let kind: ZMQSocketKind

    init(owning handle: UnsafeMutableRawPointer, kind: ZMQSocketKind) {
        self.handle = handle
        self.kind = kind
    }

    deinit { assert(handle == nil, "leaked open ZMQSocket: call close()") }

    public var isClosed: Bool { handle == nil }

    /// Closes the socket. Pending outgoing messages follow the linger option.
    public func close() throws(ZMQError) {
        guard let handle else { throw ZMQError(.socketClosed) }
        self.handle = nil  // give up ownership first
        try zmqCall { zmq_close(handle) }
    }

    /// The pointer, for the duration of `body` only.
    func withUnsafeHandle<T>(_ body: (UnsafeMutableRawPointer) throws(ZMQError) -> T) throws(ZMQError) -> T {
        guard let handle else { throw ZMQError(.socketClosed) }
        return try body(handle)
    }

    public func bind(_ endpoint: String) throws(ZMQError) {
        try withUnsafeHandle { h throws(ZMQError) in _ = try zmqCall { zmq_bind(h, endpoint) } }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        try withUnsafeHandle { h throws(ZMQError) in _ = try zmqCall { zmq_connect(h, endpoint) } }
    }

    public func disconnect(_ endpoint: String) throws(ZMQError) {
        try withUnsafeHandle { h throws(ZMQError) in _ = try zmqCall { zmq_disconnect(h, endpoint) } }
    }

    /// The endpoint actually bound (resolves a `tcp://127.0.0.1:*` wildcard port).
    public func lastEndpoint() throws(ZMQError) -> String {
        try withUnsafeHandle { h throws(ZMQError) in
            var buffer = [CChar](repeating: 0, count: 256)
            var size = buffer.count
            _ = try zmqCall { zmq_getsockopt(h, ZMQ_LAST_ENDPOINT, &buffer, &size) }
            return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    // MARK: Sending

    /// Sends all frames as one multipart message (atomic: all arrive or none).
    /// - Parameter dontWait: throw `.wouldBlock` instead of blocking when the peer queue is full.
    public func send(_ frames: [Data], dontWait: Bool = false) throws(ZMQError) {
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        try withUnsafeHandle { h throws(ZMQError) in
            for (index, frame) in frames.enumerated() {
                var flags: Int32 = index < frames.count - 1 ? ZMQ_SNDMORE : 0
                if dontWait { flags |= ZMQ_DONTWAIT }
                _ = try zmqCall {
                    frame.withUnsafeBytes { raw in zmq_send(h, raw.baseAddress, raw.count, flags) }
                }
            }
        }
    }

    // MARK: Receiving

    /// Receives one whole multipart message.
    /// - Parameter dontWait: throw `.wouldBlock` when nothing is queued instead of blocking.
    public func receive(dontWait: Bool = false) throws(ZMQError) -> [Data] {
        try receive(dontWait: dontWait, maxFrames: Int.max).frames
    }

    /// Receives one whole multipart message, keeping at most `maxFrames` of its frames: the rest
    /// are read and dropped (a message is atomic, so they must be taken off the socket), and
    /// `truncated` says so. A peer cannot make us hold a million frames in memory.
    public func receive(dontWait: Bool = false, maxFrames: Int) throws(ZMQError) -> (frames: [Data], truncated: Bool) {
        try withUnsafeHandle { h throws(ZMQError) in
            var frames: [Data] = []
            frames.reserveCapacity(8)  // a 7/MDP message through the gateway has 6 to 9
            var truncated = false
            var message = zmq_msg_t()
            var first = true
            while true {
                zmq_msg_init(&message)
                defer { zmq_msg_close(&message) }
                let flags: Int32 = (dontWait && first) ? ZMQ_DONTWAIT : 0
                first = false
                let size = try zmqCall { zmq_msg_recv(&message, h, flags) }
                if frames.count >= maxFrames {
                    truncated = true
                } else if size > 0, let data = zmq_msg_data(&message) {
                    frames.append(Data(bytes: data, count: Int(size)))
                } else {
                    frames.append(Data())
                }
                if zmq_msg_more(&message) == 0 { return (frames, truncated) }
            }
        }
    }

    // MARK: Options

    public func setOption(_ option: ZMQOption, _ value: Int32) throws(ZMQError) {
        try withUnsafeHandle { h throws(ZMQError) in
            var v = value
            _ = try zmqCall { zmq_setsockopt(h, option.rawValue, &v, MemoryLayout<Int32>.size) }
        }
    }

    public func setOption(_ option: ZMQOption, _ value: Int64) throws(ZMQError) {
        try withUnsafeHandle { h throws(ZMQError) in
            var v = value
            _ = try zmqCall { zmq_setsockopt(h, option.rawValue, &v, MemoryLayout<Int64>.size) }
        }
    }

    public func setOption(_ option: ZMQOption, _ bytes: Data) throws(ZMQError) {
        try withUnsafeHandle { h throws(ZMQError) in
            _ = try zmqCall {
                bytes.withUnsafeBytes { raw in zmq_setsockopt(h, option.rawValue, raw.baseAddress, raw.count) }
            }
        }
    }

    public func getInt32(_ option: ZMQOption) throws(ZMQError) -> Int32 {
        try withUnsafeHandle { h throws(ZMQError) in
            var v: Int32 = 0
            var size = MemoryLayout<Int32>.size
            _ = try zmqCall { zmq_getsockopt(h, option.rawValue, &v, &size) }
            return v
        }
    }

    /// Milliseconds to keep unsent messages after `close()`; 0 drops them at once.
    public func setLinger(milliseconds: Int32) throws(ZMQError) { try setOption(.linger, milliseconds) }

    /// Queue limits in messages for each direction.
    public func setHighWaterMarks(send: Int32, receive: Int32) throws(ZMQError) {
        try setOption(.sendHighWaterMark, send)
        try setOption(.receiveHighWaterMark, receive)
    }

    /// Largest message in bytes a peer may send; a peer exceeding it is disconnected by libzmq.
    public func setMaxMessageSize(_ bytes: Int64) throws(ZMQError) { try setOption(.maxMessageSize, bytes) }

    /// ZMTP-level heartbeats (keep connections alive through NAT and notice dead TCP peers).
    public func setTransportHeartbeat(intervalMs: Int32, timeoutMs: Int32, ttlMs: Int32) throws(ZMQError) {
        try setOption(.heartbeatInterval, intervalMs)
        try setOption(.heartbeatTimeout, timeoutMs)
        try setOption(.heartbeatTTL, ttlMs)
    }

    /// Makes this socket a CURVE server holding `secretKey` (32 raw bytes or 40 Z85 chars).
    public func makeCurveServer(secretKey: Data) throws(ZMQError) {
        try setOption(.curveServer, Int32(1))
        try setOption(.curveSecretKey, secretKey)
    }

    /// Makes this socket a CURVE client of the server whose Z85 public key is `serverKey`, with a
    /// key pair made for this socket alone (the server authenticates itself; the link is encrypted).
    public func makeCurveClient(serverKey: String) throws(ZMQError) {
        let pair = try ZMQCurveKeyPair.generate()
        try makeCurveClient(serverKey: Data(serverKey.utf8), publicKey: Data(pair.publicKey.utf8), secretKey: Data(pair.secretKey.utf8))
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey`.
    public func makeCurveClient(serverKey: Data, publicKey: Data, secretKey: Data) throws(ZMQError) {
        try setOption(.curveServerKey, serverKey)
        try setOption(.curvePublicKey, publicKey)
        try setOption(.curveSecretKey, secretKey)
    }

    /// The next whole message if one is queued, nil if none is (drains a socket after a poll).
    public func receiveIfReady() throws(ZMQError) -> [Data]? {
        do {
            return try receive(dontWait: true)
        } catch where error.code == .wouldBlock {
            return nil
        }
    }

    /// The next whole message if one is queued, keeping at most `maxFrames` frames.
    public func receiveIfReady(maxFrames: Int) throws(ZMQError) -> (frames: [Data], truncated: Bool)? {
        do {
            return try receive(dontWait: true, maxFrames: maxFrames)
        } catch where error.code == .wouldBlock {
            return nil
        }
    }
}

@available(*, unavailable)
extension ZMQSocket: Sendable {}

/// The socket options the suite uses.
public enum ZMQOption: Int32, Sendable {
    case linger = 17                 // ZMQ_LINGER
    case sendHighWaterMark = 23      // ZMQ_SNDHWM
    case receiveHighWaterMark = 24   // ZMQ_RCVHWM
    case maxMessageSize = 22         // ZMQ_MAXMSGSIZE
    case routingID = 5               // ZMQ_ROUTING_ID
    case subscribe = 6               // ZMQ_SUBSCRIBE
    case routerMandatory = 33        // ZMQ_ROUTER_MANDATORY
    case events = 15                 // ZMQ_EVENTS
    case fd = 14                     // ZMQ_FD
    case reconnectInterval = 18      // ZMQ_RECONNECT_IVL
    case reconnectIntervalMax = 21   // ZMQ_RECONNECT_IVL_MAX
    case immediate = 39              // ZMQ_IMMEDIATE
    case zapDomain = 55              // ZMQ_ZAP_DOMAIN
    case curveServer = 47            // ZMQ_CURVE_SERVER
    case curvePublicKey = 48         // ZMQ_CURVE_PUBLICKEY
    case curveSecretKey = 49         // ZMQ_CURVE_SECRETKEY
    case curveServerKey = 50         // ZMQ_CURVE_SERVERKEY
    case heartbeatInterval = 75      // ZMQ_HEARTBEAT_IVL
    case heartbeatTTL = 76           // ZMQ_HEARTBEAT_TTL
    case heartbeatTimeout = 77       // ZMQ_HEARTBEAT_TIMEOUT
}

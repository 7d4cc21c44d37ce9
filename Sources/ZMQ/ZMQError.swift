internal import CLibZMQ

/// A failure reported by libzmq, or a misuse of this layer that callers can act on.
/// - Note: `Sendable`; a value type.
public struct ZMQError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Base: Sendable, Hashable {
            case wouldBlock, interrupted, terminated, socketClosed, invalidEndpoint, addressInUse, hostUnreachable,
                 tooLarge, notSupported, invalidArgument, other
        }
        fileprivate let base: Base
        /// No message is ready (non-blocking receive) or the peer's queue is full (send).
        public static let wouldBlock = Code(base: .wouldBlock)
        /// A signal arrived during a blocking call; retried by `zmqCall` unless told otherwise.
        public static let interrupted = Code(base: .interrupted)
        /// The context was terminated: close the socket and stop.
        public static let terminated = Code(base: .terminated)
        /// The socket was closed by this process before the call.
        public static let socketClosed = Code(base: .socketClosed)
        /// The endpoint string could not be parsed or its transport is unknown.
        public static let invalidEndpoint = Code(base: .invalidEndpoint)
        /// Another process already listens on the endpoint.
        public static let addressInUse = Code(base: .addressInUse)
        public static let hostUnreachable = Code(base: .hostUnreachable)
        public static let tooLarge = Code(base: .tooLarge)
        public static let notSupported = Code(base: .notSupported)
        public static let invalidArgument = Code(base: .invalidArgument)
        public static let other = Code(base: .other)

        public var description: String {
            switch base {
            case .wouldBlock: "wouldBlock"
            case .interrupted: "interrupted"
            case .terminated: "terminated"
            case .socketClosed: "socketClosed"
            case .invalidEndpoint: "invalidEndpoint"
            case .addressInUse: "addressInUse"
            case .hostUnreachable: "hostUnreachable"
            case .tooLarge: "tooLarge"
            case .notSupported: "notSupported"
            case .invalidArgument: "invalidArgument"
            case .other: "other"
            }
        }
    }

    public let code: Code
    /// The errno libzmq reported, or 0 when the error comes from this layer.
    public let errno: Int32
    public let file: String
    public let line: Int

    public init(_ code: Code, errno: Int32 = 0, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.errno = errno
        self.file = file
        self.line = line
    }

    static func fromErrno(_ value: Int32, file: String = #fileID, line: Int = #line) -> ZMQError {
        let code: Code
        switch value {
        case EAGAIN: code = .wouldBlock
        case EINTR: code = .interrupted
        case ETERM: code = .terminated
        case EADDRINUSE: code = .addressInUse
        case EHOSTUNREACH: code = .hostUnreachable
        case EMSGSIZE: code = .tooLarge
        case EPROTONOSUPPORT, ENOCOMPATPROTO, ENOTSUP: code = .notSupported
        case EINVAL: code = .invalidArgument
        case ENODEV: code = .invalidEndpoint
        default: code = .other
        }
        return ZMQError(code, errno: value, file: file, line: line)
    }

    public var description: String {
        if errno == 0 { return "ZMQError(\(code))" }
        return "ZMQError(\(code), errno \(errno): \(String(cString: zmq_strerror(errno))))"
    }

    public static func == (lhs: ZMQError, rhs: ZMQError) -> Bool { lhs.code == rhs.code && lhs.errno == rhs.errno }
}

/// Runs one libzmq call that returns -1 on failure: reads errno at once, retries EINTR,
/// and traps on ENOTSOCK/EFAULT, which mean this process misused a handle (a bug, not input).
@discardableResult
func zmqCall(retryInterrupted: Bool = true, _ body: () -> Int32) throws(ZMQError) -> Int32 {
    while true {
        let result = body()
        if result != -1 { return result }
        let err = tsunagu_errno()
        if err == EINTR && retryInterrupted { continue }
        precondition(err != ENOTSOCK && err != EFAULT, "libzmq handle misused (errno \(err))")
        throw ZMQError.fromErrno(err)
    }
}

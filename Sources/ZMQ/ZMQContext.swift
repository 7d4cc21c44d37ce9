import Synchronization
internal import CLibZMQ

/// The libzmq context: the I/O threads every socket of a process shares.
/// - Note: `Sendable`: libzmq documents its context as thread-safe. Sockets made from it are not.
/// Terminate it only after every socket is closed: `zmq_ctx_term` waits for them.
public final class ZMQContext: @unchecked Sendable {
    // Invariant: the handle is set once in init and freed once, by whoever flips `terminated` first.
    private let handle: UnsafeMutableRawPointer
    private let terminated = Mutex(false)

    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError.fromErrno(tsunagu_errno()) }
        self.handle = handle
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
    }

    deinit {
        if !terminated.withLock({ $0 }) { zmq_ctx_term(handle) }
    }

    /// Makes a socket of the given kind; the caller owns it and must `close()` it.
    public func socket(_ kind: ZMQSocketKind) throws(ZMQError) -> ZMQSocket {
        guard let raw = zmq_socket(handle, kind.rawValue) else { throw ZMQError.fromErrno(tsunagu_errno()) }
        return ZMQSocket(owning: raw, kind: kind)
    }

    /// Ends the context; blocks until every socket made from it is closed.
    public func terminate() {
        let already = terminated.withLock { value -> Bool in
            defer { value = true }
            return value
        }
        if already { return }
        while zmq_ctx_term(handle) == -1 && tsunagu_errno() == EINTR {}
    }
}

/// The socket kinds the suite uses.
public enum ZMQSocketKind: Int32, Sendable {
    case pair = 0, pub = 1, sub = 2, req = 3, rep = 4, dealer = 5, router = 6, pull = 7, push = 8
}

/// libzmq version as (major, minor, patch).
public func zmqVersion() -> (Int32, Int32, Int32) {
    var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
    zmq_version(&major, &minor, &patch)
    return (major, minor, patch)
}

/// Whether this libzmq was built with CURVE security.
public func zmqHasCurve() -> Bool { zmq_has("curve") != 0 }

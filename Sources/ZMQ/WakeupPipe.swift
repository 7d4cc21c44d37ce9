import Foundation
internal import CLibZMQ

/// A self-pipe that lets any thread wake a thread blocked in `zmqPoll`.
/// - Note: `Sendable`: `wake()` may be called from any thread; `drain()` only from the polling thread.
/// Both descriptors are owned here and closed in `deinit`.
public final class WakeupPipe: @unchecked Sendable {
    // Invariant: descriptors are set once in init and closed once in deinit.
    public let readDescriptor: Int32
    private let writeDescriptor: Int32

    public init() throws(ZMQError) {
        var fds: [Int32] = [0, 0]
        if pipe(&fds) != 0 { throw ZMQError.fromErrno(tsunagu_errno()) }
        readDescriptor = fds[0]
        writeDescriptor = fds[1]
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    deinit {
        Foundation.close(readDescriptor)
        Foundation.close(writeDescriptor)
    }

    /// Wakes the poller. A full pipe already means a wake-up is pending, so EAGAIN is fine.
    public func wake() {
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)
    }

    /// Empties the pipe after the poller woke.
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(readDescriptor, &buffer, buffer.count) > 0 {}
    }
}

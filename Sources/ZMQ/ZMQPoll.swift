internal import CLibZMQ

/// What `zmqPoll` watches: a socket for readability, or a plain file descriptor (a wake-up pipe).
public enum ZMQPollItem {
    case socket(ZMQSocket)
    case fileDescriptor(Int32)
}

/// Waits until one of `items` is readable or `timeoutMs` passes (-1 waits for ever).
/// Returns, per item in order, whether it is readable.
/// - Warning: Call it on the thread that owns the sockets.
public func zmqPoll(_ items: [ZMQPollItem], timeoutMs: Int) throws(ZMQError) -> [Bool] {
    var raw: [zmq_pollitem_t] = []
    raw.reserveCapacity(items.count)
    for item in items {
        switch item {
        case .socket(let socket):
            let pointer = try socket.withUnsafeHandle { h throws(ZMQError) in h }
            raw.append(zmq_pollitem_t(socket: pointer, fd: -1, events: Int16(ZMQ_POLLIN), revents: 0))
        case .fileDescriptor(let fd):
            raw.append(zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0))
        }
    }
    let count = raw.count
    // EINTR is returned, not retried: the caller's loop re-checks its deadline and stop flag.
    do {
        _ = try zmqCall(retryInterrupted: false) { zmq_poll(&raw, Int32(count), timeoutMs) }
    } catch where error.code == .interrupted {
        return Array(repeating: false, count: count)
    }
    return raw.map { ($0.revents & Int16(ZMQ_POLLIN)) != 0 }
}

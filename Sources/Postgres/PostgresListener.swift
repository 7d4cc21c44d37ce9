import Foundation
import Logging
import Synchronization
internal import CLibPQ

/// A connection of its own that LISTENs on one channel, on a thread of its own, and calls
/// `onNotification` with the payloads of the notifications that arrived together. Notifications
/// only wake their receiver early: a listener that is down (the server restarted, the connection
/// broke) connects again with back-off and, once connected, calls `onNotification` with no
/// payloads, since it may have missed some meanwhile.
/// - Note: `Sendable`: its thread owns the `PGconn`; `stopping` is behind a `Mutex`.
public final class PostgresListener: Sendable {
    private let conninfo: String
    private let channel: String
    private let logger: Logger
    private let onNotification: @Sendable ([String]) -> Void
    private let stopping = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)
    /// The longest the thread waits on its socket before it looks at `stopping` again.
    private static let pollMilliseconds: Int32 = 200
    /// At most this many payloads are handed over per call; the rest of a burst is dropped (the
    /// receiver is woken either way).
    private static let maxPayloads = 1000

    /// - Parameter channel: a lower-case SQL identifier (it cannot be bound as a value).
    public init(conninfo: String, channel: String, logger: Logger, onNotification: @escaping @Sendable ([String]) -> Void) {
        precondition(channel.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil, "bad channel name")
        self.conninfo = conninfo
        self.channel = channel
        self.logger = logger
        self.onNotification = onNotification
    }

    /// Starts the listening thread.
    public func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "postgres-listen"
        thread.start()
    }

    /// Stops the thread and closes its connection; returns once both are done.
    public func stop() {
        stopping.withLock { $0 = true }
        finished.wait()
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    private func run() {
        var backoff = 0.1
        while !isStopping {
            let conn = PQconnectdb(conninfo)
            if let conn, PQstatus(conn) == CONNECTION_OK, listen(on: conn) {
                backoff = 0.1
                onNotification([])
                receive(on: conn)
            } else {
                logger.warning("listening for notifications failed; retrying later", metadata: ["db.backoff": "\(backoff) seconds"])
            }
            if let conn { PQfinish(conn) }
            // Back off in short steps, so that a stop is not held up.
            let until = Date().addingTimeInterval(backoff)
            while !isStopping && Date() < until { Thread.sleep(forTimeInterval: 0.05) }
            backoff = min(backoff * 2, 2)
        }
    }

    private func listen(on conn: OpaquePointer) -> Bool {
        tsunagu_pq_silence_notices(conn)
        guard let result = PQexec(conn, "LISTEN \(channel)") else { return false }
        defer { PQclear(result) }
        return PQresultStatus(result) == PGRES_COMMAND_OK
    }

    /// Until the connection breaks or the listener stops.
    private func receive(on conn: OpaquePointer) {
        while !isStopping {
            var socket = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            guard socket.fd >= 0 else { return }
            let ready = poll(&socket, 1, Self.pollMilliseconds)
            if ready < 0 && errno != EINTR { return }
            if ready > 0 {
                guard PQconsumeInput(conn) == 1 else { return }
                var payloads: [String] = []
                while let notification = PQnotifies(conn) {
                    if payloads.count < Self.maxPayloads, let extra = notification.pointee.extra {
                        payloads.append(String(cString: extra))
                    }
                    PQfreemem(notification)
                }
                if !payloads.isEmpty { onNotification(payloads) }
            }
            guard PQstatus(conn) == CONNECTION_OK else { return }
        }
    }
}

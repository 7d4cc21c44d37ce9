import Foundation
import Logging

/// A bounded set of connections, each owned by its own thread, so that blocking libpq calls never
/// run on Swift's cooperative pool. A connection that breaks is dropped and made again on the next
/// job, with back-off: while the server is down, jobs fail at once with a connectivity error.
/// The queue of jobs waiting for a connection is bounded (`maxWaiting`; past it a job fails at
/// once with `poolBusy`), and a job that has waited until its deadline (or `waitTimeout`) fails
/// with `waitTimedOut` without running.
/// - Note: `Sendable`: the job queue is guarded by `condition`; each connection is confined to its thread.
public final class PostgresPool: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var conninfo: String
        public var size: Int
        /// First wait after a failed connect; doubles up to `maxBackoff`.
        public var initialBackoff: Duration
        public var maxBackoff: Duration
        /// Jobs that may wait for a connection at once.
        public var maxWaiting: Int
        /// The longest a job waits for a connection when it has no earlier deadline.
        public var waitTimeout: Duration

        public init(conninfo: String, size: Int = 4, initialBackoff: Duration = .milliseconds(100),
                    maxBackoff: Duration = .seconds(2), maxWaiting: Int = 1000, waitTimeout: Duration = .seconds(10)) {
            self.conninfo = conninfo
            self.size = max(1, size)
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.maxWaiting = max(1, maxWaiting)
            self.waitTimeout = waitTimeout
        }
    }

    private struct Job {
        let run: (PostgresConnection?, PostgresError?) -> Void
        let deadline: ContinuousClock.Instant
    }

    private let configuration: Configuration
    private let logger: Logger
    // Guards `jobs`, `shuttingDown` and `running`.
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var shuttingDown = false
    private var running = 0
    // Shared back-off: after one thread fails to connect, all wait out the same window.
    private let backoffLock = NSLock()
    private var backoffUntil: ContinuousClock.Instant?
    private var backoffNext: Duration

    public init(_ configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.backoffNext = configuration.initialBackoff
        for index in 0..<configuration.size {
            let thread = Thread { [self] in self.runWorker() }
            thread.name = "postgres-\(index)"
            running += 1
            thread.start()
        }
        let sweeper = Thread { [self] in self.runSweeper() }
        sweeper.name = "postgres-sweeper"
        running += 1
        sweeper.start()
    }

    /// Runs `body` with a connection on one of the pool's threads.
    /// Throws a connectivity `PostgresError` at once while the database is unreachable, `poolBusy`
    /// when too many jobs wait already, and `waitTimedOut` when no connection was free before
    /// `deadline` (or the pool's `waitTimeout`, whichever comes first).
    public func withConnection<T: Sendable>(
        deadline: ContinuousClock.Instant? = nil,
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        let waitUntil = min(deadline ?? .now + configuration.waitTimeout, .now + configuration.waitTimeout)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let job = Job(run: { connection, failure in
                guard let connection else {
                    continuation.resume(throwing: failure ?? PostgresError(.unavailable))
                    return
                }
                do { continuation.resume(returning: try body(connection)) } catch { continuation.resume(throwing: error) }
            }, deadline: waitUntil)
            condition.lock()
            if shuttingDown {
                condition.unlock()
                continuation.resume(throwing: PostgresError(.poolShutDown))
                return
            }
            guard jobs.count < configuration.maxWaiting else {
                condition.unlock()
                continuation.resume(throwing: PostgresError(.poolBusy))
                return
            }
            jobs.append(job)
            condition.signal()
            condition.unlock()
        }
    }

    /// Runs `body` in a transaction on one of the pool's connections.
    public func withTransaction<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await withConnection { connection in try connection.withTransaction(body) }
    }

    /// `shutdown()` from async code: it waits for the pool's threads, so it runs on a thread of
    /// its own, never blocking the cooperative pool.
    public func shutdownInBackground() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.shutdown()
                continuation.resume()
            }
        }
    }

    /// Stops taking jobs, lets queued ones finish, closes every connection and waits for the threads.
    public func shutdown() {
        condition.lock()
        shuttingDown = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    private func nextJob() -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while jobs.isEmpty && !shuttingDown { condition.wait() }
        if jobs.isEmpty { return nil }
        return jobs.removeFirst()
    }

    /// Fails jobs that waited past their deadline, ten times a second, until shutdown. It sleeps
    /// rather than waiting on `condition`, so a `signal()` meant for a connection thread never
    /// wakes it instead.
    private func runSweeper() {
        while true {
            Thread.sleep(forTimeInterval: 0.1)
            condition.lock()
            if shuttingDown { break }
            let now = ContinuousClock.now
            guard jobs.contains(where: { $0.deadline <= now }) else {
                condition.unlock()
                continue
            }
            let expired = jobs.filter { $0.deadline <= now }
            jobs.removeAll { $0.deadline <= now }
            condition.unlock()
            for job in expired { job.run(nil, PostgresError(.waitTimedOut)) }
        }
        running -= 1
        condition.broadcast()
        condition.unlock()
    }

    private func runWorker() {
        var connection: PostgresConnection?
        while let job = nextJob() {
            if let existing = connection, !existing.isHealthy {
                existing.close()
                connection = nil
            }
            if connection == nil {
                switch connect() {
                case .success(let made): connection = made
                case .failure(let error):
                    job.run(nil, error)
                    continue
                }
            }
            job.run(connection, nil)
        }
        connection?.close()
        condition.lock()
        running -= 1
        condition.broadcast()
        condition.unlock()
    }

    private func connect() -> Result<PostgresConnection, PostgresError> {
        let now = ContinuousClock.now
        if let until = backoffLock.withLock({ backoffUntil }), now < until {
            return .failure(PostgresError(.unavailable))
        }
        do {
            let connection = try PostgresConnection(conninfo: configuration.conninfo)
            backoffLock.withLock {
                backoffUntil = nil
                backoffNext = configuration.initialBackoff
            }
            return .success(connection)
        } catch {
            let wait = backoffLock.withLock { () -> Duration in
                let wait = backoffNext
                backoffUntil = now + wait
                backoffNext = min(wait * 2, configuration.maxBackoff)
                return wait
            }
            logger.warning("database connect failed; retrying later", metadata: [
                "db.error": "\(error)", "db.backoff": "\(wait)",
            ])
            return .failure(error)
        }
    }
}

import Foundation
import Logging
import Postgres
import ServiceLifecycle
import UnixSignals

/// How every Tsunagu process runs: one `ServiceGroup` whose services start in the order given
/// and stop in reverse on SIGTERM or SIGINT (graceful shutdown: stop taking work, drain, close).
/// A second SIGTERM or SIGINT while stopping ends the process at once (exit status 130), for a
/// stop that hangs.
public enum TsunaguLifecycle {
    /// Every Tsunagu `@main`: runs `body` in a task while the main thread waits, then exits with
    /// status 0, or 1 after printing the error as `program: error`.
    ///
    /// A synchronous main instead of `static func main() async`: Swift's async main parks the
    /// main thread in libdispatch's signal thread (`sigsuspend`), which Valgrind 3.19 (Debian 12)
    /// cannot run; with this entry, `valgrind --tool=callgrind` runs the gateway, and
    /// `deploy/bench.sh` counts its instructions per request.
    public static func main(_ program: String, _ body: @escaping @Sendable () async throws -> Void) -> Never {
        let finished = DispatchSemaphore(value: 0)
        Task {
            do { try await body() } catch {
                FileHandle.standardError.write(Data("\(program): \(error)\n".utf8))
                exit(1)
            }
            finished.signal()
        }
        finished.wait()
        exit(0)
    }

    public static func run(_ services: [any Service], logger: Logger) async throws {
        let group = ServiceGroup(configuration: .init(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        let forcedExit = Task {
            var seen = 0
            for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                seen += 1
                if seen >= 2 {
                    logger.critical("second signal while stopping: exiting now", metadata: ["signal": "\(signal)"])
                    exit(130)
                }
            }
        }
        defer { forcedExit.cancel() }
        try await group.run()
    }
}

/// The connection pool as a lifecycle service: it is there from the start and closed last, after
/// every service that uses it has drained.
public struct PostgresPoolService: Service {
    public let pool: PostgresPool

    public init(_ pool: PostgresPool) { self.pool = pool }

    public func run() async throws {
        try? await gracefulShutdown()
        await pool.shutdownInBackground()
    }
}

/// A `PostgresListener`'s thread, from start to graceful shutdown.
public struct PostgresListenerService: Service {
    public let listener: PostgresListener

    public init(_ listener: PostgresListener) { self.listener = listener }

    public func run() async throws {
        listener.start()
        try? await gracefulShutdown()
        // `stop` waits for the thread (at most one socket poll): not on the cooperative pool.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                listener.stop()
                done.resume()
            }
        }
    }
}

/// A service's connection to the gateway: registers, serves until graceful shutdown, then sends
/// DISCONNECT, answers what it holds and closes. A message loop that dies ends the group with an
/// error (`MessageLoopFailure`), so the process exits with an error status instead of idling.
public struct WorkerConnectionService: Service {
    public let connection: WorkerConnection

    public init(_ connection: WorkerConnection) { self.connection = connection }

    public func run() async throws {
        connection.start()
        await withGracefulShutdownHandler {
            await connection.waitUntilStopped()
        } onGracefulShutdown: {
            connection.requestStop()
        }
        if connection.failed { throw MessageLoopFailure() }
    }
}

/// A periodic task (the outbox publisher, the idempotency purge) that ends when graceful
/// shutdown begins.
public struct PeriodicService: Service {
    public let name: String
    private let work: @Sendable () async -> Void

    public init(name: String, _ work: @escaping @Sendable () async -> Void) {
        self.name = name
        self.work = work
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await work() }
    }
}

/// A process's ZeroMQ message loop died; it stopped and exits with an error status.
public struct MessageLoopFailure: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the message loop failed (see the log above)" }
}

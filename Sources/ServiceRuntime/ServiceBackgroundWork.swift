import Logging
import Postgres
import ServiceLifecycle

/// Work of a service's own that runs in the background while the instance serves (a sweep, a
/// migration of stored data), like the runtime's idempotency purge: a lifecycle service of its
/// own next to the connection to the gateway, so it never delays serving, cancelled when graceful
/// shutdown begins, before the pool closes. The work checks `Task.isCancelled` between its steps
/// and keeps each step short (one bounded transaction), so a stop never waits long for it. It may
/// return when it is done; the instance serves on. Run only for a service with a database.
/// - Note: `Sendable`; immutable.
public struct ServiceBackgroundWork: Sendable {
    public let name: String
    let work: @Sendable (PostgresPool, Logger) async -> Void

    /// `work` gets the service's connection pool and logger.
    public init(name: String, _ work: @escaping @Sendable (_ database: PostgresPool, _ logger: Logger) async -> Void) {
        self.name = name
        self.work = work
    }
}

/// A `ServiceBackgroundWork` as a lifecycle service.
struct BackgroundWorkService: Service {
    let work: ServiceBackgroundWork
    let database: PostgresPool
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await work.work(database, logger) }
        // Done before the shutdown: wait for it, since a service that returns ends the whole group.
        try? await gracefulShutdown()
    }
}

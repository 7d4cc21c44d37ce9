import Foundation
import Synchronization
import Gateway
import Logging
import Postgres
import ServiceRuntime
import ZMQ

/// A real gateway and real service instances in the test's own process: sockets on loopback
/// ports picked at start, routing, token checks and service credentials in PostgreSQL, the
/// service's dispatcher behind its worker connection. For tests of the path between a client and
/// a service without starting processes; `deploy/test.sh`'s integration tests start the processes.
public final class InProcessGateway: Sendable {
    public let gateway: RunningGateway
    private let pool: PostgresPool
    private let context: ZMQContext
    private let connections = Mutex<[WorkerConnection]>([])

    /// Starts a gateway whose tokens live in the database at `databaseURL` (its `gateway` schema
    /// is migrated); `settings` adds or overrides configuration (`TSUNAGU_*` keys).
    public init(databaseURL: String, settings: [String: String] = [:], logger: Logger) async throws {
        var values = [
            "TSUNAGU_DATABASE_URL": databaseURL, "TSUNAGU_DB_POOL_SIZE": "2",
            "TSUNAGU_CLIENT_ENDPOINT": "tcp://127.0.0.1:*", "TSUNAGU_WORKER_ENDPOINT": "tcp://127.0.0.1:*",
            "TSUNAGU_EVENTS_IN_ENDPOINT": "tcp://127.0.0.1:*", "TSUNAGU_EVENTS_OUT_ENDPOINT": "tcp://127.0.0.1:*",
            "TSUNAGU_HEARTBEAT_MS": "200",
        ]
        values.merge(settings) { $1 }
        let configuration = try Configuration(environment: values)
        pool = PostgresPool(try configuration.databasePool(), logger: logger)
        context = try ZMQContext()
        do {
            gateway = try await RunningGateway.start(configuration, pool: pool, logger: logger)
        } catch {
            context.terminate()
            pool.shutdown()
            throw error
        }
    }

    /// Runs `definition` as one instance registered with this gateway (with a credential issued
    /// for it), and waits until the gateway routes to it.
    @discardableResult
    public func serve(_ definition: ServiceDefinition, database: PostgresPool? = nil, concurrency: Int = 16,
                      logger: Logger) async throws -> WorkerConnection {
        let credential = try await gateway.issueServiceCredential(definition.name)
        let connection = try ServiceRunner.serve(definition, database: database, context: context, endpoint: gateway.endpoints.worker,
                                                 heartbeatInterval: .milliseconds(200), concurrency: concurrency, logger: logger,
                                                 credential: credential)
        connections.withLock { $0.append(connection) }
        return connection
    }

    /// Stops the instances (gracefully), then the gateway, then closes the pool.
    public func stop() async {
        for connection in connections.withLock({ $0 }) { await connection.stopAndWait() }
        await gateway.stop()
        context.terminate()
        await pool.shutdownInBackground()
    }
}

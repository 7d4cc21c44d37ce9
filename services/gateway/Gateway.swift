import Foundation
import Logging
import ServiceLifecycle
import Postgres
import ServiceRuntime
import Wire
import ZMQ

/// The gateway process: binds the client and worker endpoints, authenticates, routes, balances.
/// tsunagu-gateway's `main` is `GatewayServer.main()`; tests run one in process with
/// `RunningGateway` (TsunaguTesting's `InProcessGateway`).
public enum GatewayServer {
    public static func main() -> Never {
        TsunaguLifecycle.main("tsunagu-gateway") {
            let configuration = try Configuration()
            LoggingBootstrap.bootstrap(level: configuration.logLevel)
            try await run(configuration)
        }
    }

    static func run(_ configuration: Configuration) async throws {
        let logger = Logger(label: "tsunagu.gateway")
        let pool = PostgresPool(try configuration.databasePool(), logger: logger)
        do {
            try await prepare(configuration, pool: pool, logger: logger)
        } catch {
            pool.shutdown()
            throw error
        }
        if CommandLine.arguments.contains("--migrate-only") {
            pool.shutdown()
            return
        }
        let settings: Broker.Settings
        do { settings = try brokerSettings(configuration, logger: logger) } catch {
            pool.shutdown()
            throw error
        }
        let context = try ZMQContext(ioThreads: Int32(try configuration.int("TSUNAGU_IO_THREADS", default: 1, range: 1...16)))
        defer { context.terminate() }
        let broker = try Broker(settings: settings, context: context, tokens: TokenStore(database: pool), logger: logger)
        // Started in this order, stopped in reverse: the pool outlives the broker's last lookup.
        try await TsunaguLifecycle.run([PostgresPoolService(pool), BrokerService(broker: broker)], logger: logger)
        logger.info("stopped")
    }

    /// Migrations and the first admin token, before anything listens.
    public static func prepare(_ configuration: Configuration, pool: PostgresPool, logger: Logger) async throws {
        let definition = ServiceDefinition(name: "gateway", version: gatewayVersion, schema: "gateway",
                                           migrations: try ServiceRunner.bundledMigrations(in: .module), operations: [])
        try await ServiceRunner.migrate(definition, pool: pool, logger: logger)
        if CommandLine.arguments.contains("--migrate-only") { return }

        let tokens = TokenStore(database: pool)
        if let admin = configuration.optionalString("TSUNAGU_ADMIN_TOKEN") {
            guard admin.count >= 16 else {
                throw ConfigurationError(key: "TSUNAGU_ADMIN_TOKEN", message: "must be at least 16 characters")
            }
            try await tokens.ensureBootstrapAdmin(token: admin)
        } else {
            logger.notice("TSUNAGU_ADMIN_TOKEN is not set: no first admin token was installed")
        }
    }

    static func brokerSettings(_ configuration: Configuration, logger: Logger) throws -> Broker.Settings {
        let settings = Broker.Settings(
            clientEndpoint: configuration.clientEndpoint,
            workerEndpoint: configuration.workerEndpoint,
            eventsInEndpoint: configuration.eventsInEndpoint,
            eventsOutEndpoint: configuration.eventsOutEndpoint,
            heartbeatInterval: try configuration.heartbeatInterval(),
            maxMessageBytes: try configuration.maxMessageBytes(),
            defaultDeadline: .milliseconds(try configuration.int("TSUNAGU_DEFAULT_DEADLINE_MS", default: 30_000, range: 1...3_600_000)),
            maxDeadline: .milliseconds(try configuration.int("TSUNAGU_MAX_DEADLINE_MS", default: 600_000, range: 1...86_400_000)),
            openServices: Set(configuration.list("TSUNAGU_OPEN_SERVICES")),
            maxQueuedPerService: try configuration.int("TSUNAGU_MAX_QUEUED", default: 10_000, range: 1...10_000_000),
            tokenCacheTTL: .milliseconds(try configuration.int("TSUNAGU_TOKEN_CACHE_MS", default: 30_000, range: 0...3_600_000)),
            tokenNegativeTTL: .milliseconds(try configuration.int("TSUNAGU_TOKEN_NEGATIVE_CACHE_MS", default: 2_000, range: 0...600_000)),
            maxTokenLookups: try configuration.int("TSUNAGU_MAX_TOKEN_LOOKUPS", default: 4, range: 1...64),
            maxQueuedTokenLookups: try configuration.int("TSUNAGU_MAX_QUEUED_TOKEN_LOOKUPS", default: 256, range: 0...100_000),
            curveSecretKey: try configuration.gatewayCurveSecretKey(),
            zap: try configuration.curveAllowedKeys().map { ZAPHandler(allowedServiceKeys: $0) },
            maxReplyBytes: try configuration.maxReplyBytes(),
            clientHighWaterMark: Int32(try configuration.int("TSUNAGU_CLIENT_HWM", default: 1000, range: 1...1_000_000)),
            maxPendingPerClient: try configuration.int("TSUNAGU_MAX_PENDING_PER_CLIENT", default: 256, range: 1...1_000_000),
            drainTimeout: .milliseconds(try configuration.int("TSUNAGU_DRAIN_TIMEOUT_MS", default: 10_000, range: 0...600_000)),
            eventsHeartbeatInterval: .milliseconds(try configuration.int("TSUNAGU_EVENTS_HEARTBEAT_MS", default: 1000, range: 10...600_000)),
            maxSubscribers: try configuration.int("TSUNAGU_MAX_SUBSCRIBERS", default: 1000, range: 1...1_000_000),
            subscriberHighWaterMark: Int32(try configuration.int("TSUNAGU_SUBSCRIBER_HWM", default: 10_000, range: 1...1_000_000))
        )
        if settings.curveSecretKey != nil && settings.zap == nil {
            logger.warning("CURVE is on without an allow-list (TSUNAGU_CURVE_ALLOWED_KEYS): any key may connect as a service; service credentials still apply")
        }
        return settings
    }
}

/// The broker as a lifecycle service: binds and starts at `run()`, stops on graceful shutdown, and
/// ends the group with an error if its loop dies (the process exits with an error status).
struct BrokerService: Service {
    let broker: Broker

    func run() async throws {
        _ = try broker.start()
        let settings = broker.settings
        broker.logger.info("gateway listening", metadata: [
            "curve": "\(settings.curveSecretKey != nil)", "clients": "\(settings.clientEndpoint)", "workers": "\(settings.workerEndpoint)",
            "events.in": "\(settings.eventsInEndpoint)", "events.out": "\(settings.eventsOutEndpoint)",
        ])
        await withGracefulShutdownHandler {
            await broker.waitUntilStopped()
        } onGracefulShutdown: {
            broker.requestStop()
        }
        if broker.hasFailed { throw MessageLoopFailure() }
    }
}

/// A gateway running in this process, on its own thread, until `stop()`: what tests use to put a
/// real gateway (sockets, routing, tokens in PostgreSQL) between a client and a service without
/// starting a process. Endpoints given as `tcp://127.0.0.1:*` are bound to free ports;
/// `endpoints` says which.
public final class RunningGateway: Sendable {
    public struct Endpoints: Sendable {
        public let client: String
        public let worker: String
        public let eventsIn: String
        public let eventsOut: String
    }

    public let endpoints: Endpoints
    private let broker: Broker
    private let context: ZMQContext
    private let tokens: TokenStore

    /// Migrates, installs `TSUNAGU_ADMIN_TOKEN` when set, binds and starts routing. The pool stays
    /// the caller's: close it after `stop()`.
    public static func start(_ configuration: Configuration, pool: PostgresPool, logger: Logger) async throws -> RunningGateway {
        try await GatewayServer.prepare(configuration, pool: pool, logger: logger)
        let settings = try GatewayServer.brokerSettings(configuration, logger: logger)
        let context = try ZMQContext()
        do {
            let broker = try Broker(settings: settings, context: context, tokens: TokenStore(database: pool), logger: logger)
            let bound = try broker.start()
            return RunningGateway(broker: broker, context: context, tokens: TokenStore(database: pool), endpoints: bound)
        } catch {
            context.terminate()
            throw error
        }
    }

    private init(broker: Broker, context: ZMQContext, tokens: TokenStore, endpoints: Endpoints) {
        self.broker = broker
        self.context = context
        self.tokens = tokens
        self.endpoints = endpoints
    }

    /// A new credential for instances of `service` (what `tsunagu token create --service` issues).
    public func issueServiceCredential(_ service: String) async throws -> String {
        try await tokens.issueService(service, label: "issued in process").token
    }

    /// A new bearer token of `tenant` with `roles` (and explicit event permissions, when given).
    public func issueToken(tenant: String, roles: [String], events: EventPermissions? = nil) async throws -> String {
        try await tokens.issue(tenant: tenant, roles: roles, label: "issued in process", events: events).token
    }

    /// A graceful stop, as on SIGTERM: accepted requests are answered (up to the drain timeout),
    /// then the workers are told and the sockets closed.
    public func stop() async {
        await broker.stopAndWait()
        context.terminate()
    }
}

import Foundation
import Logging
import Postgres
import ServiceRuntime
import ZMQ

/// tsunagu-gateway: binds the client and worker endpoints, authenticates, routes, balances.
@main
enum GatewayMain {
    static func main() async {
        do {
            let configuration = try Configuration()
            LoggingBootstrap.bootstrap(level: configuration.logLevel)
            try await run(configuration)
        } catch {
            FileHandle.standardError.write(Data("tsunagu-gateway: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run(_ configuration: Configuration) async throws {
        let logger = Logger(label: "tsunagu.gateway")
        let signals = ShutdownSignal()
        let pool = PostgresPool(try configuration.databasePool(), logger: logger)
        defer { pool.shutdown() }
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
            maxPendingPerClient: try configuration.int("TSUNAGU_MAX_PENDING_PER_CLIENT", default: 256, range: 1...1_000_000)
        )
        if settings.curveSecretKey != nil && settings.zap == nil {
            logger.warning("CURVE is on without an allow-list (TSUNAGU_CURVE_ALLOWED_KEYS): any key may connect as a service; service credentials still apply")
        }
        let context = try ZMQContext(ioThreads: Int32(try configuration.int("TSUNAGU_IO_THREADS", default: 1, range: 1...16)))
        defer { context.terminate() }
        let broker = try Broker(settings: settings, context: context, tokens: tokens, logger: logger,
                                onFailure: { signals.fail() })
        try broker.start()
        logger.info("gateway listening", metadata: ["curve": "\(settings.curveSecretKey != nil)","clients": "\(settings.clientEndpoint)", "workers": "\(settings.workerEndpoint)",
                                                    "events.in": "\(settings.eventsInEndpoint)", "events.out": "\(settings.eventsOutEndpoint)"])
        let received = await signals.wait()
        logger.info("stopping", metadata: ["signal": "\(received)"])
        await broker.stopAndWait()
        logger.info("stopped")
        if received == ShutdownSignal.failure { throw MessageLoopFailure() }
    }
}

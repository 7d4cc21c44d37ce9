import Foundation
import Logging
import Postgres
import ServiceLifecycle
import Wire
import ZMQ

/// Runs a service: migrate its schema, register with the gateway, serve until SIGTERM/SIGINT,
/// then drain and stop. Every service's `@main` is one call to `ServiceRunner.main`.
public enum ServiceRunner {
    public static func main(_ makeDefinition: @escaping @Sendable () throws -> ServiceDefinition) -> Never {
        TsunaguLifecycle.main("tsunagu") {
            let definition = try makeDefinition()
            let unbounded = definition.unboundedInputs()
            guard unbounded.isEmpty else {
                throw ConfigurationError(key: "operations", message: "input schemas must bound every value:\n  " + unbounded.joined(separator: "\n  "))
            }
            let configuration = try Configuration()
            LoggingBootstrap.bootstrap(level: configuration.logLevel)
            let migrateOnly = CommandLine.arguments.contains("--migrate-only")
            try await run(definition, configuration: configuration, migrateOnly: migrateOnly)
        }
    }

    /// The process, as lifecycle services started in this order and stopped in reverse: the
    /// database pool (after the migrations ran, as a prelude, before any message is taken), the
    /// connection to the gateway, the event publisher (with its own one-connection pool), the
    /// idempotency purge and the service's own background work.
    public static func run(_ definition: ServiceDefinition, configuration: Configuration, migrateOnly: Bool) async throws {
        var logger = Logger(label: "tsunagu.\(definition.name)")
        logger[metadataKey: LogKey.service] = "\(definition.name)"
        guard definition.schema != nil || !definition.operations.contains(where: { $0.kind == .write }) else {
            throw ConfigurationError(key: "operations", message: "write operations need a database: give the definition a schema")
        }
        if let events = definition.events, events.name != definition.name || events.schema != definition.schema {
            throw ConfigurationError(key: "events", message: "the event stream is named after the service and lives in its schema")
        }
        let pool = definition.schema == nil ? nil : PostgresPool(try configuration.databasePool(), logger: logger)
        do {
            if let pool { try await migrate(definition, pool: pool, logger: logger) }
            if migrateOnly {
                pool?.shutdown()
                return
            }
        } catch {
            pool?.shutdown()
            throw error
        }
        let context = try ZMQContext()
        defer { context.terminate() }
        let connection: WorkerConnection
        let limits: RequestDispatcher.Limits
        do {
            guard let credential = configuration.serviceToken else {
                throw ConfigurationError(key: "TSUNAGU_SERVICE_TOKEN",
                                         message: "is not set: the gateway registers no instance without the credential the operator issued for \(definition.name) (tsunagu token create --service \(definition.name))")
            }
            let concurrency = try configuration.int("TSUNAGU_CONCURRENCY", default: 32, range: 1...10_000)
            limits = RequestDispatcher.Limits(
                maxReplyBytes: try configuration.maxReplyBytes(),
                idempotencyRetention: .seconds(try configuration.int("TSUNAGU_IDEMPOTENCY_RETENTION_S", default: 86_400,
                                                                      range: 1...31_536_000)))
            connection = try makeConnection(
                definition, database: pool, context: context, endpoint: configuration.workerEndpoint,
                heartbeatInterval: try configuration.heartbeatInterval(), concurrency: concurrency, logger: logger,
                eventsEndpoint: definition.events == nil ? nil : configuration.eventsInEndpoint,
                curveServerKey: try configuration.gatewayCurvePublicKey(), curveKeyPair: try configuration.curveKeyPair(),
                credential: credential, limits: limits,
                testsOnlyReplyDelay: .milliseconds(try configuration.int("TSUNAGU_TESTS_ONLY_REPLY_DELAY_MS", default: 0, range: 0...60_000)))
        } catch {
            pool?.shutdown()
            throw error
        }

        // The publisher's own connection: its session holds the lock that makes it the one publisher.
        let publisherPool: PostgresPool?
        let headInterval: Duration
        let pollInterval: Duration
        do {
            headInterval = .milliseconds(try configuration.int("TSUNAGU_EVENTS_HEAD_INTERVAL_MS", default: 1000, range: 10...60_000))
            pollInterval = .milliseconds(try configuration.int("TSUNAGU_EVENTS_POLL_MS", default: 1000, range: 10...600_000))
            publisherPool = definition.events == nil || pool == nil ? nil
                : PostgresPool(.init(conninfo: configuration.databaseURL, size: 1), logger: logger)
        } catch {
            pool?.shutdown()
            throw error
        }

        var services: [any Service] = []
        if let pool { services.append(PostgresPoolService(pool)) }
        services.append(WorkerConnectionService(connection))
        if let events = definition.events, let publisherPool {
            let publisher = EventPublisher(stream: events, connection: connection, database: publisherPool, logger: logger,
                                           headInterval: headInterval, pollInterval: pollInterval)
            services.append(PostgresPoolService(publisherPool))
            services.append(PostgresListenerService(publisher.listener(conninfo: configuration.databaseURL)))
            services.append(PeriodicService(name: "event publisher") { await publisher.run() })
        }
        if let pool, let schema = definition.schema {
            let purgeLogger = logger
            let writes = WriteRunner(schema: schema, retention: limits.idempotencyRetention)
            services.append(PeriodicService(name: "idempotency purge") {
                await purgeIdempotencyRecords(writes, database: pool, logger: purgeLogger)
            })
        }
        if let pool {
            services += definition.backgroundWork.map { BackgroundWorkService(work: $0, database: pool, logger: logger) as any Service }
        }
        logger.info("serving", metadata: ["version": "\(definition.version)", "gateway": "\(configuration.workerEndpoint)"])
        try await TsunaguLifecycle.run(services, logger: logger)
        logger.info("stopped")
    }

    /// Connects a service's operations to the gateway and starts serving; the caller stops it
    /// (`stopAndWait()`). For tools and tests that run a service without the lifecycle.
    public static func serve(_ definition: ServiceDefinition, database: PostgresPool?, context: ZMQContext, endpoint: String,
                             heartbeatInterval: Duration, concurrency: Int, logger: Logger, eventsEndpoint: String? = nil,
                             curveServerKey: String? = nil, curveKeyPair: ZMQCurveKeyPair? = nil, credential: String?,
                             limits: RequestDispatcher.Limits = .init()) throws -> WorkerConnection {
        let connection = try makeConnection(definition, database: database, context: context, endpoint: endpoint,
                                            heartbeatInterval: heartbeatInterval, concurrency: concurrency, logger: logger,
                                            eventsEndpoint: eventsEndpoint, curveServerKey: curveServerKey, curveKeyPair: curveKeyPair,
                                            credential: credential, limits: limits)
        connection.start()
        return connection
    }

    /// The connection of a service's operations to the gateway, not yet started.
    static func makeConnection(_ definition: ServiceDefinition, database: PostgresPool?, context: ZMQContext, endpoint: String,
                               heartbeatInterval: Duration, concurrency: Int, logger: Logger, eventsEndpoint: String?,
                               curveServerKey: String?, curveKeyPair: ZMQCurveKeyPair?, credential: String?,
                               limits: RequestDispatcher.Limits, testsOnlyReplyDelay: Duration = .zero) throws -> WorkerConnection {
        let dispatcher = RequestDispatcher(definition: definition, database: database, logger: logger, limits: limits)
        let manifest = try WireCoding.encoder().encode(definition.manifest(concurrency: concurrency))
        let connection = try WorkerConnection(
            settings: .init(endpoint: endpoint, service: definition.name, manifest: manifest, heartbeatInterval: heartbeatInterval,
                            eventsEndpoint: eventsEndpoint, curveServerKey: curveServerKey, maxInFlight: concurrency,
                            credential: credential, curveKeyPair: curveKeyPair),
            context: context, logger: logger, onOverload: RequestDispatcher.overloaded
        ) { connection, batch in
            // On the connection's thread: every check before the handler, and `.inline` handlers.
            // The rest run in one task per request (not a group per batch: nothing waits for a
            // batch as a whole). The connection counts what is in flight; its drain waits for all.
            for request in batch {
                let dispatch = dispatcher.dispatch(request.body)
                if case .answered(let reply) = dispatch, testsOnlyReplyDelay == .zero {
                    connection.reply(to: request.replyTo, body: reply)
                    continue
                }
                Task {
                    let reply = switch dispatch {
                    case .answered(let reply): reply
                    case .needsTask(let accepted): await dispatcher.run(accepted)
                    }
                    // Tests only: holds each reply after its commit, so a test can kill the
                    // instance between the two. Zero (no delay) unless set.
                    if testsOnlyReplyDelay > .zero { try? await Task.sleep(for: testsOnlyReplyDelay) }
                    connection.reply(to: request.replyTo, body: reply)
                }
            }
        }
        return connection
    }

    /// Deletes idempotency records past their retention, every tenth of it (at most every 10 minutes).
    static func purgeIdempotencyRecords(_ writes: WriteRunner, database: PostgresPool, logger: Logger) async {
        let interval = min(writes.retention / 10, .seconds(600))
        while !Task.isCancelled {
            do {
                let purged = try await writes.purgeExpired(database: database)
                if purged > 0 { logger.info("idempotency records purged", metadata: ["count": "\(purged)"]) }
            } catch {
                logger.debug("idempotency purge skipped", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Applies the runtime's migrations, then the service's, waiting for the database to come up
    /// (a service may start before it).
    public static func migrate(_ definition: ServiceDefinition, pool: PostgresPool, logger: Logger) async throws {
        guard let schema = definition.schema else { return }
        let runtime = try PostgresMigrator(schema: schema, migrations: RuntimeMigrations.all(schema: schema, events: definition.events != nil),
                                           table: RuntimeMigrations.table)
        let migrator = try PostgresMigrator(schema: schema, migrations: definition.migrations)
        var attempt = 0
        while true {
            do {
                try await pool.withConnection { connection in
                    _ = try runtime.run(on: connection, logger: logger)
                    _ = try migrator.run(on: connection, logger: logger)
                }
                return
            } catch let error as PostgresError where error.isConnectivity && attempt < 60 {
                attempt += 1
                logger.warning("database not reachable yet; retrying", metadata: ["attempt": "\(attempt)"])
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// The migration files bundled with a service executable (its `migrations/` resource folder).
    public static func bundledMigrations(in bundle: Bundle) throws -> [PostgresMigration] {
        guard let url = bundle.url(forResource: "migrations", withExtension: nil) else {
            throw PostgresError(.migration, serverMessage: "no migrations folder bundled")
        }
        return try PostgresMigration.load(directory: url)
    }
}

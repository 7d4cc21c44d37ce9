import ArgumentParser
import Foundation
import Logging
import Postgres
import ServiceRuntime
import TsunaguClient
import Wire
import ZMQ

@main
struct TsunaguCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tsunagu",
        abstract: "Call Tsunagu services through the gateway, and administer tokens and migrations.",
        discussion: "Settings come from the environment (TSUNAGU_CLIENT_ENDPOINT, TSUNAGU_TOKEN, TSUNAGU_DATABASE_URL) or flags.",
        subcommands: [Call.self, Services.self, Token.self, Import.self, Export.self, Migrate.self, Keys.self]
    )
}

struct ConnectionOptions: ParsableArguments {
    @Option(help: "Gateway client endpoint (default: TSUNAGU_CLIENT_ENDPOINT or tcp://127.0.0.1:5555).")
    var endpoint: String?

    @Option(help: "Bearer token (default: TSUNAGU_TOKEN).")
    var token: String?

    @Option(name: .customLong("timeout-ms"), help: "How long to wait for the reply.")
    var timeoutMs: Int = 30_000

    /// One call on a connection of its own.
    func call(service: String, operation: String, payload: Data, idempotencyKey: String? = nil) throws -> Data {
        let session = try Session(self)
        defer { session.close() }
        return try session.call(service: service, operation: operation, payload: payload, idempotencyKey: idempotencyKey)
    }
}

/// A connection to the gateway kept open for several calls (imports and exports).
final class Session {
    private let context: ZMQContext
    private let client: TsunaguClient
    private let timeoutMs: Int

    init(_ options: ConnectionOptions) throws {
        let configuration = try Configuration()
        context = try ZMQContext()
        do {
            client = try TsunaguClient(context: context, endpoint: options.endpoint ?? configuration.clientEndpoint,
                                       token: options.token ?? ProcessInfo.processInfo.environment["TSUNAGU_TOKEN"],
                                       curveServerKey: try configuration.gatewayCurvePublicKey(),
                                       curveKeyPair: try configuration.curveKeyPair())
        } catch {
            context.terminate()
            throw error
        }
        timeoutMs = options.timeoutMs
    }

    func close() {
        client.close()
        context.terminate()
    }

    /// The reply's payload; a reply error is printed to stderr and ends the command with its exit status.
    ///
    /// Every call carries an idempotency key (a fresh one unless the caller gives one), so a write
    /// is applied once however often it is sent: an `unavailable` reply is retried twice, after
    /// 0.3 s and 1 s, with the same key. Reads ignore the key.
    func call(service: String, operation: String, payload: Data, idempotencyKey: String? = nil) throws -> Data {
        let key = idempotencyKey ?? UUID().uuidString.lowercased()
        var reply = try client.call(service: service, operation: operation, payload: payload, timeoutMs: timeoutMs,
                                    idempotencyKey: key)
        for pause in [0.3, 1.0] where reply.envelope.error?.code == .unavailable {
            Thread.sleep(forTimeInterval: pause)
            reply = try client.call(service: service, operation: operation, payload: payload, timeoutMs: timeoutMs,
                                    idempotencyKey: key)
        }
        if let error = reply.envelope.error {
            var text = "error: \(error.code.rawValue): \(error.message)\n"
            if let details = error.details, let json = try? prettyJSON(WireCoding.encoder().encode(details)) {
                text += json + "\n"
            }
            FileHandle.standardError.write(Data(text.utf8))
            throw ExitCode(exitStatus(for: error.code))
        }
        return reply.payload ?? Data("{}".utf8)
    }
}

/// Exit statuses a script can branch on: 2 for the caller's mistakes, 3 for access, 4 for "try later".
func exitStatus(for code: ErrorCode) -> Int32 {
    switch code {
    case .badRequest, .invalidInput, .unknownService, .unknownOperation, .tooLarge: 2
    case .unauthorized, .forbidden: 3
    case .unavailable, .timeout: 4
    case .notFound: 5
    case .conflict: 6
    case .internal: 1
    }
}

func prettyJSON(_ data: Data) throws -> String {
    let object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    let pretty = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
    return String(decoding: pretty, as: UTF8.self)
}

func printJSON(_ data: Data) {
    print((try? prettyJSON(data)) ?? String(decoding: data, as: UTF8.self))
}

struct Call: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Call any operation with a JSON body and print the reply.")

    @Argument(help: "Service name, e.g. registry.") var service: String
    @Argument(help: "Operation, e.g. area.get.") var operation: String
    @Argument(help: "JSON body; '-' reads standard input. Default {}.") var body: String = "{}"
    @Option(name: .customLong("idempotency-key"), help: "Key that makes retries of a command apply once.")
    var idempotencyKey: String?
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let payload = body == "-" ? FileHandle.standardInput.readDataToEndOfFile() : Data(body.utf8)
        printJSON(try connection.call(service: service, operation: operation, payload: payload, idempotencyKey: idempotencyKey))
    }
}

struct Services: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List services, their live instances and operations.")
    @Flag(help: "Print the whole catalogue as JSON.") var json = false
    @OptionGroup var connection: ConnectionOptions

    struct Catalogue: Decodable {
        struct Service: Decodable {
            struct Operation: Decodable { let name: String }
            struct Instance: Decodable { let id: String }
            let name: String
            let version: String?
            let kind: String
            let operations: [Operation]
            let instances: [Instance]
        }
        let services: [Service]
    }

    func run() throws {
        let data = try connection.call(service: TsunaguWire.gatewayService, operation: "services.list", payload: Data("{}".utf8))
        if json { return printJSON(data) }
        let catalogue = try JSONDecoder().decode(Catalogue.self, from: data)
        for service in catalogue.services {
            let instances = service.name == TsunaguWire.gatewayService ? "built in" : "\(service.instances.count) instance(s)"
            print("\(service.name) \(service.version ?? "") [\(service.kind)] \(instances)")
            for operation in service.operations { print("    \(operation.name)") }
        }
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, revoke and list bearer tokens (needs an admin token).",
        subcommands: [Create.self, Revoke.self, List.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token; it is printed once and stored only as a hash.",
            discussion: """
                A client token: --tenant and --role, optionally with the events its holder may see \
                (--event-tenants 130001,270008 or '*', --event-types jp.tsunagu.meetings.; without them: \
                tenant national sees every tenant's events, any other tenant its own). A service credential \
                (what a service instance needs to register with the gateway and push events, as \
                TSUNAGU_SERVICE_TOKEN): --service NAME (national admins only).
                """)
        @Option(help: "Tenant, e.g. 130001 or national.") var tenant: String?
        @Option(name: .customLong("role"), help: "A role; repeat for several.") var roles: [String] = []
        @Option(help: "Make a service credential for this service instead of a client token.") var service: String?
        @Option(help: "A note on what the token is for.") var label: String = ""
        @Option(help: "Tenants whose events the token sees, comma-separated, or '*' for all.") var eventTenants: String?
        @Option(help: "Event-type prefixes the token sees, comma-separated (default: every type); needs --event-tenants.")
        var eventTypes: String?
        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            guard (tenant == nil) != (service == nil) else { throw ValidationError("give either --tenant (with --role) or --service") }
            if service != nil, eventTenants != nil || eventTypes != nil {
                throw ValidationError("--event-tenants and --event-types are for client tokens (--tenant), not service credentials")
            }
            if eventTypes != nil, eventTenants == nil { throw ValidationError("--event-types needs --event-tenants") }
        }

        private static func list(_ text: String?) -> [String] {
            (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }

        func run() throws {
            if let service {
                struct Input: Encodable { let service: String; let label: String }
                let body = try JSONEncoder().encode(Input(service: service, label: label))
                printJSON(try connection.call(service: TsunaguWire.gatewayService, operation: "service_tokens.create", payload: body))
                return
            }
            struct Input: Encodable { let tenant: String; let roles: [String]; let label: String; let events: EventPermissions? }
            let events = eventTenants.map { EventPermissions(tenants: Self.list($0), types: Self.list(eventTypes)) }
            let body = try JSONEncoder().encode(Input(tenant: tenant ?? "", roles: roles, label: label, events: events))
            printJSON(try connection.call(service: TsunaguWire.gatewayService, operation: "tokens.create", payload: body))
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by its id (tok_...).")
        @Argument var id: String
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let body = try JSONEncoder().encode(["id": id])
            printJSON(try connection.call(service: TsunaguWire.gatewayService, operation: "tokens.revoke", payload: body))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never the secrets).")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            printJSON(try connection.call(service: TsunaguWire.gatewayService, operation: "tokens.list", payload: Data("{}".utf8)))
        }
    }
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply a folder of SQL migrations to a schema (services also do this at start).",
        discussion: "Example: tsunagu migrate --schema registry --dir services/registry/migrations"
    )
    @Option(help: "The schema the migrations belong to.") var schema: String
    @Option(help: "Folder of NNNN_name.sql files.") var dir: String
    @Option(name: .customLong("database-url"), help: "Default: TSUNAGU_DATABASE_URL.") var databaseURL: String?

    func run() throws {
        let configuration = try Configuration()
        LoggingBootstrap.bootstrap(level: configuration.logLevel)
        let migrations = try PostgresMigration.load(directory: URL(fileURLWithPath: dir))
        let migrator = try PostgresMigrator(schema: schema, migrations: migrations)
        let connection = try PostgresConnection(conninfo: databaseURL ?? configuration.databaseURL)
        defer { connection.close() }
        let applied = try migrator.run(on: connection, logger: Logger(label: "tsunagu.migrate"))
        print(applied.isEmpty ? "\(schema): up to date (\(migrations.count) migrations)" : "\(schema): applied \(applied.joined(separator: ", "))")
    }
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a CURVE key pair for the gateway (TSUNAGU_GATEWAY_CURVE_SECRET_KEY / _PUBLIC_KEY).")

    func run() throws {
        let pair = try ZMQCurveKeyPair.generate()
        // Single quotes: Z85 uses characters a shell would expand, but never a single quote.
        print("TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY='\(pair.publicKey)'")
        print("TSUNAGU_GATEWAY_CURVE_SECRET_KEY='\(pair.secretKey)'")
    }
}

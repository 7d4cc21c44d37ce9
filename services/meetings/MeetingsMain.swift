import Crypto
import Foundation
import ServiceRuntime

/// tsunagu-meetings: consultation meetings (協議の場), their bodies and members, agendas, decisions
/// and action items, individual cases under pseudonyms, regional issues and their escalation, and
/// the outcome events integrators subscribe to (see README.md). It never reads the registry's
/// tables: an organisation is looked up through the gateway.
@main
enum MeetingsMain {
    static func main() {
        ServiceRunner.main {
            // Without the case master key the service does not start: it would hold cases it
            // cannot seal or open. `--migrate-only` touches no case and needs none.
            let configuration = try Configuration()
            let keyring = CommandLine.arguments.contains("--migrate-only")
                ? CaseKeyring(masterKey: .init(size: .bits256))
                : try CaseKeyring(configuration: configuration)
            let rewrapBatch = try configuration.int(CaseKeyRewrap.batchSizeKey, default: CaseKeyRewrap.batchSize, range: 1...10_000)
            var definition = ServiceDefinition(
                name: "meetings",
                version: "0.1.0",
                schema: "meetings",
                migrations: try ServiceRunner.bundledMigrations(in: .module),
                operations: try Bodies.operations() + Members.operations() + Meetings.operations() + Agenda.operations()
                    + RegionalIssues.operations() + ActivityFigures.operations() + Cases.operations(keyring: keyring)
                    + meetingsEvents.operations(),
                events: meetingsEvents
            )
            // While a previous master key is configured: move every case's key to the current one.
            definition.backgroundWork = [ServiceBackgroundWork(name: "case key rewrap") { database, logger in
                await CaseKeyRewrap.run(keyring: keyring, database: database, logger: logger, batchSize: rewrapBatch)
            }]
            return definition
        }
    }
}

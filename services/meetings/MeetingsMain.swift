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
            let keyring = CommandLine.arguments.contains("--migrate-only")
                ? CaseKeyring(masterKey: .init(size: .bits256))
                : try CaseKeyring(configuration: try Configuration())
            return ServiceDefinition(
                name: "meetings",
                version: "0.1.0",
                schema: "meetings",
                migrations: try ServiceRunner.bundledMigrations(in: .module),
                operations: try Bodies.operations() + Members.operations() + Meetings.operations() + Agenda.operations()
                    + RegionalIssues.operations() + ActivityFigures.operations() + Cases.operations(keyring: keyring)
                    + meetingsEvents.operations(),
                events: meetingsEvents
            )
        }
    }
}

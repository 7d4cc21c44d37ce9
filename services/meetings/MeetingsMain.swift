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
            ServiceDefinition(
                name: "meetings",
                version: "0.1.0",
                schema: "meetings",
                migrations: try ServiceRunner.bundledMigrations(in: .module),
                operations: try Bodies.operations() + Members.operations() + Meetings.operations() + Agenda.operations() + RegionalIssues.operations() + ActivityFigures.operations()
                    + meetingsEvents.operations(),
                events: meetingsEvents
            )
        }
    }
}

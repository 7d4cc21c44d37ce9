import JSONSchema
import Postgres
import ServiceRuntime

/// The meetings service's outcome events, `jp.tsunagu.meetings.*`, appended in the transaction of
/// the change. They carry ids and non-personal fields only: never a person's name, never case
/// content, never text of a closed meeting's minutes.
let meetingsEvents = EventOutbox(schema: "meetings", source: "/tsunagu/meetings", typePrefix: "jp.tsunagu.meetings.")

enum MeetingsEvents {
    /// False until the runtime makes `<schema>.events` for every service with events (the event
    /// delivery being rebuilt, /work/events-spec.md): until then the service declares no `events`
    /// and has no outbox table, so `append` records nothing. Every append site already calls it.
    static let enabled = false

    static func append(on tx: PostgresConnection, type: String, subject: String, tenant: String, data: JSONValue) throws {
        guard enabled else { return }
        try meetingsEvents.append(on: tx, type: type, subject: subject, tenant: tenant, data: data)
    }
}

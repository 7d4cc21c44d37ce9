import JSONSchema
import Postgres
import ServiceRuntime

/// The meetings service's outcome events, stream `meetings`, types `jp.tsunagu.meetings.*`, in
/// `meetings.events` (the runtime's table; docs/events.md lists every type with its schema).
/// Appended in the transaction of the change. They carry ids and non-personal fields only: never
/// a person's name, never case content, never text of a closed meeting's minutes.
let meetingsEvents = EventStream(name: "meetings", typePrefix: "jp.tsunagu.meetings.")

enum MeetingsEvents {
    static func append(on tx: PostgresConnection, type: String, subject: String, tenant: String, data: JSONValue) throws {
        try meetingsEvents.append(on: tx, type: type, subject: subject, tenant: tenant, data: data)
    }
}

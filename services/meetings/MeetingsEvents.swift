import JSONSchema
import Postgres
import ServiceRuntime

/// The meetings service's outcome events, `jp.tsunagu.meetings.*`, appended in the transaction of
/// the change. They carry ids and non-personal fields only: never a person's name, never case
/// content, never text of a closed meeting's minutes (README.md, "Events").
///
/// Every append site already calls `append`; it records nothing yet. The event delivery is being
/// rebuilt (runtime-made event tables for every service with `events`, and the outbox type renamed
/// with it), so this file names no outbox type and the service declares no `events`: it builds on
/// either side of that change. When it lands: hold the stream here
/// (`EventStream(name: "meetings", typePrefix: "jp.tsunagu.meetings.")`), forward `append` to its
/// `append(on:type:subject:tenant:data:)`, pass it as `events:` with its `operations()` in
/// MeetingsMain.swift, and drop the skip mark of Tests/integration/test_meetings_events.py.
enum MeetingsEvents {
    static let typePrefix = "jp.tsunagu.meetings."

    static func append(on tx: PostgresConnection, type: String, subject: String, tenant: String, data: JSONValue) throws {
        // Nothing to write to until the runtime makes `meetings.events` (see above).
    }
}

import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// Meetings of a body and its trainings (研修): scheduled, then held or cancelled (nothing else);
/// format, visibility (closed 非公開 / open to observers 傍聴), attendance by sector, whether the
/// year's goals were set or evaluated, and minutes.
enum Meetings {
    static let kinds = ["meeting", "training"]
    static let formats = ["in_person", "online", "hybrid", "written"]
    static let visibilities = ["closed", "open"]
    static let statuses = ["scheduled", "held", "cancelled"]
    static let dateTime = #"{"type":"string","pattern":"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})$","maxLength":25}"#
    static let count = #"{"type":"integer","minimum":0,"maximum":100000}"#
    static let attendance = #"{"type":"array","maxItems":10,"items":{"type":"object","additionalProperties":false,"required":["sector","count"],"properties":{"sector":\#(MeetingsSchemas.oneOf(Members.sectors)),"count":\#(count)}}}"#

    struct Attendance: Decodable, Sendable {
        let sector: String
        let count: Int
    }

    struct Fields: Decodable, Sendable {
        let id: String?
        let version: Int?
        let body_id: String?
        let kind: String?
        let title: String?
        let starts_at: String?
        let venue: String?
        let format: String?
        let visibility: String?
        let goals_set: Bool?
        let goals_evaluated: Bool?
        let attendance: [Attendance]?
        let observers: Int?
        let reason: String?
        let minutes: String?
    }

    struct ListInput: Decodable, Sendable {
        let body_id: String
        let fiscal_year: Int?
        let status: String?
    }

    static let editable: [(String, String)] = [
        ("title", MeetingsSchemas.text(300, min: 1)), ("starts_at", dateTime), ("venue", MeetingsSchemas.text(300)),
        ("format", MeetingsSchemas.oneOf(formats)), ("visibility", MeetingsSchemas.oneOf(visibilities)),
        ("goals_set", #"{"type":"boolean"}"#), ("goals_evaluated", #"{"type":"boolean"}"#),
    ]
    static let idVersion: [(String, String)] = [("id", MeetingsSchemas.uuid), ("version", MeetingsSchemas.version)]

    static func operations() throws -> [ServiceOperation] {
        [
            try .write(
                "meeting.schedule", summary: "Schedule a meeting (or a training, kind training) of a body.",
                schema: MeetingsSchemas.object([("body_id", MeetingsSchemas.uuid), ("kind", MeetingsSchemas.oneOf(kinds))] + editable,
                                               required: ["body_id", "title", "starts_at", "format", "visibility"]),
                input: Fields.self
            ) { context, input, tx in
                let principal = try context.writer()
                let bodyID = input.body_id ?? ""
                let owner = try Bodies.lockForChange(id: bodyID, version: nil, principal: principal, on: tx)
                let id: String = try tx.query("""
                    INSERT INTO meetings.meetings (body_id, tenant, kind, title, starts_at, venue, format, visibility, goals_set, goals_evaluated)
                    VALUES (\(bodyID)::uuid, \(owner), \(input.kind ?? "meeting"), \(input.title ?? ""), \(input.starts_at ?? "")::timestamptz,
                            \(input.venue ?? ""), \(input.format ?? ""), \(input.visibility ?? ""), \(input.goals_set ?? false),
                            \(input.goals_evaluated ?? false))
                    RETURNING id::text
                    """)[0].decode("id")
                try appendEvent("meeting.scheduled", meeting: id, on: tx)
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "meeting.update", summary: "Change a scheduled or held meeting's title, time, venue, format, visibility and goal flags.",
                schema: MeetingsSchemas.object(idVersion + editable, required: ["id", "version", "title", "starts_at", "format", "visibility"]),
                input: Fields.self
            ) { context, input, tx in
                let principal = try context.writer()
                let id = input.id ?? ""
                let status = try lock(id: id, version: input.version, principal: principal, on: tx).status
                guard status != "cancelled" else { throw WireError(.conflict, "the meeting was cancelled; it takes no more changes") }
                try tx.query("""
                    UPDATE meetings.meetings SET title = \(input.title ?? ""), starts_at = \(input.starts_at ?? "")::timestamptz,
                        venue = \(input.venue ?? ""), format = \(input.format ?? ""), visibility = \(input.visibility ?? ""),
                        goals_set = \(input.goals_set ?? false), goals_evaluated = \(input.goals_evaluated ?? false),
                        version = version + 1, updated_at = now()
                    WHERE id = \(id)::uuid
                    """)
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "meeting.hold", summary: "Record a scheduled meeting as held, with its attendance by sector and observers.",
                schema: MeetingsSchemas.object(idVersion + [("attendance", attendance), ("observers", count),
                                                            ("goals_set", #"{"type":"boolean"}"#), ("goals_evaluated", #"{"type":"boolean"}"#)],
                                               required: ["id", "version", "attendance"]),
                input: Fields.self
            ) { context, input, tx in
                let principal = try context.writer()
                let id = input.id ?? ""
                _ = try lock(id: id, version: input.version, principal: principal, on: tx, only: "scheduled",
                             rule: "only a scheduled meeting can be held")
                try setAttendance(id: id, input.attendance ?? [], on: tx)
                try tx.query("""
                    UPDATE meetings.meetings SET status = 'held', observers = \(input.observers ?? 0),
                        goals_set = coalesce(\(input.goals_set), goals_set), goals_evaluated = coalesce(\(input.goals_evaluated), goals_evaluated),
                        version = version + 1, updated_at = now()
                    WHERE id = \(id)::uuid
                    """)
                try appendEvent("meeting.held", meeting: id, on: tx)
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "meeting.attendance.set", summary: "Correct a held meeting's attendance by sector and observers.",
                schema: MeetingsSchemas.object(idVersion + [("attendance", attendance), ("observers", count)],
                                               required: ["id", "version", "attendance"]),
                input: Fields.self
            ) { context, input, tx in
                let principal = try context.writer()
                let id = input.id ?? ""
                _ = try lockHeld(id: id, version: input.version, principal: principal, on: tx, recording: "attendance is recorded for")
                try setAttendance(id: id, input.attendance ?? [], on: tx)
                try tx.query("""
                    UPDATE meetings.meetings SET observers = coalesce(\(input.observers), observers), version = version + 1, updated_at = now()
                    WHERE id = \(id)::uuid
                    """)
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "meeting.cancel", summary: "Cancel a scheduled meeting, with a reason.",
                schema: MeetingsSchemas.object(idVersion + [("reason", MeetingsSchemas.text(1000, min: 1))], required: ["id", "version", "reason"]),
                input: Fields.self
            ) { context, input, tx in
                let principal = try context.writer()
                let id = input.id ?? ""
                _ = try lock(id: id, version: input.version, principal: principal, on: tx, only: "scheduled",
                             rule: "only a scheduled meeting can be cancelled")
                try tx.query("""
                    UPDATE meetings.meetings SET status = 'cancelled', cancel_reason = \(input.reason ?? ""), version = version + 1, updated_at = now()
                    WHERE id = \(id)::uuid
                    """)
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "meeting.minutes.set", summary: "Record (replace) a held meeting's minutes.",
                schema: MeetingsSchemas.object(idVersion + [("minutes", MeetingsSchemas.text(20_000))], required: ["id", "version", "minutes"]),
                input: Fields.self
            ) { context, input, tx in
                let principal = try context.writer()
                let id = input.id ?? ""
                _ = try lockHeld(id: id, version: input.version, principal: principal, on: tx, recording: "minutes are recorded for")
                try tx.query("""
                    UPDATE meetings.meetings SET minutes = \(input.minutes ?? ""), version = version + 1, updated_at = now() WHERE id = \(id)::uuid
                    """)
                return try fetch(id: id, for: principal, on: tx)
            },
            try .read(
                "meeting.get", summary: "One meeting with its attendance, agenda (with the action items carried to it), decisions and action items.",
                schema: MeetingsSchemas.id, input: IDInput.self
            ) { context, input in
                try await context.database.withConnection { try fetch(id: input.id, for: context.principal, on: $0) }
            },
            try .read(
                "meeting.list", summary: "A body's meetings (and trainings) by start, optionally of one fiscal year and status (at most 1000).",
                schema: MeetingsSchemas.object([("body_id", MeetingsSchemas.uuid), ("fiscal_year", MeetingsSchemas.fiscalYear),
                                                ("status", MeetingsSchemas.oneOf(statuses))], required: ["body_id"]),
                input: ListInput.self
            ) { context, input in
                let rows = try await context.database.withConnection { connection in
                    try connection.jsonRows("""
                        SELECT \(summary(for: context.principal)) AS j FROM meetings.meetings mt
                        WHERE mt.body_id = \(input.body_id)::uuid
                          AND (\(input.fiscal_year)::int IS NULL OR \(Visibility.fiscalYear(of: "mt.starts_at")) = \(input.fiscal_year))
                          AND (\(input.status)::text IS NULL OR mt.status = \(input.status))
                        ORDER BY mt.starts_at, mt.id LIMIT 1000
                        """)
                }
                return JSONValue.object(["meetings": .array(rows)])
            },
        ]
    }

    static func setAttendance(id: String, _ attendance: [Attendance], on tx: PostgresConnection) throws {
        let sectors = attendance.map(\.sector)
        if Set(sectors).count != sectors.count {
            throw WireError.invalidInput("a sector is counted twice", violations: [
                JSONSchemaViolation(path: "/attendance", message: "give each sector once"),
            ])
        }
        try tx.query("DELETE FROM meetings.attendance WHERE meeting_id = \(id)::uuid")
        try tx.query("""
            INSERT INTO meetings.attendance (meeting_id, sector, count)
            SELECT \(id)::uuid, s, c FROM unnest(\(sectors)::text[], \(attendance.map { String($0.count) })::int[]) AS t(s, c)
            """)
    }

    /// Locks the meeting and checks that `principal` may change it (at `version`, when given).
    static func lock(id: String, version: Int?, principal: Principal, on tx: PostgresConnection) throws
        -> (tenant: String, bodyID: String, status: String) {
        let rows = try tx.query("""
            SELECT tenant, body_id::text, status, version FROM meetings.meetings WHERE id = \(id)::uuid FOR UPDATE
            """)
        guard let row = rows.first else { throw WireError(.notFound, "no meeting \(id)") }
        let owner: String = try row.decode("tenant")
        try principal.requireOwner(of: owner)
        let current: Int = try row.decode("version")
        if let version, version != current {
            throw WireError(.conflict, "the meeting changed since version \(version); read it again",
                            details: .object(["version": .integer(Int64(current))]))
        }
        return (owner, try row.decode("body_id"), try row.decode("status"))
    }

    /// `lock`, for a change only a meeting of status `required` takes: otherwise `conflict`,
    /// saying what the change needs (`rule`, e.g. "only a scheduled meeting can be held") and the
    /// meeting's status.
    static func lock(id: String, version: Int?, principal: Principal, on tx: PostgresConnection, only required: String,
                     rule: String) throws -> (tenant: String, bodyID: String, status: String) {
        let meeting = try lock(id: id, version: version, principal: principal, on: tx)
        guard meeting.status == required else { throw WireError(.conflict, "\(rule); this one is \(meeting.status)") }
        return meeting
    }

    /// `lock`, for a change only a held meeting takes (`recording`, e.g. "minutes are recorded for").
    static func lockHeld(id: String, version: Int?, principal: Principal, on tx: PostgresConnection, recording: String) throws
        -> (tenant: String, bodyID: String, status: String) {
        try lock(id: id, version: version, principal: principal, on: tx, only: "held", rule: "\(recording) a held meeting")
    }

    /// A meeting row `mt` without its parts: what lists show.
    static func summary(for principal: Principal?) -> PostgresQuery {
        """
        (to_jsonb(mt) || jsonb_build_object(
            'fiscal_year', \(Visibility.fiscalYear(of: "mt.starts_at")),
            'minutes', CASE WHEN \(Visibility.meetingText(principal, meeting: "mt.visibility", owner: "mt.tenant")) THEN mt.minutes END,
            'cancel_reason', CASE WHEN \(Visibility.meetingText(principal, meeting: "mt.visibility", owner: "mt.tenant")) THEN mt.cancel_reason END,
            'attendance', coalesce((SELECT jsonb_object_agg(a.sector, a.count ORDER BY a.sector) FROM meetings.attendance a
                                    WHERE a.meeting_id = mt.id), '{}'::jsonb),
            'participants', (SELECT coalesce(sum(a.count), 0) FROM meetings.attendance a WHERE a.meeting_id = mt.id)))
        """
    }

    static func fetch(id: String, for principal: Principal?, on connection: PostgresConnection) throws -> JSONValue {
        let text = Visibility.meetingText(principal, meeting: "mt.visibility", owner: "mt.tenant")
        return try connection.jsonRow("""
            SELECT \(summary(for: principal)) || jsonb_build_object(
                'agenda', jsonb_build_object(
                    'report', coalesce((SELECT jsonb_agg(\(Agenda.itemJSON(text)) ORDER BY a.position, a.created_at, a.id)
                                        FROM meetings.agenda_items a WHERE a.meeting_id = mt.id AND a.part = 'report'), '[]'::jsonb),
                    'deliberation', coalesce((SELECT jsonb_agg(\(Agenda.itemJSON(text)) ORDER BY a.position, a.created_at, a.id)
                                              FROM meetings.agenda_items a WHERE a.meeting_id = mt.id AND a.part = 'deliberation'), '[]'::jsonb),
                    'carried_action_items', coalesce((
                        SELECT jsonb_agg(\(Agenda.actionJSON(principal)) ORDER BY om.starts_at, ai.created_at, ai.id)
                        FROM meetings.action_items ai JOIN meetings.meetings om ON om.id = ai.meeting_id
                        WHERE ai.body_id = mt.body_id AND om.starts_at < mt.starts_at
                          AND (ai.done_at IS NULL OR ai.done_at > mt.starts_at)), '[]'::jsonb),
                    'escalated_issues', \(RegionalIssues.onAgenda(status: "escalated")),
                    'answered_issues', \(RegionalIssues.onAgenda(status: "answered"))),
                'decisions', coalesce((SELECT jsonb_agg(\(Agenda.decisionJSON(text)) ORDER BY d.created_at, d.id)
                                       FROM meetings.decisions d WHERE d.meeting_id = mt.id), '[]'::jsonb),
                'action_items', coalesce((SELECT jsonb_agg(\(Agenda.actionJSON(principal)) ORDER BY ai.created_at, ai.id)
                                          FROM meetings.action_items ai JOIN meetings.meetings om ON om.id = ai.meeting_id
                                          WHERE ai.meeting_id = mt.id), '[]'::jsonb)) AS j
            FROM meetings.meetings mt WHERE mt.id = \(id)::uuid
            """, notFound: "no meeting \(id)")
    }

    /// `meeting.scheduled` / `meeting.held`: ids, time, kind, format, visibility and (held) the
    /// attendance counts by sector; never a title, venue or minutes.
    static func appendEvent(_ type: String, meeting id: String, on tx: PostgresConnection) throws {
        let row = try tx.jsonRow("""
            SELECT jsonb_build_object('meeting_id', mt.id, 'body_id', mt.body_id, 'kind', mt.kind, 'status', mt.status,
                       'starts_at', mt.starts_at, 'format', mt.format, 'visibility', mt.visibility,
                       'goals_set', mt.goals_set, 'goals_evaluated', mt.goals_evaluated,
                       'attendance', coalesce((SELECT jsonb_object_agg(a.sector, a.count) FROM meetings.attendance a
                                               WHERE a.meeting_id = mt.id), '{}'::jsonb),
                       'observers', mt.observers, 'tenant', mt.tenant) AS j
            FROM meetings.meetings mt WHERE mt.id = \(id)::uuid
            """, notFound: "no meeting \(id)")
        try MeetingsEvents.append(on: tx, type: type, subject: "meetings/\(id)", tenant: row["tenant"]?.stringValue ?? "", data: row)
    }
}

import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// A meeting's agenda in its two parts (報告事項 report, 検討事項 deliberation), each item classified
/// on one of the three axes and one of the two viewpoints (both required), its decisions and its
/// action items. An action item not done is carried onto every later meeting of its body's agenda
/// (`carried_action_items` of `meeting.get`) until it is done.
enum Agenda {
    static let parts = ["report", "deliberation"]
    static let axes = ["individual_support", "support_system", "regional_infrastructure"]
    static let viewpoints = ["health_medical", "disability_welfare"]
    static let actionStatuses = ["open", "in_progress", "done"]
    static let position = #"{"type":"integer","minimum":0,"maximum":10000}"#

    static let itemFields: [(String, String)] = [
        ("part", MeetingsSchemas.oneOf(parts)), ("title", MeetingsSchemas.text(500, min: 1)), ("notes", MeetingsSchemas.text(4000)),
        ("axis", MeetingsSchemas.oneOf(axes)), ("viewpoint", MeetingsSchemas.oneOf(viewpoints)), ("position", position),
    ]

    struct ItemInput: Decodable, Sendable {
        let id: String?
        let meeting_id: String?
        let part: String
        let title: String
        let notes: String?
        let axis: String
        let viewpoint: String
        let position: Int?
    }

    struct DecisionInput: Decodable, Sendable {
        let meeting_id: String
        let agenda_item_id: String?
        let text: String
    }

    struct ActionInput: Decodable, Sendable {
        let meeting_id: String
        let decision_id: String?
        let title: String
        let owner_organization_id: String?
        let due_date: String?
    }

    struct StatusInput: Decodable, Sendable {
        let id: String
        let status: String
    }

    struct ActionListInput: Decodable, Sendable {
        let body_id: String
        let open_only: Bool?
    }

    struct CoverageInput: Decodable, Sendable {
        let body_id: String
        let fiscal_year: Int
    }

    // MARK: JSON shaped in SQL

    /// Agenda item `a`; `text` is true when the caller reads the meeting's text.
    static func itemJSON(_ text: PostgresQuery) -> PostgresQuery {
        """
        jsonb_build_object('id', a.id, 'meeting_id', a.meeting_id, 'part', a.part, 'position', a.position, 'axis', a.axis,
                           'viewpoint', a.viewpoint, 'title', CASE WHEN \(text) THEN a.title END,
                           'notes', CASE WHEN \(text) THEN a.notes END)
        """
    }

    /// Decision `d`.
    static func decisionJSON(_ text: PostgresQuery) -> PostgresQuery {
        """
        jsonb_build_object('id', d.id, 'meeting_id', d.meeting_id, 'agenda_item_id', d.agenda_item_id,
                           'text', CASE WHEN \(text) THEN d.text END, 'created_at', d.created_at)
        """
    }

    /// Action item `ai` agreed at meeting `om`.
    static func actionJSON(_ principal: Principal?) -> PostgresQuery {
        """
        (to_jsonb(ai) - 'due_noticed_at' || jsonb_build_object(
            'title', CASE WHEN \(Visibility.meetingText(principal, meeting: "om.visibility", owner: "om.tenant")) THEN ai.title END,
            'overdue', ai.status <> 'done' AND ai.due_date < \(unsafeRaw: Members.today)))
        """
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .write(
                "agenda.add", summary: "Add an item to a meeting's agenda (報告事項 or 検討事項), classified on an axis and a viewpoint.",
                schema: MeetingsSchemas.object([("meeting_id", MeetingsSchemas.uuid)] + itemFields,
                                               required: ["meeting_id", "part", "title", "axis", "viewpoint"]),
                input: ItemInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let meetingID = input.meeting_id ?? ""
                let status = try Meetings.lock(id: meetingID, version: nil, principal: principal, on: tx).status
                guard status != "cancelled" else { throw WireError(.conflict, "the meeting was cancelled; its agenda takes no more items") }
                let id: String = try tx.query("""
                    INSERT INTO meetings.agenda_items (meeting_id, part, position, title, notes, axis, viewpoint)
                    VALUES (\(meetingID)::uuid, \(input.part),
                            coalesce(\(input.position), (SELECT coalesce(max(position) + 1, 1) FROM meetings.agenda_items
                                                        WHERE meeting_id = \(meetingID)::uuid AND part = \(input.part))),
                            \(input.title), \(input.notes ?? ""), \(input.axis), \(input.viewpoint))
                    RETURNING id::text
                    """)[0].decode("id")
                return try item(id: id, for: principal, on: tx)
            },
            try .write(
                "agenda.update", summary: "Replace an agenda item's part, title, notes, classification and position.",
                schema: MeetingsSchemas.object([("id", MeetingsSchemas.uuid), ("meeting_id", MeetingsSchemas.uuid)] + itemFields,
                                               required: ["id", "part", "title", "axis", "viewpoint"]),
                input: ItemInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let id = input.id ?? ""
                let status = try lockItem(id: id, principal: principal, on: tx)
                guard status != "cancelled" else { throw WireError(.conflict, "the meeting was cancelled; its agenda takes no more changes") }
                try tx.query("""
                    UPDATE meetings.agenda_items SET part = \(input.part), title = \(input.title), notes = \(input.notes ?? ""),
                        axis = \(input.axis), viewpoint = \(input.viewpoint), position = coalesce(\(input.position), position)
                    WHERE id = \(id)::uuid
                    """)
                return try item(id: id, for: principal, on: tx)
            },
            try .write(
                "agenda.remove", summary: "Remove an agenda item no decision refers to.", schema: MeetingsSchemas.id, input: IDInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                _ = try lockItem(id: input.id, principal: principal, on: tx)
                let referred = try tx.query("SELECT 1 FROM meetings.decisions WHERE agenda_item_id = \(input.id)::uuid LIMIT 1")
                guard referred.isEmpty else { throw WireError(.conflict, "a decision refers to this agenda item") }
                try tx.query("DELETE FROM meetings.agenda_items WHERE id = \(input.id)::uuid")
                return JSONValue.object(["id": .string(input.id), "removed": .bool(true)])
            },
            try .write(
                "decision.record", summary: "Record a decision of a held meeting, optionally on one of its agenda items.",
                schema: MeetingsSchemas.object([("meeting_id", MeetingsSchemas.uuid), ("agenda_item_id", MeetingsSchemas.nullableUUID),
                                                ("text", MeetingsSchemas.text(4000, min: 1))], required: ["meeting_id", "text"]),
                input: DecisionInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let meeting = try Meetings.lockHeld(id: input.meeting_id, version: nil, principal: principal, on: tx,
                                                    recording: "decisions are recorded for")
                if let item = input.agenda_item_id {
                    let found = try tx.query("""
                        SELECT 1 FROM meetings.agenda_items WHERE id = \(item)::uuid AND meeting_id = \(input.meeting_id)::uuid
                        """)
                    guard !found.isEmpty else {
                        throw WireError.invalidInput("no such agenda item in this meeting", violations: [
                            JSONSchemaViolation(path: "/agenda_item_id", message: "agenda item \(item) is not on meeting \(input.meeting_id)'s agenda"),
                        ])
                    }
                }
                let id: String = try tx.query("""
                    INSERT INTO meetings.decisions (meeting_id, agenda_item_id, text)
                    VALUES (\(input.meeting_id)::uuid, \(input.agenda_item_id)::uuid, \(input.text)) RETURNING id::text
                    """)[0].decode("id")
                try MeetingsEvents.append(on: tx, type: "decision.recorded", subject: "decisions/\(id)", tenant: meeting.tenant, data: .object([
                    "decision_id": .string(id), "meeting_id": .string(input.meeting_id), "body_id": .string(meeting.bodyID),
                    "agenda_item_id": input.agenda_item_id.map(JSONValue.string) ?? .null,
                ]))
                return try tx.jsonRow("""
                    SELECT \(decisionJSON(Visibility.meetingText(principal, meeting: "mt.visibility", owner: "mt.tenant"))) AS j
                    FROM meetings.decisions d JOIN meetings.meetings mt ON mt.id = d.meeting_id WHERE d.id = \(id)::uuid
                    """, notFound: "no decision \(id)")
            },
            try .write(
                "action_item.create", summary: "Record an action item agreed at a held meeting: owner organisation, due date; status open.",
                schema: MeetingsSchemas.object([("meeting_id", MeetingsSchemas.uuid), ("decision_id", MeetingsSchemas.nullableUUID),
                                                ("title", MeetingsSchemas.text(500, min: 1)),
                                                ("owner_organization_id", MeetingsSchemas.nullableUUID), ("due_date", MeetingsSchemas.nullableDate)],
                                               required: ["meeting_id", "title"]),
                input: ActionInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let meeting = try Meetings.lockHeld(id: input.meeting_id, version: nil, principal: principal, on: tx,
                                                    recording: "action items are agreed at")
                if let decision = input.decision_id {
                    let found = try tx.query("""
                        SELECT 1 FROM meetings.decisions WHERE id = \(decision)::uuid AND meeting_id = \(input.meeting_id)::uuid
                        """)
                    guard !found.isEmpty else {
                        throw WireError.invalidInput("no such decision in this meeting", violations: [
                            JSONSchemaViolation(path: "/decision_id", message: "decision \(decision) is not of meeting \(input.meeting_id)"),
                        ])
                    }
                }
                let id: String = try tx.query("""
                    INSERT INTO meetings.action_items (meeting_id, body_id, decision_id, title, owner_organization_id, due_date)
                    VALUES (\(input.meeting_id)::uuid, \(meeting.bodyID)::uuid, \(input.decision_id)::uuid, \(input.title),
                            \(input.owner_organization_id)::uuid::text, \(input.due_date)::date)
                    RETURNING id::text
                    """)[0].decode("id")
                try appendActionEvent("action_item.created", id: id, on: tx)
                return try action(id: id, for: principal, on: tx)
            },
            try .write(
                "action_item.set_status", summary: "Move an action item to open, in_progress or done (done records when).",
                schema: MeetingsSchemas.object([("id", MeetingsSchemas.uuid), ("status", MeetingsSchemas.oneOf(actionStatuses))],
                                               required: ["id", "status"]),
                input: StatusInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let rows = try tx.query("""
                    SELECT b.tenant, ai.status FROM meetings.action_items ai JOIN meetings.bodies b ON b.id = ai.body_id
                    WHERE ai.id = \(input.id)::uuid FOR UPDATE OF ai
                    """)
                guard let row = rows.first else { throw WireError(.notFound, "no action item \(input.id)") }
                try principal.requireOwner(of: try row.decode("tenant"))
                let before: String = try row.decode("status")
                if before != input.status {
                    try tx.query("""
                        UPDATE meetings.action_items SET status = \(input.status),
                            done_at = CASE WHEN \(input.status) = 'done' THEN now() END, updated_at = now()
                        WHERE id = \(input.id)::uuid
                        """)
                    if input.status == "done" { try appendActionEvent("action_item.done", id: input.id, on: tx) }
                }
                return try action(id: input.id, for: principal, on: tx)
            },
            try .write(
                "action_item.sweep_due", summary: "Mark the caller's tenant's action items due today or earlier and not done, each once, appending action_item.due (at most 1000 per call).",
                schema: #"{"type":"object","additionalProperties":false,"properties":{}}"#, input: JSONValue.self
            ) { context, _, tx in
                let principal = try context.writer()
                let ids: [String] = try tx.query("""
                    UPDATE meetings.action_items ai SET due_noticed_at = now()
                    WHERE ai.id IN (SELECT ai2.id FROM meetings.action_items ai2 JOIN meetings.bodies b ON b.id = ai2.body_id
                                    WHERE ai2.status <> 'done' AND ai2.due_noticed_at IS NULL AND ai2.due_date <= \(unsafeRaw: Members.today)
                                      AND (\(principal.isNationalAdmin) OR b.tenant = \(principal.tenant))
                                    ORDER BY ai2.due_date, ai2.id LIMIT 1000 FOR UPDATE OF ai2 SKIP LOCKED)
                    RETURNING ai.id::text
                    """).map { try $0.decode("id") }
                for id in ids { try appendActionEvent("action_item.due", id: id, on: tx) }
                return JSONValue.object(["due": .array(ids.sorted().map(JSONValue.string))])
            },
            try .read(
                "action_item.list", summary: "A body's action items, oldest first (open_only: not done), at most 1000.",
                schema: MeetingsSchemas.object([("body_id", MeetingsSchemas.uuid), ("open_only", #"{"type":"boolean"}"#)], required: ["body_id"]),
                input: ActionListInput.self
            ) { context, input in
                let rows = try await context.database.withConnection { connection in
                    try connection.jsonRows("""
                        SELECT \(actionJSON(context.principal)) AS j
                        FROM meetings.action_items ai JOIN meetings.meetings om ON om.id = ai.meeting_id
                        WHERE ai.body_id = \(input.body_id)::uuid AND (NOT \(input.open_only ?? false) OR ai.status <> 'done')
                        ORDER BY ai.created_at, ai.id LIMIT 1000
                        """)
                }
                return JSONValue.object(["action_items": .array(rows)])
            },
            try .read(
                "body.coverage", summary: "Which cells of the 3 axes × 2 viewpoints a body's held meetings covered in a fiscal year.",
                schema: MeetingsSchemas.object([("body_id", MeetingsSchemas.uuid), ("fiscal_year", MeetingsSchemas.fiscalYear)],
                                               required: ["body_id", "fiscal_year"]),
                input: CoverageInput.self
            ) { context, input in
                try await context.database.withConnection { try coverage(input, on: $0) }
            },
        ]
    }

    static func coverage(_ input: CoverageInput, on connection: PostgresConnection) throws -> JSONValue {
        _ = try connection.jsonRow("SELECT to_jsonb(id) AS j FROM meetings.bodies WHERE id = \(input.body_id)::uuid",
                                   notFound: "no body \(input.body_id)")
        let cells = try connection.jsonRows("""
            SELECT jsonb_build_object('axis', x.axis, 'viewpoint', v.viewpoint, 'items', count(a.id), 'covered', count(a.id) > 0,
                                      'meetings', count(DISTINCT a.meeting_id)) AS j
            FROM unnest(\(axes)::text[]) WITH ORDINALITY AS x(axis, xo)
            CROSS JOIN unnest(\(viewpoints)::text[]) WITH ORDINALITY AS v(viewpoint, vo)
            LEFT JOIN (meetings.agenda_items a JOIN meetings.meetings mt ON mt.id = a.meeting_id
                       AND mt.body_id = \(input.body_id)::uuid AND mt.status = 'held' AND mt.kind = 'meeting'
                       AND \(Visibility.fiscalYear(of: "mt.starts_at")) = \(input.fiscal_year))
                   ON a.axis = x.axis AND a.viewpoint = v.viewpoint
            GROUP BY x.axis, x.xo, v.viewpoint, v.vo ORDER BY x.xo, v.vo
            """)
        var matrix: [String: JSONValue] = [:]
        for cell in cells {
            guard let axis = cell["axis"]?.stringValue, let viewpoint = cell["viewpoint"]?.stringValue else { continue }
            var row: [String: JSONValue] = [:]
            if case .object(let existing)? = matrix[axis] { row = existing }
            row[viewpoint] = cell["items"] ?? .integer(0)
            matrix[axis] = .object(row)
        }
        let covered = cells.filter { $0["covered"] == .bool(true) }.count
        return .object([
            "body_id": .string(input.body_id), "fiscal_year": .integer(Int64(input.fiscal_year)),
            "covered": .integer(Int64(covered)), "cells": .array(cells), "matrix": .object(matrix),
        ])
    }

    /// Locks the item's meeting; returns the meeting's status.
    static func lockItem(id: String, principal: Principal, on tx: PostgresConnection) throws -> String {
        let rows = try tx.query("SELECT meeting_id::text FROM meetings.agenda_items WHERE id = \(id)::uuid")
        guard let row = rows.first else { throw WireError(.notFound, "no agenda item \(id)") }
        return try Meetings.lock(id: try row.decode("meeting_id"), version: nil, principal: principal, on: tx).status
    }

    static func item(id: String, for principal: Principal?, on connection: PostgresConnection) throws -> JSONValue {
        try connection.jsonRow("""
            SELECT \(itemJSON(Visibility.meetingText(principal, meeting: "mt.visibility", owner: "mt.tenant"))) AS j
            FROM meetings.agenda_items a JOIN meetings.meetings mt ON mt.id = a.meeting_id WHERE a.id = \(id)::uuid
            """, notFound: "no agenda item \(id)")
    }

    static func action(id: String, for principal: Principal?, on connection: PostgresConnection) throws -> JSONValue {
        try connection.jsonRow("""
            SELECT \(actionJSON(principal)) AS j FROM meetings.action_items ai JOIN meetings.meetings om ON om.id = ai.meeting_id
            WHERE ai.id = \(id)::uuid
            """, notFound: "no action item \(id)")
    }

    /// `action_item.created` / `.due` / `.done`: ids, owner organisation, due date and status; never the title.
    static func appendActionEvent(_ type: String, id: String, on tx: PostgresConnection) throws {
        let row = try tx.jsonRow("""
            SELECT jsonb_build_object('action_item_id', ai.id, 'meeting_id', ai.meeting_id, 'body_id', ai.body_id,
                       'decision_id', ai.decision_id, 'owner_organization_id', ai.owner_organization_id,
                       'due_date', ai.due_date, 'status', ai.status, 'tenant', b.tenant) AS j
            FROM meetings.action_items ai JOIN meetings.bodies b ON b.id = ai.body_id WHERE ai.id = \(id)::uuid
            """, notFound: "no action item \(id)")
        try MeetingsEvents.append(on: tx, type: type, subject: "action_items/\(id)", tenant: row["tenant"]?.stringValue ?? "", data: row)
    }
}

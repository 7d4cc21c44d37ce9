import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// Regional issues (地域課題). A body raises one from an agenda item of its own meetings, a case (by
/// id: no case content is ever copied here) or data; the body that holds it discusses it, handles
/// it locally or escalates it to a body of a higher level (by default the body's `escalates_to`);
/// the receiving body answers it (the answer goes back to the raising body) or escalates it on;
/// the raising body closes it. Every step keeps its reason. An issue escalated to a body is on
/// that body's later meetings' agendas until it moves on; an answer on the raising body's.
enum RegionalIssues {
    static let sourceKinds = ["agenda_item", "case", "data"]
    static let statuses = ["raised", "discussed", "handled_locally", "escalated", "answered", "closed"]
    static let reason = MeetingsSchemas.text(2000)
    static let requiredReason = MeetingsSchemas.text(2000, min: 1)

    struct RaiseInput: Decodable, Sendable {
        let body_id: String
        let title: String
        let theme: String
        let axis: String
        let area_municipalities: [String]?
        let area_label: String?
        let evidence: String?
        let source_kind: String
        let source_agenda_item_id: String?
        let source_case_id: String?
        let source_data: String?
    }

    struct StepInput: Decodable, Sendable {
        let id: String
        let version: Int
        let reason: String?
        let to_body_id: String?
        let answer: String?
        let into: String?
    }

    struct ListInput: Decodable, Sendable {
        let body_id: String
        let held: Bool?
        let status: String?
    }

    struct SummaryInput: Decodable, Sendable {
        let body_id: String
        let fiscal_year: Int
    }

    static func step(_ extra: [(String, String)], required: [String]) -> String {
        MeetingsSchemas.object([("id", MeetingsSchemas.uuid), ("version", MeetingsSchemas.version)] + extra, required: ["id", "version"] + required)
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .write(
                "issue.raise", summary: "Raise a regional issue at a body, from one of its agenda items, a case (id only) or data.",
                schema: MeetingsSchemas.object([
                    ("body_id", MeetingsSchemas.uuid), ("title", MeetingsSchemas.text(300, min: 1)), ("theme", MeetingsSchemas.text(200, min: 1)),
                    ("axis", MeetingsSchemas.oneOf(Agenda.axes)),
                    ("area_municipalities", #"{"type":"array","maxItems":\#(Bodies.maxMunicipalities),"items":\#(MeetingsSchemas.code)}"#),
                    ("area_label", MeetingsSchemas.text(200)), ("evidence", MeetingsSchemas.text(4000)),
                    ("source_kind", MeetingsSchemas.oneOf(sourceKinds)), ("source_agenda_item_id", MeetingsSchemas.nullableUUID),
                    ("source_case_id", MeetingsSchemas.nullableUUID), ("source_data", MeetingsSchemas.text(1000)),
                ], required: ["body_id", "title", "theme", "axis", "source_kind"]),
                input: RaiseInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let owner = try Bodies.lockForChange(id: input.body_id, version: nil, principal: principal, on: tx)
                try checkSource(input, on: tx)
                let id: String = try tx.query("""
                    INSERT INTO meetings.regional_issues (body_id, tenant, current_body_id, title, theme, axis, area_municipalities, area_label,
                                                          evidence, source_kind, source_agenda_item_id, source_case_id, source_data)
                    VALUES (\(input.body_id)::uuid, \(owner), \(input.body_id)::uuid, \(input.title), \(input.theme), \(input.axis),
                            \(input.area_municipalities ?? [])::text[], \(input.area_label ?? ""), \(input.evidence ?? ""), \(input.source_kind),
                            \(input.source_agenda_item_id)::uuid, \(input.source_case_id)::uuid, \(input.source_data ?? ""))
                    RETURNING id::text
                    """)[0].decode("id")
                try record(id: id, from: nil, to: "raised", body: input.body_id, toBody: nil, reason: "", principal: principal, on: tx)
                try appendEvent("regional_issue.raised", id: id, tenant: owner, on: tx)
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "issue.discuss", summary: "Mark a raised issue as discussed by the body that holds it.",
                schema: step([("reason", reason)], required: []), input: StepInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let issue = try lock(input, principal: principal, by: .holder, on: tx)
                try issue.require(["raised"], to: "discussed")
                try move(issue, to: "discussed", reason: input.reason ?? "", principal: principal, on: tx)
                return try fetch(id: input.id, for: principal, on: tx)
            },
            try .write(
                "issue.handle_locally", summary: "Record that the raising body handles the issue itself, with a reason.",
                schema: step([("reason", requiredReason)], required: ["reason"]), input: StepInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let issue = try lock(input, principal: principal, by: .holder, on: tx)
                try issue.require(["raised", "discussed"], to: "handled_locally")
                try move(issue, to: "handled_locally", reason: input.reason ?? "", principal: principal, on: tx)
                return try fetch(id: input.id, for: principal, on: tx)
            },
            try .write(
                "issue.escalate", summary: "Escalate an issue from the body that holds it to a body of a higher level (default: its escalates_to), with a reason.",
                schema: step([("reason", requiredReason), ("to_body_id", MeetingsSchemas.nullableUUID)], required: ["reason"]), input: StepInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let issue = try lock(input, principal: principal, by: .holder, on: tx)
                try issue.require(["raised", "discussed", "escalated"], to: "escalated")
                let target = try escalationTarget(from: issue.currentBodyID, requested: input.to_body_id, on: tx)
                try tx.query("UPDATE meetings.regional_issues SET current_body_id = \(target.id)::uuid WHERE id = \(input.id)::uuid")
                try move(issue, to: "escalated", toBody: target.id, reason: input.reason ?? "", principal: principal, on: tx)
                try appendEvent("regional_issue.escalated", id: input.id, tenant: target.tenant, on: tx,
                                extra: ["from_body_id": .string(issue.currentBodyID), "to_body_id": .string(target.id)])
                return try fetch(id: input.id, for: principal, on: tx)
            },
            try .write(
                "issue.answer", summary: "Answer an issue escalated to the caller's body; the answer goes back to the raising body.",
                schema: step([("answer", MeetingsSchemas.text(4000, min: 1)), ("reason", reason)], required: ["answer"]), input: StepInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let issue = try lock(input, principal: principal, by: .holder, on: tx)
                try issue.require(["escalated"], to: "answered")
                try tx.query("""
                    UPDATE meetings.regional_issues SET answer = \(input.answer ?? ""), answered_by_body_id = current_body_id, answered_at = now(),
                        current_body_id = body_id
                    WHERE id = \(input.id)::uuid
                    """)
                try move(issue, to: "answered", toBody: issue.bodyID, reason: input.reason ?? "", principal: principal, on: tx)
                try appendEvent("regional_issue.answered", id: input.id, tenant: issue.tenant, on: tx,
                                extra: ["answered_by_body_id": .string(issue.currentBodyID)])
                return try fetch(id: input.id, for: principal, on: tx)
            },
            try .write(
                "issue.close", summary: "Close an issue handled locally or answered (the raising body's writers), with a reason.",
                schema: step([("reason", requiredReason)], required: ["reason"]), input: StepInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let issue = try lock(input, principal: principal, by: .raiser, on: tx)
                try issue.require(["handled_locally", "answered"], to: "closed")
                try move(issue, to: "closed", reason: input.reason ?? "", principal: principal, on: tx)
                try appendEvent("regional_issue.closed", id: input.id, tenant: issue.tenant, on: tx)
                return try fetch(id: input.id, for: principal, on: tx)
            },
            try .write(
                "issue.merge", summary: "Close an open issue as a duplicate of another (`into`), which carries on.",
                schema: step([("into", MeetingsSchemas.uuid), ("reason", reason)], required: ["into"]), input: StepInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let issue = try lock(input, principal: principal, by: .holder, on: tx)
                try issue.require(["raised", "discussed", "handled_locally", "escalated", "answered"], to: "closed")
                let into = input.into ?? ""
                guard into.lowercased() != input.id.lowercased() else {
                    throw WireError.invalidInput("an issue is not a duplicate of itself", violations: [
                        JSONSchemaViolation(path: "/into", message: "name another issue"),
                    ])
                }
                let target = try tx.query("SELECT status FROM meetings.regional_issues WHERE id = \(into)::uuid FOR SHARE")
                guard let row = target.first else { throw WireError(.notFound, "no issue \(into)") }
                guard try row.decode("status", as: String.self) != "closed" else {
                    throw WireError(.conflict, "issue \(into) is closed; merge into an open one")
                }
                try tx.query("UPDATE meetings.regional_issues SET merged_into = \(into)::uuid WHERE id = \(input.id)::uuid")
                try move(issue, to: "closed", reason: input.reason.map { "merged: \($0)" } ?? "merged", principal: principal, on: tx)
                try appendEvent("regional_issue.closed", id: input.id, tenant: issue.tenant, on: tx, extra: ["merged_into": .string(into)])
                return try fetch(id: input.id, for: principal, on: tx)
            },
            try .read(
                "issue.get", summary: "One regional issue with its steps.", schema: MeetingsSchemas.id, input: IDInput.self
            ) { context, input in
                try await context.database.withConnection { try fetch(id: input.id, for: context.principal, on: $0) }
            },
            try .read(
                "issue.list", summary: "Issues a body raised (or, held: true, those it holds now), newest first, at most 1000.",
                schema: MeetingsSchemas.object([("body_id", MeetingsSchemas.uuid), ("held", #"{"type":"boolean"}"#),
                                                ("status", MeetingsSchemas.oneOf(statuses))], required: ["body_id"]),
                input: ListInput.self
            ) { context, input in
                let rows = try await context.database.withConnection { connection in
                    try connection.jsonRows("""
                        SELECT \(json(for: context.principal)) AS j FROM meetings.regional_issues ri
                        WHERE (CASE WHEN \(input.held ?? false) THEN ri.current_body_id ELSE ri.body_id END) = \(input.body_id)::uuid
                          AND (\(input.status)::text IS NULL OR ri.status = \(input.status))
                        ORDER BY ri.created_at DESC, ri.id LIMIT 1000
                        """)
                }
                return JSONValue.object(["issues": .array(rows)])
            },
            try .read(
                "issue.summary", summary: "A body's public yearly summary of regional issues: raised and received in a fiscal year, by status and axis.",
                schema: MeetingsSchemas.object([("body_id", MeetingsSchemas.uuid), ("fiscal_year", MeetingsSchemas.fiscalYear)],
                                               required: ["body_id", "fiscal_year"]),
                input: SummaryInput.self
            ) { context, input in
                try await context.database.withConnection { try summary(input, on: $0) }
            },
        ]
    }

    // MARK: Rules

    static func checkSource(_ input: RaiseInput, on tx: PostgresConnection) throws {
        func refuse(_ path: String, _ message: String) throws -> Never {
            throw WireError.invalidInput("the issue's source does not fit its kind", violations: [JSONSchemaViolation(path: path, message: message)])
        }
        switch input.source_kind {
        case "agenda_item":
            guard let item = input.source_agenda_item_id, input.source_case_id == nil else {
                try refuse("/source_agenda_item_id", "an issue raised from an agenda item names the item, and no case")
            }
            let found = try tx.query("""
                SELECT 1 FROM meetings.agenda_items a JOIN meetings.meetings mt ON mt.id = a.meeting_id
                WHERE a.id = \(item)::uuid AND mt.body_id = \(input.body_id)::uuid
                """)
            if found.isEmpty { try refuse("/source_agenda_item_id", "agenda item \(item) is not on a meeting of this body") }
        case "case":
            guard let caseID = input.source_case_id, input.source_agenda_item_id == nil else {
                try refuse("/source_case_id", "an issue raised from a case names the case's id, and no agenda item")
            }
            // The case's existence and body only; nothing of its content is read or copied.
            let found = try tx.query("SELECT 1 FROM meetings.cases WHERE id = \(caseID)::uuid AND body_id = \(input.body_id)::uuid")
            if found.isEmpty { try refuse("/source_case_id", "no case of this body has this id") }
        default:
            guard input.source_case_id == nil, input.source_agenda_item_id == nil, !(input.source_data ?? "").isEmpty else {
                try refuse("/source_data", "an issue raised from data says which data (source and year), and names no case or agenda item")
            }
        }
    }

    static func escalationTarget(from holder: String, requested: String?, on tx: PostgresConnection) throws -> (id: String, tenant: String) {
        let holderRow = try tx.query("SELECT level, escalates_to::text FROM meetings.bodies WHERE id = \(holder)::uuid")[0]
        let level: String = try holderRow.decode("level")
        let defaultTarget = try holderRow.decode("escalates_to", as: String?.self)
        guard let target = requested ?? defaultTarget else {
            throw WireError.invalidInput("the body names no body to escalate to", violations: [
                JSONSchemaViolation(path: "/to_body_id", message: "give to_body_id, or set the body's escalates_to"),
            ])
        }
        let rows = try tx.query("""
            SELECT id::text, tenant, level, retired_at IS NOT NULL AS retired FROM meetings.bodies WHERE id = \(target)::uuid
            """)
        guard let row = rows.first else { throw WireError(.notFound, "no body \(target)") }
        let targetLevel: String = try row.decode("level")
        if try row.decode("retired", as: Bool.self) { throw WireError(.conflict, "body \(target) is retired") }
        guard Bodies.rank(of: targetLevel) > Bodies.rank(of: level) else {
            throw WireError.invalidInput("issues escalate upwards", violations: [
                JSONSchemaViolation(path: "/to_body_id", message: "a \(level) body escalates to an area or prefectural body, an area body to a prefectural one"),
            ])
        }
        return (try row.decode("id"), try row.decode("tenant"))
    }

    enum Actor { case holder, raiser }

    struct Locked {
        let id: String
        let status: String
        let tenant: String
        let bodyID: String
        let currentBodyID: String

        func require(_ allowed: [String], to next: String) throws {
            guard allowed.contains(status) else {
                throw WireError(.conflict, "an issue that is \(status) cannot become \(next) (only from \(allowed.joined(separator: ", ")))")
            }
        }
    }

    /// Locks the issue and checks the caller writes for the body that holds it (or raised it).
    static func lock(_ input: StepInput, principal: Principal, by actor: Actor, on tx: PostgresConnection) throws -> Locked {
        let rows = try tx.query("""
            SELECT ri.status, ri.tenant, ri.body_id::text, ri.current_body_id::text, ri.version, hb.tenant AS holder_tenant
            FROM meetings.regional_issues ri JOIN meetings.bodies hb ON hb.id = ri.current_body_id
            WHERE ri.id = \(input.id)::uuid FOR UPDATE OF ri
            """)
        guard let row = rows.first else { throw WireError(.notFound, "no issue \(input.id)") }
        let owner: String = try row.decode(actor == .holder ? "holder_tenant" : "tenant")
        try principal.requireOwner(of: owner)
        let current: Int = try row.decode("version")
        if input.version != current {
            throw WireError(.conflict, "the issue changed since version \(input.version); read it again",
                            details: .object(["version": .integer(Int64(current))]))
        }
        return Locked(id: input.id, status: try row.decode("status"), tenant: try row.decode("tenant"), bodyID: try row.decode("body_id"),
                      currentBodyID: try row.decode("current_body_id"))
    }

    static func move(_ issue: Locked, to status: String, toBody: String? = nil, reason: String, principal: Principal,
                     on tx: PostgresConnection) throws {
        try tx.query("UPDATE meetings.regional_issues SET status = \(status), version = version + 1, updated_at = now() WHERE id = \(issue.id)::uuid")
        try record(id: issue.id, from: issue.status, to: status, body: issue.currentBodyID, toBody: toBody, reason: reason,
                   principal: principal, on: tx)
    }

    static func record(id: String, from: String?, to: String, body: String, toBody: String?, reason: String, principal: Principal,
                       on tx: PostgresConnection) throws {
        try tx.query("""
            INSERT INTO meetings.regional_issue_steps (issue_id, from_status, to_status, body_id, to_body_id, reason, by_token)
            VALUES (\(id)::uuid, \(from), \(to), \(body)::uuid, \(toBody)::uuid, \(reason), \(principal.tokenID))
            """)
    }

    // MARK: JSON

    /// Issue `ri`. The case id is shown to the raising tenant's and national principals only.
    static func json(for principal: Principal?) -> PostgresQuery {
        """
        (to_jsonb(ri) || jsonb_build_object(
            'fiscal_year', \(Visibility.fiscalYear(of: "ri.created_at")),
            'source_case_id', CASE WHEN \(Visibility.revealed(to: principal, ownerColumn: "ri.tenant")) THEN ri.source_case_id END))
        """
    }

    /// Issue `ri` as a meeting's agenda shows it.
    static let agendaJSON: StaticString = """
        jsonb_build_object('id', ri.id, 'body_id', ri.body_id, 'title', ri.title, 'theme', ri.theme, 'axis', ri.axis, 'status', ri.status,
                           'answer', ri.answer, 'answered_by_body_id', ri.answered_by_body_id)
        """

    static func fetch(id: String, for principal: Principal?, on connection: PostgresConnection) throws -> JSONValue {
        try connection.jsonRow("""
            SELECT \(json(for: principal)) || jsonb_build_object('steps', coalesce((
                SELECT jsonb_agg(jsonb_build_object('from_status', s.from_status, 'to_status', s.to_status, 'body_id', s.body_id,
                                                    'to_body_id', s.to_body_id, 'reason', s.reason, 'at', s.at) ORDER BY s.id)
                FROM meetings.regional_issue_steps s WHERE s.issue_id = ri.id), '[]'::jsonb)) AS j
            FROM meetings.regional_issues ri WHERE ri.id = \(id)::uuid
            """, notFound: "no issue \(id)")
    }

    /// The issues on meeting `mt`'s agenda: escalated to its body, or answered back to it, before
    /// the meeting started and not moved on by then.
    static func onAgenda(status: String) -> PostgresQuery {
        """
        coalesce((SELECT jsonb_agg(\(unsafeRaw: agendaJSON) ORDER BY s.at, s.id)
                  FROM meetings.regional_issue_steps s JOIN meetings.regional_issues ri ON ri.id = s.issue_id
                  WHERE s.to_body_id = mt.body_id AND s.to_status = \(status) AND s.at < mt.starts_at
                    AND NOT EXISTS (SELECT 1 FROM meetings.regional_issue_steps n
                                    WHERE n.issue_id = s.issue_id AND n.id > s.id AND n.at <= mt.starts_at)), '[]'::jsonb)
        """
    }

    static func summary(_ input: SummaryInput, on connection: PostgresConnection) throws -> JSONValue {
        try connection.jsonRow("""
            WITH raised AS (
                SELECT ri.* FROM meetings.regional_issues ri
                WHERE ri.body_id = \(input.body_id)::uuid AND \(Visibility.fiscalYear(of: "ri.created_at")) = \(input.fiscal_year)),
            received AS (
                SELECT DISTINCT ri.id, ri.title, ri.theme, ri.axis, ri.status, ri.body_id FROM meetings.regional_issue_steps s
                JOIN meetings.regional_issues ri ON ri.id = s.issue_id
                WHERE s.to_body_id = \(input.body_id)::uuid AND s.to_status = 'escalated'
                  AND \(Visibility.fiscalYear(of: "s.at")) = \(input.fiscal_year))
            SELECT jsonb_build_object(
                'body_id', b.id, 'name', b.name, 'fiscal_year', \(input.fiscal_year)::int,
                'raised', (SELECT count(*) FROM raised),
                'by_status', (SELECT jsonb_object_agg(st, (SELECT count(*) FROM raised WHERE status = st)) FROM unnest(\(statuses)::text[]) st),
                'by_axis', (SELECT jsonb_object_agg(ax, (SELECT count(*) FROM raised WHERE axis = ax)) FROM unnest(\(Agenda.axes)::text[]) ax),
                'escalated', (SELECT count(*) FROM raised r WHERE EXISTS (
                    SELECT 1 FROM meetings.regional_issue_steps s WHERE s.issue_id = r.id AND s.to_status = 'escalated')),
                'answered', (SELECT count(*) FROM raised WHERE answered_at IS NOT NULL),
                'issues', coalesce((SELECT jsonb_agg(jsonb_build_object('id', id, 'title', title, 'theme', theme, 'axis', axis, 'status', status,
                                                                        'answered', answered_at IS NOT NULL, 'merged_into', merged_into)
                                                     ORDER BY created_at, id) FROM raised), '[]'::jsonb),
                'received', coalesce((SELECT jsonb_agg(jsonb_build_object('id', id, 'title', title, 'theme', theme, 'axis', axis,
                                                                          'status', status, 'raised_by_body_id', body_id) ORDER BY id)
                                      FROM received), '[]'::jsonb)) AS j
            FROM meetings.bodies b WHERE b.id = \(input.body_id)::uuid
            """, notFound: "no body \(input.body_id)")
    }

    /// `regional_issue.*`: ids, axis, status and source kind; never title, theme, evidence or a case id.
    static func appendEvent(_ type: String, id: String, tenant: String, on tx: PostgresConnection,
                            extra: [String: JSONValue] = [:]) throws {
        let row = try tx.jsonRow("""
            SELECT jsonb_build_object('issue_id', ri.id, 'body_id', ri.body_id, 'current_body_id', ri.current_body_id, 'axis', ri.axis,
                                      'status', ri.status, 'source_kind', ri.source_kind) AS j
            FROM meetings.regional_issues ri WHERE ri.id = \(id)::uuid
            """, notFound: "no issue \(id)")
        guard case .object(var data) = row else { return }
        data.merge(extra) { _, new in new }
        try MeetingsEvents.append(on: tx, type: type, subject: "regional_issues/\(id)", tenant: tenant, data: .object(data))
    }
}

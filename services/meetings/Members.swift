import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// A body's members: registry organisations (by id; the registry is not asked whether the id
/// exists) or named people, each with a sector, a role and a term of appointment (委嘱期間), and
/// optionally the gateway account they act with and their role on the body's cases (the cases part
/// of the service decides case access from these rows). A member is current on the days within
/// its term, counted in Japan's time zone.
enum Members {
    static let sectors = ["health", "medical", "welfare", "long_term_care", "user", "family", "peer_supporter", "housing",
                          "administration", "other"]
    static let roles = ["chair", "vice_chair", "secretariat", "member"]
    static let caseRoles = ["reader", "editor"]

    /// Today in Japan, as SQL: terms of appointment are calendar days there.
    static let today: StaticString = "(now() AT TIME ZONE 'Asia/Tokyo')::date"

    static let fields: [(String, String)] = [
        ("organization_id", MeetingsSchemas.nullableUUID),
        ("person_name", #"{"type":["string","null"],"minLength":1,"maxLength":100}"#),
        ("affiliation", MeetingsSchemas.text(200)),
        ("sector", MeetingsSchemas.oneOf(sectors)),
        ("role", MeetingsSchemas.oneOf(roles)),
        ("term_start", MeetingsSchemas.date),
        ("term_end", MeetingsSchemas.nullableDate),
        ("account", #"{"type":["string","null"],"minLength":1,"maxLength":100}"#),
        ("case_role", #"{"enum":["reader","editor",null]}"#),
    ]

    /// A member as read (`body.get`), so a body sent back unchanged from a read is accepted.
    static let readBackSchema = MeetingsSchemas.object(
        [("id", MeetingsSchemas.uuid), ("body_id", MeetingsSchemas.uuid), ("current", #"{"type":"boolean"}"#),
         ("created_at", MeetingsSchemas.nullableText(40)), ("updated_at", MeetingsSchemas.nullableText(40))] + fields,
        required: [])

    struct Fields: Decodable, Sendable {
        let id: String?
        let body_id: String?
        let organization_id: String?
        let person_name: String?
        let affiliation: String?
        let sector: String
        let role: String
        let term_start: String
        let term_end: String?
        let account: String?
        let case_role: String?
    }

    /// A member row `m` as JSON. People's names and accounts are shown to the owning tenant's
    /// principals and the national tenant's; any other tenant sees `null` in their place.
    static func json(for principal: Principal?) -> PostgresQuery {
        let tenant = principal?.tenant
        let national = tenant == TenancyPolicy.nationalTenant
        return """
            (to_jsonb(m) || jsonb_build_object(
                'current', m.term_start <= \(unsafeRaw: today) AND (m.term_end IS NULL OR m.term_end >= \(unsafeRaw: today)),
                'person_name', CASE WHEN \(national) OR (SELECT tenant FROM meetings.bodies WHERE id = m.body_id) = \(tenant)
                                    THEN m.person_name END,
                'account', CASE WHEN \(national) OR (SELECT tenant FROM meetings.bodies WHERE id = m.body_id) = \(tenant)
                                THEN m.account END))
            """
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .write(
                "member.add", summary: "Add a member (an organisation or a named person) to a body.",
                schema: MeetingsSchemas.object([("body_id", MeetingsSchemas.uuid)] + fields,
                                               required: ["body_id", "sector", "role", "term_start"]),
                input: Fields.self
            ) { context, input, tx in
                let principal = try context.writer()
                let bodyID = input.body_id ?? ""
                try Bodies.lockForChange(id: bodyID, version: nil, principal: principal, on: tx)
                try check(input)
                let id: String = try tx.query("""
                    INSERT INTO meetings.members (body_id, organization_id, person_name, affiliation, sector, role, term_start, term_end,
                                                  account, case_role)
                    VALUES (\(bodyID)::uuid, \(input.organization_id)::uuid::text, \(input.person_name), \(input.affiliation ?? ""),
                            \(input.sector), \(input.role), \(input.term_start)::date, \(input.term_end)::date, \(input.account), \(input.case_role))
                    RETURNING id::text
                    """)[0].decode("id")
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "member.update", summary: "Replace a member's fields (its body stays).",
                schema: MeetingsSchemas.object(
                    [("id", MeetingsSchemas.uuid), ("body_id", MeetingsSchemas.uuid), ("current", #"{"type":"boolean"}"#),
                     ("created_at", MeetingsSchemas.nullableText(40)), ("updated_at", MeetingsSchemas.nullableText(40))] + fields,
                    required: ["id", "sector", "role", "term_start"]),
                input: Fields.self
            ) { context, input, tx in
                let principal = try context.writer()
                let id = input.id ?? ""
                try lockForChange(id: id, principal: principal, on: tx)
                try check(input)
                try tx.query("""
                    UPDATE meetings.members SET organization_id = \(input.organization_id)::uuid::text, person_name = \(input.person_name),
                        affiliation = \(input.affiliation ?? ""), sector = \(input.sector), role = \(input.role),
                        term_start = \(input.term_start)::date, term_end = \(input.term_end)::date, account = \(input.account),
                        case_role = \(input.case_role), updated_at = now()
                    WHERE id = \(id)::uuid
                    """)
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "member.remove", summary: "Remove a member from a body (to end an appointment instead, set term_end).",
                schema: MeetingsSchemas.id, input: IDInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                try lockForChange(id: input.id, principal: principal, on: tx)
                try tx.query("DELETE FROM meetings.members WHERE id = \(input.id)::uuid")
                return JSONValue.object(["id": .string(input.id), "removed": .bool(true)])
            },
        ]
    }

    static func check(_ input: Fields) throws {
        if (input.organization_id == nil) == (input.person_name == nil) {
            throw WireError.invalidInput("a member is either an organisation or a named person", violations: [
                JSONSchemaViolation(path: "/organization_id", message: "give exactly one of organization_id and person_name"),
            ])
        }
        if let end = input.term_end, end < input.term_start {
            throw WireError.invalidInput("the term ends before it starts", violations: [
                JSONSchemaViolation(path: "/term_end", message: "term_end \(end) is before term_start \(input.term_start)"),
            ])
        }
    }

    /// Locks the member's body and checks that `principal` may change it.
    static func lockForChange(id: String, principal: Principal, on tx: PostgresConnection) throws {
        let rows = try tx.query("SELECT body_id::text FROM meetings.members WHERE id = \(id)::uuid")
        guard let row = rows.first else { throw WireError(.notFound, "no member \(id)") }
        try Bodies.lockForChange(id: try row.decode("body_id"), version: nil, principal: principal, on: tx)
    }

    static func fetch(id: String, for principal: Principal?, on connection: PostgresConnection) throws -> JSONValue {
        try connection.jsonRow("SELECT \(json(for: principal)) AS j FROM meetings.members m WHERE m.id = \(id)::uuid",
                               notFound: "no member \(id)")
    }
}

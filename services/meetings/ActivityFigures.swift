import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// The plan's activity indicators (§6), counted from what the meetings already record so nobody
/// types them twice: per body and fiscal year (April–March, Japan time), meetings held,
/// participants by sector, sessions that set or evaluated the year's goals, trainings (研修) held
/// and their participants. Cancelled and merely scheduled sessions count nowhere.
enum ActivityFigures {
    struct Input: Decodable, Sendable {
        let fiscal_year: Int
        let body_id: String?
        let tenant: String?
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .read(
                "activity.figures", summary: "Activity figures of one body (body_id) or of every body of a tenant, for a fiscal year.",
                schema: MeetingsSchemas.object([("fiscal_year", MeetingsSchemas.fiscalYear), ("body_id", MeetingsSchemas.uuid),
                                                ("tenant", MeetingsSchemas.tenant)], required: ["fiscal_year"]),
                input: Input.self
            ) { context, input in
                guard (input.body_id == nil) != (input.tenant == nil) else {
                    throw WireError.invalidInput("name one body or one tenant", violations: [
                        JSONSchemaViolation(path: "/body_id", message: "give exactly one of body_id and tenant"),
                    ])
                }
                let bodies = try await context.database.withConnection { connection in
                    if let body = input.body_id {
                        _ = try connection.jsonRow("SELECT to_jsonb(id) AS j FROM meetings.bodies WHERE id = \(body)::uuid",
                                                   notFound: "no body \(body)")
                    }
                    return try connection.jsonRows(figures(input))
                }
                return JSONValue.object(["fiscal_year": .integer(Int64(input.fiscal_year)), "bodies": .array(bodies)])
            },
        ]
    }

    static func figures(_ input: Input) -> PostgresQuery {
        let sectors = Members.sectors
        return """
            WITH held AS (
                SELECT mt.* FROM meetings.meetings mt
                WHERE mt.status = 'held' AND \(Visibility.fiscalYear(of: "mt.starts_at")) = \(input.fiscal_year)),
            counted AS (
                SELECT h.body_id, h.kind, a.sector, sum(a.count)::bigint AS n
                FROM held h JOIN meetings.attendance a ON a.meeting_id = h.id GROUP BY h.body_id, h.kind, a.sector)
            SELECT jsonb_build_object(
                'body_id', b.id, 'name', b.name, 'tenant', b.tenant, 'level', b.level,
                'meetings_held', (SELECT count(*) FROM held h WHERE h.body_id = b.id AND h.kind = 'meeting'),
                'participants', (SELECT coalesce(sum(n), 0) FROM counted c WHERE c.body_id = b.id AND c.kind = 'meeting'),
                'participants_by_sector', (SELECT jsonb_object_agg(s, (SELECT coalesce(sum(n), 0) FROM counted c
                                                                       WHERE c.body_id = b.id AND c.kind = 'meeting' AND c.sector = s))
                                           FROM unnest(\(sectors)::text[]) s),
                'observers', (SELECT coalesce(sum(h.observers), 0) FROM held h WHERE h.body_id = b.id AND h.kind = 'meeting'),
                'goal_sessions', jsonb_build_object(
                    'set', (SELECT count(*) FROM held h WHERE h.body_id = b.id AND h.goals_set),
                    'evaluated', (SELECT count(*) FROM held h WHERE h.body_id = b.id AND h.goals_evaluated),
                    'set_or_evaluated', (SELECT count(*) FROM held h WHERE h.body_id = b.id AND (h.goals_set OR h.goals_evaluated))),
                'trainings', jsonb_build_object(
                    'held', (SELECT count(*) FROM held h WHERE h.body_id = b.id AND h.kind = 'training'),
                    'participants', (SELECT coalesce(sum(n), 0) FROM counted c WHERE c.body_id = b.id AND c.kind = 'training'),
                    'participants_by_sector', (SELECT jsonb_object_agg(s, (SELECT coalesce(sum(n), 0) FROM counted c
                                                                           WHERE c.body_id = b.id AND c.kind = 'training' AND c.sector = s))
                                               FROM unnest(\(sectors)::text[]) s))) AS j
            FROM meetings.bodies b
            WHERE (b.id = \(input.body_id)::uuid OR (\(input.tenant)::text IS NOT NULL AND b.tenant = \(input.tenant)))
            ORDER BY b.name, b.id LIMIT 1000
            """
    }
}

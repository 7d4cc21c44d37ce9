import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// Meeting bodies (協議の場): one per municipality, 障害保健福祉圏域, prefecture, joint group of
/// municipalities or designated city's ward, owned by the implementing body (tenant) that runs it.
/// Field names on the wire are the column names; an update replaces every writable field at the
/// version last read.
enum Bodies {
    static let levels = ["municipality", "disability_area", "prefecture", "joint", "ward"]
    static let secretariats = ["health_centre", "welfare_section", "core_consultation_centre"]
    static let bases = ["standalone", "council_working_group", "area_council"]
    static let maxMunicipalities = 200

    /// How far up the backup chain a level sits: an issue is escalated only upwards.
    static func rank(of level: String) -> Int {
        switch level {
        case "prefecture": 3
        case "disability_area": 2
        default: 1
        }
    }

    static let fields: [(String, String)] = [
        ("name", MeetingsSchemas.text(200, min: 1)),
        ("level", MeetingsSchemas.oneOf(levels)),
        ("prefecture_code", MeetingsSchemas.code),
        ("municipalities", #"{"type":"array","maxItems":\#(maxMunicipalities),"items":\#(MeetingsSchemas.code)}"#),
        ("ward_name", MeetingsSchemas.nullableText(100)),
        ("area_code", MeetingsSchemas.nullableText(100)),
        ("secretariat", MeetingsSchemas.oneOf(secretariats)),
        ("secretariat_organization_id", MeetingsSchemas.nullableUUID),
        ("basis", MeetingsSchemas.oneOf(bases)),
        ("escalates_to", MeetingsSchemas.nullableUUID),
    ]
    static let required = ["name", "level", "prefecture_code", "secretariat", "basis"]
    /// Read-only fields a client may send back unchanged from a read: ignored by an update.
    static let readOnlyFields: [(String, String)] = [
        ("tenant", MeetingsSchemas.nullableText(100)), ("created_at", MeetingsSchemas.nullableText(40)),
        ("updated_at", MeetingsSchemas.nullableText(40)), ("retired_at", MeetingsSchemas.nullableText(40)),
        ("members", #"{"type":"array","maxItems":1000,"items":\#(Members.readBackSchema)}"#),
    ]

    struct Fields: Decodable, Sendable {
        let name: String
        let level: String
        let prefecture_code: String
        let municipalities: [String]?
        let ward_name: String?
        let area_code: String?
        let secretariat: String
        let secretariat_organization_id: String?
        let basis: String
        let escalates_to: String?
        // create
        let tenant: String?
        // update
        let id: String?
        let version: Int?
    }

    struct ListInput: Decodable, Sendable {
        let tenant: String?
        let prefecture_code: String?
        let level: String?
        let include_retired: Bool?
    }

    struct MapInput: Decodable, Sendable {
        let prefecture_code: String
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .write(
                "body.create", summary: "Create a meeting body owned by the caller's tenant (a national admin may name another tenant).",
                schema: MeetingsSchemas.object(fields + [("tenant", MeetingsSchemas.tenant)], required: required), input: Fields.self
            ) { context, input, tx in
                let principal = try context.requireOwner(of: input.tenant ?? context.requirePrincipal().tenant)
                let owner = input.tenant ?? principal.tenant
                try check(input, selfID: nil, on: tx)
                let id: String = try tx.query("""
                    INSERT INTO meetings.bodies (tenant, name, level, prefecture_code, municipalities, ward_name, area_code,
                                                 secretariat, secretariat_organization_id, basis, escalates_to)
                    VALUES (\(owner), \(input.name), \(input.level), \(input.prefecture_code), \(input.municipalities ?? [])::text[],
                            \(input.ward_name), \(input.area_code), \(input.secretariat), \(input.secretariat_organization_id)::uuid::text,
                            \(input.basis), \(input.escalates_to)::uuid)
                    RETURNING id::text
                    """)[0].decode("id")
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "body.update", summary: "Replace a body's fields at the version last read; a stale version is a conflict.",
                schema: MeetingsSchemas.object([("id", MeetingsSchemas.uuid), ("version", MeetingsSchemas.version)] + fields + readOnlyFields,
                                               required: ["id", "version"] + required),
                input: Fields.self
            ) { context, input, tx in
                let principal = try context.writer()
                let id = input.id ?? ""
                _ = try lockForChange(id: id, version: input.version, principal: principal, on: tx)
                try check(input, selfID: id, on: tx)
                try tx.query("""
                    UPDATE meetings.bodies SET name = \(input.name), level = \(input.level), prefecture_code = \(input.prefecture_code),
                        municipalities = \(input.municipalities ?? [])::text[], ward_name = \(input.ward_name), area_code = \(input.area_code),
                        secretariat = \(input.secretariat), secretariat_organization_id = \(input.secretariat_organization_id)::uuid::text,
                        basis = \(input.basis), escalates_to = \(input.escalates_to)::uuid, version = version + 1, updated_at = now()
                    WHERE id = \(id)::uuid
                    """)
                return try fetch(id: id, for: principal, on: tx)
            },
            try .write(
                "body.retire", summary: "Retire a body: kept with its meetings, no longer listed or on the map.",
                schema: MeetingsSchemas.idAndVersion, input: VersionedID.self
            ) { context, input, tx in
                let principal = try context.writer()
                _ = try lockForChange(id: input.id, version: input.version, principal: principal, on: tx)
                try tx.query("UPDATE meetings.bodies SET retired_at = now(), updated_at = now(), version = version + 1 WHERE id = \(input.id)::uuid")
                return try fetch(id: input.id, for: principal, on: tx)
            },
            try .read(
                "body.get", summary: "One body with its members, retired or not.", schema: MeetingsSchemas.id, input: IDInput.self
            ) { context, input in
                try await context.database.withConnection { try fetch(id: input.id, for: context.principal, on: $0) }
            },
            try .read(
                "body.list", summary: "Bodies by tenant, prefecture and level (at most 1000, by name).",
                schema: MeetingsSchemas.object([("tenant", MeetingsSchemas.tenant), ("prefecture_code", MeetingsSchemas.code),
                                                ("level", MeetingsSchemas.oneOf(levels)), ("include_retired", #"{"type":"boolean"}"#)],
                                               required: []),
                input: ListInput.self
            ) { context, input in
                let bodies = try await context.database.withConnection { connection in
                    try connection.jsonRows("""
                        SELECT to_jsonb(b) AS j FROM meetings.bodies b
                        WHERE (\(input.tenant)::text IS NULL OR b.tenant = \(input.tenant))
                          AND (\(input.prefecture_code)::text IS NULL OR b.prefecture_code = \(input.prefecture_code))
                          AND (\(input.level)::text IS NULL OR b.level = \(input.level))
                          AND (\(input.include_retired ?? false) OR b.retired_at IS NULL)
                        ORDER BY b.name, b.id LIMIT 1000
                        """)
                }
                return JSONValue.object(["bodies": .array(bodies)])
            },
            try .read(
                "body.map", summary: "For each municipality of a prefecture: its own meeting, a joint one, or none (map-ready).",
                schema: MeetingsSchemas.object([("prefecture_code", MeetingsSchemas.code)], required: ["prefecture_code"]),
                input: MapInput.self
            ) { context, input in
                try await context.database.withConnection { try map(prefecture: input.prefecture_code, on: $0) }
            },
        ]
    }

    /// The rules a body's fields obey beyond the schema, each broken one named by JSON Pointer.
    static func check(_ input: Fields, selfID: String?, on tx: PostgresConnection) throws {
        var violations: [JSONSchemaViolation] = []
        let municipalities = input.municipalities ?? []
        func broken(_ path: String, _ message: String) { violations.append(JSONSchemaViolation(path: path, message: message)) }
        switch input.level {
        case "municipality" where municipalities.count != 1:
            broken("/municipalities", "a municipality's body covers exactly one municipality")
        case "ward" where municipalities.count != 1:
            broken("/municipalities", "a ward's body names exactly one municipality: its designated city")
        case "joint" where municipalities.count < 2:
            broken("/municipalities", "a joint body covers at least two municipalities")
        case "disability_area" where municipalities.isEmpty:
            broken("/municipalities", "a 障害保健福祉圏域's body names the municipalities of the area")
        default: break
        }
        if input.level == "ward", (input.ward_name ?? "").isEmpty {
            broken("/ward_name", "a ward's body names its ward")
        }
        if Set(municipalities).count != municipalities.count {
            broken("/municipalities", "a municipality is named twice")
        }
        let known = try tx.query("SELECT count(*)::int AS n FROM meetings.prefectures WHERE code = \(input.prefecture_code)")[0]
            .decode("n", as: Int.self)
        if known == 0 { broken("/prefecture_code", "no prefecture \(input.prefecture_code)") }
        let strangers: [String] = try tx.query("""
            SELECT c FROM unnest(\(municipalities)::text[]) c
            WHERE NOT EXISTS (SELECT 1 FROM meetings.municipalities m WHERE m.code = c AND m.prefecture_code = \(input.prefecture_code))
            """).map { try $0.decode("c") }
        for code in strangers { broken("/municipalities", "\(code) is not a municipality of prefecture \(input.prefecture_code)") }
        if let target = input.escalates_to {
            let rows = try tx.query("SELECT level, retired_at IS NOT NULL AS retired FROM meetings.bodies WHERE id = \(target)::uuid")
            if let row = rows.first {
                let level: String = try row.decode("level")
                if target.lowercased() == selfID?.lowercased() {
                    broken("/escalates_to", "a body does not escalate to itself")
                } else if try row.decode("retired", as: Bool.self) {
                    broken("/escalates_to", "body \(target) is retired")
                } else if rank(of: level) <= rank(of: input.level) {
                    broken("/escalates_to", "issues escalate upwards: a \(input.level) body to an area or prefectural body, an area body to a prefectural one")
                }
            } else {
                broken("/escalates_to", "no body \(target)")
            }
        }
        if !violations.isEmpty { throw WireError.invalidInput("the body breaks a rule", violations: violations) }
    }

    /// Locks the body and checks that `principal` may change it (at `version`, when given).
    /// Returns the owner tenant.
    @discardableResult
    static func lockForChange(id: String, version: Int?, principal: Principal, on tx: PostgresConnection,
                              allowRetired: Bool = false) throws -> String {
        let rows = try tx.query("""
            SELECT tenant, version, retired_at IS NOT NULL AS retired FROM meetings.bodies WHERE id = \(id)::uuid FOR UPDATE
            """)
        guard let row = rows.first else { throw WireError(.notFound, "no body \(id)") }
        let owner: String = try row.decode("tenant")
        try principal.requireOwner(of: owner)
        let current: Int = try row.decode("version")
        if !allowRetired, try row.decode("retired", as: Bool.self) {
            throw WireError(.conflict, "the body is retired", details: .object(["version": .integer(Int64(current))]))
        }
        if let version, version != current {
            throw WireError(.conflict, "the body changed since version \(version); read it again",
                            details: .object(["version": .integer(Int64(current))]))
        }
        return owner
    }

    /// The body as the API shows it, with its members (`Members.json`).
    static func fetch(id: String, for principal: Principal?, on connection: PostgresConnection) throws -> JSONValue {
        try connection.jsonRow("""
            SELECT to_jsonb(b) || jsonb_build_object('members', coalesce((
                       SELECT jsonb_agg(\(Members.json(for: principal)) ORDER BY array_position(\(Members.roles)::text[], m.role), m.term_start, m.id)
                       FROM meetings.members m WHERE m.body_id = b.id), '[]'::jsonb)) AS j
            FROM meetings.bodies b WHERE b.id = \(id)::uuid
            """, notFound: "no body \(id)")
    }

    static func map(prefecture: String, on connection: PostgresConnection) throws -> JSONValue {
        let name = try connection.jsonRow("SELECT to_jsonb(name) AS j FROM meetings.prefectures WHERE code = \(prefecture)",
                                          notFound: "no prefecture \(prefecture)")
        let rows = try connection.jsonRows("""
            SELECT jsonb_build_object('code', m.code, 'name', m.name,
                       'status', CASE WHEN bool_or(b.level IN ('municipality', 'ward')) THEN 'own'
                                      WHEN bool_or(b.level = 'joint') THEN 'joint' ELSE 'none' END,
                       'bodies', coalesce(jsonb_agg(jsonb_build_object('id', b.id, 'name', b.name, 'level', b.level)
                                                    ORDER BY b.name, b.id) FILTER (WHERE b.id IS NOT NULL), '[]'::jsonb)) AS j
            FROM meetings.municipalities m
            LEFT JOIN meetings.bodies b ON b.retired_at IS NULL AND b.level IN ('municipality', 'ward', 'joint')
                                       AND m.code = ANY (b.municipalities)
            WHERE m.prefecture_code = \(prefecture)
            GROUP BY m.code, m.name ORDER BY m.code
            """)
        var counts = ["own": 0, "joint": 0, "none": 0]
        for row in rows { if let status = row["status"]?.stringValue { counts[status, default: 0] += 1 } }
        return .object([
            "prefecture_code": .string(prefecture), "name": name,
            "counts": .object(counts.mapValues { .integer(Int64($0)) }),
            "municipalities": .array(rows),
        ])
    }
}

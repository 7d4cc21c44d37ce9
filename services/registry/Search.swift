import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// Finding resources: `resource.search` (filters, paging) and `resource.serve` ("for a person
/// living in municipality X who needs Y: which windows and resources serve them, nearest level
/// first, and who backs them up"). `backup.chain` is `resource.serve` for consultation windows.
enum Search {
    /// The areas a resource is responsible for: its `serves_areas`, else its daily-life area, else
    /// its municipality.
    static let serviceAreas: StaticString = """
        (CASE WHEN cardinality(r.serves_areas) > 0 THEN r.serves_areas
              ELSE ARRAY[coalesce(r.daily_life_area_id, r.municipality_code::text)] END)
        """

    /// The position in `levels` of the nearest level resource `r` serves (the one area of a
    /// resource naming none is read as a scalar: most are such, and unnesting each costs twice).
    static func nearestLevel(_ levels: [String]) -> PostgresQuery {
        """
        CASE WHEN cardinality(r.serves_areas) = 0
             THEN array_position(\(levels)::text[], coalesce(r.daily_life_area_id, r.municipality_code::text))
             ELSE (SELECT min(array_position(\(levels)::text[], a)) FROM unnest(r.serves_areas) a) END
        """
    }

    /// Resources responsible for any of `ids`: written as the two cases 0032_serves_areas.sql
    /// indexes (areas named, GIN; none named, by own area and category), which the planner ORs.
    static func servesAny(_ ids: [String]) -> PostgresQuery {
        """
        ((cardinality(r.serves_areas) = 0 AND coalesce(r.daily_life_area_id, r.municipality_code::text) = ANY(\(ids)::text[]))
         OR r.serves_areas && \(ids)::text[])
        """
    }

    /// The fields of a resource in search results, as `jsonb_build_object` arguments for resource row `r`.
    static let summaryColumns: StaticString = """
        'id', r.id, 'tenant', r.tenant, 'name', r.name, 'kana', r.kana, 'category_code', r.category_code, 'kinds', r.kinds,
        'municipality_code', r.municipality_code, 'daily_life_area_id', r.daily_life_area_id, 'serves_area', r.serves_area, 'serves_areas', r.serves_areas,
        'address', r.address, 'phone', r.phone, 'url', r.url, 'access_modes', r.access_modes, 'capacity', r.capacity,
        'vacancies', r.vacancies, 'consultation_types', r.consultation_types, 'latitude', r.latitude,
        'longitude', r.longitude, 'serves_except_own_bodies', r.serves_except_own_bodies, 'phones', r.phones,
        'languages', r.languages, 'status', r.status, 'last_verified_at', r.last_verified_at, 'version', r.version
        """
    // Never the staff-only fields (DirectoryFields.staffOnly): search, serve and backup.chain are public.

    struct Filters: Decodable, Sendable {
        let categoryCode: String?
        let kinds: [String]?
        let consultationType: String?
        let hasVacancy: Bool?
        let accessMode: String?
        let text: String?
        /// Resources that name this area among the areas they serve.
        let servesArea: String?

        enum CodingKeys: String, CodingKey {
            case kinds, text
            case servesArea = "serves_area"
            case categoryCode = "category_code"
            case consultationType = "consultation_type"
            case hasVacancy = "has_vacancy"
            case accessMode = "access_mode"
        }

        /// A clause for active resources and one for each filter that is set, its value bound.
        /// Only set filters appear, so the SQL has few shapes and each plans simply (and is
        /// prepared once per connection).
        var clauses: [PostgresQuery] {
            var clauses: [PostgresQuery] = ["r.retired_at IS NULL"]
            if let categoryCode { clauses.append("r.category_code = \(categoryCode)::text") }
            if let kinds { clauses.append("r.kinds && \(kinds)::text[]") }
            if let consultationType { clauses.append("\(consultationType)::text = ANY(r.consultation_types)") }
            if hasVacancy == true { clauses.append("r.vacancies > 0") }
            if let accessMode { clauses.append("\(accessMode)::text = ANY(r.access_modes)") }
            if let servesArea { clauses.append("r.serves_areas @> ARRAY[\(servesArea)::text]") }
            if let text {
                clauses.append("r.search_text LIKE \(SearchText.likeContains(SearchText.normalise(text)))::text ESCAPE '\\'")
            }
            return clauses
        }
    }

    static let filterProperties: [(String, String)] = [
        ("category_code", #"{"type":"string","pattern":"\#(Taxonomy.codePattern)","maxLength":64}"#),
        ("kinds", #"{"type":"array","minItems":1,"maxItems":20,"items":{"type":"string","pattern":"\#(Taxonomy.codePattern)","maxLength":64}}"#),
        ("consultation_type", #"{"enum":["general","disability","elderly","specialist_mental_health","complex_cases","developmental","employment"]}"#),
        ("has_vacancy", #"{"type":"boolean"}"#),
        ("access_mode", #"{"enum":["visit","stay","home_visit"]}"#),
        ("text", #"{"type":"string","minLength":1,"maxLength":100}"#),
        ("serves_area", #"{"type":"string","minLength":1,"maxLength":100}"#),
    ]

    struct SearchInput: Decodable, Sendable {
        let area: String?
        let scope: String?
        let limit: Int?
        let after: String?
        /// The day whose area definitions `area` is read with (default today).
        let asOf: String?
        let filters: Filters

        enum CodingKeys: String, CodingKey {
            case area, scope, limit, after
            case asOf = "as_of"
        }

        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            area = try container.decodeIfPresent(String.self, forKey: .area)
            asOf = try container.decodeIfPresent(String.self, forKey: .asOf)
            scope = try container.decodeIfPresent(String.self, forKey: .scope)
            limit = try container.decodeIfPresent(Int.self, forKey: .limit)
            after = try container.decodeIfPresent(String.self, forKey: .after)
            filters = try Filters(from: decoder)
        }
    }

    struct ServeInput: Decodable, Sendable {
        let municipality: String
        let dailyLifeAreaID: String?
        let filters: Filters
        let limit: Int?
        let after: String?
        /// The day whose areas (and implementing bodies) answer (default today).
        let asOf: String?

        enum CodingKeys: String, CodingKey {
            case municipality, limit, after
            case dailyLifeAreaID = "daily_life_area_id"
            case asOf = "as_of"
        }

        init(municipality: String, dailyLifeAreaID: String?, filters: Filters, limit: Int?, after: String?, asOf: String?) {
            self.municipality = municipality
            self.dailyLifeAreaID = dailyLifeAreaID
            self.filters = filters
            self.limit = limit
            self.after = after
            self.asOf = asOf
        }

        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            municipality = try container.decode(String.self, forKey: .municipality)
            asOf = try container.decodeIfPresent(String.self, forKey: .asOf)
            dailyLifeAreaID = try container.decodeIfPresent(String.self, forKey: .dailyLifeAreaID)
            limit = try container.decodeIfPresent(Int.self, forKey: .limit)
            after = try container.decodeIfPresent(String.self, forKey: .after)
            filters = try Filters(from: decoder)
        }
    }

    /// The resident's own place and the page of `resource.serve` and `backup.chain`.
    static let serveProperties: [(String, String)] = [
        ("municipality", #"{"type":"string","pattern":"^[0-9]{6}$","maxLength":6}"#),
        ("daily_life_area_id", #"{"type":"string","maxLength":100}"#),
        ("limit", #"{"type":"integer","minimum":1,"maximum":200}"#),
        ("after", #"{"type":"string","pattern":"\#(Schemas.uuid)","maxLength":36}"#),
        AsOf.property,
    ]

    static func operations() throws -> [ServiceOperation] {
        [
            try .read(
                "resource.search",
                summary: "Resources by area (scope within: everything inside it; chain: what serves the levels above a municipality), category, kinds, consultation type, vacancy, access mode and Japanese free text; paged in a stable order.",
                schema: Schemas.object([
                    ("area", #"{"type":"string","minLength":1,"maxLength":100}"#),
                    ("scope", #"{"enum":["within","chain"]}"#),
                    ("limit", #"{"type":"integer","minimum":1,"maximum":200}"#),
                    ("after", #"{"type":"string","maxLength":100}"#),
                    AsOf.property,
                ] + filterProperties, required: []),
                input: SearchInput.self
            ) { context, input in
                try await search(input, database: context.database)
            },
            try .read(
                "resource.serve",
                summary: "For a person living in a municipality (and, given, their own daily-life area): the resources that serve them, nearest level first (daily-life area, municipality, health-centre, disability and medical areas, prefecture), each once with who backs it up, paged.",
                schema: Schemas.object(serveProperties + filterProperties, required: ["municipality"]),
                input: ServeInput.self
            ) { context, input in
                try await serve(input, database: context.database)
            },
            try .read(
                "backup.chain",
                summary: "The consultation windows serving a resident of a municipality (and, given, their own daily-life area), nearest level first up to the prefecture, each with its backers (the national adviser organisation among them), paged.",
                schema: Schemas.object(serveProperties, required: ["municipality"]),
                input: ServeInput.self
            ) { context, input in
                let windows = ServeInput(municipality: input.municipality, dailyLifeAreaID: input.dailyLifeAreaID, filters: Filters(
                    categoryCode: "consultation", kinds: nil, consultationType: nil, hasVacancy: nil, accessMode: nil, text: nil,
                    servesArea: nil),
                    limit: input.limit, after: input.after, asOf: input.asOf)
                return try await serve(windows, database: context.database)
            },
        ]
    }

    /// Leaves out, for a resident of `municipality`, a resource that serves its area except the
    /// bodies that run their own, when the resident's municipality is such a body today and runs
    /// its own of the resource's kinds (registry.own_bodies_run): the body's own answers instead.
    static func servesResident(of municipality: String, asOf: String?) -> PostgresQuery {
        """
        NOT (r.serves_except_own_bodies AND EXISTS (
            SELECT 1 FROM registry.own_bodies_run o
            WHERE o.type = registry.body_type(\(municipality)::char(6), \(AsOf.day(asOf))) AND o.kind_code = ANY(r.kinds)))
        """
    }

    // MARK: resource.search

    static func search(_ input: SearchInput, database: PostgresPool) async throws -> RawJSON {
        try AsOf.check(input.asOf)
        let asOf = input.asOf
        let limit = input.limit ?? 50
        let cursor = try input.after.map { after throws(WireError) -> (municipality: String, id: String) in
            let parts = after.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0].count == 6, UUID(uuidString: parts[1]) != nil else {
                throw WireError(.invalidInput, "after is not a cursor this service gave out")
            }
            return (parts[0], parts[1])
        }
        let scope = input.scope ?? "within"
        let area = input.area
        let filters = input.filters
        return try await database.withConnection { connection in
            var clauses: [PostgresQuery] = []
            if let area, area != AreaGroups.nationID {
                if scope == "chain" {
                    let chain = try chainIDs(municipality: area, asOf: asOf, on: connection)
                    clauses.append(servesAny(chain))
                    clauses.append(servesResident(of: area, asOf: asOf))
                } else {
                    let resolved = try AreaCache.shared.within(area: area, asOf: asOf) {
                        try resolveWithin(area: area, asOf: asOf, on: connection)
                    }
                    if let dailyLife = resolved.dailyLifeArea {
                        clauses.append("r.daily_life_area_id = \(dailyLife)::text")
                    } else {
                        clauses.append("r.municipality_code = ANY(\(resolved.municipalities)::char(6)[])")
                    }
                }
            }
            clauses += filters.clauses
            if let cursor {
                clauses.append("(r.municipality_code, r.id) > (\(cursor.municipality)::char(6), \(cursor.id)::uuid)")
            }
            // One round trip: the page is built as JSON by PostgreSQL and sent on as it is.
            let text: String = try connection.query(prepared: """
                WITH page AS (
                    SELECT r.*, row_number() OVER (ORDER BY r.municipality_code, r.id) AS n
                    FROM (SELECT r.* FROM registry.resources r WHERE \(clauses, joinedBy: " AND ")
                          ORDER BY r.municipality_code, r.id LIMIT \(limit + 1)::int) r)
                SELECT jsonb_build_object(
                    'resources', coalesce((SELECT jsonb_agg(jsonb_build_object(\(unsafeRaw: summaryColumns)) ORDER BY r.n)
                                           FROM page r WHERE r.n <= \(limit)::int), '[]'),
                    'next_after', (SELECT p.municipality_code || ':' || p.id FROM page p
                                   WHERE p.n = \(limit)::int AND EXISTS (SELECT 1 FROM page q WHERE q.n > \(limit)::int))
                )::text AS j
                """)[0].decode("j")
            return RawJSON(text: text)
        }
    }

    /// The municipalities inside an area (prefecture, municipality, health-centre, disability or
    /// medical area) on `asOf` (today, when nil), or the daily-life area itself (when valid then).
    static func resolveWithin(area: String, asOf: String? = nil,
                              on connection: PostgresConnection) throws -> (municipalities: [String], dailyLifeArea: String?) {
        let rows = try connection.query("""
            WITH day AS (SELECT \(AsOf.day(asOf)) AS d)
            SELECT 'area' AS source, a.code AS code FROM registry.areas a
              WHERE a.level = 'municipality' AND (a.code = \(area) OR a.prefecture_code = \(area))
            UNION ALL
            SELECT 'group', m.municipality_code FROM registry.area_group_members m, day
              WHERE m.group_id = \(area) AND m.valid @> day.d
            UNION ALL
            SELECT 'daily_life', g.id FROM registry.area_groups g, day
              WHERE g.id = \(area) AND g.kind = 'daily_life_area' AND g.valid @> day.d
            """)
        if let dailyLife = rows.first(where: { (try? $0.decode("source", as: String.self)) == "daily_life" }) {
            return ([], try dailyLife.decode("code"))
        }
        let codes = try rows.map { try $0.decode("code", as: String.self) }
        guard !codes.isEmpty else { throw WireError(.notFound, "no area \(area)") }
        return (codes, nil)
    }

    /// The ids of every level serving a municipality: its daily-life areas, itself, its
    /// health-centre, disability and medical areas, its prefecture, and `national`.
    static func chainIDs(municipality: String, asOf: String?, on connection: PostgresConnection) throws -> [String] {
        let chain = try AreaGroups.chainJSON(municipality: municipality, asOf: asOf, on: connection)
        guard case .array(let levels)? = chain["chain"] else { return [] }
        return levels.compactMap { $0["id"]?.stringValue }
    }

    // MARK: resource.serve

    /// Who serves a resident, nearest level first: their own daily-life area (when they name it;
    /// the municipality's others serve other people), the municipality, its health-centre,
    /// disability and medical areas, the prefecture. Not the nation: the national adviser organisation backs up
    /// the implementing bodies (it appears among backers), it does not serve residents. Each
    /// resource appears once, at the one level it serves; a page holds `limit` of them in that
    /// order, every level listed (empty ones too) so a screen can show where the page stands.
    static func serve(_ input: ServeInput, database: PostgresPool) async throws -> JSONValue {
        try AsOf.check(input.asOf)
        return try await database.withConnection { connection in
            let chain = try AreaGroups.chainJSON(municipality: input.municipality, asOf: input.asOf, on: connection)
            guard case .array(var levels)? = chain["chain"] else { throw WireError(.notFound, "no municipality \(input.municipality)") }
            if let dailyLife = input.dailyLifeAreaID {
                guard levels.contains(where: { $0["level"]?.stringValue == "daily_life_area" && $0["id"]?.stringValue == dailyLife }) else {
                    throw WireError(.notFound, "no daily-life area \(dailyLife) in \(input.municipality)")
                }
            }
            levels.removeAll {
                ($0["level"]?.stringValue == "daily_life_area" && $0["id"]?.stringValue != input.dailyLifeAreaID)
                    || $0["level"]?.stringValue == "nation"
            }
            let levelIDs = levels.compactMap { $0["id"]?.stringValue }
            let clauses: [PostgresQuery] = [servesAny(levelIDs), servesResident(of: input.municipality, asOf: input.asOf)]
                + input.filters.clauses
            // A resource serving several of the levels is listed once, at the nearest.
            let rows = try connection.query("""
                SELECT r.id::text AS id, levels.ids[r.level] AS area,
                       jsonb_build_object(\(unsafeRaw: summaryColumns), 'backed_up_by', \(unsafeRaw: Backups.backersSQL)) AS j
                FROM (SELECT r.*, \(nearestLevel(levelIDs)) AS level FROM registry.resources r WHERE \(clauses, joinedBy: " AND ")) r,
                     (SELECT \(levelIDs)::text[] AS ids) levels
                ORDER BY r.level, r.kana, r.name, r.id
                """)
            let ordered = try rows.map { (id: try $0.decode("id", as: String.self), area: try $0.decode("area", as: String.self), row: $0) }
            var start = 0
            if let after = input.after?.lowercased() {
                guard let position = ordered.firstIndex(where: { $0.id == after }) else {
                    throw WireError(.invalidInput, "after names no resource of this answer (it changed): start again without it")
                }
                start = position + 1
            }
            let page = ordered[start..<min(ordered.count, start + (input.limit ?? 50))]
            var byArea: [String: [JSONValue]] = [:]
            for entry in page {
                byArea[entry.area, default: []].append(try JSONValue.parse(Data((try entry.row.decode("j", as: String.self)).utf8)))
            }
            let served = levels.map { level -> JSONValue in
                guard case .object(var fields) = level else { return level }
                fields["resources"] = .array(byArea[level["id"]?.stringValue ?? ""] ?? [])
                return .object(fields)
            }
            let next: JSONValue = page.endIndex < ordered.count ? .string(page.last!.id) : .null
            return JSONValue.object(["municipality": .string(input.municipality), "as_of": chain["as_of"] ?? .null,
                                     "levels": .array(served),
                                     "total": .integer(Int64(ordered.count)), "next_after": next])
        }
    }
}

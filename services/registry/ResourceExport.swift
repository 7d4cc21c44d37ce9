import CSV
import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// `resource.export`: the active resources of an area, page by page, as CSV in the import's
/// columns (a tenant's export imports back unchanged) or as Open Referral HSDS 3.0 services
/// (each service with its organization, location, address, phones, schedules, service areas and
/// taxonomy attributes), for tools that read HSDS.
enum ResourceExport {
    struct Input: Decodable, Sendable {
        let area: String?
        let format: String?
        let after: String?
        let limit: Int?
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .read(
                "resource.export",
                summary: "Active resources of an area, one page at a time, as CSV (import columns) or HSDS 3.0 JSON; the first page also gives the total.",
                schema: """
                    {"type":"object","additionalProperties":false,
                     "properties":{"area":{"type":"string","minLength":1,"maxLength":100},
                                   "format":{"enum":["csv","hsds"]},
                                   "after":{"type":"string","pattern":"\(Schemas.uuid)","maxLength":36},
                                   "limit":{"type":"integer","minimum":1,"maximum":5000}}}
                    """,
                input: Input.self
            ) { context, input in
                try await export(input, database: context.database)
            },
        ]
    }

    static let csvColumns = ["id"] + ["external_id", "organization", "name", "kana", "category_code", "kinds", "municipality_code",
                                      "daily_life_area_id", "serves_area", "postal_code", "address", "latitude", "longitude", "phone",
                                      "email", "url", "description", "access_modes", "capacity", "vacancies", "consultation_types"]

    static func export(_ input: Input, database: PostgresPool) async throws -> JSONValue {
        let limit = input.limit ?? 1000
        let format = input.format ?? "csv"
        return try await database.withConnection { connection in
            // The active resources of the area: of its municipalities, or of one daily-life area.
            var filter: PostgresQuery = "r.retired_at IS NULL"
            if let area = input.area, area != AreaGroups.nationID {
                let resolved = try Search.resolveWithin(area: area, on: connection)
                if let dailyLife = resolved.dailyLifeArea {
                    filter = "\(filter) AND r.daily_life_area_id = \(dailyLife)::text"
                } else {
                    filter = "\(filter) AND r.municipality_code = ANY(\(resolved.municipalities)::char(6)[])"
                }
            }
            var output: [String: JSONValue] = ["format": .string(format)]
            if input.after == nil {
                let total: Int = try connection.query("SELECT count(*) AS n FROM registry.resources r WHERE \(filter)")[0].decode("n")
                output["total"] = .integer(Int64(total))
            }
            let rows = try connection.query("""
                SELECT r.id::text AS id, \(unsafeRaw: format == "hsds" ? hsdsSQL : csvSQL) AS j
                FROM registry.resources r JOIN registry.organizations o ON o.id = r.organization_id
                WHERE \(filter) AND (\(input.after)::uuid IS NULL OR r.id > \(input.after)::uuid)
                ORDER BY r.id LIMIT \(limit + 1)
                """)
            let page = rows.prefix(limit)
            let records = try page.map { try JSONValue.parse(Data((try $0.decode("j", as: String.self)).utf8)) }
            if format == "hsds" {
                output["services"] = .array(records)
            } else {
                var text = input.after == nil ? CSVReader.line(csvColumns) : ""
                for record in records {
                    text += CSVReader.line(csvColumns.map { column in
                        switch record[column] {
                        case .string(let s)?: s
                        case .integer(let i)?: String(i)
                        case .number(let d)?: String(d)
                        case .array(let items)?: items.compactMap(\.stringValue).joined(separator: "|")
                        default: ""
                        }
                    })
                }
                output["csv"] = .string(text)
            }
            output["count"] = .integer(Int64(records.count))
            if rows.count > limit, let last = page.last { output["next_after"] = .string(try last.decode("id")) }
            return JSONValue.object(output)
        }
    }

    static let csvSQL: StaticString = """
        jsonb_build_object('id', r.id, 'external_id', r.external_id, 'organization', o.name, 'name', r.name, 'kana', r.kana,
            'category_code', r.category_code, 'kinds', r.kinds, 'municipality_code', r.municipality_code,
            'daily_life_area_id', r.daily_life_area_id, 'serves_area', r.serves_area, 'postal_code', r.postal_code,
            'address', r.address, 'latitude', r.latitude, 'longitude', r.longitude, 'phone', r.phone, 'email', r.email,
            'url', r.url, 'description', r.description, 'access_modes', r.access_modes, 'capacity', r.capacity,
            'vacancies', r.vacancies, 'consultation_types', r.consultation_types)
        """

    /// One HSDS 3.0 service (compiled form). Location, address and service-at-location ids are
    /// derived from the resource id so they are stable across exports.
    static let hsdsSQL: StaticString = """
        jsonb_build_object(
            'id', r.id, 'organization_id', o.id, 'name', r.name, 'alternate_name', r.kana, 'description', r.description,
            'url', nullif(r.url, ''), 'email', nullif(r.email, ''), 'status', 'active',
            'capacity', r.capacity, 'vacancies', r.vacancies,
            'last_modified', to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            'organization', jsonb_build_object('id', o.id, 'name', o.name, 'alternate_name', o.kana,
                'description', o.description, 'website', nullif(o.url, ''), 'email', nullif(o.email, '')),
            'phones', CASE WHEN r.phone = '' THEN '[]'::jsonb ELSE jsonb_build_array(jsonb_build_object(
                'id', md5(r.id::text || 'phone')::uuid, 'number', r.phone, 'type', 'voice')) END,
            'schedules', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'id', md5(r.id::text || 'schedule' || ord)::uuid, 'freq', 'WEEKLY',
                'byday', (SELECT string_agg(upper(d), ',') FROM jsonb_array_elements_text(h->'days') d WHERE d <> 'holiday'),
                'opens_at', h->>'opens', 'closes_at', h->>'closes'))
                FROM jsonb_array_elements(r.hours) WITH ORDINALITY AS x(h, ord)), '[]'),
            'service_areas', jsonb_build_array(jsonb_build_object('id', md5(r.id::text || 'area')::uuid,
                'name', coalesce(r.serves_area, r.daily_life_area_id, r.municipality_code::text),
                'extent_type', 'other', 'extent', coalesce(r.serves_area, r.daily_life_area_id, r.municipality_code::text))),
            'service_at_locations', jsonb_build_array(jsonb_build_object(
                'id', md5(r.id::text || 'sal')::uuid, 'service_id', r.id,
                'location', jsonb_build_object('id', md5(r.id::text || 'location')::uuid, 'location_type', 'physical',
                    'name', r.name, 'latitude', r.latitude, 'longitude', r.longitude,
                    'addresses', jsonb_build_array(jsonb_build_object('id', md5(r.id::text || 'address')::uuid,
                        'address_1', r.address, 'city', (SELECT a.name FROM registry.areas a WHERE a.code = r.municipality_code),
                        'state_province', (SELECT p.name FROM registry.areas a JOIN registry.areas p ON p.code = a.prefecture_code
                                           WHERE a.code = r.municipality_code),
                        'postal_code', r.postal_code, 'country', 'JP', 'address_type', 'physical'))))),
            'attributes', (SELECT jsonb_agg(jsonb_build_object('id', md5(r.id::text || t.code)::uuid, 'link_id', r.id,
                    'link_type', 'service', 'taxonomy_term_id', md5('tsunagu:' || t.code)::uuid,
                    'taxonomy_term', jsonb_build_object('id', md5('tsunagu:' || t.code)::uuid, 'code', t.code, 'name', t.name,
                                                        'taxonomy', 'tsunagu-registry')))
                FROM (SELECT c.code, c.name_ja AS name FROM registry.categories c WHERE c.code = r.category_code
                      UNION ALL SELECT k.code, k.name_ja FROM registry.kinds k WHERE k.code = ANY(r.kinds)) t))
        """
}

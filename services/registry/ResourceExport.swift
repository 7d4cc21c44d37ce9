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
                                      "daily_life_area_id", "serves_areas", "postal_code", "address", "latitude", "longitude", "phone",
                                      "email", "url", "description", "hours", "access_modes", "capacity", "vacancies",
                                      "consultation_types", "serves_except_own_bodies", "phones", "languages",
                                      "accessibility", "eligibility", "fees", "office_number", "last_verified_at",
                                      "last_verified_by", "status", "corporate_number", "locations"]
    // Never the staff-only fields (DirectoryFields.staffOnly): an export is public.

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
                SELECT r.id::text AS id, \(format == "hsds" ? hsdsSQL : csvSQL) AS j
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
                        case let hours? where column == "hours": OpeningHours.csvText(hours)
                        case let phones? where column == "phones": DirectoryFields.phonesCSV(phones)
                        case let locations? where column == "locations": Locations.csvText(locations)
                        case .string(let s)?: s
                        case .integer(let i)?: String(i)
                        case .number(let d)?: String(d)
                        case .bool(let b)?: b ? "true" : "false"
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

    static let csvSQL: PostgresQuery = """
        jsonb_build_object('id', r.id, 'external_id', r.external_id, 'organization', o.name, 'name', r.name, 'kana', r.kana,
            'category_code', r.category_code, 'kinds', r.kinds, 'municipality_code', r.municipality_code,
            'daily_life_area_id', r.daily_life_area_id, 'serves_areas', r.serves_areas, 'postal_code', r.postal_code,
            'address', r.address, 'latitude', r.latitude, 'longitude', r.longitude, 'phone', r.phone, 'email', r.email,
            'url', r.url, 'description', r.description, 'hours', r.hours, 'access_modes', r.access_modes,
            'capacity', r.capacity, 'vacancies', r.vacancies, 'consultation_types', r.consultation_types,
            'serves_except_own_bodies', r.serves_except_own_bodies, 'phones', r.phones, 'languages', r.languages,
            'accessibility', r.accessibility, 'eligibility', r.eligibility, 'fees', r.fees, 'office_number', r.office_number,
            'last_verified_at', r.last_verified_at, 'last_verified_by', r.last_verified_by, 'status', r.status,
            'corporate_number', o.corporate_number, 'locations', r.locations)
        """

    /// The free text of a `url` column that HSDS's `"format": "uri"` accepts: an absolute http(s)
    /// URL in RFC 3986 characters. Anything else (no scheme, spaces, unencoded Japanese) is left out
    /// of the export rather than published as a URI that is not one.
    static let webAddressPattern =
        #"^https?://[A-Za-z0-9.-]+(:[0-9]+)?([/?]([A-Za-z0-9._~:/?@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)?(#([A-Za-z0-9._~:/?@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)?$"#
    /// The free text of an `email` column that is an address (left out otherwise, as a URL is).
    static let emailPattern = #"^[^@\s]+@[^@\s]+\.[^@\s]+$"#

    /// One HSDS 3.0 service in its nested form (schema `service`, with its organization, phones,
    /// schedules, service area, location and address, and taxonomy attributes). What we do not know
    /// is left out (`jsonb_strip_nulls`), never sent as null, which HSDS's string fields refuse. The
    /// ids of nested records derive from the resource's (a term's from its code), so they are stable
    /// across exports. `capacity`, `vacancies` and `last_modified` are ours, beyond HSDS.
    /// Tests/integration/test_registry_hsds.py validates the output against the Open Referral schemas.
    static let hsdsSQL: PostgresQuery = """
        jsonb_strip_nulls(jsonb_build_object(
            'id', r.id, 'organization_id', o.id, 'name', r.name, 'alternate_name', nullif(r.kana, ''),
            'description', nullif(r.description, ''), 'url', CASE WHEN r.url ~ \(webAddressPattern) THEN r.url END,
            'email', CASE WHEN r.email ~ \(emailPattern) THEN r.email END,
            'status', CASE WHEN r.status = 'temporarily_closed' THEN 'temporarily closed' ELSE 'active' END,
            'eligibility_description', nullif(r.eligibility, ''), 'fees_description', nullif(r.fees, ''),
            -- The day the record was last checked, and (below, metadata) who checked it.
            'assured_date', to_char(r.last_verified_at, 'YYYY-MM-DD'),
            -- HSDS keeps provenance in metadata entries: the last verification as one, its date, the
            -- action `verified`, and `updated_by` the role or office that checked (never a person's
            -- name: last_verified_by is a role by our rules). It says nothing was replaced.
            'metadata', CASE WHEN r.last_verified_at IS NOT NULL THEN jsonb_build_array(jsonb_build_object(
                'id', md5(r.id::text || 'verified')::uuid, 'resource_id', r.id, 'resource_type', 'service',
                'last_action_date', to_char(r.last_verified_at, 'YYYY-MM-DD'), 'last_action_type', 'verified',
                'field_name', 'assured_date', 'previous_value', '', 'replacement_value', to_char(r.last_verified_at, 'YYYY-MM-DD'),
                'updated_by', r.last_verified_by)) END,
            -- ISO 639 codes, named in Japanese when we know the name (jsl 日本手話).
            'languages', (SELECT jsonb_agg(jsonb_build_object('id', md5(r.id::text || 'language:' || l.code)::uuid, 'service_id', r.id,
                    'code', l.code, 'name', (\(DirectoryFields.languageNames)::text[])[array_position(\(DirectoryFields.languageCodes)::text[], l.code)])
                    ORDER BY l.n)
                FROM unnest(r.languages) WITH ORDINALITY AS l(code, n)),
            'capacity', r.capacity, 'vacancies', r.vacancies,
            'last_modified', to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            'organization', jsonb_build_object('id', o.id, 'name', o.name, 'alternate_name', nullif(o.kana, ''),
                'description', o.description, 'website', CASE WHEN o.url ~ \(webAddressPattern) THEN o.url END,
                'email', CASE WHEN o.email ~ \(emailPattern) THEN o.email END,
                -- 法人番号, scheme JP-JCN as org-id.guide lists it.
                'organization_identifiers', CASE WHEN o.corporate_number <> '' THEN jsonb_build_array(jsonb_build_object(
                    'id', md5(o.id::text || 'corporate_number')::uuid, 'organization_id', o.id, 'identifier_scheme', 'JP-JCN',
                    'identifier_type', '法人番号', 'identifier', o.corporate_number)) END,
                'phones', CASE WHEN o.phone <> '' THEN jsonb_build_array(jsonb_build_object(
                    'id', md5(o.id::text || 'phone')::uuid, 'organization_id', o.id, 'number', o.phone, 'type', 'voice')) END),
            -- The main number is the one to call, RFC 6350 type voice as HSDS asks; then the typed
            -- `phones` (fax, text, video: how a deaf caller reaches the service).
            'phones', (SELECT jsonb_agg(p.phone ORDER BY p.n) FROM (
                    SELECT 0 AS n, jsonb_build_object('id', md5(r.id::text || 'phone')::uuid, 'service_id', r.id,
                                                      'number', r.phone, 'type', 'voice') AS phone WHERE r.phone <> ''
                    UNION ALL SELECT x.n, jsonb_build_object('id', md5(r.id::text || 'phone' || x.n)::uuid, 'service_id', r.id,
                                                             'number', x.e->>'number', 'type', x.e->>'type')
                    FROM jsonb_array_elements(r.phones) WITH ORDINALITY AS x(e, n)) p),
            -- Hours are Japan's local time, UTC+9 all year (no daylight saving), and HSDS times carry
            -- their offset. A time of day ends before 24:00, so closing at midnight is written 00:00.
            -- Public holidays have no RRULE day: an entry for them alone has no freq, and each
            -- entry's description names its days.
            'schedules', (SELECT jsonb_agg(jsonb_build_object(
                    'id', md5(r.id::text || 'schedule' || x.ord)::uuid, 'service_id', r.id,
                    'freq', CASE WHEN d.byday IS NOT NULL THEN 'WEEKLY' END, 'byday', d.byday,
                    'opens_at', replace(x.h->>'opens', '24:00', '00:00') || ':00+09:00',
                    'closes_at', replace(x.h->>'closes', '24:00', '00:00') || ':00+09:00', 'timezone', 9,
                    'description', d.label || ' ' || (x.h->>'opens') || '-' || (x.h->>'closes')) ORDER BY x.ord)
                FROM jsonb_array_elements(r.hours) WITH ORDINALITY AS x(h, ord),
                LATERAL (SELECT string_agg(upper(e.day), ',' ORDER BY e.n) FILTER (WHERE e.day <> 'holiday') AS byday,
                                string_agg((\(OpeningHours.dayNames)::text[])[array_position(\(OpeningHours.days)::text[], e.day)],
                                           '' ORDER BY e.n) AS label
                         FROM jsonb_array_elements_text(x.h->'days') WITH ORDINALITY AS e(day, n)) d),
            -- The areas it serves (each of serves_areas, else its daily-life area, else its
            -- municipality), named, with the code (JIS X 0402, a defined area's id, or national)
            -- as a text extent: HSDS's other extent types are shapes, which we do not have. The
            -- first keeps the id of the one area exported before.
            'service_areas', (SELECT jsonb_agg(jsonb_build_object(
                    'id', md5(r.id::text || 'area' || CASE WHEN s.n = 1 THEN '' ELSE s.n::text END)::uuid, 'service_id', r.id,
                    'name', CASE WHEN s.code = \(AreaGroups.nationID) THEN '全国' ELSE coalesce(
                        (SELECT a.name FROM registry.areas a WHERE a.code = s.code::bpchar),
                        (SELECT g.name FROM registry.area_groups g WHERE g.id = s.code), s.code) END,
                    'extent', s.code, 'extent_type', 'text') ORDER BY s.n)
                FROM unnest(\(unsafeRaw: Search.serviceAreas)) WITH ORDINALITY AS s(code, n)),
            'service_at_locations', jsonb_build_array(jsonb_build_object(
                'id', md5(r.id::text || 'sal')::uuid, 'service_id', r.id, 'location_id', md5(r.id::text || 'location')::uuid,
                'location', jsonb_build_object('id', md5(r.id::text || 'location')::uuid, 'location_type', 'physical',
                    'organization_id', o.id, 'name', r.name, 'latitude', r.latitude, 'longitude', r.longitude,
                    -- 事業所番号, the office's number under the long-term care / disability welfare acts.
                    'external_identifier', nullif(r.office_number, ''),
                    'external_identifier_type', CASE WHEN r.office_number <> '' THEN '事業所番号' END,
                    'accessibilitys', CASE WHEN r.accessibility <> '' THEN jsonb_build_array(jsonb_build_object(
                        'id', md5(r.id::text || 'accessibility')::uuid, 'location_id', md5(r.id::text || 'location')::uuid,
                        'description', r.accessibility)) END,
                    -- HSDS 3.0 spells the key with three s. An address needs its first line: none without one.
                    'addresss', CASE WHEN r.address <> '' THEN jsonb_build_array(jsonb_build_object(
                        'id', md5(r.id::text || 'address')::uuid, 'location_id', md5(r.id::text || 'location')::uuid,
                        'address_1', r.address,
                        'city', (SELECT a.name FROM registry.areas a WHERE a.code = r.municipality_code),
                        'state_province', (SELECT p.name FROM registry.areas a JOIN registry.areas p ON p.code = a.prefecture_code
                                           WHERE a.code = r.municipality_code),
                        'postal_code', r.postal_code, 'country', 'JP', 'address_type', 'physical')) END)))
                -- Then each of its other locations (Locations.swift), ids from the resource's and the
                -- place in the list, its hours as the schedules of that service_at_location.
                || coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'id', md5(r.id::text || 'sal' || l.n)::uuid, 'service_id', r.id, 'location_id', md5(r.id::text || 'location' || l.n)::uuid,
                    'location', jsonb_build_object('id', md5(r.id::text || 'location' || l.n)::uuid, 'location_type', 'physical',
                        'organization_id', o.id, 'name', coalesce(nullif(l.e->>'name', ''), r.name),
                        'latitude', (l.e->>'latitude')::double precision, 'longitude', (l.e->>'longitude')::double precision,
                        'accessibilitys', CASE WHEN l.e->>'accessibility' <> '' THEN jsonb_build_array(jsonb_build_object(
                            'id', md5(r.id::text || 'accessibility' || l.n)::uuid, 'location_id', md5(r.id::text || 'location' || l.n)::uuid,
                            'description', l.e->>'accessibility')) END,
                        'addresss', jsonb_build_array(jsonb_build_object(
                            'id', md5(r.id::text || 'address' || l.n)::uuid, 'location_id', md5(r.id::text || 'location' || l.n)::uuid,
                            'address_1', l.e->>'address', 'city', m.name, 'state_province', p.name,
                            'postal_code', coalesce(l.e->>'postal_code', ''), 'country', 'JP', 'address_type', 'physical'))),
                    'schedules', (SELECT jsonb_agg(jsonb_build_object(
                            'id', md5(r.id::text || 'schedule' || l.n || ':' || x.ord)::uuid,
                            'service_at_location_id', md5(r.id::text || 'sal' || l.n)::uuid,
                            'freq', CASE WHEN d.byday IS NOT NULL THEN 'WEEKLY' END, 'byday', d.byday,
                            'opens_at', replace(x.h->>'opens', '24:00', '00:00') || ':00+09:00',
                            'closes_at', replace(x.h->>'closes', '24:00', '00:00') || ':00+09:00', 'timezone', 9,
                            'description', d.label || ' ' || (x.h->>'opens') || '-' || (x.h->>'closes')) ORDER BY x.ord)
                        FROM jsonb_array_elements(l.e->'hours') WITH ORDINALITY AS x(h, ord),
                        LATERAL (SELECT string_agg(upper(e.day), ',' ORDER BY e.n) FILTER (WHERE e.day <> 'holiday') AS byday,
                                        string_agg((\(OpeningHours.dayNames)::text[])[array_position(\(OpeningHours.days)::text[], e.day)],
                                                   '' ORDER BY e.n) AS label
                                 FROM jsonb_array_elements_text(x.h->'days') WITH ORDINALITY AS e(day, n)) d)) ORDER BY l.n)
                    FROM jsonb_array_elements(r.locations) WITH ORDINALITY AS l(e, n)
                    JOIN registry.areas m ON m.code = coalesce(l.e->>'municipality_code', r.municipality_code::text)
                    JOIN registry.areas p ON p.code = m.prefecture_code), '[]'),
            -- Terms of two taxonomies of ours: the resource taxonomy (a category, kinds under it) and
            -- the consultation types. A term's description is its English name (its Japanese one
            -- when a tenant's kind has none).
            'attributes', (SELECT jsonb_agg(jsonb_build_object('id', md5(r.id::text || t.key)::uuid, 'link_id', r.id,
                    'link_entity', 'service', 'link_type', t.link_type, 'taxonomy_term_id', md5('tsunagu:' || t.key)::uuid,
                    'taxonomy_term', jsonb_build_object('id', md5('tsunagu:' || t.key)::uuid, 'code', t.code, 'name', t.name,
                        'description', t.description, 'parent_id', md5('tsunagu:' || t.parent)::uuid,
                        'taxonomy_id', md5('tsunagu:taxonomy:' || t.taxonomy)::uuid,
                        'taxonomy', jsonb_build_object('id', md5('tsunagu:taxonomy:' || t.taxonomy)::uuid, 'name', t.taxonomy,
                                                       'description', t.taxonomy_description))) ORDER BY t.sort, t.code)
                FROM (SELECT 1 AS sort, c.code AS key, c.code, c.name_ja AS name, c.name_en AS description, NULL AS parent,
                             'service_type' AS link_type, \(resourceTaxonomy.name)::text AS taxonomy,
                             \(resourceTaxonomy.description)::text AS taxonomy_description
                      FROM registry.categories c WHERE c.code = r.category_code
                      UNION ALL SELECT 2, k.code, k.code, k.name_ja, coalesce(nullif(k.name_en, ''), k.name_ja), k.category_code,
                             'service_type', \(resourceTaxonomy.name)::text, \(resourceTaxonomy.description)::text
                      FROM registry.kinds k WHERE k.code = ANY(r.kinds)
                      UNION ALL SELECT 3, 'consultation:' || ct.code, ct.code, ct.name_ja, ct.name_en, NULL,
                             'consultation_type', \(consultationTaxonomy.name)::text, \(consultationTaxonomy.description)::text
                      FROM registry.consultation_types ct WHERE ct.code = ANY(r.consultation_types)) t)))
        """
    /// The HSDS taxonomies our terms belong to (their ids derive from the names).
    static let resourceTaxonomy = (name: "tsunagu-registry",
                                   description: "Tsunagu's taxonomy of care resources (社会資源): categories and the kinds under them")
    static let consultationTaxonomy = (name: "tsunagu-consultation-types",
                                       description: "What a consultation window takes (相談の種類)")
}

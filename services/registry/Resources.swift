import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// Organisations and the services they run at locations (HSDS organization / service_at_location).
/// Field names on the wire are the column names, so a client reads a record, changes it and sends
/// it back with its `version`. An update replaces every writable field.
enum Resources {
    static let consultationTypes = ["general", "disability", "elderly", "specialist_mental_health", "complex_cases",
                                    "developmental", "employment"]
    static let accessModes = ["visit", "stay", "home_visit"]

    // MARK: Schemas

    static func text(_ max: Int) -> String { #"{"type":"string","maxLength":\#(max)}"# }
    static let organizationFields: [(String, String)] = [
        ("name", #"{"type":"string","minLength":1,"maxLength":200}"#), ("kana", text(200)), ("description", text(4000)),
        ("url", text(500)), ("email", text(200)), ("phone", text(50)), DirectoryFields.corporateNumberField,
    ]
    static let resourceFields: [(String, String)] = [
        ("organization_id", #"{"type":"string","pattern":"\#(Schemas.uuid)","maxLength":36}"#),
        ("external_id", #"{"type":["string","null"],"minLength":1,"maxLength":100}"#),
        ("name", #"{"type":"string","minLength":1,"maxLength":200}"#), ("kana", text(200)),
        ("category_code", #"{"type":"string","pattern":"\#(Taxonomy.codePattern)","maxLength":64}"#),
        ("kinds", #"{"type":"array","maxItems":20,"items":{"type":"string","pattern":"\#(Taxonomy.codePattern)","maxLength":64}}"#),
        ("municipality_code", #"{"type":"string","pattern":"^[0-9]{6}$","maxLength":6}"#),
        ("daily_life_area_id", nullableText(100)), ("serves_area", nullableText(100)),
        // Several areas, nearest first (ServesAreas); serves_area is the first of them.
        ("serves_areas", ServesAreas.schema),
        // The other places it is given at (Locations): address, coordinates, accessibility, hours each.
        ("locations", Locations.schema),
        // Serves `serves_area` except the bodies that run their own (a prefecture's 精神保健福祉センター
        // does not serve a designated city's residents; its 保健所 no health-centre city's).
        ("serves_except_own_bodies", #"{"type":"boolean"}"#),
        ("postal_code", #"{"type":"string","pattern":"^([0-9]{3}-?[0-9]{4})?$","maxLength":8}"#), ("address", text(300)),
        ("latitude", #"{"type":["number","null"],"minimum":-90,"maximum":90}"#),
        ("longitude", #"{"type":["number","null"],"minimum":-180,"maximum":180}"#),
        ("phone", text(50)), ("email", text(200)), ("url", text(500)), ("description", text(4000)),
        ("hours", OpeningHours.schema),
        ("access_modes", #"{"type":"array","maxItems":10,"items":{"enum":["visit","stay","home_visit"]}}"#),
        ("capacity", #"{"type":["integer","null"],"minimum":0,"maximum":100000}"#),
        ("vacancies", #"{"type":["integer","null"],"minimum":0,"maximum":100000}"#),
        ("consultation_types", #"{"type":"array","maxItems":20,"items":{"enum":["general","disability","elderly","specialist_mental_health","complex_cases","developmental","employment"]}}"#),
    ] + DirectoryFields.resourceFields
    static func nullableText(_ max: Int) -> String { #"{"type":["string","null"],"maxLength":\#(max)}"# }
    /// What an update names, plus the read-only fields a client may send back unchanged from a
    /// read (they are ignored), so read-modify-write needs no editing of the record's shape.
    static let versionFields: [(String, String)] = [
        ("id", #"{"type":"string","pattern":"\#(Schemas.uuid)","maxLength":36}"#), ("version", #"{"type":"integer","minimum":1,"maximum":2147483647}"#),
        ("tenant", nullableText(100)), ("created_at", nullableText(40)), ("updated_at", nullableText(40)),
        ("retired_at", nullableText(40)),
    ]

    static func operations() throws -> [ServiceOperation] {
        let org = VersionedTable.organizations
        let res = VersionedTable.resources
        return [
            try .write(
                "organization.create", summary: "Create an organisation owned by the caller's tenant.",
                schema: Schemas.object(organizationFields, required: ["name"]), input: JSONValue.self
            ) { context, input, tx in
                let principal = try context.writer()
                try DirectoryFields.check(input)
                let id: String = try tx.query("""
                    INSERT INTO registry.organizations (tenant, name, kana, description, url, email, phone, corporate_number)
                    SELECT \(principal.tenant), i->>'name', coalesce(i->>'kana', ''), coalesce(i->>'description', ''),
                           coalesce(i->>'url', ''), coalesce(i->>'email', ''), coalesce(i->>'phone', ''),
                           coalesce(i->>'corporate_number', '')
                    FROM (SELECT \(input.jsonText)::jsonb AS i) s RETURNING id::text
                    """)[0].decode("id")
                try org.recordHistory(id: id, change: "created", by: principal, on: tx)
                return try org.fetch(id: id, on: tx)
            },
            try .write(
                "organization.update", summary: "Replace an organisation's fields at the version last read.",
                schema: Schemas.object(versionFields + organizationFields, required: ["id", "version", "name"]), input: JSONValue.self
            ) { context, input, tx in
                let principal = try context.writer()
                let (id, version) = idAndVersion(input)
                try DirectoryFields.check(input)
                _ = try org.lockForChange(id: id, version: version, principal: principal, on: tx)
                try tx.query("""
                    UPDATE registry.organizations SET name = i->>'name', kana = coalesce(i->>'kana', ''),
                        description = coalesce(i->>'description', ''), url = coalesce(i->>'url', ''),
                        email = coalesce(i->>'email', ''), phone = coalesce(i->>'phone', ''),
                        corporate_number = coalesce(i->>'corporate_number', ''), version = version + 1, updated_at = now()
                    FROM (SELECT \(input.jsonText)::jsonb AS i) s WHERE id = \(id)::uuid
                    """)
                try org.recordHistory(id: id, change: "updated", by: principal, on: tx)
                return try org.fetch(id: id, on: tx)
            },
            try .write(
                "organization.retire", summary: "Retire an organisation (kept with its history, no longer listed).",
                schema: Schemas.idAndVersion, input: VersionedID.self
            ) { context, input, tx in
                let principal = try context.writer()
                _ = try org.retire(id: input.id, version: input.version, principal: principal, on: tx)
                return try org.fetch(id: input.id, on: tx)
            },
            try .read(
                "organization.get", summary: "One organisation, retired or not.", schema: Schemas.id, input: IDInput.self
            ) { context, input in
                try await context.database.withConnection { try org.fetch(id: input.id, on: $0) }
            },
            try .write(
                "resource.create", summary: "Create a resource (a service at a location) owned by the caller's tenant.",
                schema: Schemas.object(resourceFields, required: ["organization_id", "name", "category_code", "municipality_code"]),
                input: JSONValue.self
            ) { context, input, tx in
                let principal = try context.writer()
                try DirectoryFields.check(input)
                let (input, servesSource) = try ServesAreas.resolve(input, stored: nil)
                try checkReferences(input, tenant: principal.tenant, principal: principal, servesSource: servesSource, on: tx)
                // The row, its first history entry and the reply in one statement.
                guard let created = try tx.jsonRows("""
                    WITH c AS (INSERT INTO registry.resources (tenant, organization_id, \(unsafeRaw: updatableColumns), search_text)
                               SELECT \(principal.tenant), (i->>'organization_id')::uuid, \(unsafeRaw: updatableValues), \(searchText(input))
                               FROM (SELECT \(input.jsonText)::jsonb AS i) s RETURNING *),
                         h AS (INSERT INTO registry.resource_history (resource_id, version, changed_by, change, snapshot)
                               SELECT id, version, \(principal.tokenID), 'created', to_jsonb(c) - 'search_text' FROM c RETURNING snapshot)
                    SELECT snapshot::text AS j FROM h
                    """, prepared: true).first, let id = created["id"]?.stringValue else {
                    throw WireError(.internal, "the new resource was not returned")
                }
                try registryEvents.append(on: tx, type: "resource.created", subject: "resources/\(id)", tenant: principal.tenant,
                                  data: eventData(created))
                return created
            },
            try .write(
                "resource.update", summary: "Replace a resource's fields at the version last read; a stale version is a conflict.",
                schema: Schemas.object(versionFields + resourceFields,
                                       required: ["id", "version", "name", "category_code", "municipality_code"]),
                input: JSONValue.self
            ) { context, input, tx in
                let principal = try context.writer()
                let (id, version) = idAndVersion(input)
                try DirectoryFields.check(input)
                // Areas before the resource row, in the order area.import locks them: no deadlock.
                try lockReferencedAreas(input, on: tx)
                let owner = try res.lockForChange(id: id, version: version, principal: principal, on: tx)
                // The organisation does not change on update; a sent-back organization_id is ignored.
                var changes = input
                if case .object(var fields) = changes {
                    fields["organization_id"] = nil
                    changes = .object(fields)
                }
                let before = try res.fetch(id: id, on: tx)
                let (input, servesSource) = try ServesAreas.resolve(changes, stored: ServesAreas.stored(before))
                try checkReferences(input, tenant: owner, principal: principal, servesSource: servesSource, on: tx)
                try tx.query("""
                    UPDATE registry.resources r SET (\(unsafeRaw: updatableColumns), search_text, version, updated_at)
                        = (SELECT \(unsafeRaw: updatableValues), \(searchText(input)), r.version + 1, now()
                           FROM (SELECT \(input.jsonText)::jsonb AS i) s)
                    WHERE r.id = \(id)::uuid
                    """)
                try res.recordHistory(id: id, change: "updated", by: principal, on: tx)
                let after = try res.fetch(id: id, on: tx)
                try registryEvents.append(on: tx, type: "resource.changed", subject: "resources/\(id)", tenant: owner, data: eventData(after))
                if before["vacancies"] != after["vacancies"] {
                    try registryEvents.append(on: tx, type: "resource.vacancies_changed", subject: "resources/\(id)", tenant: owner,
                                      data: vacancyData(after))
                }
                return after
            },
            try .write(
                "resource.vacancies.set", summary: "Set the current vacancies of a resource (group homes, short stays); no version needed.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["id","vacancies"],
                     "properties":{"id":{"type":"string","pattern":"\(Schemas.uuid)","maxLength":36},"vacancies":{"type":"integer","minimum":0,"maximum":100000}}}
                    """,
                input: VacanciesInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let owner = try res.lockForChange(id: input.id, version: nil, principal: principal, on: tx)
                guard let after = try res.update(id: input.id, set: "vacancies = \(input.vacancies)",
                                                 when: "capacity IS NULL OR capacity >= \(input.vacancies)",
                                                 change: "vacancies", by: principal, on: tx) else {
                    throw WireError(.invalidInput, "vacancies exceed the capacity")
                }
                try registryEvents.append(on: tx, type: "resource.vacancies_changed", subject: "resources/\(input.id)", tenant: owner,
                                  data: vacancyData(after))
                return after
            },
            try .write(
                "resource.retire", summary: "Retire a resource: kept with its history, no longer found by search.",
                schema: Schemas.idAndVersion, input: VersionedID.self
            ) { context, input, tx in
                let principal = try context.writer()
                let owner = try res.retire(id: input.id, version: input.version, principal: principal, on: tx)
                let retired = try res.fetch(id: input.id, on: tx)
                try registryEvents.append(on: tx, type: "resource.retired", subject: "resources/\(input.id)", tenant: owner,
                                  data: eventData(retired))
                return retired
            },
            try .read(
                "resource.get", summary: "One resource, retired or not.", schema: Schemas.id, input: IDInput.self
            ) { context, input in
                // The staff-only fields are for the resource's own tenant's writers (and national admins).
                let resource = try await context.database.withConnection { try res.fetch(id: input.id, on: $0) }
                return DirectoryFields.visible(resource, to: context.principal)
            },
            try .read(
                "resource.history", summary: "Every version of a resource, oldest first.", schema: Schemas.id, input: IDInput.self
            ) { context, input in
                let history = try await context.database.withConnection { try res.history(id: input.id, on: $0) }
                return DirectoryFields.visibleHistory(history, to: context.principal)
            },
        ]
    }

    struct VacanciesInput: Decodable, Sendable {
        let id: String
        let vacancies: Int
    }

    static func idAndVersion(_ input: JSONValue) -> (String, Int) {
        (input["id"]?.stringValue ?? "", Int(input["version"]?.integerValue ?? 0))
    }

    // MARK: SQL pieces (constants: the column lists are code, the values come from the bound JSON `i`)

    /// The columns an update replaces (every writable one but `organization_id`), in the order of `updatableValues`.
    static let updatableColumns: StaticString = """
        external_id, name, kana, category_code, kinds, municipality_code, daily_life_area_id, serves_areas, postal_code, address,
        latitude, longitude, phone, email, url, description, hours, access_modes, capacity, vacancies, consultation_types,
        serves_except_own_bodies, phones, languages, accessibility, eligibility, fees, office_number, last_verified_at,
        last_verified_by, status, staff_phone, staff_address, locations
        """
    /// Their values, taken from the input object bound as `i`.
    static let updatableValues: StaticString = """
        i->>'external_id', i->>'name', coalesce(i->>'kana', ''), i->>'category_code',
        ARRAY(SELECT jsonb_array_elements_text(coalesce(i->'kinds', '[]'))), i->>'municipality_code',
        i->>'daily_life_area_id',
        ARRAY(SELECT a FROM jsonb_array_elements_text(coalesce(i->'serves_areas', '[]')) WITH ORDINALITY x(a, n) GROUP BY a ORDER BY min(n)),
        coalesce(i->>'postal_code', ''), coalesce(i->>'address', ''),
        (i->>'latitude')::double precision, (i->>'longitude')::double precision, coalesce(i->>'phone', ''),
        coalesce(i->>'email', ''), coalesce(i->>'url', ''), coalesce(i->>'description', ''), coalesce(i->'hours', '[]'),
        ARRAY(SELECT DISTINCT jsonb_array_elements_text(coalesce(i->'access_modes', '[]'))),
        (i->>'capacity')::numeric::int, (i->>'vacancies')::numeric::int,
        ARRAY(SELECT DISTINCT jsonb_array_elements_text(coalesce(i->'consultation_types', '[]'))),
        coalesce((i->>'serves_except_own_bodies')::boolean, false), coalesce(i->'phones', '[]'),
        ARRAY(SELECT l FROM jsonb_array_elements_text(coalesce(i->'languages', '[]')) WITH ORDINALITY x(l, n) GROUP BY l ORDER BY min(n)),
        coalesce(i->>'accessibility', ''),
        coalesce(i->>'eligibility', ''), coalesce(i->>'fees', ''), coalesce(i->>'office_number', ''),
        (i->>'last_verified_at')::date, coalesce(i->>'last_verified_by', ''), coalesce(i->>'status', 'active'),
        coalesce(i->>'staff_phone', ''), coalesce(i->>'staff_address', ''), registry.canonical_locations(i->'locations')
        """

    /// What free-text search matches: name, kana, address and description, folded.
    static func searchText(_ input: JSONValue) -> String {
        ["name", "kana", "address", "description"].compactMap { input[$0]?.stringValue }
            .map(SearchText.normalise).joined(separator: " ")
    }

    /// Checks every reference of a resource's input, reporting all problems at once.
    /// `input` has its `serves_areas` resolved (`ServesAreas.resolve`); `servesSource` says which
    /// field it came from, for the pointers of unknown areas.
    static func checkReferences(_ input: JSONValue, tenant: String, principal: Principal,
                                servesSource: ServesAreas.Source, on tx: PostgresConnection) throws {
        try lockReferencedAreas(input, on: tx)
        let row = try tx.query(prepared: """
            SELECT (SELECT tenant FROM registry.organizations WHERE id = (i->>'organization_id')::uuid AND retired_at IS NULL) AS org_tenant,
                   i ? 'organization_id' AS has_org,
                   EXISTS (SELECT 1 FROM registry.categories WHERE code = i->>'category_code') AS category_ok,
                   (SELECT coalesce(string_agg(k, ','), '') FROM jsonb_array_elements_text(coalesce(i->'kinds', '[]')) k
                     WHERE NOT EXISTS (SELECT 1 FROM registry.kinds WHERE code = k AND category_code = i->>'category_code')) AS bad_kinds,
                   EXISTS (SELECT 1 FROM registry.areas WHERE code = i->>'municipality_code' AND level = 'municipality') AS municipality_ok,
                   (i->>'daily_life_area_id' IS NULL OR EXISTS (SELECT 1 FROM registry.area_groups
                        WHERE id = i->>'daily_life_area_id' AND municipality_code = i->>'municipality_code'
                          AND upper_inf(valid))) AS daily_life_ok,
                   (SELECT coalesce(jsonb_agg(x.n - 1 ORDER BY x.n), '[]')::text
                    FROM jsonb_array_elements_text(coalesce(i->'serves_areas', '[]')) WITH ORDINALITY x(a, n)
                    WHERE NOT (x.a = 'national' OR EXISTS (SELECT 1 FROM registry.areas WHERE code = x.a)
                               OR EXISTS (SELECT 1 FROM registry.area_groups WHERE id = x.a AND upper_inf(valid)))) AS bad_serves,
                   (SELECT coalesce(jsonb_agg(x.n - 1 ORDER BY x.n), '[]')::text
                    FROM jsonb_array_elements(coalesce(i->'locations', '[]')) WITH ORDINALITY x(e, n)
                    WHERE e->>'municipality_code' IS NOT NULL AND NOT EXISTS (SELECT 1 FROM registry.areas
                        WHERE code = e->>'municipality_code' AND level = 'municipality')) AS bad_locations,
                   (i->>'capacity' IS NULL OR i->>'vacancies' IS NULL OR (i->>'vacancies')::numeric::int <= (i->>'capacity')::numeric::int) AS vacancies_ok
            FROM (SELECT \(input.jsonText)::jsonb AS i) s
            """)[0]
        var violations: [JSONSchemaViolation] = []
        if try row.decode("has_org", as: Bool.self) {
            if let owner = try row.decode("org_tenant", as: String?.self) {
                if owner != tenant { throw WireError(.forbidden, "the organisation belongs to tenant \(owner)") }
            } else {
                violations.append(.init(path: "/organization_id", message: "no such organisation (or it is retired)"))
            }
        }
        if try !row.decode("category_ok", as: Bool.self) { violations.append(.init(path: "/category_code", message: "unknown category")) }
        let badKinds: String = try row.decode("bad_kinds")
        if !badKinds.isEmpty { violations.append(.init(path: "/kinds", message: "not kinds of this category: \(badKinds)")) }
        if try !row.decode("municipality_ok", as: Bool.self) { violations.append(.init(path: "/municipality_code", message: "unknown municipality")) }
        if try !row.decode("daily_life_ok", as: Bool.self) {
            violations.append(.init(path: "/daily_life_area_id", message: "no such daily-life area in this municipality (or it ended)"))
        }
        let badServes = try JSONValue.parse(Data(try row.decode("bad_serves", as: String.self).utf8))
        if case .array(let indexes) = badServes {
            let pointers = indexes.compactMap(\.integerValue).map { servesSource.pointer(Int($0)) }
            for pointer in ServesAreas.dedupe(pointers) { violations.append(.init(path: pointer, message: "unknown area (or it ended)")) }
        }
        if case .array(let indexes) = try JSONValue.parse(Data(try row.decode("bad_locations", as: String.self).utf8)) {
            for index in indexes.compactMap(\.integerValue) {
                violations.append(.init(path: "/locations/\(index)/municipality_code", message: "unknown municipality"))
            }
        }
        if try !row.decode("vacancies_ok", as: Bool.self) { violations.append(.init(path: "/vacancies", message: "more than the capacity")) }
        guard violations.isEmpty else {
            throw WireError.invalidInput("the resource refers to things that do not exist", violations: violations)
        }
    }

    /// Key-share locks the defined areas (area_groups) the input refers to, in id order, until the
    /// transaction ends. An `area.import` that removes one of them locks it for update first: it
    /// waits for this write and then detaches the resource, or this write waits for the import and
    /// then finds the area gone (`invalid_input`). So `serves_area` and `daily_life_area_id`
    /// never point at an area that no longer exists (AreaGroups).
    static func lockReferencedAreas(_ input: JSONValue, on tx: PostgresConnection) throws {
        var ids = ["daily_life_area_id", "serves_area"].compactMap { input[$0]?.stringValue }
        if case .array(let areas)? = input["serves_areas"] { ids += areas.compactMap(\.stringValue) }
        guard !ids.isEmpty else { return }
        // Sent with the next statement: the locks are taken before it runs.
        try tx.queryWithNext("""
            SELECT id FROM registry.area_groups WHERE id = ANY(\(ids)::text[])
            ORDER BY id FOR KEY SHARE
            """)
    }

    /// `eventData` in SQL, for writers that make events set-wise: the payload of resource row `r`.
    static let eventDataSQL: StaticString = """
        jsonb_build_object('id', r.id, 'tenant', r.tenant, 'version', r.version, 'name', r.name,
                           'category_code', r.category_code, 'kinds', r.kinds, 'municipality_code', r.municipality_code,
                           'serves_areas', r.serves_areas, 'retired_at', r.retired_at)
        """

    /// Event payloads name the resource and where it is; they never carry personal data.
    static func eventData(_ resource: JSONValue) -> JSONValue {
        var data: [String: JSONValue] = [:]
        for key in ["id", "tenant", "version", "name", "category_code", "kinds", "municipality_code", "serves_areas", "retired_at"] {
            data[key] = resource[key] ?? .null
        }
        return .object(data)
    }

    static func vacancyData(_ resource: JSONValue) -> JSONValue {
        .object(["id": resource["id"] ?? .null, "tenant": resource["tenant"] ?? .null, "version": resource["version"] ?? .null,
                 "capacity": resource["capacity"] ?? .null, "vacancies": resource["vacancies"] ?? .null])
    }
}

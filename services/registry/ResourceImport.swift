import CSV
import Foundation
import JSONSchema
import Logging
import Postgres
import ServiceRuntime
import Wire

/// Bulk CSV import of resources. A file is staged in chunks (`resource.import.begin`, `.chunk`,
/// `.commit`; `resource.import` does all three for a small file) and applied in one transaction
/// at commit: every row is validated first, and one bad row rejects the whole file with a
/// line-numbered report. Rows are keyed by the tenant's `external_id`, so sending the same file
/// again changes nothing; changed rows become new versions. Organisations are named in the file
/// and made when missing.
///
/// An import is committed once: a later chunk or commit for it is `conflict` (the details carry
/// the committed result; a retry with the same idempotency key gets the stored reply instead).
/// An import never committed expires `expirySeconds` (24 h) after it began: a chunk or commit for
/// it is `conflict`, and its staged rows are deleted when the next import begins.
///
/// Columns (header names; `|` separates list items): external_id, organization, name, kana,
/// category_code, kinds, municipality_code, daily_life_area_id, serves_areas (or serves_area), postal_code, address,
/// latitude, longitude, phone, email, url, description, hours, access_modes, capacity, vacancies,
/// consultation_types, serves_except_own_bodies, phones, languages, accessibility, eligibility, fees,
/// office_number, last_verified_at, last_verified_by, status, corporate_number (the organisation's). The first five of external_id, organization, name, category_code,
/// municipality_code are required; the other columns may be left out. `hours` is in the form
/// `OpeningHours` describes; a file without that column keeps the hours stored, as one without
/// any of the columns after consultation_types keeps those values. The staff-only fields are no
/// column: an import never shows or changes them.
enum ResourceImport {
    static let required = ["external_id", "organization", "name", "category_code", "municipality_code"]
    static let textColumns = ["external_id", "organization", "name", "kana", "category_code", "municipality_code",
                              "daily_life_area_id", "postal_code", "address", "phone", "email", "url", "description"]
    static let listColumns = ["kinds", "access_modes", "consultation_types"]
    /// Columns that, left out of a file, keep the stored value (an empty cell clears it).
    static let keptTextColumns = ["accessibility", "eligibility", "fees", "office_number", "last_verified_at", "last_verified_by",
                                  "status", "corporate_number"]
    static let columns = textColumns + listColumns + ["serves_areas", "serves_area", "latitude", "longitude", "capacity", "vacancies",
                                                      "hours", "serves_except_own_bodies",
                                                      "phones", "languages", "locations"] + keptTextColumns
    static let maxErrorsShown = 500
    /// How long an import may stay open (begun, not committed) before it expires.
    static let expirySeconds = 86_400

    struct ImportID: Decodable, Sendable {
        let importID: String
        enum CodingKeys: String, CodingKey { case importID = "import_id" }
    }

    struct ChunkInput: Decodable, Sendable {
        let importID: String
        let csv: String
        let firstLine: Int?
        enum CodingKeys: String, CodingKey {
            case csv
            case importID = "import_id"
            case firstLine = "first_line"
        }
    }

    struct CSVInput: Decodable, Sendable { let csv: String }

    static func operations() throws -> [ServiceOperation] {
        let importIDSchema = #"{"type":"object","additionalProperties":false,"required":["import_id"],"properties":{"import_id":{"type":"string","pattern":"\#(Schemas.uuid)","maxLength":36}}}"#
        return [
            try .write(
                "resource.import.begin", summary: "Start a CSV import; send the file in chunks, then commit.",
                schema: #"{"type":"object","additionalProperties":false}"#, input: Taxonomy.Empty.self
            ) { context, _, tx in
                let principal = try context.writer()
                try purgeExpired(on: tx, logger: context.logger)
                return try tx.jsonRow("""
                    INSERT INTO registry.imports (tenant, created_by) VALUES (\(principal.tenant), \(principal.tokenID))
                    RETURNING jsonb_build_object('import_id', id, 'expires_at', to_char(
                        (created_at + make_interval(secs => \(expirySeconds)::double precision)) AT TIME ZONE 'UTC',
                        'YYYY-MM-DD"T"HH24:MI:SS"Z"')) AS j
                    """, notFound: "")
            },
            try .write(
                "resource.import.chunk",
                summary: "Stage a chunk of the file: a CSV with the header line, and the line in the whole file where its first record starts.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["import_id","csv"],
                     "properties":{"import_id":{"type":"string","pattern":"\(Schemas.uuid)","maxLength":36},
                                   "csv":{"type":"string","maxLength":8000000},
                                   "first_line":{"type":"integer","minimum":2,"maximum":100000000}}}
                    """,
                input: ChunkInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let staged = stage(csv: input.csv, firstLine: input.firstLine ?? 2)
                _ = try lockOpenImport(input.importID, principal: principal, on: tx)
                try store(staged, importID: input.importID, on: tx)
                return JSONValue.object(["rows": .integer(Int64(staged.rows.count)), "errors": .integer(Int64(staged.errors.count))])
            },
            try .write(
                "resource.import.commit",
                summary: "Validate every staged row and apply the file in one transaction, or reject it whole with a line-numbered report.",
                schema: importIDSchema, input: ImportID.self
            ) { context, input, tx in
                let principal = try context.writer()
                let started = ContinuousClock.now
                let result = try commit(input.importID, principal: principal, on: tx)
                let applied = ContinuousClock.now
                try refreshStatistics(after: result, on: tx)
                context.logger.info("import applied", metadata: [
                    "import.rows": "\(result["rows"]?.integerValue ?? 0)", "import.apply_ms": "\((applied - started).milliseconds)",
                    "import.analyze_ms": "\((ContinuousClock.now - applied).milliseconds)",
                ])
                return result
            },
            try .write(
                "resource.import", summary: "Import a small CSV file in one call (begin, one chunk, commit).",
                schema: #"{"type":"object","additionalProperties":false,"required":["csv"],"properties":{"csv":{"type":"string","maxLength":8000000}}}"#,
                input: CSVInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                let staged = stage(csv: input.csv, firstLine: 2)
                try purgeExpired(on: tx, logger: context.logger)
                let id: String = try tx.query("""
                    INSERT INTO registry.imports (tenant, created_by) VALUES (\(principal.tenant), \(principal.tokenID)) RETURNING id::text
                    """)[0].decode("id")
                try store(staged, importID: id, on: tx)
                let result = try commit(id, principal: principal, on: tx)
                try refreshStatistics(after: result, on: tx)
                return result
            },
        ]
    }

    /// After a large import the planner's statistics are stale (autovacuum catches up only
    /// later) and area searches fall back to slow plans: refresh them at once. ANALYZE runs in
    /// the import's transaction, whose own new rows it counts as live, so the statistics are
    /// right from the commit on.
    static func refreshStatistics(after result: JSONValue, on tx: PostgresConnection) throws {
        let changed = (result["created"]?.integerValue ?? 0) + (result["updated"]?.integerValue ?? 0)
        guard changed >= 5000 else { return }
        try tx.execute(unsafeSQL: "ANALYZE registry.resources, registry.organizations")
    }

    // MARK: Staging

    struct Staged {
        var rows: [JSONValue] = []
        var errors: [(line: Int, message: String)] = []
    }

    /// Parses a chunk into row objects for `import_rows`, and per-row errors (bad numbers, a
    /// broken CSV structure) with their lines in the whole file.
    static func stage(csv: String, firstLine: Int) -> Staged {
        var staged = Staged()
        let table: [(line: Int, values: [String: String])]
        do {
            table = try CSVReader.table(csv, required: required)
        } catch {
            staged.errors.append((max(1, firstLine + error.line - 2), error.message))
            return staged
        }
        for (chunkLine, values) in table {
            let line = firstLine + chunkLine - 2
            var row: [String: JSONValue] = ["line": .integer(Int64(line))]
            for column in textColumns { row[column] = .string(values[column] ?? "") }
            for column in listColumns {
                let items = (values[column] ?? "").split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                row[column] = .array(items.map { .string($0) })
            }
            var bad = false
            // The areas served, `|`-separated; the older single-area column is read the same way.
            // Left out (both), as hours: the stored list stays.
            if let text = values["serves_areas"] ?? values["serves_area"] {
                let areas = ServesAreas.dedupe(text.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { !$0.isEmpty })
                if areas.count <= ServesAreas.maxAreas, areas.allSatisfy({ $0.count <= 100 }) {
                    row["serves_areas"] = .array(areas.map { .string($0) })
                } else {
                    staged.errors.append((line, "serves_areas names more than \(ServesAreas.maxAreas) areas, or an area longer than 100 characters"))
                    bad = true
                }
            }
            for (column, range) in [("latitude", -90.0...90.0), ("longitude", -180.0...180.0)] {
                guard let text = values[column], !text.isEmpty else { row[column] = .null; continue }
                guard let number = Double(text), range.contains(number) else {
                    staged.errors.append((line, "\(column) \"\(text)\" is not a number in \(range.lowerBound)...\(range.upperBound)"))
                    bad = true
                    continue
                }
                row[column] = .number(number)
            }
            for column in ["capacity", "vacancies"] {
                guard let text = values[column], !text.isEmpty else { row[column] = .null; continue }
                guard let number = Int(text), (0...100_000).contains(number) else {
                    staged.errors.append((line, "\(column) \"\(text)\" is not a whole number in 0...100000"))
                    bad = true
                    continue
                }
                row[column] = .integer(Int64(number))
            }
            // Left out, the column stages nothing and commit keeps the stored hours.
            if let text = values["hours"] {
                if let hours = OpeningHours.parse(csvText: text) {
                    row["hours"] = hours
                } else {
                    staged.errors.append((line, "hours \"\(text)\" is not like \"mo tu we th fr 09:00-17:00|sa 09:00-12:00\""))
                    bad = true
                }
            }
            // Left out, as hours: the stored value stays. Empty is false.
            if let text = values["serves_except_own_bodies"] {
                switch text.trimmingCharacters(in: .whitespaces).lowercased() {
                case "true", "yes", "1": row["serves_except_own_bodies"] = .bool(true)
                case "false", "no", "0", "": row["serves_except_own_bodies"] = .bool(false)
                default:
                    staged.errors.append((line, "serves_except_own_bodies \"\(text)\" is not true or false"))
                    bad = true
                }
            }
            // The directory fields (migration 0025): left out, as hours, the stored value stays.
            if let text = values["phones"] {
                if let phones = DirectoryFields.parsePhones(csvText: text) {
                    row["phones"] = phones
                } else {
                    staged.errors.append((line, "phones \"\(text)\" is not like \"voice:088-000-0000|fax:088-000-0001\" (types voice, fax, text, video; at most \(DirectoryFields.maxPhones))"))
                    bad = true
                }
            }
            // The other locations, as JSON (Locations); left out, as hours: the stored list stays.
            if let text = values["locations"] {
                switch Locations.parse(csvText: text) {
                case .success(let locations): row["locations"] = locations
                case .failure(let problem):
                    staged.errors.append((line, problem.message))
                    bad = true
                }
            }
            if let text = values["languages"] {
                let codes = text.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                if codes.count <= DirectoryFields.maxLanguages,
                   codes.allSatisfy({ $0.count <= 35 && $0.range(of: DirectoryFields.languagePattern, options: .regularExpression) != nil }) {
                    var seen = Set<String>()
                    row["languages"] = .array(codes.filter { seen.insert($0).inserted }.map { .string($0) })
                } else {
                    staged.errors.append((line, "languages \"\(text)\" are not ISO 639 codes like \"ja|jsl\""))
                    bad = true
                }
            }
            for column in keptTextColumns {
                guard let raw = values[column] else { continue }
                let text = ["office_number", "last_verified_at", "status", "corporate_number"].contains(column)
                    ? raw.trimmingCharacters(in: .whitespaces) : raw
                var problem: String?
                switch column {
                case "office_number" where !text.isEmpty && !(text.count == 10 && text.allSatisfy(\.isASCII) && text.allSatisfy(\.isNumber)):
                    problem = "office_number \"\(text)\" is not a 事業所番号 of 10 digits"
                case "corporate_number" where !text.isEmpty && !DirectoryFields.isCorporateNumber(text):
                    problem = "corporate_number \"\(text)\" is not a 法人番号 (13 digits, the first its check digit)"
                case "last_verified_at" where !text.isEmpty && !DirectoryFields.isDate(text):
                    problem = "last_verified_at \"\(text)\" is not a date like 2025-04-01"
                case "status" where !text.isEmpty && !DirectoryFields.statuses.contains(text):
                    problem = "status \"\(text)\" is not active or temporarily_closed"
                case _ where ["accessibility", "eligibility", "fees"].contains(column) && text.count > 2000:
                    problem = "\(column) is longer than 2000 characters"
                case "last_verified_by" where text.count > 200:
                    problem = "last_verified_by is longer than 200 characters"
                default: break
                }
                if let problem {
                    staged.errors.append((line, problem))
                    bad = true
                } else {
                    row[column] = .string(column == "status" && text.isEmpty ? "active" : text)
                }
            }
            for (column, limit) in [("name", 200), ("kana", 200), ("address", 300), ("description", 4000), ("external_id", 100)]
            where (values[column] ?? "").count > limit {
                staged.errors.append((line, "\(column) is longer than \(limit) characters"))
                bad = true
            }
            if bad { continue }
            row["search_text"] = .string(["name", "kana", "address", "description"].compactMap { values[$0] }
                .map(SearchText.normalise).joined(separator: " "))
            staged.rows.append(.object(row))
        }
        return staged
    }

    static func store(_ staged: Staged, importID: String, on tx: PostgresConnection) throws {
        if !staged.rows.isEmpty {
            // A chunk sent twice (a retry) stages its rows once.
            try tx.query("""
                INSERT INTO registry.import_rows (import_id, line, external_id, organization, name, kana, category_code, kinds,
                    municipality_code, daily_life_area_id, serves_areas, postal_code, address, latitude, longitude, phone, email,
                    url, description, hours, access_modes, capacity, vacancies, consultation_types, serves_except_own_bodies, search_text,
                    phones, languages, accessibility, eligibility, fees, office_number, last_verified_at, last_verified_by, status,
                    corporate_number, locations)
                SELECT \(importID)::uuid, (x->>'line')::int, x->>'external_id', x->>'organization', x->>'name', x->>'kana',
                    x->>'category_code', ARRAY(SELECT jsonb_array_elements_text(x->'kinds')), x->>'municipality_code',
                    nullif(x->>'daily_life_area_id', ''),
                    CASE WHEN x ? 'serves_areas' THEN ARRAY(SELECT jsonb_array_elements_text(x->'serves_areas')) END,
                    x->>'postal_code', x->>'address',
                    (x->>'latitude')::double precision, (x->>'longitude')::double precision, x->>'phone', x->>'email', x->>'url',
                    x->>'description', x->'hours', ARRAY(SELECT jsonb_array_elements_text(x->'access_modes')), (x->>'capacity')::int,
                    (x->>'vacancies')::int, ARRAY(SELECT jsonb_array_elements_text(x->'consultation_types')),
                    (x->>'serves_except_own_bodies')::boolean, x->>'search_text', x->'phones',
                    CASE WHEN x ? 'languages' THEN ARRAY(SELECT jsonb_array_elements_text(x->'languages')) END,
                    x->>'accessibility', x->>'eligibility', x->>'fees', x->>'office_number', x->>'last_verified_at',
                    x->>'last_verified_by', x->>'status', x->>'corporate_number', x->'locations'
                FROM jsonb_array_elements(\(JSONValue.array(staged.rows).jsonText)::jsonb) x
                ON CONFLICT (import_id, line) DO NOTHING
                """)
        }
        if !staged.errors.isEmpty {
            let errors = JSONValue.array(staged.errors.map { .object(["line": .integer(Int64($0.line)), "message": .string($0.message)]) })
            try tx.query("""
                INSERT INTO registry.import_errors (import_id, line, message)
                SELECT \(importID)::uuid, (x->>'line')::int, x->>'message' FROM jsonb_array_elements(\(errors.jsonText)::jsonb) x
                """)
        }
    }

    /// Locks the import and checks it is the caller's and still open (neither committed nor
    /// expired, else `conflict` saying which); returns its tenant.
    static func lockOpenImport(_ id: String, principal: Principal, on tx: PostgresConnection) throws -> String {
        guard let row = try tx.query("""
            SELECT tenant, result::text AS result, committed_at IS NOT NULL AS committed,
                   expired_at IS NOT NULL OR created_at <= now() - make_interval(secs => \(expirySeconds)::double precision) AS expired
            FROM registry.imports WHERE id = \(id)::uuid FOR UPDATE
            """).first else { throw WireError(.notFound, "no import \(id)") }
        let tenant: String = try row.decode("tenant")
        try principal.requireOwner(of: tenant)
        if try row.decode("committed", as: Bool.self) {
            let result = try row.decode("result", as: String?.self).map { try JSONValue.parse(Data($0.utf8)) } ?? .null
            throw WireError(.conflict, "import \(id) is already committed; begin a new import to send another file",
                            details: .object(["import_id": .string(id), "state": .string("committed"), "result": result]))
        }
        if try row.decode("expired", as: Bool.self) {
            throw WireError(.conflict, "import \(id) expired: it began more than \(expirySeconds / 3600) hours ago and was never committed, so its staged rows are deleted; begin a new import",
                            details: .object(["import_id": .string(id), "state": .string("expired")]))
        }
        return tenant
    }

    /// Expires the imports begun more than `expirySeconds` ago and never committed: marks them and
    /// deletes their staged rows. Runs in the transaction of each new import, so an abandoned
    /// import's rows last at most until the first import that begins after its time is up.
    static func purgeExpired(on tx: PostgresConnection, logger: Logger) throws {
        let expired = try tx.query("""
            UPDATE registry.imports SET expired_at = now()
            WHERE committed_at IS NULL AND expired_at IS NULL
              AND created_at <= now() - make_interval(secs => \(expirySeconds)::double precision)
            RETURNING id::text AS id
            """)
        guard !expired.isEmpty else { return }
        // Separate statements, after the marking: rows a chunk staged while we waited for its lock are seen.
        let ids: [String] = try expired.map { try $0.decode("id") }
        try tx.query("DELETE FROM registry.import_rows WHERE import_id = ANY(\(ids)::uuid[])")
        try tx.query("DELETE FROM registry.import_errors WHERE import_id = ANY(\(ids)::uuid[])")
        logger.info("expired imports purged", metadata: ["import.count": "\(expired.count)"])
    }

    // MARK: Commit

    static func commit(_ id: String, principal: Principal, on tx: PostgresConnection) throws -> JSONValue {
        let tenant = try lockOpenImport(id, principal: principal, on: tx)

        // Hold the defined areas the file refers to (see Resources.lockReferencedAreas) before
        // checking they exist: an area.import removing one then waits for this commit and detaches
        // the resources it makes, or this commit waits for the import and reports the area unknown.
        try tx.query("""
            SELECT g.id FROM registry.area_groups g WHERE g.id IN (
                SELECT daily_life_area_id FROM registry.import_rows WHERE import_id = \(id)::uuid AND daily_life_area_id IS NOT NULL
                UNION SELECT unnest(serves_areas) FROM registry.import_rows WHERE import_id = \(id)::uuid)
            ORDER BY g.id FOR KEY SHARE
            """)
        let problems = try tx.query("""
            WITH s AS (SELECT * FROM registry.import_rows WHERE import_id = \(id)::uuid),
            problems AS (
                SELECT line, message FROM registry.import_errors WHERE import_id = \(id)::uuid
                UNION ALL SELECT line, 'external_id ' || external_id || ' is also on line ' || first FROM
                    (SELECT line, external_id, min(line) OVER (PARTITION BY external_id) AS first FROM s) d WHERE line <> first
                UNION ALL SELECT line, 'external_id is empty' FROM s WHERE external_id = ''
                UNION ALL SELECT line, 'organization is empty' FROM s WHERE organization = ''
                UNION ALL SELECT line, 'name is empty' FROM s WHERE name = ''
                UNION ALL SELECT line, 'unknown category ' || category_code FROM s
                    WHERE NOT EXISTS (SELECT 1 FROM registry.categories c WHERE c.code = s.category_code)
                UNION ALL SELECT line, 'kind ' || k || ' is not a kind of ' || category_code FROM s, unnest(s.kinds) k
                    WHERE NOT EXISTS (SELECT 1 FROM registry.kinds x WHERE x.code = k AND x.category_code = s.category_code)
                UNION ALL SELECT line, 'unknown municipality ' || municipality_code FROM s
                    WHERE NOT EXISTS (SELECT 1 FROM registry.areas a WHERE a.code = s.municipality_code AND a.level = 'municipality')
                UNION ALL SELECT line, 'no daily-life area ' || daily_life_area_id || ' in ' || municipality_code FROM s
                    WHERE daily_life_area_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM registry.area_groups g
                        WHERE g.id = s.daily_life_area_id AND g.municipality_code = s.municipality_code AND upper_inf(g.valid))
                UNION ALL SELECT line, 'unknown area ' || x FROM s, unnest(s.serves_areas) x
                    WHERE x <> 'national'
                      AND NOT EXISTS (SELECT 1 FROM registry.areas a WHERE a.code = x)
                      AND NOT EXISTS (SELECT 1 FROM registry.area_groups g WHERE g.id = x AND upper_inf(g.valid))
                UNION ALL SELECT line, 'unknown access mode ' || m FROM s, unnest(s.access_modes) m
                    WHERE m NOT IN ('visit', 'stay', 'home_visit')
                UNION ALL SELECT line, 'unknown consultation type ' || t FROM s, unnest(s.consultation_types) t
                    WHERE NOT EXISTS (SELECT 1 FROM registry.consultation_types c WHERE c.code = t)
                UNION ALL SELECT line, 'vacancies exceed the capacity' FROM s WHERE vacancies > capacity
                UNION ALL SELECT line, 'unknown municipality ' || (e.value->>'municipality_code') || ' in locations'
                    FROM s, jsonb_array_elements(s.locations) e
                    WHERE s.locations IS NOT NULL AND e.value->>'municipality_code' IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM registry.areas a WHERE a.code = e.value->>'municipality_code' AND a.level = 'municipality')
                UNION ALL SELECT s.line, 'locations name the staff-only address, which must not be public'
                    FROM s JOIN registry.resources r ON r.tenant = \(tenant) AND r.external_id = s.external_id
                    WHERE s.locations IS NOT NULL AND r.staff_address <> '' AND EXISTS (
                        SELECT 1 FROM jsonb_array_elements(s.locations) e
                        WHERE regexp_replace(normalize(e.value->>'address', NFKC), '\\s', '', 'g')
                            = regexp_replace(normalize(r.staff_address, NFKC), '\\s', '', 'g'))
                UNION ALL SELECT line, 'corporate_number of ' || organization || ' differs from line ' || first FROM
                    (SELECT line, organization, corporate_number,
                            first_value(line) OVER (PARTITION BY organization ORDER BY line) AS first,
                            first_value(corporate_number) OVER (PARTITION BY organization ORDER BY line) AS first_number
                     FROM s WHERE corporate_number IS NOT NULL) d WHERE corporate_number <> first_number
            )
            SELECT line, message, count(*) OVER () AS total FROM problems ORDER BY line, message LIMIT \(maxErrorsShown)
            """)
        if let first = problems.first {
            let total: Int = try first.decode("total")
            let list = JSONValue.array(try problems.map {
                .object(["line": .integer(Int64(try $0.decode("line", as: Int.self))), "message": .string(try $0.decode("message"))])
            })
            throw WireError(.invalidInput, "the file has \(total) error(s); nothing was stored",
                            details: .object(["errors": list, "count": .integer(Int64(total))]))
        }

        let staged: Int = try tx.query("SELECT count(*) AS n FROM registry.import_rows WHERE import_id = \(id)::uuid")[0].decode("n")
        let organizations = try tx.query("""
            WITH made AS (
                INSERT INTO registry.organizations (tenant, name, corporate_number)
                SELECT DISTINCT ON (s.organization) \(tenant), s.organization, coalesce(s.corporate_number, '')
                FROM registry.import_rows s
                WHERE s.import_id = \(id)::uuid AND NOT EXISTS (SELECT 1 FROM registry.organizations o
                    WHERE o.tenant = \(tenant) AND o.name = s.organization AND o.retired_at IS NULL)
                ORDER BY s.organization, s.corporate_number NULLS LAST
                RETURNING *)
            INSERT INTO registry.organization_history (organization_id, version, changed_by, change, snapshot)
            SELECT id, version, \(principal.tokenID), 'created', to_jsonb(made) FROM made RETURNING organization_id
            """).count
        // A file with the corporate_number column gives its organisations that 法人番号 (a new
        // version when it changes); without the column they keep theirs.
        try tx.query("""
            WITH wanted AS (
                SELECT DISTINCT organization, corporate_number FROM registry.import_rows
                WHERE import_id = \(id)::uuid AND corporate_number IS NOT NULL),
            changed AS (
                UPDATE registry.organizations o SET corporate_number = w.corporate_number, version = o.version + 1, updated_at = now()
                FROM wanted w
                WHERE o.tenant = \(tenant) AND o.name = w.organization AND o.retired_at IS NULL
                  AND o.corporate_number <> w.corporate_number
                RETURNING o.*)
            INSERT INTO registry.organization_history (organization_id, version, changed_by, change, snapshot)
            SELECT id, version, \(principal.tokenID), 'updated', to_jsonb(changed) FROM changed
            """)

        // A file without the hours column keeps the hours already stored (set by resource.update):
        // copied in here, they compare equal below and leave an otherwise unchanged row unchanged.
        try tx.query("""
            UPDATE registry.import_rows s SET hours = coalesce(s.hours, r.hours), serves_areas = coalesce(s.serves_areas, r.serves_areas),
                locations = coalesce(s.locations, r.locations),
                serves_except_own_bodies = coalesce(s.serves_except_own_bodies, r.serves_except_own_bodies),
                phones = coalesce(s.phones, r.phones), languages = coalesce(s.languages, r.languages),
                accessibility = coalesce(s.accessibility, r.accessibility), eligibility = coalesce(s.eligibility, r.eligibility),
                fees = coalesce(s.fees, r.fees), office_number = coalesce(s.office_number, r.office_number),
                last_verified_at = coalesce(s.last_verified_at, coalesce(r.last_verified_at::text, '')),
                last_verified_by = coalesce(s.last_verified_by, r.last_verified_by), status = coalesce(s.status, r.status)
            FROM registry.resources r
            WHERE s.import_id = \(id)::uuid
              AND (s.hours IS NULL OR s.serves_areas IS NULL OR s.locations IS NULL OR s.serves_except_own_bodies IS NULL OR s.phones IS NULL OR s.languages IS NULL
                   OR s.accessibility IS NULL OR s.eligibility IS NULL OR s.fees IS NULL OR s.office_number IS NULL
                   OR s.last_verified_at IS NULL OR s.last_verified_by IS NULL OR s.status IS NULL)
              AND r.tenant = \(tenant) AND r.external_id = s.external_id
            """)
        try tx.execute(unsafeSQL: """
            CREATE TEMP TABLE IF NOT EXISTS import_changed (id uuid PRIMARY KEY, created boolean, line int) ON COMMIT DELETE ROWS
            """)
        try tx.query("""
            WITH src AS (
                SELECT s.*, (SELECT o.id FROM registry.organizations o WHERE o.tenant = \(tenant) AND o.name = s.organization
                             AND o.retired_at IS NULL ORDER BY o.created_at, o.id LIMIT 1) AS organization_id
                FROM registry.import_rows s WHERE s.import_id = \(id)::uuid),
            up AS (
                INSERT INTO registry.resources AS r (tenant, organization_id, external_id, name, kana, category_code, kinds,
                    municipality_code, daily_life_area_id, serves_areas, postal_code, address, latitude, longitude, phone, email,
                    url, description, hours, access_modes, capacity, vacancies, consultation_types, serves_except_own_bodies, search_text,
                    phones, languages, accessibility, eligibility, fees, office_number, last_verified_at, last_verified_by, status,
                    locations)
                SELECT \(tenant), organization_id, external_id, name, kana, category_code, kinds, municipality_code,
                    daily_life_area_id, coalesce(serves_areas, '{}'), postal_code, address, latitude, longitude, phone, email, url,
                    description, coalesce(hours, '[]'), access_modes, capacity, vacancies, consultation_types,
                    coalesce(serves_except_own_bodies, false), search_text, coalesce(phones, '[]'), coalesce(languages, '{}'),
                    coalesce(accessibility, ''), coalesce(eligibility, ''), coalesce(fees, ''), coalesce(office_number, ''),
                    nullif(last_verified_at, '')::date, coalesce(last_verified_by, ''), coalesce(status, 'active'),
                    -- Most files give no locations: no function call per row for them.
                    CASE WHEN locations IS NULL OR locations = '[]' THEN '[]' ELSE registry.canonical_locations(locations) END
                FROM src ORDER BY line
                ON CONFLICT (tenant, external_id) DO UPDATE SET organization_id = EXCLUDED.organization_id, name = EXCLUDED.name,
                    kana = EXCLUDED.kana, category_code = EXCLUDED.category_code, kinds = EXCLUDED.kinds,
                    municipality_code = EXCLUDED.municipality_code, daily_life_area_id = EXCLUDED.daily_life_area_id,
                    serves_areas = EXCLUDED.serves_areas, postal_code = EXCLUDED.postal_code, address = EXCLUDED.address,
                    latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, phone = EXCLUDED.phone, email = EXCLUDED.email,
                    url = EXCLUDED.url, description = EXCLUDED.description, hours = EXCLUDED.hours, access_modes = EXCLUDED.access_modes,
                    capacity = EXCLUDED.capacity, vacancies = EXCLUDED.vacancies, consultation_types = EXCLUDED.consultation_types,
                    serves_except_own_bodies = EXCLUDED.serves_except_own_bodies, phones = EXCLUDED.phones,
                    languages = EXCLUDED.languages, accessibility = EXCLUDED.accessibility, eligibility = EXCLUDED.eligibility,
                    fees = EXCLUDED.fees, office_number = EXCLUDED.office_number, last_verified_at = EXCLUDED.last_verified_at,
                    last_verified_by = EXCLUDED.last_verified_by, status = EXCLUDED.status, locations = EXCLUDED.locations,
                    search_text = EXCLUDED.search_text, version = r.version + 1, updated_at = now(), retired_at = NULL
                WHERE (r.organization_id, r.name, r.kana, r.category_code, r.kinds, r.municipality_code, r.daily_life_area_id,
                       r.serves_areas, r.postal_code, r.address, r.latitude, r.longitude, r.phone, r.email, r.url, r.description,
                       r.hours, r.access_modes, r.capacity, r.vacancies, r.consultation_types, r.serves_except_own_bodies,
                       r.phones, r.languages, r.accessibility, r.eligibility, r.fees, r.office_number, r.last_verified_at,
                       r.last_verified_by, r.status, r.locations, r.retired_at IS NULL)
                   IS DISTINCT FROM
                      (EXCLUDED.organization_id, EXCLUDED.name, EXCLUDED.kana, EXCLUDED.category_code, EXCLUDED.kinds,
                       EXCLUDED.municipality_code, EXCLUDED.daily_life_area_id, EXCLUDED.serves_areas, EXCLUDED.postal_code,
                       EXCLUDED.address, EXCLUDED.latitude, EXCLUDED.longitude, EXCLUDED.phone, EXCLUDED.email, EXCLUDED.url,
                       EXCLUDED.description, EXCLUDED.hours, EXCLUDED.access_modes, EXCLUDED.capacity, EXCLUDED.vacancies,
                       EXCLUDED.consultation_types, EXCLUDED.serves_except_own_bodies, EXCLUDED.phones, EXCLUDED.languages,
                       EXCLUDED.accessibility, EXCLUDED.eligibility, EXCLUDED.fees, EXCLUDED.office_number,
                       EXCLUDED.last_verified_at, EXCLUDED.last_verified_by, EXCLUDED.status, EXCLUDED.locations, true)
                RETURNING r.id, r.version = 1 AS created, r.external_id)
            INSERT INTO import_changed (id, created, line)
            SELECT up.id, up.created, (SELECT min(line) FROM registry.import_rows s WHERE s.import_id = \(id)::uuid AND s.external_id = up.external_id)
            FROM up
            """)
        try tx.query("""
            INSERT INTO registry.resource_history (resource_id, version, changed_by, change, snapshot)
            SELECT r.id, r.version, \(principal.tokenID), CASE WHEN c.created THEN 'created' ELSE 'updated' END, to_jsonb(r) - 'search_text'
            FROM registry.resources r JOIN import_changed c ON c.id = r.id
            """)
        // No lock: the events are numbered by the publisher once this commits (EventStream), in
        // insert order, which follows the file. The table is the runtime's (registryEvents.table).
        try tx.query("""
            INSERT INTO registry.events (type, subject, tenant, data)
            SELECT \(registryEvents.typePrefix)::text || CASE WHEN c.created THEN 'resource.created' ELSE 'resource.changed' END,
                   'resources/' || r.id, r.tenant, \(unsafeRaw: Resources.eventDataSQL)
            FROM registry.resources r JOIN import_changed c ON c.id = r.id ORDER BY c.line
            """)
        let counts = try tx.query("SELECT count(*) FILTER (WHERE created) AS created, count(*) FILTER (WHERE NOT created) AS updated FROM import_changed")[0]
        let created: Int = try counts.decode("created")
        let updated: Int = try counts.decode("updated")
        let result = JSONValue.object([
            "import_id": .string(id), "rows": .integer(Int64(staged)), "created": .integer(Int64(created)),
            "updated": .integer(Int64(updated)), "unchanged": .integer(Int64(staged - created - updated)),
            "organizations_created": .integer(Int64(organizations)),
        ])
        try tx.query("UPDATE registry.imports SET committed_at = now(), result = \(result.jsonText)::jsonb WHERE id = \(id)::uuid")
        try tx.query("DELETE FROM registry.import_rows WHERE import_id = \(id)::uuid")
        return result
    }
}

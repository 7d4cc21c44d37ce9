import CSV
import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// The places a daily-life area covers, so a resident finds their area by the name of where they
/// live: 町名・丁目 (`town`) and school districts (`school_district`).
///
/// `area.places.import` takes a CSV with the header `daily_life_area_id,kind,name,kana` (the
/// area by its id or by its code, as `area.groups` lists them) and replaces the whole list of one
/// municipality, written by whoever writes its daily-life areas (the municipality's tenant or its
/// prefecture's, `AreaGroups.requireDailyLifeOwner`). All or nothing, errors by line, as
/// `area.import`. `area.find` returns the daily-life areas one of whose places starts with the
/// typed text, in kanji or in kana, folded as every search here is (`SearchText.normalise`:
/// hiragana or katakana, full or half width).
enum AreaPlaces {
    static let placeKinds = ["town", "school_district"]
    /// The longest place name or kana stored.
    static let maxNameLength = 100

    struct ImportInput: Decodable, Sendable {
        let municipality: String
        let csv: String
    }

    struct FindInput: Decodable, Sendable {
        let municipality: String?
        let text: String
        let limit: Int?
        let after: String?
        let asOf: String?
        enum CodingKeys: String, CodingKey {
            case municipality, text, limit, after
            case asOf = "as_of"
        }
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .write(
                "area.places.import",
                summary: "Replace the places (town: 町名・丁目, school_district: 学区) a municipality's daily-life areas cover, from CSV (daily_life_area_id,kind,name,kana; the area by id or code). By the municipality's tenant or its prefecture's. All or nothing; errors are listed by line.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["municipality","csv"],
                     "properties":{"municipality":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},
                                   "csv":{"type":"string","maxLength":4000000}}}
                    """,
                input: ImportInput.self
            ) { context, input, tx in
                try importCSV(input, context: context, on: tx)
            },
            try .read(
                "area.find",
                summary: "The daily-life areas covering a place whose name or kana starts with text (kana and width folded), optionally in one municipality, each with the places that matched; paged by after (an area id).",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["text"],
                     "properties":{"municipality":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},
                                   "text":{"type":"string","minLength":1,"maxLength":100},
                                   "limit":{"type":"integer","minimum":1,"maximum":100},
                                   "after":{"type":"string","maxLength":100},
                                   "as_of":\(AsOf.property.1)}}
                    """,
                input: FindInput.self
            ) { context, input in
                try await find(input, database: context.database)
            },
        ]
    }

    // MARK: Import

    struct Place {
        let line: Int
        let area: String
        let kind: String
        let name: String
        let kana: String
    }

    static func importCSV(_ input: ImportInput, context: RequestContext, on tx: PostgresConnection) throws -> JSONValue {
        let municipality = input.municipality
        let prefecture = try AreaGroups.municipalityOwner(municipality, on: tx).prefecture
        try AreaGroups.requireDailyLifeOwner(municipality: municipality, prefecture: prefecture, context: context)
        let table: [(line: Int, values: [String: String])]
        do {
            table = try CSVReader.table(input.csv, required: ["daily_life_area_id", "kind", "name", "kana"])
        } catch {
            throw AreaGroups.report([(error.line, error.message)])
        }
        // The same lock as area.import's: the municipality's areas stay as they are until this commits.
        try tx.query("SELECT pg_advisory_xact_lock(hashtextextended(\("registry.area_groups/" + prefecture), 0))")
        var areas: [String: String] = [:]  // id and code -> id
        for row in try tx.query("""
            SELECT id, local_code FROM registry.area_groups
            WHERE municipality_code = \(municipality) AND kind = 'daily_life_area' AND upper_inf(valid)
            """) {
            let id: String = try row.decode("id")
            areas[id] = id
            areas[try row.decode("local_code")] = id
        }
        var problems: [(Int, String)] = []
        var places: [Place] = []
        var seen: [String: Int] = [:]  // area/kind/name -> line
        for entry in table {
            let value = { (column: String) in entry.values[column] ?? "" }
            let named = value("daily_life_area_id")
            let kind = value("kind")
            let (name, kana) = (value("name"), value("kana"))
            guard let area = areas[named] else {
                problems.append((entry.line, named.isEmpty ? "daily_life_area_id is empty"
                                 : "no daily-life area \"\(named)\" in municipality \(municipality)"))
                continue
            }
            guard placeKinds.contains(kind) else {
                problems.append((entry.line, "unknown kind \"\(kind)\" (use \(placeKinds.joined(separator: ", ")))"))
                continue
            }
            if name.isEmpty {
                problems.append((entry.line, "name is empty"))
                continue
            }
            if name.count > maxNameLength || kana.count > maxNameLength {
                problems.append((entry.line, "name and kana must be at most \(maxNameLength) characters"))
                continue
            }
            let key = "\(area)/\(kind)/\(name)"
            if let line = seen[key] {
                problems.append((entry.line, "\(kind) \"\(name)\" of \(area) is listed on line \(line) already"))
                continue
            }
            seen[key] = entry.line
            places.append(Place(line: entry.line, area: area, kind: kind, name: name, kana: kana))
        }
        if !problems.isEmpty { throw AreaGroups.report(problems) }
        let placesJSON = JSONValue.array(places.map {
            .object(["area": .string($0.area), "kind": .string($0.kind), "name": .string($0.name), "kana": .string($0.kana),
                     "name_search": .string(placeForm($0.name)), "kana_search": .string(placeForm($0.kana))])
        }).jsonText
        let removed: Int = try tx.query("""
            WITH gone AS (DELETE FROM registry.area_places p USING registry.area_groups g
                          WHERE g.id = p.daily_life_area_id AND g.municipality_code = \(municipality)
                            AND g.kind = 'daily_life_area' AND upper_inf(g.valid) RETURNING 1)
            SELECT count(*) AS n FROM gone
            """)[0].decode("n")
        try tx.query("""
            INSERT INTO registry.area_places (daily_life_area_id, kind, name, kana, name_search, kana_search)
            SELECT x->>'area', x->>'kind', x->>'name', x->>'kana', x->>'name_search', x->>'kana_search'
            FROM jsonb_array_elements(\(placesJSON)::jsonb) x
            """)
        var counts: [String: JSONValue] = [:]
        for kind in placeKinds { counts[kind] = .integer(Int64(places.filter { $0.kind == kind }.count)) }
        return .object([
            "municipality": .string(municipality), "places": .object(counts),
            "areas": .integer(Int64(Set(places.map(\.area)).count)), "replaced": .integer(Int64(removed)),
        ])
    }

    // MARK: Finding

    static func find(_ input: FindInput, database: PostgresPool) async throws -> JSONValue {
        try AsOf.check(input.asOf)
        let day = AsOf.day(input.asOf)
        let text = placeForm(input.text).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else {
            throw WireError.invalidInput("text is blank", violations: [.init(path: "/text", message: "type part of a place's name")])
        }
        let pattern = SearchText.likePrefix(text)
        // A resident may type their whole address (緑町三丁目5番): the places whose name starts the
        // text match too, equality against the text's prefixes (at most 100), so the index serves.
        let prefixes = text.indices.map { String(text[...$0]) }
        let limit = input.limit ?? 20
        let (municipality, after) = (input.municipality, input.after)
        return try await database.withConnection { connection in
            // Places whose name starts with the text; when there are none, the place named by the
            // start of the text (the longest such name: 緑町三丁目 before 緑町).
            let forward: PostgresQuery = "(p.name_search LIKE \(pattern) ESCAPE '\\' OR p.kana_search LIKE \(pattern) ESCAPE '\\')"
            let anyForward = try !connection.query("""
                SELECT 1 FROM registry.area_places p JOIN registry.area_groups g ON g.id = p.daily_life_area_id
                WHERE \(forward) AND (\(municipality)::text IS NULL OR g.municipality_code = \(municipality))
                  AND g.valid @> \(day) LIMIT 1
                """).isEmpty
            let longest: Int? = anyForward ? nil : try connection.query("""
                SELECT max(greatest(CASE WHEN p.name_search = ANY(\(prefixes)::text[]) THEN char_length(p.name_search) END,
                                    CASE WHEN p.kana_search = ANY(\(prefixes)::text[]) THEN char_length(p.kana_search) END)) AS n
                FROM registry.area_places p JOIN registry.area_groups g ON g.id = p.daily_life_area_id
                WHERE (p.name_search = ANY(\(prefixes)::text[]) OR p.kana_search = ANY(\(prefixes)::text[]))
                  AND (\(municipality)::text IS NULL OR g.municipality_code = \(municipality)) AND g.valid @> \(day)
                """)[0].decode("n")
            let matches: PostgresQuery = if let longest {
                "((p.name_search = ANY(\(prefixes)::text[]) AND char_length(p.name_search) = \(longest)::int) OR (p.kana_search = ANY(\(prefixes)::text[]) AND char_length(p.kana_search) = \(longest)::int))"
            } else {
                forward
            }
            var areas = try connection.jsonRows("""
                WITH hits AS (
                    SELECT p.daily_life_area_id AS id,
                           jsonb_agg(jsonb_build_object('kind', p.kind, 'name', p.name, 'kana', p.kana)
                                     ORDER BY p.kind DESC, p.name_search, p.name) AS places
                    FROM registry.area_places p JOIN registry.area_groups g ON g.id = p.daily_life_area_id
                    WHERE \(matches) AND (\(municipality)::text IS NULL OR g.municipality_code = \(municipality)) AND g.valid @> \(day)
                      AND (\(after)::text IS NULL OR p.daily_life_area_id > \(after))
                    GROUP BY p.daily_life_area_id
                    ORDER BY p.daily_life_area_id
                    LIMIT \(limit + 1)
                )
                SELECT jsonb_build_object('id', g.id, 'code', g.local_code, 'name', coalesce(n.name, g.name), 'kana', coalesce(n.kana, g.kana),
                                          'municipality', g.municipality_code, 'municipality_name', a.name,
                                          'places', h.places) AS j
                FROM hits h JOIN registry.area_groups g ON g.id = h.id JOIN registry.areas a ON a.code = g.municipality_code
                LEFT JOIN registry.area_group_names n ON n.group_id = g.id AND n.valid @> \(day)
                ORDER BY g.id
                """)
            if areas.isEmpty, let municipality { _ = try AreaGroups.municipalityOwner(municipality, on: connection) }
            var next: JSONValue = .null
            if areas.count > limit {
                areas.removeLast()
                next = areas.last?["id"] ?? .null
            }
            return .object(["areas": .array(areas), "next_after": next])
        }
    }

    /// A place name as searched: folded as every search here is (`SearchText.normalise`), and
    /// numbers in kanji numerals written in digits, so 三丁目 and 3丁目 are one place (names and
    /// typed text are converted alike: 三鷹 is searched as 3鷹, and found by either).
    static func placeForm(_ text: String) -> String {
        let folded = Array(SearchText.normalise(text))
        let digits: [Character: Int] = ["〇": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9]
        var out = ""
        var index = 0
        while index < folded.count {
            var end = index
            while end < folded.count, digits[folded[end]] != nil || folded[end] == "十" { end += 1 }
            if end > index, let number = kanjiNumber(folded[index..<end], digits) {
                out += String(number)
                index = end
                continue
            }
            out.append(folded[index])
            index += 1
        }
        return out
    }

    /// 三 = 3, 十二 = 12, 二十 = 20, 二十三 = 23 (up to 99; a 丁目 is never more), or nil.
    private static func kanjiNumber(_ characters: ArraySlice<Character>, _ digits: [Character: Int]) -> Int? {
        let text = Array(characters)
        guard text.count <= 3 else { return nil }
        if let ten = text.firstIndex(of: "十") {
            guard text.filter({ $0 == "十" }).count == 1 else { return nil }
            let tens = ten == 0 ? 1 : (ten == 1 ? digits[text[0]] : nil)
            let ones = ten == text.count - 1 ? 0 : (ten == text.count - 2 ? digits[text[text.count - 1]] : nil)
            guard let tens, let ones, tens > 0 else { return nil }
            return tens * 10 + ones
        }
        guard text.count == 1 else { return nil }
        return digits[text[0]]
    }
}

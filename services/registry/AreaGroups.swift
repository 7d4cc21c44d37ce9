import CSV
import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// The areas each prefecture defines: 障害保健福祉圏域, 二次医療圏, 日常生活圏域.
///
/// `area.import` takes a CSV with the header `kind,code,name,kana,municipality`: one row per
/// (area, member municipality) for disability and medical areas, one row per daily-life area
/// (its municipality in the last column). It replaces the prefecture's definitions as a whole:
/// every row is checked first and any error rejects the file with a line-numbered report;
/// nothing partial is stored. Importing the same file again changes nothing.
enum AreaGroups {
    static let kinds = ["disability_area", "medical_area", "daily_life_area"]

    struct ImportInput: Decodable, Sendable {
        let prefecture: String
        let csv: String
    }

    struct Row {
        let line: Int
        let kind: String
        let code: String
        let name: String
        let kana: String
        let municipality: String
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .write(
                "area.import",
                summary: "Replace a prefecture's disability, medical and daily-life areas from CSV (kind,code,name,kana,municipality). All or nothing; errors are listed by line.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["prefecture","csv"],
                     "properties":{"prefecture":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},
                                   "csv":{"type":"string","maxLength":4000000}}}
                    """,
                input: ImportInput.self
            ) { context, input, tx in
                try importCSV(input, context: context, on: tx)
            },
            try .read(
                "area.groups",
                summary: "A prefecture's defined areas, each with its member municipalities (or its municipality, for daily-life areas).",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["prefecture"],
                     "properties":{"prefecture":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},
                                   "kind":{"enum":["disability_area","medical_area","daily_life_area"]}}}
                    """,
                input: GroupsInput.self
            ) { context, input in
                try await groups(input, database: context.database)
            },
            try .read(
                "area.chain",
                summary: "For a municipality: its daily-life areas, itself, its disability and medical areas, its prefecture and the nation, nearest first.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["code"],
                     "properties":{"code":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6}}}
                    """,
                input: AreaOperations.GetInput.self
            ) { context, input in
                try await chain(municipality: input.code, database: context.database)
            },
        ]
    }

    struct GroupsInput: Decodable, Sendable {
        let prefecture: String
        let kind: String?
    }

    // MARK: Import

    static func importCSV(_ input: ImportInput, context: RequestContext, on tx: PostgresConnection) throws -> JSONValue {
        let principal = try Access.writer(context)
        try Access.requireOwner(principal, owns: input.prefecture)
        let table: [(line: Int, values: [String: String])]
        do {
            table = try CSVReader.table(input.csv, required: ["kind", "code", "name", "kana", "municipality"])
        } catch {
            throw report([(error.line, error.message)])
        }
        let rows = table.map { Row(line: $0.line, kind: $0.values["kind"] ?? "", code: $0.values["code"] ?? "",
                                   name: $0.values["name"] ?? "", kana: $0.values["kana"] ?? "",
                                   municipality: $0.values["municipality"] ?? "") }
        let prefecture = input.prefecture
        let known = try tx.query("""
            SELECT code, level, prefecture_code FROM registry.areas WHERE prefecture_code = \(prefecture) OR code IN (
                SELECT jsonb_array_elements_text(\(JSONValue.array(rows.map { .string($0.municipality) }).jsonText)::jsonb))
            """)
        var municipalities: [String: String] = [:]  // code -> prefecture code
        var prefectureExists = false
        for row in known {
            let code: String = try row.decode("code")
            if try row.decode("level", as: String.self) == "municipality" {
                municipalities[code] = try row.decode("prefecture_code")
            } else if code == prefecture {
                prefectureExists = true
            }
        }
        guard prefectureExists else { throw WireError(.notFound, "no prefecture with code \(prefecture)") }
        let problems = validate(rows, prefecture: prefecture, municipalities: municipalities)
        if !problems.isEmpty { throw report(problems) }
        let result = try store(rows, prefecture: prefecture, on: tx)
        AreaCache.shared.clear()
        return result
    }

    static func validate(_ rows: [Row], prefecture: String, municipalities: [String: String]) -> [(Int, String)] {
        var problems: [(Int, String)] = []
        var names: [String: (name: String, line: Int)] = [:]           // kind:code -> name
        var membership: [String: (code: String, line: Int)] = [:]      // kind:municipality -> area code
        var dailyLifeMunicipality: [String: String] = [:]               // code -> municipality
        for row in rows {
            guard kinds.contains(row.kind) else {
                problems.append((row.line, "unknown kind \"\(row.kind)\" (use \(kinds.joined(separator: ", ")))"))
                continue
            }
            if row.code.range(of: "^[0-9A-Za-z_-]{1,32}$", options: .regularExpression) == nil {
                problems.append((row.line, "code \"\(row.code)\" must be 1-32 letters, digits, _ or -"))
            }
            if row.name.isEmpty { problems.append((row.line, "name is empty")) }
            guard let owner = municipalities[row.municipality] else {
                problems.append((row.line, "unknown municipality code \"\(row.municipality)\""))
                continue
            }
            if owner != prefecture {
                problems.append((row.line, "municipality \(row.municipality) belongs to prefecture \(owner), not \(prefecture)"))
                continue
            }
            let key = "\(row.kind):\(row.code)"
            if let seen = names[key], seen.name != row.name {
                problems.append((row.line, "\(row.kind) \(row.code) is named \"\(seen.name)\" on line \(seen.line)"))
            } else if names[key] == nil {
                names[key] = (row.name, row.line)
            }
            if row.kind == "daily_life_area" {
                if let other = dailyLifeMunicipality[row.code] {
                    problems.append((row.line, other == row.municipality
                        ? "daily-life area \(row.code) is listed twice"
                        : "daily-life area \(row.code) lies in \(other); it cannot also lie in \(row.municipality)"))
                }
                dailyLifeMunicipality[row.code] = row.municipality
            } else {
                let slot = "\(row.kind):\(row.municipality)"
                if let seen = membership[slot] {
                    problems.append((row.line, seen.code == row.code
                        ? "municipality \(row.municipality) is listed twice in \(row.kind) \(row.code)"
                        : "municipality \(row.municipality) is already in \(row.kind) \(seen.code) (line \(seen.line)): areas of one kind must not overlap"))
                } else {
                    membership[slot] = (row.code, row.line)
                }
            }
        }
        return problems
    }

    static func report(_ problems: [(Int, String)]) -> WireError {
        let sorted = problems.sorted { $0.0 < $1.0 }
        let list = JSONValue.array(sorted.prefix(500).map { .object(["line": .integer(Int64($0.0)), "message": .string($0.1)]) })
        return WireError(.invalidInput, "the file has \(problems.count) error(s); nothing was stored",
                         details: .object(["errors": list, "count": .integer(Int64(problems.count))]))
    }

    /// Upserts every area in the file and removes the prefecture's areas the file no longer has.
    static func store(_ rows: [Row], prefecture: String, on tx: PostgresConnection) throws -> JSONValue {
        var groups: [String: Row] = [:]
        var members: [(group: String, kind: String, municipality: String)] = []
        for row in rows {
            let id = "\(prefecture):\(row.kind):\(row.code)"
            if groups[id] == nil { groups[id] = row }
            if row.kind != "daily_life_area" { members.append((id, row.kind, row.municipality)) }
        }
        let groupJSON = JSONValue.array(groups.sorted { $0.key < $1.key }.map { id, row in
            .object([
                "id": .string(id), "kind": .string(row.kind), "local_code": .string(row.code), "name": .string(row.name),
                "kana": .string(row.kana), "name_search": .string(SearchText.normalise(row.name)),
                "kana_search": .string(SearchText.normalise(row.kana)),
                "municipality": row.kind == "daily_life_area" ? .string(row.municipality) : .null,
            ])
        }).jsonText
        let memberJSON = JSONValue.array(members.map {
            .object(["group": .string($0.group), "kind": .string($0.kind), "municipality": .string($0.municipality)])
        }).jsonText
        try tx.query("""
            DELETE FROM registry.area_groups g WHERE g.prefecture_code = \(prefecture)
              AND g.id NOT IN (SELECT x->>'id' FROM jsonb_array_elements(\(groupJSON)::jsonb) x)
            """)
        try tx.query("""
            INSERT INTO registry.area_groups (id, kind, prefecture_code, local_code, name, kana, name_search, kana_search, municipality_code)
            SELECT x->>'id', x->>'kind', \(prefecture), x->>'local_code', x->>'name', x->>'kana',
                   x->>'name_search', x->>'kana_search', x->>'municipality'
            FROM jsonb_array_elements(\(groupJSON)::jsonb) x
            ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kana = EXCLUDED.kana, name_search = EXCLUDED.name_search,
                kana_search = EXCLUDED.kana_search, municipality_code = EXCLUDED.municipality_code
            """)
        try tx.query("""
            DELETE FROM registry.area_group_members m USING registry.area_groups g
            WHERE m.group_id = g.id AND g.prefecture_code = \(prefecture)
            """)
        try tx.query("""
            INSERT INTO registry.area_group_members (group_id, kind, municipality_code)
            SELECT x->>'group', x->>'kind', x->>'municipality' FROM jsonb_array_elements(\(memberJSON)::jsonb) x
            """)
        var counts: [String: JSONValue] = [:]
        for kind in kinds { counts[kind] = .integer(Int64(groups.values.filter { $0.kind == kind }.count)) }
        return .object(["prefecture": .string(prefecture), "areas": .object(counts), "memberships": .integer(Int64(members.count))])
    }

    // MARK: Reading

    static func groups(_ input: GroupsInput, database: PostgresPool) async throws -> JSONValue {
        let prefecture = input.prefecture
        let kind = input.kind
        let rows = try await database.withConnection { connection in
            try connection.jsonRows("""
                SELECT jsonb_build_object(
                    'id', g.id, 'kind', g.kind, 'code', g.local_code, 'name', g.name, 'kana', g.kana,
                    'municipalities', CASE WHEN g.kind = 'daily_life_area' THEN jsonb_build_array(g.municipality_code)
                        ELSE coalesce((SELECT jsonb_agg(m.municipality_code ORDER BY m.municipality_code)
                                       FROM registry.area_group_members m WHERE m.group_id = g.id), '[]') END
                ) AS j
                FROM registry.area_groups g
                WHERE g.prefecture_code = \(prefecture) AND (\(kind)::text IS NULL OR g.kind = \(kind))
                ORDER BY g.kind, g.local_code
                """)
        }
        return .object(["areas": .array(rows)])
    }

    static func chain(municipality code: String, database: PostgresPool) async throws -> JSONValue {
        try await database.withConnection { connection in try chainJSON(municipality: code, on: connection) }
    }

    /// `{"municipality": code, "chain": [{"level", "id", "name"}, ...]}`, nearest level first.
    static func chainJSON(municipality code: String, on connection: PostgresConnection) throws -> JSONValue {
            try connection.jsonRow("""
                SELECT jsonb_build_object('municipality', a.code, 'chain',
                    coalesce((SELECT jsonb_agg(jsonb_build_object('level', 'daily_life_area', 'id', d.id, 'name', d.name) ORDER BY d.local_code)
                              FROM registry.area_groups d WHERE d.municipality_code = a.code), '[]')
                    || jsonb_build_array(jsonb_build_object('level', 'municipality', 'id', a.code, 'name', a.name))
                    || coalesce((SELECT jsonb_agg(jsonb_build_object('level', g.kind, 'id', g.id, 'name', g.name)
                                     ORDER BY CASE g.kind WHEN 'disability_area' THEN 0 ELSE 1 END)
                              FROM registry.area_group_members m JOIN registry.area_groups g ON g.id = m.group_id
                              WHERE m.municipality_code = a.code), '[]')
                    || jsonb_build_array(jsonb_build_object('level', 'prefecture', 'id', p.code, 'name', p.name),
                                         jsonb_build_object('level', 'nation', 'id', 'national', 'name', '国'))
                ) AS j
                FROM registry.areas a JOIN registry.areas p ON p.code = a.prefecture_code
                WHERE a.code = \(code) AND a.level = 'municipality'
                """, notFound: "no municipality with code \(code)")
    }
}

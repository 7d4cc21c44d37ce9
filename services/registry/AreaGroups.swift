import CSV
import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// The areas each prefecture defines: 障害保健福祉圏域, 二次医療圏, 保健所管轄区域, and the
/// 日常生活圏域 that the prefecture or each municipality defines.
///
/// `area.import` takes a CSV with the header `kind,code,name,kana,municipality`: one row per
/// (area, member municipality) for disability, medical and health-centre areas, one row per
/// daily-life area (its municipality in the last column). It replaces the prefecture's
/// definitions of the kinds the file has rows of (or of the kinds named in `kinds`, which may
/// name a kind with no rows to clear it); areas of the other kinds stay as they are. With
/// `municipality` (one of the prefecture's) it replaces that municipality's daily-life areas only
/// (the only kind a municipality defines; the municipality column may be left out or empty),
/// written by the municipality's tenant or its prefecture's. Every row is checked first and any error
/// rejects the file with a line-numbered report; nothing partial is stored. Importing the same
/// file again changes nothing.
///
/// An area the import removes may still be referred to by resources (`daily_life_area_id`,
/// `serves_area`), of any tenant, retired or not. The reference is cleared, never left dangling
/// and never cleared silently: each such resource becomes a new version (history change
/// `area_removed`), gets a `resource.changed` event, and is listed in the reply's
/// `affected_resources` (`[{"id", "field", "area", "reason"}]`). The same happens to a
/// `daily_life_area_id` whose area the file moves to another municipality than the resource's
/// (`reason` `moved`). A prefecture redrawing its areas is therefore not blocked by other
/// tenants' records; their owners learn of it from the event and set a new area. (Refusing the
/// import instead would let any one resource veto the redrawing.)
///
/// Concurrent writers: imports of one prefecture run one at a time (an advisory lock). The import
/// locks the areas it removes or moves (`FOR UPDATE`) before it looks for resources referring to
/// them, and resource writes lock the areas they refer to (`FOR KEY SHARE`,
/// `Resources.lockReferencedAreas`) before any resource row, so a resource written at the same
/// time either commits first and is detached, or waits and is refused as referring to an unknown
/// area.
enum AreaGroups {
    static let kinds = ["disability_area", "medical_area", "health_centre_area", "daily_life_area"]
    /// The kinds that are sets of whole municipalities (members in `area_group_members`), in the
    /// order the chain lists them: the 保健所's area first, nearest the municipality.
    static let memberKinds = ["health_centre_area", "disability_area", "medical_area"]
    /// The id of the nation, the last level of every chain (`chainJSON`): as a search or export
    /// area it holds every municipality, so it filters nothing.
    static let nationID = "national"
    /// At most this many affected resources are listed in a reply (`affected_count` has them all).
    static let maxAffectedListed = 1000

    struct ImportInput: Decodable, Sendable {
        /// The prefecture whose areas are replaced.
        let prefecture: String
        /// When given (one of the prefecture's), only this municipality's daily-life areas are.
        let municipality: String?
        let csv: String
        /// The kinds to replace; by default the kinds the file has rows of.
        let kinds: [String]?
        /// The day the file's definition starts (`YYYY-MM-DD`); by default today in Japan.
        let validFrom: String?

        enum CodingKeys: String, CodingKey {
            case prefecture, municipality, csv, kinds
            case validFrom = "valid_from"
        }
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
                summary: "Define a prefecture's disability, medical, health-centre or daily-life areas from CSV (kind,code,name,kana,municipality) from valid_from (default today): the kinds the file has rows of, or those named in kinds; or, with municipality (one of the prefecture's), that municipality's own daily-life areas only, by its editor or the prefecture's. The definition before ends that day and is kept. All or nothing; errors are listed by line. Resources that referred to an area that ends are detached, versioned, announced and listed in affected_resources.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["prefecture","csv"],
                     "properties":{"prefecture":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},
                                   "municipality":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},
                                   "csv":{"type":"string","maxLength":4000000},
                                   "kinds":{"type":"array","minItems":1,"maxItems":4,
                                            "items":{"enum":["disability_area","medical_area","health_centre_area","daily_life_area"]}},
                                   "valid_from":\(AsOf.property.1)}}
                    """,
                input: ImportInput.self
            ) { context, input, tx in
                try importCSV(input, context: context, on: tx)
            },
            try .read(
                "area.groups",
                summary: "A prefecture's defined areas valid on as_of (default today), each with its period and its member municipalities then (or its municipality, for daily-life areas).",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["prefecture"],
                     "properties":{"prefecture":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},
                                   "kind":{"enum":["disability_area","medical_area","health_centre_area","daily_life_area"]},
                                   "as_of":\(AsOf.property.1)}}
                    """,
                input: GroupsInput.self
            ) { context, input in
                try await groups(input, database: context.database)
            },
            try .read(
                "area.chain",
                summary: "For a municipality: its daily-life areas, itself, its health-centre, disability and medical areas, its prefecture and the nation, nearest first, as defined on as_of (default today).",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["code"],
                     "properties":{"code":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},"as_of":\(AsOf.property.1)}}
                    """,
                input: ChainInput.self
            ) { context, input in
                try AsOf.check(input.asOf)
                return try await chain(municipality: input.code, asOf: input.asOf, database: context.database)
            },
        ]
    }

    struct GroupsInput: Decodable, Sendable {
        let prefecture: String
        let kind: String?
        let asOf: String?
        enum CodingKeys: String, CodingKey {
            case prefecture, kind
            case asOf = "as_of"
        }
    }

    struct ChainInput: Decodable, Sendable {
        let code: String
        let asOf: String?
        enum CodingKeys: String, CodingKey {
            case code
            case asOf = "as_of"
        }
    }

    // MARK: Import

    static func importCSV(_ input: ImportInput, context: RequestContext, on tx: PostgresConnection) throws -> JSONValue {
        try AsOf.check(input.validFrom, pointer: "/valid_from")
        let prefecture = input.prefecture
        let municipality = input.municipality
        let principal: Principal
        if let municipality {
            let owner = try municipalityOwner(municipality, on: tx).prefecture
            guard owner == prefecture else {
                throw WireError.invalidInput("municipality \(municipality) is in prefecture \(owner), not \(prefecture)",
                                             violations: [.init(path: "/municipality", message: "not a municipality of \(prefecture)")])
            }
            principal = try requireDailyLifeOwner(municipality: municipality, prefecture: prefecture, context: context)
        } else {
            principal = try context.requireOwner(of: prefecture)
        }
        let table: [(line: Int, values: [String: String])]
        do {
            table = try CSVReader.table(input.csv, required: municipality == nil
                                        ? ["kind", "code", "name", "kana", "municipality"] : ["kind", "code", "name", "kana"])
        } catch {
            throw report([(error.line, error.message)])
        }
        let rows = table.map { entry in
            var member = entry.values["municipality"] ?? ""
            if member.isEmpty, let municipality { member = municipality }
            return Row(line: entry.line, kind: entry.values["kind"] ?? "", code: entry.values["code"] ?? "",
                       name: entry.values["name"] ?? "", kana: entry.values["kana"] ?? "", municipality: member)
        }
        try tx.query("SELECT pg_advisory_xact_lock(hashtextextended(\("registry.area_groups/" + prefecture), 0))")
        let known = try tx.query("""
            SELECT code, level, prefecture_code FROM registry.areas
            WHERE prefecture_code = \(prefecture) OR code = ANY(\(rows.map(\.municipality))::text[])
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
        let replaced: Set<String>
        if let municipality {
            if let named = input.kinds, named != ["daily_life_area"] {
                throw WireError.invalidInput("a municipality imports only its daily-life areas; the other kinds are the prefecture's",
                                             violations: [.init(path: "/kinds", message: "only daily_life_area with municipality \(municipality)")])
            }
            // As for a prefecture, a file with no rows clears only when kinds says so.
            replaced = input.kinds != nil || !rows.isEmpty ? ["daily_life_area"] : []
        } else {
            replaced = Set(input.kinds ?? rows.map(\.kind).filter(kinds.contains))
        }
        guard !replaced.isEmpty || !rows.isEmpty else {
            throw WireError.invalidInput("the file has no rows: name the kinds it clears in kinds",
                                         violations: [.init(path: "/kinds", message: "needed when the file has no rows")])
        }
        var problems = validate(rows, prefecture: prefecture, municipality: municipality, municipalities: municipalities,
                                replacing: replaced)
        if let municipality {
            problems += try validateOwnDailyLife(rows, municipality: municipality, prefecture: prefecture, on: tx)
        }
        if !problems.isEmpty { throw report(problems) }
        let result = try store(rows, kinds: replaced, prefecture: prefecture, municipality: municipality,
                               validFrom: input.validFrom, principal: principal, on: tx)
        AreaCache.shared.clear()
        return result
    }

    /// The prefecture of a municipality (`not_found` unless it is one), and its name.
    static func municipalityOwner(_ code: String, on connection: PostgresConnection) throws -> (prefecture: String, name: String) {
        let rows = try connection.query("""
            SELECT prefecture_code, name FROM registry.areas WHERE code = \(code) AND level = 'municipality'
            """)
        guard let row = rows.first else { throw WireError(.notFound, "no municipality with code \(code)") }
        return (try row.decode("prefecture_code"), try row.decode("name"))
    }

    /// Who may write a municipality's daily-life areas (and the places they cover): the
    /// municipality's own tenant (a designated city's for the city), or its prefecture's, which
    /// also defines them for the whole prefecture; a national admin, as always.
    @discardableResult
    static func requireDailyLifeOwner(municipality: String, prefecture: String, context: RequestContext) throws -> Principal {
        let principal = try context.writer()
        if !principal.mayWrite(rowsOf: prefecture) { try principal.requireOwner(of: municipality) }
        return principal
    }

    /// The rows of a municipality's own import: only daily-life areas, only of that municipality,
    /// and no code another municipality's daily-life area of the prefecture already has (codes are
    /// the prefecture's: the area would move, which only the prefecture's import may do).
    static func validateOwnDailyLife(_ rows: [Row], municipality: String, prefecture: String,
                                     on tx: PostgresConnection) throws -> [(Int, String)] {
        var problems: [(Int, String)] = []
        let codes = rows.filter { $0.kind == "daily_life_area" }.map(\.code)
        var taken: [String: (municipality: String, name: String)] = [:]
        for row in try tx.query("""
            SELECT g.local_code, g.municipality_code, a.name FROM registry.area_groups g
            JOIN registry.areas a ON a.code = g.municipality_code
            WHERE g.prefecture_code = \(prefecture) AND g.kind = 'daily_life_area'
              AND g.local_code = ANY(\(codes)::text[]) AND g.municipality_code <> \(municipality)
            """) {
            taken[try row.decode("local_code")] = (try row.decode("municipality_code"), try row.decode("name"))
        }
        for row in rows where row.kind == "daily_life_area" {
            if let other = taken[row.code] {
                problems.append((row.line, "code \(row.code) is already the daily-life area of \(other.name) (\(other.municipality)) in this prefecture: choose another code"))
            }
        }
        return problems
    }

    /// Checks every row; `municipality` names the municipality of a municipality's own import,
    /// whose rows must all be its daily-life areas.
    static func validate(_ rows: [Row], prefecture: String, municipality: String? = nil, municipalities: [String: String],
                         replacing replaced: Set<String>) -> [(Int, String)] {
        var problems: [(Int, String)] = []
        var names: [String: (name: String, line: Int)] = [:]           // kind:code -> name
        var membership: [String: (code: String, line: Int)] = [:]      // kind:municipality -> area code
        var dailyLifeMunicipality: [String: String] = [:]               // code -> municipality
        for row in rows {
            guard kinds.contains(row.kind) else {
                problems.append((row.line, "unknown kind \"\(row.kind)\" (use \(kinds.joined(separator: ", ")))"))
                continue
            }
            if let municipality {
                guard row.kind == "daily_life_area" else {
                    problems.append((row.line, "kind \(row.kind) is the prefecture's: a municipality imports only its daily-life areas"))
                    continue
                }
                guard row.municipality == municipality else {
                    problems.append((row.line, "daily-life area \(row.code) lies in \(row.municipality): this file is municipality \(municipality)'s"))
                    continue
                }
            }
            guard replaced.contains(row.kind) else {
                problems.append((row.line, "kind \(row.kind) is not among the kinds this import replaces (\(replaced.sorted().joined(separator: ", ")))"))
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

    /// Starts the file's definition of the replaced kinds on `validFrom` (a date, or nil for
    /// Japan's today) and ends, on that day, what the prefecture's definitions of those kinds (only
    /// `municipality`'s daily-life areas, for a municipality's import) no longer have: areas and
    /// memberships are kept with their period, not deleted (migration 0033). What began on that
    /// very day and is gone from the file never was valid, and is deleted: importing again on the
    /// same day corrects the definition in place, and an area or membership that ended that day and
    /// is in the file again simply goes on. Resources referring to an area that ends (or is deleted)
    /// are detached first. The places an area covers stay with an area that ends (its history), go
    /// with one that is deleted, and those of a daily-life area moved to another municipality are
    /// deleted.
    ///
    /// Definitions follow one another: a file may not start before the latest date the kind's
    /// definition already knows (`invalid_input` at `/valid_from`), and an area that ended before
    /// `validFrom` cannot come back after a gap under the same code (an error on its line).
    static func store(_ rows: [Row], kinds replaced: Set<String>, prefecture: String, municipality: String? = nil,
                      validFrom: String? = nil, principal: Principal, on tx: PostgresConnection) throws -> JSONValue {
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
                "line": .integer(Int64(row.line)),
            ])
        }).jsonText
        let memberJSON = JSONValue.array(members.map {
            .object(["group": .string($0.group), "kind": .string($0.kind), "municipality": .string($0.municipality)])
        }).jsonText
        let replacedKinds = replaced.sorted()
        let start: String = try tx.query("SELECT \(AsOf.day(validFrom))::text AS d")[0].decode("d")
        // The scope: the prefecture's areas of the replaced kinds (a municipality's own, for its import).
        let scope: PostgresQuery = """
            g.prefecture_code = \(prefecture) AND g.kind = ANY(\(replacedKinds)::text[])
              AND (\(municipality)::text IS NULL OR g.municipality_code = \(municipality))
            """
        let latest = try tx.query("""
            SELECT x.kind, max(x.d)::text AS latest FROM (
                SELECT g.kind, unnest(ARRAY[lower(g.valid), upper(g.valid)]) AS d FROM registry.area_groups g WHERE \(scope)
                UNION ALL
                SELECT g.kind, unnest(ARRAY[lower(m.valid), upper(m.valid)]) FROM registry.area_groups g
                JOIN registry.area_group_members m ON m.group_id = g.id WHERE \(scope)) x
            WHERE x.d IS NOT NULL AND x.d > \(start)::date GROUP BY x.kind ORDER BY x.kind
            """)
        if let first = latest.first {
            let kind: String = try first.decode("kind")
            let day: String = try first.decode("latest")
            throw WireError.invalidInput(
                "the \(kind) definition already has a change on \(day): a new definition starts on or after the latest one (the earlier ones are kept)",
                violations: [.init(path: "/valid_from", message: "before \(day), the latest change of \(kind)")])
        }
        var gaps: [(Int, String)] = []
        for row in try tx.query("""
            SELECT (x->>'line')::int AS line, g.id, upper(g.valid)::text AS ended
            FROM registry.area_groups g JOIN jsonb_array_elements(\(groupJSON)::jsonb) x ON x->>'id' = g.id
            WHERE upper(g.valid) < \(start)::date ORDER BY 1
            """) {
            gaps.append((try row.decode("line"), "\(try row.decode("id", as: String.self)) ended on \(try row.decode("ended", as: String.self)); an area that comes back after a gap needs a new code"))
        }
        if !gaps.isEmpty { throw report(gaps) }
        // Lock what ends (and the daily-life areas that move to another municipality) before
        // looking for its resources: a resource write referring to one of these areas holds a
        // key-share lock on it until it commits, so this waits for it (and then sees it), and any
        // later one waits for this import (and then finds the area ended or moved).
        var removed: [String] = []
        var unborn: [String] = []  // began on `start`: never valid, deleted
        for row in try tx.query("""
            SELECT g.id, coalesce(lower(g.valid) >= \(start)::date, false) AS unborn FROM registry.area_groups g
            WHERE \(scope) AND upper_inf(g.valid)
              AND g.id NOT IN (SELECT x->>'id' FROM jsonb_array_elements(\(groupJSON)::jsonb) x)
            ORDER BY g.id FOR UPDATE
            """) {
            let id: String = try row.decode("id")
            removed.append(id)
            if try row.decode("unborn", as: Bool.self) { unborn.append(id) }
        }
        var moved: [String: String] = [:]  // daily-life area id -> its new municipality
        for row in try tx.query("""
            SELECT g.id, x->>'municipality' AS municipality
            FROM registry.area_groups g JOIN jsonb_array_elements(\(groupJSON)::jsonb) x ON x->>'id' = g.id
            WHERE g.kind = 'daily_life_area' AND g.municipality_code <> x->>'municipality'
            ORDER BY g.id FOR UPDATE OF g
            """) {
            moved[try row.decode("id")] = try row.decode("municipality")
        }
        let affected = try detachResources(removed: removed, moved: moved, principal: principal, on: tx)
        let placesRemoved: Int = try tx.query("""
            WITH gone AS (DELETE FROM registry.area_places
                          WHERE daily_life_area_id = ANY(\(unborn + moved.keys.sorted())::text[]) RETURNING 1)
            SELECT count(*) AS n FROM gone
            """)[0].decode("n")
        try tx.query("DELETE FROM registry.area_groups WHERE id = ANY(\(unborn)::text[])")
        try tx.query("""
            UPDATE registry.area_groups SET valid = daterange(lower(valid), \(start)::date)
            WHERE id = ANY(\(removed)::text[]) AND upper_inf(valid)
            """)
        try tx.query("""
            UPDATE registry.area_group_names SET valid = daterange(lower(valid), \(start)::date)
            WHERE group_id = ANY(\(removed)::text[]) AND upper_inf(valid)
            """)
        // An area in the file: new from `start`, or going on (again, if it ended on `start`).
        try tx.query("""
            INSERT INTO registry.area_groups AS g (id, kind, prefecture_code, local_code, name, kana, name_search, kana_search,
                                                   municipality_code, valid)
            SELECT x->>'id', x->>'kind', \(prefecture), x->>'local_code', x->>'name', x->>'kana',
                   x->>'name_search', x->>'kana_search', x->>'municipality', daterange(\(start)::date, NULL)
            FROM jsonb_array_elements(\(groupJSON)::jsonb) x
            ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kana = EXCLUDED.kana, name_search = EXCLUDED.name_search,
                kana_search = EXCLUDED.kana_search, municipality_code = EXCLUDED.municipality_code,
                valid = daterange(lower(g.valid), NULL)
            """)
        // A name that changes: the old one ends on `start` (or is dropped, when it began then), the
        // new one begins; a name ended on `start` that comes back goes on.
        let renamed: PostgresQuery = """
            n.group_id = x->>'id' AND upper_inf(n.valid) AND (n.name, n.kana) IS DISTINCT FROM (x->>'name', x->>'kana')
            """
        try tx.query("""
            DELETE FROM registry.area_group_names n USING jsonb_array_elements(\(groupJSON)::jsonb) x
            WHERE \(renamed) AND lower(n.valid) >= \(start)::date
            """)
        try tx.query("""
            UPDATE registry.area_group_names n SET valid = daterange(lower(n.valid), \(start)::date)
            FROM jsonb_array_elements(\(groupJSON)::jsonb) x WHERE \(renamed)
            """)
        try tx.query("""
            UPDATE registry.area_group_names n SET valid = daterange(lower(n.valid), NULL)
            FROM jsonb_array_elements(\(groupJSON)::jsonb) x
            WHERE n.group_id = x->>'id' AND upper(n.valid) = \(start)::date AND (n.name, n.kana) = (x->>'name', x->>'kana')
              AND NOT EXISTS (SELECT 1 FROM registry.area_group_names o WHERE o.group_id = n.group_id AND upper_inf(o.valid))
            """)
        try tx.query("""
            INSERT INTO registry.area_group_names (group_id, valid, name, kana)
            SELECT x->>'id', daterange(greatest(\(start)::date, (SELECT lower(g.valid) FROM registry.area_groups g WHERE g.id = x->>'id')), NULL),
                   x->>'name', x->>'kana'
            FROM jsonb_array_elements(\(groupJSON)::jsonb) x
            WHERE NOT EXISTS (SELECT 1 FROM registry.area_group_names n WHERE n.group_id = x->>'id' AND upper_inf(n.valid))
            """)
        // Memberships of the replaced kinds the file no longer has end on `start` (or are deleted,
        // when they began on it); the file's go on, or go on again, or begin.
        let memberScope: PostgresQuery = """
            m.kind = ANY(\(replacedKinds)::text[]) AND upper_inf(m.valid)
              AND m.group_id IN (SELECT g.id FROM registry.area_groups g WHERE g.prefecture_code = \(prefecture))
              AND (m.group_id, m.municipality_code) NOT IN (
                  SELECT x->>'group', (x->>'municipality')::char(6) FROM jsonb_array_elements(\(memberJSON)::jsonb) x)
            """
        try tx.query("DELETE FROM registry.area_group_members m WHERE \(memberScope) AND lower(m.valid) >= \(start)::date")
        try tx.query("UPDATE registry.area_group_members m SET valid = daterange(lower(m.valid), \(start)::date) WHERE \(memberScope)")
        try tx.query("""
            UPDATE registry.area_group_members m SET valid = daterange(lower(m.valid), NULL)
            FROM jsonb_array_elements(\(memberJSON)::jsonb) x
            WHERE m.group_id = x->>'group' AND m.municipality_code = x->>'municipality' AND upper(m.valid) = \(start)::date
            """)
        try tx.query("""
            INSERT INTO registry.area_group_members (group_id, kind, municipality_code, valid)
            SELECT x->>'group', x->>'kind', x->>'municipality', daterange(\(start)::date, NULL)
            FROM jsonb_array_elements(\(memberJSON)::jsonb) x
            WHERE NOT EXISTS (SELECT 1 FROM registry.area_group_members m
                              WHERE m.group_id = x->>'group' AND m.municipality_code = x->>'municipality' AND upper_inf(m.valid))
            """)
        var counts: [String: JSONValue] = [:]
        for kind in replaced.sorted() { counts[kind] = .integer(Int64(groups.values.filter { $0.kind == kind }.count)) }
        var reply: [String: JSONValue] = [
            "prefecture": .string(prefecture), "kinds": .array(replaced.sorted().map { .string($0) }),
            "valid_from": .string(start),
            "areas": .object(counts), "memberships": .integer(Int64(members.count)),
            "removed_areas": .array(removed.map { .string($0) }), "removed_places": .integer(Int64(placesRemoved)),
            "affected_resources": .array(Array(affected.prefix(maxAffectedListed))),
            "affected_count": .integer(Int64(affected.count)),
        ]
        if let municipality { reply["municipality"] = .string(municipality) }
        return .object(reply)
    }

    /// Clears the references of resources to the `removed` areas (and to daily-life areas `moved`
    /// out of the resource's municipality), each resource as a new version with history change
    /// `area_removed` and a `resource.changed` event, all in this transaction and set-wise (a
    /// redrawn prefecture may touch thousands of resources). Returns `{"id", "field", "area",
    /// "reason"}` per cleared reference (`reason`: `removed` or `moved`), by resource and field.
    static func detachResources(removed: [String], moved: [String: String], principal: Principal,
                                on tx: PostgresConnection) throws -> [JSONValue] {
        guard !removed.isEmpty || !moved.isEmpty else { return [] }
        let removedSet = Set(removed)
        let candidates = try tx.query("""
            SELECT r.id::text AS id, r.municipality_code, r.daily_life_area_id, to_json(r.serves_areas)::text AS serves_areas
            FROM registry.resources r
            WHERE r.daily_life_area_id = ANY(\(removed + moved.keys.sorted())::text[])
               OR r.serves_areas && \(removed)::text[]
            ORDER BY r.id FOR UPDATE
            """)
        var affected: [JSONValue] = []
        var changes: [JSONValue] = []
        for candidate in candidates {
            let id: String = try candidate.decode("id")
            let municipality: String = try candidate.decode("municipality_code")
            var clearDaily = false
            var clearServes = false
            if let area = try candidate.decode("daily_life_area_id", as: String?.self) {
                var reason: String?
                if removedSet.contains(area) {
                    reason = "removed"
                } else if let destination = moved[area], destination != municipality {
                    reason = "moved"
                }
                if let reason {
                    clearDaily = true
                    affected.append(.object(["id": .string(id), "field": .string("daily_life_area_id"), "area": .string(area),
                                             "reason": .string(reason)]))
                }
            }
            // Each removed area leaves the list (field `serves_area`, as when there was one area).
            let serves = try JSONValue.parse(Data(try candidate.decode("serves_areas", as: String.self).utf8))
            for area in ServesAreas.stored(.object(["serves_areas": serves])) where removedSet.contains(area) {
                clearServes = true
                affected.append(.object(["id": .string(id), "field": .string("serves_area"), "area": .string(area),
                                         "reason": .string("removed")]))
            }
            if clearDaily || clearServes {
                changes.append(.object(["id": .string(id), "daily": .bool(clearDaily), "serves": .bool(clearServes)]))
            }
        }
        guard !changes.isEmpty else { return [] }
        let changesJSON = JSONValue.array(changes).jsonText
        try tx.query("""
            UPDATE registry.resources r SET
                daily_life_area_id = CASE WHEN (x->>'daily')::boolean THEN NULL ELSE r.daily_life_area_id END,
                serves_areas = CASE WHEN (x->>'serves')::boolean
                    THEN ARRAY(SELECT a FROM unnest(r.serves_areas) WITH ORDINALITY u(a, n)
                               WHERE a <> ALL(\(removed)::text[]) ORDER BY n)
                    ELSE r.serves_areas END,
                version = r.version + 1, updated_at = now()
            FROM jsonb_array_elements(\(changesJSON)::jsonb) x WHERE r.id = (x->>'id')::uuid
            """)
        try tx.query("""
            INSERT INTO registry.resource_history (resource_id, version, changed_by, change, snapshot)
            SELECT r.id, r.version, \(principal.tokenID), 'area_removed', to_jsonb(r) - 'search_text'
            FROM registry.resources r JOIN jsonb_array_elements(\(changesJSON)::jsonb) x ON r.id = (x->>'id')::uuid
            """)
        try tx.query("""
            INSERT INTO registry.events (type, subject, tenant, data)
            SELECT \(registryEvents.typePrefix + "resource.changed"), 'resources/' || r.id, r.tenant, \(unsafeRaw: Resources.eventDataSQL)
            FROM registry.resources r JOIN jsonb_array_elements(\(changesJSON)::jsonb) x ON r.id = (x->>'id')::uuid ORDER BY r.id
            """)
        return affected
    }

    // MARK: Reading

    static func groups(_ input: GroupsInput, database: PostgresPool) async throws -> JSONValue {
        try AsOf.check(input.asOf)
        let prefecture = input.prefecture
        let kind = input.kind
        let day = AsOf.day(input.asOf)
        let rows = try await database.withConnection { connection in
            try connection.jsonRows("""
                SELECT jsonb_build_object(
                    'id', g.id, 'kind', g.kind, 'code', g.local_code,
                    'name', coalesce(n.name, g.name), 'kana', coalesce(n.kana, g.kana),
                    'valid_from', lower(g.valid), 'valid_until', upper(g.valid),
                    'municipalities', CASE WHEN g.kind = 'daily_life_area' THEN jsonb_build_array(g.municipality_code)
                        ELSE coalesce((SELECT jsonb_agg(m.municipality_code ORDER BY m.municipality_code)
                                       FROM registry.area_group_members m WHERE m.group_id = g.id AND m.valid @> d.day), '[]') END
                ) AS j
                FROM registry.area_groups g CROSS JOIN (SELECT \(day) AS day) d
                LEFT JOIN registry.area_group_names n ON n.group_id = g.id AND n.valid @> d.day
                WHERE g.prefecture_code = \(prefecture) AND (\(kind)::text IS NULL OR g.kind = \(kind)) AND g.valid @> d.day
                ORDER BY g.kind, g.local_code
                """)
        }
        return .object(["areas": .array(rows)])
    }

    static func chain(municipality code: String, asOf: String? = nil, database: PostgresPool) async throws -> JSONValue {
        try await database.withConnection { connection in try chainJSON(municipality: code, asOf: asOf, on: connection) }
    }

    /// `{"municipality": code, "as_of": day, "chain": [{"level", "id", "name"}, ...]}`, nearest
    /// level first, of the areas defined on `asOf` (today in Japan, when nil).
    static func chainJSON(municipality code: String, asOf: String? = nil, on connection: PostgresConnection) throws -> JSONValue {
            try connection.jsonRow("""
                SELECT jsonb_build_object('municipality', a.code, 'as_of', day.d, 'chain',
                    coalesce((SELECT jsonb_agg(jsonb_build_object('level', 'daily_life_area', 'id', d.id, 'name', coalesce(
                                  (SELECT n.name FROM registry.area_group_names n WHERE n.group_id = d.id AND n.valid @> day.d), d.name)) ORDER BY d.local_code)
                              FROM registry.area_groups d WHERE d.municipality_code = a.code AND d.valid @> day.d), '[]')
                    || jsonb_build_array(jsonb_build_object('level', 'municipality', 'id', a.code, 'name', a.name))
                    || coalesce((SELECT jsonb_agg(jsonb_build_object('level', g.kind, 'id', g.id, 'name', coalesce(
                                  (SELECT n.name FROM registry.area_group_names n WHERE n.group_id = g.id AND n.valid @> day.d), g.name))
                                     ORDER BY array_position(\(memberKinds)::text[], g.kind))
                              FROM registry.area_group_members m JOIN registry.area_groups g ON g.id = m.group_id
                              WHERE m.municipality_code = a.code AND m.valid @> day.d AND g.valid @> day.d), '[]')
                    || jsonb_build_array(jsonb_build_object('level', 'prefecture', 'id', p.code, 'name', p.name),
                                         jsonb_build_object('level', 'nation', 'id', 'national', 'name', '国'))
                ) AS j
                FROM registry.areas a JOIN registry.areas p ON p.code = a.prefecture_code, (SELECT \(AsOf.day(asOf)) AS d) day
                WHERE a.code = \(code) AND a.level = 'municipality'
                """, notFound: "no municipality with code \(code)")
    }
}

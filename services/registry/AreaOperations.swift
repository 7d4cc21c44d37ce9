import Foundation
import Postgres
import ServiceRuntime
import Wire

/// `area.get` and `area.list`: reading the area hierarchy.
enum AreaOperations {
    static let codePattern = #"^[0-9]{6}$"#

    struct GetInput: Decodable, Sendable {
        let code: String
    }

    struct ListInput: Decodable, Sendable {
        let parent: String?
        let level: String?
        let prefix: String?
        let limit: Int?
        let after: String?
    }

    struct ListOutput: Encodable, Sendable {
        let areas: [Area]
        /// Pass as `after` to read the next page; absent on the last page.
        let nextAfter: String?

        enum CodingKeys: String, CodingKey {
            case areas
            case nextAfter = "next_after"
        }
    }

    static func all() throws -> [ServiceOperation] {
        [
            try .read(
                "area.get",
                summary: "One area by its 6-digit local-government code.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["code"],
                     "properties":{"code":{"type":"string","pattern":"\(codePattern)","maxLength":6}}}
                    """,
                input: GetInput.self
            ) { context, input in
                try await get(code: input.code, database: context.database)
            },
            try .read(
                "area.list",
                summary: "Areas in code order: children of `parent`, of one `level`, or whose name or kana starts with `prefix`; paged by `after`.",
                schema: """
                    {"type":"object","additionalProperties":false,
                     "properties":{"parent":{"type":"string","pattern":"\(codePattern)","maxLength":6},
                                   "level":{"enum":["prefecture","municipality"]},
                                   "prefix":{"type":"string","minLength":1,"maxLength":50},
                                   "limit":{"type":"integer","minimum":1,"maximum":2000},
                                   "after":{"type":"string","pattern":"\(codePattern)","maxLength":6}}}
                    """,
                input: ListInput.self
            ) { context, input in
                try await list(input, database: context.database)
            },
        ]
    }

    static func get(code: String, database: PostgresPool) async throws -> Area {
        let rows = try await database.withConnection { connection in
            try connection.query("SELECT \(unsafeRaw: Area.columns) FROM registry.areas WHERE code = \(code)").map(Area.init(row:))
        }
        guard let area = rows.first else { throw WireError(.notFound, "no area with code \(code)") }
        return area
    }

    static func list(_ input: ListInput, database: PostgresPool) async throws -> ListOutput {
        let limit = input.limit ?? 100
        let prefix = input.prefix.map { SearchText.likePrefix(SearchText.normalise($0)) }
        // Every filter is optional: a NULL binding switches it off, so one statement serves all.
        let (parent, level, after) = (input.parent, input.level, input.after)
        var areas = try await database.withConnection { connection in
            try connection.query("""
                SELECT \(unsafeRaw: Area.columns) FROM registry.areas
                WHERE (\(parent)::text IS NULL OR parent_code = \(parent))
                  AND (\(level)::text IS NULL OR level = \(level))
                  AND (\(prefix)::text IS NULL OR name_search LIKE \(prefix) ESCAPE '\\' OR kana_search LIKE \(prefix) ESCAPE '\\')
                  AND (\(after)::text IS NULL OR code > \(after))
                ORDER BY code
                LIMIT \(limit + 1)
                """).map(Area.init(row:))
        }
        // An empty page may mean an unknown parent: only then is it worth asking.
        if areas.isEmpty, let parent = input.parent { _ = try await get(code: parent, database: database) }
        var next: String?
        if areas.count > limit {
            areas.removeLast()
            next = areas.last?.code
        }
        return ListOutput(areas: areas, nextAfter: next)
    }
}

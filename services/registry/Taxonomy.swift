import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// Resource categories and kinds (DOMAIN.md §3) and consultation types. The seed is in
/// migrations/0004_taxonomy.sql, named as the law names it by 0016_taxonomy_as_the_law_names_it.sql;
/// a tenant adds kinds of its own without code changes. A kind's `grouping` is the seed's 在宅系
/// (`home_based`) or 施設・居住系 (`residential`) for disability-welfare and long-term-care
/// services, null otherwise (and for tenant kinds).
enum Taxonomy {
    static let codePattern = #"^[a-z][a-z0-9_]{1,63}$"#

    struct Empty: Decodable, Sendable {}

    struct KindInput: Decodable, Sendable {
        let code: String
        let categoryCode: String
        let nameJa: String
        let nameEn: String?

        enum CodingKeys: String, CodingKey {
            case code
            case categoryCode = "category_code"
            case nameJa = "name_ja"
            case nameEn = "name_en"
        }
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .read(
                "taxonomy.list",
                summary: "Categories with their kinds (seed and tenant-defined), and consultation types.",
                schema: #"{"type":"object","additionalProperties":false}"#,
                input: Empty.self
            ) { context, _ in
                try await list(database: context.database)
            },
            try .write(
                "taxonomy.kind.create",
                summary: "Add a kind under a category (tenant-defined; visible to all).",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["code","category_code","name_ja"],
                     "properties":{"code":{"type":"string","pattern":"\(codePattern)","maxLength":64},
                                   "category_code":{"type":"string","pattern":"\(codePattern)","maxLength":64},
                                   "name_ja":{"type":"string","minLength":1,"maxLength":100},
                                   "name_en":{"type":"string","maxLength":100}}}
                    """,
                input: KindInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                guard try !tx.query("SELECT 1 FROM registry.categories WHERE code = \(input.categoryCode)").isEmpty else {
                    throw WireError.invalidInput("no category \(input.categoryCode)",
                                                   violations: [.init(path: "/category_code", message: "unknown category")])
                }
                let rows = try tx.jsonRows("""
                    INSERT INTO registry.kinds (code, category_code, name_ja, name_en, tenant)
                    VALUES (\(input.code), \(input.categoryCode), \(input.nameJa), \(input.nameEn ?? ""), \(principal.tenant))
                    ON CONFLICT (code) DO NOTHING
                    RETURNING jsonb_build_object('code', code, 'category_code', category_code, 'name_ja', name_ja,
                                                 'name_en', name_en, 'grouping', grouping, 'tenant', tenant) AS j
                    """)
                guard let kind = rows.first else { throw WireError(.conflict, "kind \(input.code) exists") }
                return kind
            },
        ]
    }

    static func list(database: PostgresPool) async throws -> JSONValue {
        try await database.withConnection { connection in
            try connection.jsonRow("""
                SELECT jsonb_build_object(
                  'categories', (SELECT jsonb_agg(jsonb_build_object('code', c.code, 'name_ja', c.name_ja, 'name_en', c.name_en,
                      'kinds', coalesce((SELECT jsonb_agg(jsonb_build_object('code', k.code, 'name_ja', k.name_ja,
                                                  'name_en', k.name_en, 'grouping', k.grouping, 'tenant', k.tenant) ORDER BY k.tenant NULLS FIRST, k.created_at, k.code)
                                         FROM registry.kinds k WHERE k.category_code = c.code), '[]')) ORDER BY c.sort)
                                 FROM registry.categories c),
                  'consultation_types', (SELECT jsonb_agg(jsonb_build_object('code', t.code, 'name_ja', t.name_ja, 'name_en', t.name_en)
                                                          ORDER BY t.code) FROM registry.consultation_types t)
                ) AS j
                """, notFound: "no taxonomy")
        }
    }
}

import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// Program participation: which implementing bodies run which of the 11 items of the promotion
/// project (構築推進事業) in a fiscal year, with budgets in thousand yen. Item 1 (協議の場の設置) is
/// mandatory: a body's record without it carries a warning wherever it is shown.
enum Participation {
    struct SetInput: Decodable, Sendable {
        let bodyCode: String
        let fiscalYear: Int
        let items: [Item]
        /// When given, the sum of the items' budgets must be this (a check on the form's arithmetic).
        let budgetTotalThousandYen: Int64?

        struct Item: Decodable, Sendable {
            let item: Int
            let budgetThousandYen: Int64?
            let note: String?

            enum CodingKeys: String, CodingKey {
                case item, note
                case budgetThousandYen = "budget_thousand_yen"
            }
        }

        enum CodingKeys: String, CodingKey {
            case items
            case bodyCode = "body_code"
            case fiscalYear = "fiscal_year"
            case budgetTotalThousandYen = "budget_total_thousand_yen"
        }
    }

    struct ListInput: Decodable, Sendable {
        let fiscalYear: Int
        let prefecture: String?
        let bodyCode: String?

        enum CodingKeys: String, CodingKey {
            case prefecture
            case fiscalYear = "fiscal_year"
            case bodyCode = "body_code"
        }
    }

    /// The body's type on the first day of the fiscal year (1 April), from the dated list of
    /// implementing bodies (migration 0015, seed/implementing-bodies.csv).
    static func bodyType(fiscalYear: Int) -> PostgresQuery {
        "registry.body_type(a.code, make_date(\(fiscalYear)::int, 4, 1))"
    }

    /// A program item of that fiscal year's list (each item has the years it exists in).
    static func itemOf(fiscalYear: Int) -> PostgresQuery {
        "since_fiscal_year <= \(fiscalYear) AND (until_fiscal_year IS NULL OR until_fiscal_year >= \(fiscalYear))"
    }

    static func operations() throws -> [ServiceOperation] {
        [
            try .write(
                "participation.set",
                summary: "Replace the promotion-project items an implementing body runs in a fiscal year (budgets in thousand yen).",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["body_code","fiscal_year","items"],
                     "properties":{"body_code":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},
                                   "fiscal_year":{"type":"integer","minimum":2017,"maximum":2100},
                                   "items":{"type":"array","maxItems":11,"items":{"type":"object","additionalProperties":false,
                                       "required":["item"],"properties":{"item":{"type":"integer","minimum":1,"maximum":11},
                                       "budget_thousand_yen":{"type":["integer","null"],"minimum":0,"maximum":100000000},
                                       "note":{"type":"string","maxLength":1000}}}},
                                   "budget_total_thousand_yen":{"type":"integer","minimum":0,"maximum":1100000000}}}
                    """,
                input: SetInput.self
            ) { context, input, tx in
                try context.requireOwner(of: input.bodyCode)
                let numbers = input.items.map(\.item)
                guard Set(numbers).count == numbers.count else {
                    throw WireError(.invalidInput, "an item is listed twice")
                }
                // Each budget is at most 10^8 (the schema), eleven of them at most 1.1 × 10^9: no overflow.
                let sum = input.items.reduce(Int64(0)) { $0 + ($1.budgetThousandYen ?? 0) }
                if let total = input.budgetTotalThousandYen, total != sum {
                    throw WireError.invalidInput("the items' budgets add up to \(sum) thousand yen, not \(total)",
                                                 violations: [.init(path: "/budget_total_thousand_yen", message: "is not the sum of the items' budgets (\(sum))")])
                }
                let offered = try Set(tx.query("""
                    SELECT item FROM registry.program_items
                    WHERE \(itemOf(fiscalYear: input.fiscalYear))
                    """).map { try $0.decode("item", as: Int.self) })
                let unknown = numbers.filter { !offered.contains($0) }
                guard unknown.isEmpty else {
                    throw WireError.invalidInput("the project had no item \(unknown.map(String.init).joined(separator: ", ")) in fiscal year \(input.fiscalYear)",
                                                 violations: unknown.compactMap { item in numbers.firstIndex(of: item).map {
                                                     .init(path: "/items/\($0)/item", message: "not an item of fiscal year \(input.fiscalYear)") } })
                }
                let items = JSONValue.array(input.items.map {
                    .object(["item": .integer(Int64($0.item)), "budget": $0.budgetThousandYen.map { .integer($0) } ?? .null,
                             "note": .string($0.note ?? "")])
                }).jsonText
                let body = try tx.query("""
                    SELECT \(bodyType(fiscalYear: input.fiscalYear)) AS type FROM registry.areas a WHERE a.code = \(input.bodyCode)
                    """)
                guard let found = body.first else { throw WireError(.notFound, "no local government with code \(input.bodyCode)") }
                // Only a prefecture, designated city, special ward or health-centre city runs the project.
                guard try found.decode("type", as: String?.self) != nil else {
                    throw WireError.invalidInput("\(input.bodyCode) is not an implementing body in fiscal year \(input.fiscalYear)",
                                                 violations: [.init(path: "/body_code", message: "not a prefecture, designated city, special ward or health-centre city that year")])
                }
                try tx.query("""
                    DELETE FROM registry.program_participation WHERE body_code = \(input.bodyCode) AND fiscal_year = \(input.fiscalYear)
                    """)
                try tx.query("""
                    INSERT INTO registry.program_participation (body_code, fiscal_year, item, budget_thousand_yen, note)
                    SELECT \(input.bodyCode), \(input.fiscalYear), (x->>'item')::int, (x->>'budget')::bigint, x->>'note'
                    FROM jsonb_array_elements(\(items)::jsonb) x
                    """)
                return try listBodies(fiscalYear: input.fiscalYear, prefecture: nil, body: input.bodyCode, on: tx)[0]
            },
            try .read(
                "participation.list",
                summary: "Who runs which items in a fiscal year, per body (optionally one prefecture's bodies, or one body), with totals and warnings.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["fiscal_year"],
                     "properties":{"fiscal_year":{"type":"integer","minimum":2017,"maximum":2100},
                                   "prefecture":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6},
                                   "body_code":{"type":"string","pattern":"^[0-9]{6}$","maxLength":6}}}
                    """,
                input: ListInput.self
            ) { context, input in
                try await context.database.withConnection { connection in
                    let bodies = try listBodies(fiscalYear: input.fiscalYear, prefecture: input.prefecture, body: input.bodyCode, on: connection)
                    let items = try connection.jsonRows("""
                        SELECT jsonb_build_object('item', item, 'name_ja', name_ja, 'name_en', name_en, 'required', required) AS j
                        FROM registry.program_items
                        WHERE \(itemOf(fiscalYear: input.fiscalYear))
                        ORDER BY item
                        """)
                    var byItem: [String: Int64] = [:]
                    var total: Int64 = 0
                    for body in bodies {
                        // Each body's sum is at most 1.1 × 10^9; the checked add still guards the total.
                        if case .integer(let budget)? = body["budget_thousand_yen"] {
                            let (sum, overflow) = total.addingReportingOverflow(budget)
                            guard !overflow else { throw WireError(.internal, "the budgets' total does not fit") }
                            total = sum
                        }
                        if case .array(let items)? = body["items"] {
                            for item in items { if case .integer(let n)? = item["item"] { byItem[String(n), default: 0] += 1 } }
                        }
                    }
                    return JSONValue.object([
                        "fiscal_year": .integer(Int64(input.fiscalYear)), "program_items": .array(items), "bodies": .array(bodies),
                        "totals": .object(["bodies": .integer(Int64(bodies.count)), "budget_thousand_yen": .integer(total),
                                           "bodies_by_item": .object(byItem.mapValues { .integer($0) })]),
                    ])
                }
            },
        ]
    }

    static func listBodies(fiscalYear: Int, prefecture: String?, body: String?, on connection: PostgresConnection) throws -> [JSONValue] {
        let rows = try connection.jsonRows("""
            SELECT jsonb_build_object('body_code', a.code, 'name', a.name, 'body_type', \(bodyType(fiscalYear: fiscalYear)),
                'items', coalesce(jsonb_agg(jsonb_build_object('item', p.item, 'name_ja', i.name_ja,
                         'budget_thousand_yen', p.budget_thousand_yen, 'note', p.note) ORDER BY p.item)
                         FILTER (WHERE p.item IS NOT NULL), '[]'),
                'budget_thousand_yen', coalesce(sum(p.budget_thousand_yen), 0),
                'warnings', CASE WHEN bool_or(p.item = 1) THEN '[]'::jsonb
                            ELSE jsonb_build_array('item 1 (保健・医療・福祉関係者による協議の場の設置) is mandatory and missing') END) AS j
            FROM registry.program_participation p
            JOIN registry.areas a ON a.code = p.body_code
            JOIN registry.program_items i ON i.item = p.item
            WHERE p.fiscal_year = \(fiscalYear)
              AND (\(prefecture)::text IS NULL OR a.prefecture_code = \(prefecture))
              AND (\(body)::text IS NULL OR a.code = \(body))
            GROUP BY a.code, a.name, a.level, a.prefecture_code
            ORDER BY a.code
            """)
        if let body, rows.isEmpty {
            // A body that runs nothing this year: shown with the missing-item warning.
            return try connection.jsonRows("""
                SELECT jsonb_build_object('body_code', a.code, 'name', a.name, 'body_type', \(bodyType(fiscalYear: fiscalYear)),
                    'items', '[]'::jsonb, 'budget_thousand_yen', 0,
                    'warnings', jsonb_build_array('item 1 (保健・医療・福祉関係者による協議の場の設置) is mandatory and missing')) AS j
                FROM registry.areas a WHERE a.code = \(body)
                """)
        }
        return rows
    }
}

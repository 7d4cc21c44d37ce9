import Postgres

/// A prefecture (都道府県) or municipality (市区町村), by its national local-government code.
struct Area: Codable, Sendable, Equatable {
    let code: String
    let level: String
    let name: String
    let kana: String
    let prefectureCode: String
    let parentCode: String?

    enum CodingKeys: String, CodingKey {
        case code, level, name, kana
        case prefectureCode = "prefecture_code"
        case parentCode = "parent_code"
    }

    /// Columns every area query selects, in the order `init(row:)` reads them.
    static let columns: StaticString = "code, level, name, kana, prefecture_code, parent_code"

    init(row: PostgresRow) throws(PostgresError) {
        code = try row.decode("code")
        level = try row.decode("level")
        name = try row.decode("name")
        kana = try row.decode("kana")
        prefectureCode = try row.decode("prefecture_code")
        parentCode = try row.decode("parent_code", as: String?.self)
    }
}

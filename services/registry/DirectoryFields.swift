import Foundation
import JSONSchema
import ServiceRuntime
import Wire

/// The fields a directory others read needs (issue 9, migration 0025): typed phones, languages,
/// accessibility, eligibility, fees, the 事業所番号 and 法人番号, when and by whom a record was
/// last verified, whether it is open; and the two staff-only fields no public read shows.
enum DirectoryFields {
    /// HSDS phone types we take (RFC 6350 TYPE values): fax and text matter to deaf callers.
    static let phoneTypes = ["voice", "fax", "text", "video"]
    static let maxPhones = 10
    static let statuses = ["active", "temporarily_closed"]
    /// Language codes: ISO 639-1 or 639-3 (`ja`, `en`, `jsl` 日本手話), optionally with BCP 47 subtags (`zh-Hant`).
    static let languagePattern = "^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"
    static let maxLanguages = 20

    /// Japanese names of the codes a Japanese directory meets most, for HSDS `language.name`.
    static let languageCodes = ["ja", "jsl", "en", "zh", "zh-Hans", "zh-Hant", "ko", "pt", "es", "vi", "tl", "fil", "ne", "id",
                                "th", "my", "fr", "de", "ru", "ain", "sgn"]
    static let languageNames = ["日本語", "日本手話", "英語", "中国語", "中国語（簡体字）", "中国語（繁体字）", "韓国語", "ポルトガル語",
                                "スペイン語", "ベトナム語", "タガログ語", "フィリピノ語", "ネパール語", "インドネシア語", "タイ語",
                                "ミャンマー語", "フランス語", "ドイツ語", "ロシア語", "アイヌ語", "手話"]

    /// Readable only by a writer of the resource's own tenant or a national admin (`resource.get`,
    /// `resource.history`); every other read path leaves them out.
    static let staffOnly = ["staff_phone", "staff_address"]

    static let phonesSchema = """
        {"type":"array","maxItems":\(maxPhones),"items":{"type":"object","additionalProperties":false,"required":["number","type"],\
        "properties":{"number":{"type":"string","minLength":1,"maxLength":50},\
        "type":{"enum":[\(phoneTypes.map { "\"\($0)\"" }.joined(separator: ","))]}}}}
        """
    static let languagesSchema = """
        {"type":"array","maxItems":\(maxLanguages),"items":{"type":"string","pattern":"\(languagePattern)","maxLength":35}}
        """
    static let dateSchema = #"{"type":["string","null"],"pattern":"^[0-9]{4}-[0-9]{2}-[0-9]{2}$","maxLength":10}"#

    static let resourceFields: [(String, String)] = [
        ("phones", phonesSchema), ("languages", languagesSchema),
        ("accessibility", Resources.text(2000)), ("eligibility", Resources.text(2000)), ("fees", Resources.text(2000)),
        ("office_number", #"{"type":"string","pattern":"^([0-9]{10})?$","maxLength":10}"#),
        ("last_verified_at", dateSchema), ("last_verified_by", Resources.text(200)),
        ("status", #"{"enum":["active","temporarily_closed"]}"#),
        ("staff_phone", Resources.text(50)), ("staff_address", Resources.text(300)),
    ]
    static let corporateNumberField = ("corporate_number", #"{"type":"string","pattern":"^([0-9]{13})?$","maxLength":13}"#)

    /// A 法人番号's first digit is its check digit: 9 − (Σ Pn·Qn mod 9) over the other twelve,
    /// Pn the n-th digit from the right, Qn 1 for odd n and 2 for even (国税庁, 法人番号の指定).
    static func isCorporateNumber(_ text: String) -> Bool {
        let digits = text.compactMap(\.wholeNumberValue)
        guard digits.count == 13, text.count == 13 else { return false }
        let sum = digits.dropFirst().reversed().enumerated().reduce(0) { $0 + $1.element * ($1.offset % 2 == 0 ? 1 : 2) }
        return digits[0] == 9 - sum % 9
    }

    /// A `YYYY-MM-DD` that is a day of the calendar.
    static func isDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3, text.count == 10, (1...12).contains(parts[1]), parts[0] >= 1 else { return false }
        var components = DateComponents(year: parts[0], month: parts[1], day: parts[2])
        components.calendar = Calendar(identifier: .gregorian)
        return components.isValidDate
    }

    /// What the schemas cannot say: a real date, a 法人番号 with its check digit.
    static func violations(_ input: JSONValue) -> [JSONSchemaViolation] {
        var found: [JSONSchemaViolation] = []
        if let date = input["last_verified_at"]?.stringValue, !isDate(date) {
            found.append(.init(path: "/last_verified_at", message: "not a day of the calendar"))
        }
        if let number = input["corporate_number"]?.stringValue, !number.isEmpty, !isCorporateNumber(number) {
            found.append(.init(path: "/corporate_number", message: "not a 法人番号 (its check digit is wrong)"))
        }
        return found + Locations.staffAddressViolations(input)
    }

    static func check(_ input: JSONValue) throws {
        let found = violations(input)
        guard found.isEmpty else { throw WireError.invalidInput("the input has values that are not what they claim", violations: found) }
    }

    /// The resource as `principal` may see it: without the staff-only fields unless it may write the resource's tenant.
    static func visible(_ resource: JSONValue, to principal: Principal?) -> JSONValue {
        if let principal, let tenant = resource["tenant"]?.stringValue, principal.mayWrite(rowsOf: tenant) { return resource }
        return withoutStaffFields(resource)
    }

    static func withoutStaffFields(_ value: JSONValue) -> JSONValue {
        guard case .object(var fields) = value else { return value }
        for key in staffOnly { fields[key] = nil }
        return .object(fields)
    }

    /// A history as `principal` may see it: each snapshot without the staff-only fields unless it may write the resource's tenant.
    static func visibleHistory(_ history: JSONValue, to principal: Principal?) -> JSONValue {
        guard case .object(var fields) = history, case .array(let versions)? = fields["versions"] else { return history }
        let tenant = versions.last?["snapshot"]?["tenant"]?.stringValue
        if let principal, let tenant, principal.mayWrite(rowsOf: tenant) { return history }
        fields["versions"] = .array(versions.map { version in
            guard case .object(var v) = version, let snapshot = v["snapshot"] else { return version }
            v["snapshot"] = withoutStaffFields(snapshot)
            return .object(v)
        })
        return .object(fields)
    }

    // MARK: CSV

    /// `phones` in a CSV cell: entries joined by `|`, each `type:number` (`voice:088-000-0000|fax:088-000-0001`).
    static func phonesCSV(_ phones: JSONValue?) -> String {
        guard case .array(let entries)? = phones else { return "" }
        return entries.map { "\($0["type"]?.stringValue ?? ""):\($0["number"]?.stringValue ?? "")" }.joined(separator: "|")
    }

    static func parsePhones(csvText: String) -> JSONValue? {
        var phones: [JSONValue] = []
        for entry in csvText.split(separator: "|") {
            let trimmed = entry.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let colon = trimmed.firstIndex(of: ":") else { return nil }
            let type = trimmed[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let number = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard phoneTypes.contains(type), !number.isEmpty, number.count <= 50 else { return nil }
            phones.append(.object(["number": .string(number), "type": .string(type)]))
        }
        return phones.count <= maxPhones ? .array(phones) : nil
    }
}

import Foundation
import Wire

/// What a case holds for the discussion, all of it sealed (`CaseKeyring`) before it is stored:
/// the pseudonym too is content. Nothing here reaches a log, an event, a search result or a
/// statistic.
struct CaseContent: Codable, Sendable, Equatable {
    /// The name the body discusses the person under (never the person's name).
    var pseudonym: String
    var ageBand: String
    var situationSummary: String
    var needs: [Need]
    var supportAgreed: String
    /// Registry organisation ids of the agencies involved (no names copied).
    var agencies: [String]
    /// ISO dates (YYYY-MM-DD) at which the body reviews the case.
    var reviewDates: [String]
    /// How consent was obtained, or which provision applies (e.g. the date of the signed form).
    var basisNote: String

    struct Need: Codable, Sendable, Equatable {
        var category: String
        var note: String
    }

    enum CodingKeys: String, CodingKey {
        case pseudonym, needs, agencies
        case ageBand = "age_band"
        case situationSummary = "situation_summary"
        case supportAgreed = "support_agreed"
        case reviewDates = "review_dates"
        case basisNote = "basis_note"
    }

    /// The content fields a write may set, by their wire names (what the audit lists).
    static let fieldNames = ["pseudonym", "age_band", "situation_summary", "needs", "support_agreed", "agencies",
                             "review_dates", "basis_note"]

    static let ageBands = ["under_18", "18_19", "20s", "30s", "40s", "50s", "60s", "70s", "80_and_over", "unknown"]
    static let needCategories = ["housing", "medical_care", "medication", "daily_living", "income", "employment", "family",
                                 "peer_support", "crisis_response", "long_term_care", "legal", "other"]

    /// JSON Schema text of each content field, for the inputs that carry them.
    static let propertiesSchema = """
        "pseudonym":{"type":"string","minLength":1,"maxLength":64},
        "age_band":{"enum":\(jsonList(ageBands))},
        "situation_summary":{"type":"string","maxLength":4000},
        "needs":{"type":"array","maxItems":16,"items":{"type":"object","additionalProperties":false,"required":["category"],
            "properties":{"category":{"enum":\(jsonList(needCategories))},"note":{"type":"string","maxLength":1000}}}},
        "support_agreed":{"type":"string","maxLength":4000},
        "agencies":{"type":"array","maxItems":32,"items":{"type":"string","minLength":1,"maxLength":64,"pattern":"^[A-Za-z0-9._:-]+$"}},
        "review_dates":{"type":"array","maxItems":24,"items":{"type":"string","maxLength":10,"pattern":"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}},
        "basis_note":{"type":"string","maxLength":1000}
        """

    static func jsonList(_ values: [String]) -> String {
        "[" + values.map { "\"\($0)\"" }.joined(separator: ",") + "]"
    }

    /// Checks what the schema cannot say: review dates are real calendar dates, listed once.
    func validate() throws(WireError) {
        var violations: [(String, String)] = []
        for (index, date) in reviewDates.enumerated() where !Self.isCalendarDate(date) {
            violations.append(("/review_dates/\(index)", "is not a calendar date"))
        }
        if Set(reviewDates).count != reviewDates.count { violations.append(("/review_dates", "lists a date twice")) }
        if Set(agencies).count != agencies.count { violations.append(("/agencies", "lists an agency twice")) }
        if pseudonym.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            violations.append(("/pseudonym", "is blank"))
        }
        guard violations.isEmpty else {
            throw WireError(.invalidInput, "the case content is not valid", details: .object(["violations": .array(violations.map {
                .object(["path": .string($0.0), "message": .string($0.1)])
            })]))
        }
    }

    static func isCalendarDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3, (1900...2200).contains(parts[0]), (1...12).contains(parts[1]), parts[2] >= 1 else { return false }
        var components = DateComponents(year: parts[0], month: parts[1])
        components.calendar = Calendar(identifier: .gregorian)
        guard let date = components.date, let days = components.calendar?.range(of: .day, in: .month, for: date) else { return false }
        return days.contains(parts[2])
    }
}

/// The content fields a write gives; absent fields keep their stored value (on update) or start
/// empty (on create; `pseudonym` is required there).
struct CaseContentChanges: Decodable, Sendable {
    var pseudonym: String?
    var ageBand: String?
    var situationSummary: String?
    var needs: [CaseContent.Need]?
    var supportAgreed: String?
    var agencies: [String]?
    var reviewDates: [String]?
    var basisNote: String?

    /// The same wire names as the stored content's.
    typealias CodingKeys = CaseContent.CodingKeys

    /// The wire names of the fields given, in a fixed order: what the audit records.
    var fieldsGiven: [String] {
        let given: [(String, Bool)] = [
            ("pseudonym", pseudonym != nil), ("age_band", ageBand != nil), ("situation_summary", situationSummary != nil),
            ("needs", needs != nil), ("support_agreed", supportAgreed != nil), ("agencies", agencies != nil),
            ("review_dates", reviewDates != nil), ("basis_note", basisNote != nil),
        ]
        return given.filter(\.1).map(\.0)
    }

    func applied(to content: CaseContent) -> CaseContent {
        var content = content
        if let pseudonym { content.pseudonym = pseudonym }
        if let ageBand { content.ageBand = ageBand }
        if let situationSummary { content.situationSummary = situationSummary }
        if let needs { content.needs = needs }
        if let supportAgreed { content.supportAgreed = supportAgreed }
        if let agencies { content.agencies = agencies }
        if let reviewDates { content.reviewDates = reviewDates }
        if let basisNote { content.basisNote = basisNote }
        return content
    }

    static let empty = CaseContent(pseudonym: "", ageBand: "unknown", situationSummary: "", needs: [], supportAgreed: "",
                                   agencies: [], reviewDates: [], basisNote: "")
}

extension CaseContent.Need {
    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        category = try container.decode(String.self, forKey: .category)
        note = try container.decodeIfPresent(String.self, forKey: .note) ?? ""
    }
}

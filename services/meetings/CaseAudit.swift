import Foundation
import Postgres
import ServiceRuntime
import Wire

/// The audit of individual cases (`meetings.case_audit`): one row per read, write or refused
/// attempt, in the transaction of the access itself, so an access the caller was answered is
/// never missing from it. A refusal is recorded and committed before it is answered
/// (`CommittedRefusal`). Rows name who (token id, tenant), when, which case or body, the action,
/// the content fields it touched (names only) and the outcome; never content.
enum CaseAudit {
    /// `rewrap` is the service's own: a case's data key moved to the current master key
    /// (`CaseKeyRewrap`, which writes its rows itself; migration 0060).
    enum Action: String { case create, read, update, erase, list, auditRead = "audit_read", rewrap }
    enum Outcome: String { case allowed, forbidden, notFound = "not_found", unreadable }

    static func record(on tx: PostgresConnection, context: RequestContext, principal: Principal, action: Action,
                       caseID: UUID?, bodyID: UUID?, fields: [String] = [], outcome: Outcome) throws {
        try tx.query("""
            INSERT INTO meetings.case_audit (token_id, tenant, case_id, body_id, action, fields, outcome, request_id)
            VALUES (\(principal.tokenID), \(principal.tenant), \(caseID?.uuidString.lowercased())::uuid,
                    \(bodyID?.uuidString.lowercased())::uuid, \(action.rawValue), \(fields)::text[], \(outcome.rawValue),
                    \(context.requestID))
            """)
    }

    /// Records the refusal and answers it, keeping the record (`CommittedRefusal`).
    static func refuse(on tx: PostgresConnection, context: RequestContext, principal: Principal, action: Action,
                       caseID: UUID?, bodyID: UUID?, fields: [String] = [], outcome: Outcome, _ error: WireError) throws -> Never {
        try record(on: tx, context: context, principal: principal, action: action, caseID: caseID, bodyID: bodyID,
                   fields: fields, outcome: outcome)
        throw CommittedRefusal(error)
    }

    struct Entry: Encodable, Sendable {
        let at: String
        let tokenID: String?
        let tenant: String
        let action: String
        let fields: [String]
        let outcome: String

        enum CodingKeys: String, CodingKey {
            case at, tenant, action, fields, outcome
            case tokenID = "token_id"
        }
    }

    /// The audit of one case, oldest first, optionally of one action only ("who read case X":
    /// `action = read`). `limit` rows at most after row `after` (a cursor from the last page).
    static func entries(on tx: PostgresConnection, caseID: UUID, action: String?, after: Int64, limit: Int) throws -> [(Int64, Entry)] {
        let actionFilter: PostgresQuery = action.map { "AND action = \($0)" } ?? ""
        return try tx.query("""
            SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at, token_id, tenant, action,
                   array_to_json(fields)::text AS fields, outcome
            FROM meetings.case_audit
            WHERE case_id = \(caseID.uuidString.lowercased())::uuid AND id > \(after) \(actionFilter)
            ORDER BY id LIMIT \(limit)
            """).map { row in
            let fieldsJSON = try row.decode("fields", as: String.self)
            let fields = (try? JSONDecoder().decode([String].self, from: Data(fieldsJSON.utf8))) ?? []
            return (try row.decode("id", as: Int64.self),
                    Entry(at: try row.decode("at"), tokenID: try row.decode("token_id", as: String?.self),
                          tenant: try row.decode("tenant"), action: try row.decode("action"), fields: fields,
                          outcome: try row.decode("outcome")))
        }
    }
}

import Foundation
import Postgres
import Wire

/// Who may do what with the cases of one body, from its member rows (migration 0002):
///
/// - **read** a case: a current member of the owning body whose `account` is the caller's token
///   id and whose `case_role` is `reader` or `editor`, calling with a token of the body's own
///   tenant. Current means today (Japan time, `Members.today`) within [term_start, term_end].
/// - **write** (create, update, erase): the same with `case_role = editor`, and a token with a
///   writer role (`editor` or `admin`) as for every write.
/// - **read the audit** of a case: the body's case editors and its secretariat members (role
///   `secretariat`, with or without a case role): the audit names who, never content.
///
/// Nobody else, not a national admin nor a member without a case role, reads or writes a case.
/// - Note: `Sendable`; a value.
struct CaseAccess: Sendable {
    /// The body exists.
    let bodyExists: Bool
    let bodyTenant: String?
    /// The caller's best current case role in the body: nil, "reader" or "editor".
    let caseRole: String?
    let isSecretariat: Bool
    let callerTenant: String
    let callerIsWriter: Bool

    var ownTenant: Bool { bodyTenant == callerTenant }
    var mayRead: Bool { ownTenant && caseRole != nil }
    var mayWrite: Bool { ownTenant && caseRole == "editor" && callerIsWriter }
    var mayReadAudit: Bool { ownTenant && (caseRole == "editor" || isSecretariat) }

    static func of(_ principal: Principal, body bodyID: UUID, on connection: PostgresConnection) throws -> CaseAccess {
        // A principal without a token id is no member's account.
        let token = principal.tokenID ?? ""
        let rows = try connection.query("""
            SELECT b.tenant,
                   bool_or(m.case_role = 'editor') AS editor,
                   bool_or(m.case_role IS NOT NULL) AS reader,
                   bool_or(m.role = 'secretariat') AS secretariat
            FROM meetings.bodies b
            LEFT JOIN meetings.members m
                   ON m.body_id = b.id AND m.account = \(token) AND \(token) <> ''
                  AND m.term_start <= \(unsafeRaw: Members.today)
                  AND (m.term_end IS NULL OR m.term_end >= \(unsafeRaw: Members.today))
            WHERE b.id = \(bodyID.uuidString.lowercased())::uuid
            GROUP BY b.tenant
            """)
        guard let row = rows.first else {
            return CaseAccess(bodyExists: false, bodyTenant: nil, caseRole: nil, isSecretariat: false,
                              callerTenant: principal.tenant, callerIsWriter: false)
        }
        let editor = try row.decode("editor", as: Bool?.self) ?? false
        let reader = try row.decode("reader", as: Bool?.self) ?? false
        return CaseAccess(bodyExists: true, bodyTenant: try row.decode("tenant"),
                          caseRole: editor ? "editor" : reader ? "reader" : nil,
                          isSecretariat: try row.decode("secretariat", as: Bool?.self) ?? false,
                          callerTenant: principal.tenant, callerIsWriter: principal.isWriter)
    }

    /// The one refusal every caller without access gets, whatever the reason (another tenant, no
    /// case role, a term that ended): it says nothing about the case.
    static let forbidden = WireError(.forbidden, "only current members of the case's body with a case role may do this")
}

import Crypto
import Foundation
import Postgres
import Wire

/// One row of `meetings.cases` as stored: clear metadata, and the sealed content with its wrapped
/// data key (both nil once erased).
struct CaseRecord: Sendable {
    let id: UUID
    let bodyID: UUID
    let caseType: String?
    let basis: String?
    let status: String
    let keyID: String?
    let wrappedKey: Data?
    let sealedContent: Data?
    let version: Int
    let createdAt: String
    let updatedAt: String
    let erasedAt: String?
    let erasedByToken: String?
    let erasedByTenant: String?
    let erasureReason: String?

    static let columns: PostgresQuery = """
        id, body_id, case_type, basis, status, key_id, encode(data_key, 'base64') AS data_key,
        encode(content, 'base64') AS content, version,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS updated_at,
        to_char(erased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS erased_at,
        erased_by_token, erased_by_tenant, erasure_reason
        """

    /// The case, locked for change when `forUpdate`; nil when there is none.
    static func load(_ id: UUID, on connection: PostgresConnection, forUpdate: Bool) throws -> CaseRecord? {
        let lock: PostgresQuery = forUpdate ? "FOR UPDATE" : ""
        guard let row = try connection.query("""
            SELECT \(columns) FROM meetings.cases WHERE id = \(id.uuidString.lowercased())::uuid \(lock)
            """).first else { return nil }
        return try CaseRecord(row: row)
    }

    init(row: PostgresRow) throws {
        guard let id = UUID(uuidString: try row.decode("id")), let bodyID = UUID(uuidString: try row.decode("body_id")) else {
            throw PostgresError(.decoding, serverMessage: "case ids are not uuids")
        }
        self.id = id
        self.bodyID = bodyID
        caseType = try row.decode("case_type", as: String?.self)
        basis = try row.decode("basis", as: String?.self)
        status = try row.decode("status")
        keyID = try row.decode("key_id", as: String?.self)
        // PostgreSQL's base64 breaks lines every 76 characters.
        wrappedKey = try row.decode("data_key", as: String?.self).flatMap { Data(base64Encoded: $0, options: .ignoreUnknownCharacters) }
        sealedContent = try row.decode("content", as: String?.self).flatMap { Data(base64Encoded: $0, options: .ignoreUnknownCharacters) }
        version = try row.decode("version")
        createdAt = try row.decode("created_at")
        updatedAt = try row.decode("updated_at")
        erasedAt = try row.decode("erased_at", as: String?.self)
        erasedByToken = try row.decode("erased_by_token", as: String?.self)
        erasedByTenant = try row.decode("erased_by_tenant", as: String?.self)
        erasureReason = try row.decode("erasure_reason", as: String?.self)
    }

    var isErased: Bool { status == "erased" }

    /// The content and data key, opened with the service's master key.
    func open(with keyring: CaseKeyring) throws(CaseCryptoError) -> (content: CaseContent, dataKey: SymmetricKey) {
        guard let wrappedKey, let sealedContent, let keyID else { throw .unreadable }
        let dataKey = try keyring.unwrap(wrappedKey, keyID: keyID, caseID: id)
        let plaintext = try CaseKeyring.open(sealedContent, with: dataKey, caseID: id)
        guard let content = try? JSONDecoder().decode(CaseContent.self, from: plaintext) else { throw .unreadable }
        return (content, dataKey)
    }
}

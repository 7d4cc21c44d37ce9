import Crypto
import Foundation
import Postgres
import ServiceRuntime
import Wire

/// Individual cases (要配慮個人情報): recorded under a pseudonym by a body's case editors, read by
/// its case members, every access audited (`CaseAudit`), content sealed before it reaches
/// PostgreSQL (`CaseKeyring`), erasable on request to a tombstone. No operation here emits an
/// event or logs content; statistics are counts with small cells suppressed.
enum Cases {
    static let caseTypes = ["long_stay_transition", "post_involuntary_admission", "outreach", "difficult", "other"]
    static let bases = ["consent", "guardian_consent", "statutory", "vital_interest", "public_health"]
    static let erasureReasons = ["data_subject_request", "consent_withdrawn", "retention_expired", "recorded_in_error"]
    /// Counts below this are shown as suppressed in `case.statistics` (small-cell suppression).
    static let smallCellThreshold = 5

    static let uuidSchema = #"{"type":"string","minLength":36,"maxLength":36,"pattern":"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}"#

    // MARK: Inputs

    struct CreateInput: Decodable, Sendable {
        let bodyID: UUID
        let caseType: String
        let basis: String
        let content: CaseContentChanges

        enum CodingKeys: String, CodingKey {
            case basis, content
            case bodyID = "body_id"
            case caseType = "case_type"
        }
    }

    struct UpdateInput: Decodable, Sendable {
        let id: UUID
        /// When given, the update applies only to this version (else `conflict`).
        let version: Int?
        let caseType: String?
        let basis: String?
        let status: String?
        let content: CaseContentChanges?

        enum CodingKeys: String, CodingKey {
            case id, version, basis, status, content
            case caseType = "case_type"
        }

        var fieldsGiven: [String] {
            [("case_type", caseType != nil), ("basis", basis != nil), ("status", status != nil)].filter(\.1).map(\.0)
                + (content?.fieldsGiven ?? [])
        }
    }

    struct EraseInput: Decodable, Sendable {
        let id: UUID
        let reason: String
    }

    struct GetInput: Decodable, Sendable { let id: UUID }

    struct ListInput: Decodable, Sendable {
        let bodyID: UUID
        let after: UUID?
        let limit: Int?

        enum CodingKeys: String, CodingKey {
            case after, limit
            case bodyID = "body_id"
        }
    }

    struct AuditInput: Decodable, Sendable {
        let id: UUID
        let action: String?
        let after: Int64?
        let limit: Int?
    }

    struct StatisticsInput: Decodable, Sendable {
        let bodyID: UUID

        enum CodingKeys: String, CodingKey { case bodyID = "body_id" }
    }

    // MARK: Outputs

    /// A case as its members read it; a tombstone (`status` erased) has no content.
    struct CaseView: Encodable, Sendable {
        let id: String
        let bodyID: String
        let caseType: String?
        let basis: String?
        let status: String
        let version: Int
        let createdAt: String
        let updatedAt: String
        let content: CaseContent?
        let erasure: Erasure?

        struct Erasure: Encodable, Sendable {
            let at: String
            let byTokenID: String?
            let byTenant: String?
            let reason: String?

            enum CodingKeys: String, CodingKey {
                case at, reason
                case byTokenID = "by_token_id"
                case byTenant = "by_tenant"
            }
        }

        enum CodingKeys: String, CodingKey {
            case id, basis, status, version, content, erasure
            case bodyID = "body_id"
            case caseType = "case_type"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }

        init(_ record: CaseRecord, content: CaseContent?) {
            id = record.id.uuidString.lowercased()
            bodyID = record.bodyID.uuidString.lowercased()
            caseType = record.caseType
            basis = record.basis
            status = record.status
            version = record.version
            createdAt = record.createdAt
            updatedAt = record.updatedAt
            self.content = content
            erasure = record.erasedAt.map {
                Erasure(at: $0, byTokenID: record.erasedByToken, byTenant: record.erasedByTenant, reason: record.erasureReason)
            }
        }
    }

    struct ListOutput: Encodable, Sendable {
        let cases: [CaseView]
        let next: String?
    }

    struct AuditOutput: Encodable, Sendable {
        let caseID: String
        let entries: [CaseAudit.Entry]
        let next: Int64?

        enum CodingKeys: String, CodingKey {
            case entries, next
            case caseID = "case_id"
        }
    }

    struct StatisticsOutput: Encodable, Sendable {
        let bodyID: String
        let threshold: Int
        let byCaseType: [Cell]

        /// `count` is nil (and `suppressed` true) below the threshold, zero included.
        struct Cell: Encodable, Sendable {
            let caseType: String
            let count: Int?
            let suppressed: Bool

            enum CodingKeys: String, CodingKey {
                case count, suppressed
                case caseType = "case_type"
            }
        }

        enum CodingKeys: String, CodingKey {
            case threshold
            case bodyID = "body_id"
            case byCaseType = "by_case_type"
        }
    }

    // MARK: Operations

    static func operations(keyring: CaseKeyring) throws -> [ServiceOperation] {
        let content = CaseContent.propertiesSchema
        let types = CaseContent.jsonList(caseTypes)
        let bases = CaseContent.jsonList(Self.bases)
        return [
            try .write(
                "case.create",
                summary: "Record an individual case under a pseudonym for a body (its case editors only); content is encrypted, the access audited. The reply has no content.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["body_id","case_type","basis","content"],
                     "properties":{"body_id":\(uuidSchema),"case_type":{"enum":\(types)},"basis":{"enum":\(bases)},
                                   "content":{"type":"object","additionalProperties":false,"required":["pseudonym"],
                                              "properties":{\(content)}}}}
                    """,
                input: CreateInput.self
            ) { context, input, tx in try create(context, input, tx, keyring: keyring) },
            try .write(
                "case.update",
                summary: "Change a case's content fields, type, basis or status (open/closed); its body's case editors only; audited with the fields changed. The reply has no content.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["id"],
                     "properties":{"id":\(uuidSchema),"version":{"type":"integer","minimum":1,"maximum":2147483647},
                                   "case_type":{"enum":\(types)},"basis":{"enum":\(bases)},"status":{"enum":["open","closed"]},
                                   "content":{"type":"object","additionalProperties":false,"properties":{\(content)}}}}
                    """,
                input: UpdateInput.self
            ) { context, input, tx in try update(context, input, tx, keyring: keyring) },
            try .write(
                "case.erase",
                summary: "Erase a case on request: its content and its key are destroyed, an audited tombstone (id, when, by whom, reason) stays.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["id","reason"],
                     "properties":{"id":\(uuidSchema),"reason":{"enum":\(CaseContent.jsonList(erasureReasons))}}}
                    """,
                input: EraseInput.self
            ) { context, input, tx in try erase(context, input, tx) },
            try .read(
                "case.get",
                summary: "One case with its content, for a current member of its body with a case role; the read is audited.",
                schema: #"{"type":"object","additionalProperties":false,"required":["id"],"properties":{"id":\#(uuidSchema)}}"#,
                input: GetInput.self
            ) { context, input in try await audited(context) { tx in try get(context, input, tx, keyring: keyring) } },
            try .read(
                "case.list",
                summary: "A body's cases without content (id, type, basis, status, times), for its case members; audited.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["body_id"],
                     "properties":{"body_id":\(uuidSchema),"after":\(uuidSchema),"limit":{"type":"integer","minimum":1,"maximum":500}}}
                    """,
                input: ListInput.self
            ) { context, input in try await audited(context) { tx in try list(context, input, tx) } },
            try .read(
                "case.audit",
                summary: "Who did what with a case, when (e.g. action=read: who read it); for the body's case editors and secretariat; audited.",
                schema: """
                    {"type":"object","additionalProperties":false,"required":["id"],
                     "properties":{"id":\(uuidSchema),"action":{"enum":["create","read","update","erase","list","audit_read","rewrap"]},
                                   "after":{"type":"integer","minimum":0,"maximum":9007199254740991},
                                   "limit":{"type":"integer","minimum":1,"maximum":1000}}}
                    """,
                input: AuditInput.self
            ) { context, input in try await audited(context) { tx in try audit(context, input, tx) } },
            try .read(
                "case.statistics",
                summary: "A body's cases (not erased) counted by case type; counts below 5 are suppressed. Any authenticated caller.",
                schema: #"{"type":"object","additionalProperties":false,"required":["body_id"],"properties":{"body_id":\#(uuidSchema)}}"#,
                input: StatisticsInput.self
            ) { context, input in try await statistics(context, input) },
            try CaseKeyRewrap.statusOperation(keyring: keyring),
        ]
    }

    /// Runs a read's work in a transaction that is committed even when the work refuses
    /// (`CommittedRefusal`), so the audit of a refused read is kept like that of an allowed one.
    static func audited<Output: Sendable>(_ context: RequestContext,
                                          _ work: @escaping @Sendable (PostgresConnection) throws -> Output) async throws -> Output {
        try await context.database.withConnection(deadline: context.deadline) { connection -> Result<Output, WireError> in
            try connection.withTransaction(statementTimeoutMs: 0) { tx -> PostgresConnection.TransactionEnd<Result<Output, WireError>> in
                do { return .commit(.success(try work(tx))) } catch let refusal as CommittedRefusal {
                    return .commit(.failure(refusal.error))
                }
            }
        }.get()
    }

    static func id(_ uuid: UUID) -> String { uuid.uuidString.lowercased() }

    static func encode(_ content: CaseContent) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try encoder.encode(content)
    }

    // MARK: Handlers

    static func create(_ context: RequestContext, _ input: CreateInput, _ tx: PostgresConnection, keyring: CaseKeyring) throws -> CaseView {
        let principal = try context.requirePrincipal()
        let fields = input.content.fieldsGiven
        let access = try CaseAccess.of(principal, body: input.bodyID, on: tx)
        guard access.bodyExists else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .create, caseID: nil, bodyID: input.bodyID,
                                 fields: fields, outcome: .notFound, WireError(.notFound, "no such body"))
        }
        guard access.mayWrite else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .create, caseID: nil, bodyID: input.bodyID,
                                 fields: fields, outcome: .forbidden, CaseAccess.forbidden)
        }
        let content = input.content.applied(to: CaseContentChanges.empty)
        try content.validate()
        let caseID = UUID()
        let (dataKey, wrapped) = try keyring.newWrappedKey(caseID: caseID)
        let sealed = try CaseKeyring.seal(try encode(content), with: dataKey, caseID: caseID)
        try tx.query("""
            INSERT INTO meetings.cases (id, body_id, case_type, basis, status, key_id, data_key, content)
            VALUES (\(id(caseID))::uuid, \(id(input.bodyID))::uuid, \(input.caseType), \(input.basis), 'open', \(keyring.keyID),
                    decode(\(wrapped.base64EncodedString()), 'base64'), decode(\(sealed.base64EncodedString()), 'base64'))
            """)
        try CaseAudit.record(on: tx, context: context, principal: principal, action: .create, caseID: caseID, bodyID: input.bodyID,
                             fields: fields, outcome: .allowed)
        guard let record = try CaseRecord.load(caseID, on: tx, forUpdate: false) else { throw WireError(.internal, "case vanished") }
        // No content in a write's reply: the runtime stores a keyed write's reply in clear
        // (`meetings.idempotency`). The caller reads it back with `case.get`.
        return CaseView(record, content: nil)
    }

    static func update(_ context: RequestContext, _ input: UpdateInput, _ tx: PostgresConnection, keyring: CaseKeyring) throws -> CaseView {
        let principal = try context.requirePrincipal()
        let fields = input.fieldsGiven
        guard let record = try CaseRecord.load(input.id, on: tx, forUpdate: true) else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .update, caseID: input.id, bodyID: nil,
                                 fields: fields, outcome: .notFound, WireError(.notFound, "no such case"))
        }
        let access = try CaseAccess.of(principal, body: record.bodyID, on: tx)
        guard access.mayWrite else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .update, caseID: input.id,
                                 bodyID: record.bodyID, fields: fields, outcome: .forbidden, CaseAccess.forbidden)
        }
        guard !record.isErased else { throw WireError(.conflict, "this case was erased") }
        if let version = input.version, version != record.version {
            throw WireError(.conflict, "the case changed since version \(version)",
                            details: .object(["version": .number(Double(record.version))]))
        }
        let opened: (content: CaseContent, dataKey: SymmetricKey)
        do { opened = try record.open(with: keyring) } catch {
            context.logger.warning("case content unreadable", metadata: ["case.id": "\(id(record.id))", "case.error": "\(error)"])
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .update, caseID: input.id,
                                 bodyID: record.bodyID, fields: fields, outcome: .unreadable, error.wireError)
        }
        let content = input.content?.applied(to: opened.content) ?? opened.content
        try content.validate()
        let sealed = try CaseKeyring.seal(try encode(content), with: opened.dataKey, caseID: record.id)
        try tx.query("""
            UPDATE meetings.cases
            SET content = decode(\(sealed.base64EncodedString()), 'base64'),
                case_type = coalesce(\(input.caseType), case_type), basis = coalesce(\(input.basis), basis),
                status = coalesce(\(input.status), status), version = version + 1, updated_at = now()
            WHERE id = \(id(record.id))::uuid
            """)
        try CaseAudit.record(on: tx, context: context, principal: principal, action: .update, caseID: record.id,
                             bodyID: record.bodyID, fields: fields, outcome: .allowed)
        guard let updated = try CaseRecord.load(record.id, on: tx, forUpdate: false) else { throw WireError(.internal, "case vanished") }
        return CaseView(updated, content: nil)  // as for `case.create`: never content in a stored reply
    }

    static func erase(_ context: RequestContext, _ input: EraseInput, _ tx: PostgresConnection) throws -> CaseView {
        let principal = try context.requirePrincipal()
        guard let record = try CaseRecord.load(input.id, on: tx, forUpdate: true) else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .erase, caseID: input.id, bodyID: nil,
                                 outcome: .notFound, WireError(.notFound, "no such case"))
        }
        let access = try CaseAccess.of(principal, body: record.bodyID, on: tx)
        guard access.mayWrite else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .erase, caseID: input.id,
                                 bodyID: record.bodyID, outcome: .forbidden, CaseAccess.forbidden)
        }
        // Erased before: the tombstone as it is (an erasure is not repeated).
        guard !record.isErased else { return CaseView(record, content: nil) }
        try tx.query("""
            UPDATE meetings.cases
            SET status = 'erased', content = NULL, data_key = NULL, key_id = NULL, case_type = NULL, basis = NULL,
                erased_at = now(), erased_by_token = \(principal.tokenID), erased_by_tenant = \(principal.tenant),
                erasure_reason = \(input.reason), version = version + 1, updated_at = now()
            WHERE id = \(id(record.id))::uuid
            """)
        try CaseAudit.record(on: tx, context: context, principal: principal, action: .erase, caseID: record.id,
                             bodyID: record.bodyID, outcome: .allowed)
        guard let erased = try CaseRecord.load(record.id, on: tx, forUpdate: false) else { throw WireError(.internal, "case vanished") }
        return CaseView(erased, content: nil)
    }

    static func get(_ context: RequestContext, _ input: GetInput, _ tx: PostgresConnection, keyring: CaseKeyring) throws -> CaseView {
        let principal = try context.requirePrincipal()
        guard let record = try CaseRecord.load(input.id, on: tx, forUpdate: false) else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .read, caseID: input.id, bodyID: nil,
                                 outcome: .notFound, WireError(.notFound, "no such case"))
        }
        let access = try CaseAccess.of(principal, body: record.bodyID, on: tx)
        guard access.mayRead else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .read, caseID: input.id,
                                 bodyID: record.bodyID, outcome: .forbidden, CaseAccess.forbidden)
        }
        guard !record.isErased else {
            try CaseAudit.record(on: tx, context: context, principal: principal, action: .read, caseID: record.id,
                                 bodyID: record.bodyID, outcome: .allowed)
            return CaseView(record, content: nil)
        }
        let content: CaseContent
        do { content = try record.open(with: keyring).content } catch {
            context.logger.warning("case content unreadable", metadata: ["case.id": "\(id(record.id))", "case.error": "\(error)"])
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .read, caseID: record.id,
                                 bodyID: record.bodyID, outcome: .unreadable, error.wireError)
        }
        try CaseAudit.record(on: tx, context: context, principal: principal, action: .read, caseID: record.id,
                             bodyID: record.bodyID, fields: CaseContent.fieldNames, outcome: .allowed)
        return CaseView(record, content: content)
    }

    static func list(_ context: RequestContext, _ input: ListInput, _ tx: PostgresConnection) throws -> ListOutput {
        let principal = try context.requirePrincipal()
        let access = try CaseAccess.of(principal, body: input.bodyID, on: tx)
        guard access.bodyExists else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .list, caseID: nil, bodyID: input.bodyID,
                                 outcome: .notFound, WireError(.notFound, "no such body"))
        }
        guard access.mayRead else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .list, caseID: nil, bodyID: input.bodyID,
                                 outcome: .forbidden, CaseAccess.forbidden)
        }
        let limit = input.limit ?? 100
        let after: PostgresQuery = input.after.map { "AND id > \(id($0))::uuid" } ?? ""
        let records = try tx.query("""
            SELECT \(CaseRecord.columns) FROM meetings.cases
            WHERE body_id = \(id(input.bodyID))::uuid \(after) ORDER BY id LIMIT \(limit + 1)
            """).map(CaseRecord.init(row:))
        try CaseAudit.record(on: tx, context: context, principal: principal, action: .list, caseID: nil, bodyID: input.bodyID,
                             outcome: .allowed)
        let page = records.prefix(limit)
        return ListOutput(cases: page.map { CaseView($0, content: nil) },
                          next: records.count > limit ? page.last.map { id($0.id) } : nil)
    }

    static func audit(_ context: RequestContext, _ input: AuditInput, _ tx: PostgresConnection) throws -> AuditOutput {
        let principal = try context.requirePrincipal()
        guard let record = try CaseRecord.load(input.id, on: tx, forUpdate: false) else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .auditRead, caseID: input.id, bodyID: nil,
                                 outcome: .notFound, WireError(.notFound, "no such case"))
        }
        let access = try CaseAccess.of(principal, body: record.bodyID, on: tx)
        guard access.mayReadAudit else {
            try CaseAudit.refuse(on: tx, context: context, principal: principal, action: .auditRead, caseID: input.id,
                                 bodyID: record.bodyID, outcome: .forbidden,
                                 WireError(.forbidden, "only the body's case editors and secretariat read a case's audit"))
        }
        // This reading is itself recorded, after the rows it returns.
        let limit = input.limit ?? 200
        let rows = try CaseAudit.entries(on: tx, caseID: record.id, action: input.action, after: input.after ?? 0, limit: limit + 1)
        try CaseAudit.record(on: tx, context: context, principal: principal, action: .auditRead, caseID: record.id,
                             bodyID: record.bodyID, outcome: .allowed)
        let page = rows.prefix(limit)
        return AuditOutput(caseID: id(record.id), entries: page.map(\.1), next: rows.count > limit ? page.last?.0 : nil)
    }

    static func statistics(_ context: RequestContext, _ input: StatisticsInput) async throws -> StatisticsOutput {
        _ = try context.requirePrincipal()
        let bodyID = id(input.bodyID)
        let counts = try await context.database.withConnection(deadline: context.deadline) { connection -> [String: Int]? in
            guard try !connection.query("SELECT 1 FROM meetings.bodies WHERE id = \(bodyID)::uuid").isEmpty else { return nil }
            var counts: [String: Int] = [:]
            for row in try connection.query("""
                SELECT case_type, count(*)::int AS n FROM meetings.cases
                WHERE body_id = \(bodyID)::uuid AND status <> 'erased' GROUP BY case_type
                """) {
                counts[try row.decode("case_type")] = try row.decode("n", as: Int.self)
            }
            return counts
        }
        guard let counts else { throw WireError(.notFound, "no such body") }
        return StatisticsOutput(bodyID: bodyID, threshold: smallCellThreshold, byCaseType: caseTypes.map { type in
            let count = counts[type] ?? 0
            return count < smallCellThreshold
                ? .init(caseType: type, count: nil, suppressed: true)
                : .init(caseType: type, count: count, suppressed: false)
        })
    }
}

import Foundation
import Logging
import Postgres
import ServiceRuntime
import Wire

/// The second half of a master-key rotation: moves every case's data key from the previous master
/// key to the current one, in the background of every instance started with a previous key.
///
/// Only `data_key` (the same data key, wrapped again under a fresh nonce) and `key_id` change:
/// the content ciphertext, `version` and `updated_at` stay (it is no edit of the case), erased
/// cases have no key and are not touched. Each batch is one transaction over at most `batchSize`
/// rows taken `FOR UPDATE SKIP LOCKED`, so instances rewrapping at once take different rows, and a
/// case being written is left for a later batch instead of waited for. Each rewrapped case gets a
/// `rewrap` row in `meetings.case_audit` in the same transaction (no content; `fields` names the
/// columns written). The log has counts only.
enum CaseKeyRewrap {
    /// Rows per transaction (`TSUNAGU_MEETINGS_CASE_REWRAP_BATCH`, 1–10000).
    static let batchSize = 200
    static let batchSizeKey = "TSUNAGU_MEETINGS_CASE_REWRAP_BATCH"
    /// Wrapped keys under the previous master key that do not open (changed outside the service)
    /// are left as they are and skipped for the rest of the run, up to this many; past it the run
    /// stops, as the database is not what this instance's keys describe.
    static let maxUnreadable = 1_000

    /// What one batch did.
    struct Batch: Sendable {
        var rewrapped = 0
        /// Rows under the previous key whose wrapped key does not open.
        var unreadable: [String] = []
        /// Rows it took: fewer than asked means none was left that no other transaction holds.
        var taken = 0
    }

    /// One transaction: up to `limit` cases under the previous key (not those in `skipping`),
    /// rewrapped under the current key and audited as `request_id` `runID`.
    static func batch(keyring: CaseKeyring, on connection: PostgresConnection, limit: Int, skipping: [String],
                      runID: String) throws -> Batch {
        guard let previousKeyID = keyring.previousKeyID else { return Batch() }
        return try connection.withTransaction { tx in
            let rows = try tx.query("""
                SELECT id::text AS id, encode(data_key, 'base64') AS data_key FROM meetings.cases
                WHERE key_id = \(previousKeyID) AND status <> 'erased' AND data_key IS NOT NULL
                  AND NOT (id = ANY(\(skipping)::uuid[]))
                LIMIT \(limit) FOR UPDATE SKIP LOCKED
                """)
            var batch = Batch(taken: rows.count)
            var ids: [String] = [], keys: [String] = []
            for row in rows {
                let idText: String = try row.decode("id")
                // PostgreSQL's base64 breaks lines every 76 characters.
                guard let caseID = UUID(uuidString: idText),
                      let wrapped = Data(base64Encoded: try row.decode("data_key"), options: .ignoreUnknownCharacters),
                      let rewrapped = try? keyring.rewrap(wrapped, keyID: previousKeyID, caseID: caseID) else {
                    batch.unreadable.append(idText)
                    continue
                }
                ids.append(idText)
                keys.append(rewrapped.base64EncodedString())
            }
            guard !ids.isEmpty else { return batch }
            // `version` and `updated_at` are left alone: the case was not edited.
            let updated = try tx.query("""
                UPDATE meetings.cases c SET data_key = decode(v.data_key, 'base64'), key_id = \(keyring.keyID)
                FROM unnest(\(ids)::uuid[], \(keys)::text[]) AS v(id, data_key)
                WHERE c.id = v.id AND c.key_id = \(previousKeyID)
                RETURNING c.id::text AS id
                """).map { try $0.decode("id", as: String.self) }
            // One audit row per case moved, in the transaction that moved it.
            try tx.query("""
                INSERT INTO meetings.case_audit (token_id, tenant, case_id, body_id, action, fields, outcome, request_id)
                SELECT NULL, \(TenancyPolicy.nationalTenant), c.id, c.body_id, 'rewrap', '{data_key,key_id}', 'allowed', \(runID)
                FROM meetings.cases c WHERE c.id = ANY(\(updated)::uuid[])
                """)
            batch.rewrapped = updated.count
            return batch
        }
    }

    /// Rewraps until no case is left under the previous key, then returns; nothing to do without
    /// one. A failing batch (the database away) is retried after `pause`; so is a batch that found
    /// every remaining row held by other transactions (another instance, a write).
    static func run(keyring: CaseKeyring, database: PostgresPool, logger: Logger, batchSize: Int = batchSize,
                    pause: Duration = .seconds(1)) async {
        guard keyring.previousKeyID != nil else { return }
        let runID = "rewrap-\(UUID().uuidString.lowercased())"
        var logger = logger
        logger[metadataKey: "case.rewrap.run"] = "\(runID)"
        logger.info("rewrapping case keys from the previous master key", metadata: ["batch": "\(batchSize)"])
        var rewrapped = 0
        var unreadable: [String] = []
        while !Task.isCancelled {
            let skipping = unreadable
            let batch: Batch
            do {
                batch = try await database.withConnection { connection in
                    try Self.batch(keyring: keyring, on: connection, limit: batchSize, skipping: skipping, runID: runID)
                }
            } catch {
                logger.warning("case key rewrap batch failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: pause)
                continue
            }
            rewrapped += batch.rewrapped
            if !batch.unreadable.isEmpty {
                unreadable += batch.unreadable
                logger.warning("case keys under the previous master key do not open; left as they are",
                               metadata: ["count": "\(batch.unreadable.count)"])
                guard unreadable.count <= maxUnreadable else {
                    logger.error("case key rewrap stopped: too many wrapped keys do not open", metadata: ["unreadable": "\(unreadable.count)"])
                    return
                }
            }
            if batch.rewrapped > 0 {
                logger.info("case keys rewrapped", metadata: ["count": "\(batch.rewrapped)", "total": "\(rewrapped)"])
            }
            guard batch.taken < batchSize else { continue }
            // Fewer than asked: done, unless rows were held by other transactions (SKIP LOCKED).
            let remaining: Int
            do {
                remaining = try await database.withConnection { connection in
                    try Self.remaining(keyring: keyring, on: connection, skipping: skipping + batch.unreadable)
                }
            } catch {
                try? await Task.sleep(for: pause)
                continue
            }
            if remaining == 0 {
                logger.info("case key rewrap done", metadata: ["rewrapped": "\(rewrapped)", "unreadable": "\(unreadable.count)"])
                return
            }
            try? await Task.sleep(for: pause)
        }
    }

    /// Cases still under the previous key, but those skipped.
    static func remaining(keyring: CaseKeyring, on connection: PostgresConnection, skipping: [String]) throws -> Int {
        guard let previousKeyID = keyring.previousKeyID else { return 0 }
        return try connection.query("""
            SELECT count(*)::int AS n FROM meetings.cases
            WHERE key_id = \(previousKeyID) AND NOT (id = ANY(\(skipping)::uuid[]))
            """).first?.decode("n", as: Int.self) ?? 0
    }
}

/// `case.key_status`: how far a rotation has come, as this instance's keys see it. Counts only.
extension CaseKeyRewrap {
    struct StatusInput: Decodable, Sendable {}

    struct StatusOutput: Encodable, Sendable {
        /// This instance's master keys' fingerprints (what `key_id` holds; not the keys).
        let currentKeyID: String
        let previousKeyID: String?
        let cases: Counts

        struct Counts: Encodable, Sendable {
            /// Cases whose data key is wrapped under the current key.
            let current: Int
            /// Under the previous key (0 without one): the rotation is done when this is 0.
            let previous: Int
            /// Under neither: this instance cannot open them (`case_key_mismatch`).
            let other: Int
            /// Tombstones: no key at all.
            let erased: Int
        }

        enum CodingKeys: String, CodingKey {
            case cases
            case currentKeyID = "current_key_id"
            case previousKeyID = "previous_key_id"
        }
    }

    static func statusOperation(keyring: CaseKeyring) throws -> ServiceOperation {
        try .read(
            "case.key_status",
            summary: "How many cases are wrapped under this instance's current case master key, its previous key and any other key (counts only), to follow a master-key rotation; national admins only.",
            schema: #"{"type":"object","additionalProperties":false,"properties":{}}"#,
            roles: [TenancyPolicy.adminRole],
            input: StatusInput.self
        ) { context, _ in try await status(context, keyring: keyring) }
    }

    static func status(_ context: RequestContext, keyring: CaseKeyring) async throws -> StatusOutput {
        guard try context.requirePrincipal().isNationalAdmin else {
            throw WireError(.forbidden, "case.key_status is for national admins (tenant national, role admin)")
        }
        let current = keyring.keyID, previous = keyring.previousKeyID ?? ""
        let counts = try await context.database.withConnection(deadline: context.deadline) { connection in
            guard let row = try connection.query("""
                SELECT count(*) FILTER (WHERE key_id = \(current))::int AS current,
                       count(*) FILTER (WHERE key_id = \(previous))::int AS previous,
                       count(*) FILTER (WHERE key_id IS NOT NULL AND key_id <> \(current) AND key_id <> \(previous))::int AS other,
                       count(*) FILTER (WHERE key_id IS NULL)::int AS erased
                FROM meetings.cases
                """).first else { throw WireError(.internal, "no counts") }
            return StatusOutput.Counts(current: try row.decode("current"), previous: try row.decode("previous"),
                                       other: try row.decode("other"), erased: try row.decode("erased"))
        }
        return StatusOutput(currentKeyID: current, previousKeyID: keyring.previousKeyID, cases: counts)
    }
}

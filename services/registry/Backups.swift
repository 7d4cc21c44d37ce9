import Foundation
import JSONSchema
import Postgres
import ServiceRuntime
import Wire

/// Who backs up whom (バックアップ): a directed edge from the backer (e.g. 精神保健福祉センター) to
/// the backed (e.g. 保健所). Either side's tenant may record or remove the edge; cycles are refused.
///
/// The cycle check reads the whole graph, so links are serialised: each `backup.link` first takes
/// a transaction-scoped advisory lock on the registry's one backup graph. Without it, two links
/// that close a cycle together (A→B and B→A, or the last edges of a ring) each pass the check in
/// their own snapshot and both commit. Unlinking needs no lock: removing an edge makes no cycle.
enum Backups {
    /// The advisory lock key of the backup graph (`pg_advisory_xact_lock(hashtextextended(key, 0))`).
    static let graphLockKey = "registry.backups/graph"

    struct LinkInput: Decodable, Sendable {
        let backerID: String
        let backedID: String
        let note: String?
        /// What the backer does for the backed: `technical_advice` (技術的助言), `difficult_cases`
        /// (taking over difficult cases), `training` (人材育成・研修).
        let roles: [String]?

        enum CodingKeys: String, CodingKey {
            case backerID = "backer_id"
            case backedID = "backed_id"
            case note, roles
        }
    }

    static let roles = ["technical_advice", "difficult_cases", "training"]

    static let linkSchema = """
        {"type":"object","additionalProperties":false,"required":["backer_id","backed_id"],
         "properties":{"backer_id":{"type":"string","pattern":"\(Schemas.uuid)","maxLength":36},
                       "backed_id":{"type":"string","pattern":"\(Schemas.uuid)","maxLength":36},
                       "note":{"type":"string","maxLength":500},
                       "roles":{"type":"array","maxItems":3,"items":{"enum":["technical_advice","difficult_cases","training"]}}}}
        """

    static func operations() throws -> [ServiceOperation] {
        [
            try .write(
                "backup.link", summary: "Record that backer_id backs up backed_id.", schema: linkSchema, input: LinkInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                try requireEitherOwner(input, principal: principal, on: tx)
                guard input.backerID != input.backedID else {
                    throw WireError(.invalidInput, "a resource cannot back up itself")
                }
                // One link at a time: the check below then sees every link committed before it
                // (read committed takes a new snapshot per statement, after the lock is held).
                try tx.query("SELECT pg_advisory_xact_lock(hashtextextended(\(graphLockKey), 0))")
                // Refuse a cycle: the backed must not already back up the backer, directly or not.
                let cycle = try tx.query("""
                    WITH RECURSIVE up(id) AS (
                        SELECT backer_id FROM registry.backups WHERE backed_id = \(input.backerID)::uuid
                        UNION SELECT b.backer_id FROM registry.backups b JOIN up ON b.backed_id = up.id)
                    SELECT 1 FROM up WHERE id = \(input.backedID)::uuid
                    """)
                guard cycle.isEmpty else { throw WireError(.conflict, "the link would make a backup cycle") }
                let roles = Array(Set(input.roles ?? [])).sorted()
                try tx.query("""
                    INSERT INTO registry.backups (backer_id, backed_id, tenant, note, roles)
                    VALUES (\(input.backerID)::uuid, \(input.backedID)::uuid, \(principal.tenant), \(input.note ?? ""), \(roles)::text[])
                    ON CONFLICT (backer_id, backed_id) DO UPDATE SET note = EXCLUDED.note, roles = EXCLUDED.roles
                    """)
                return JSONValue.object(["backer_id": .string(input.backerID), "backed_id": .string(input.backedID),
                                         "note": .string(input.note ?? ""), "roles": .array(roles.map { .string($0) })])
            },
            try .write(
                "backup.unlink", summary: "Remove a backup link.", schema: linkSchema, input: LinkInput.self
            ) { context, input, tx in
                let principal = try context.writer()
                try requireEitherOwner(input, principal: principal, on: tx)
                let removed = try tx.query("""
                    DELETE FROM registry.backups WHERE backer_id = \(input.backerID)::uuid AND backed_id = \(input.backedID)::uuid
                    RETURNING 1 AS one
                    """)
                guard !removed.isEmpty else { throw WireError(.notFound, "no such backup link") }
                return JSONValue.object(["backer_id": .string(input.backerID), "backed_id": .string(input.backedID), "removed": .bool(true)])
            },
        ]
    }

    /// Both resources must be active, and the caller must own one of them.
    private static func requireEitherOwner(_ input: LinkInput, principal: Principal, on tx: PostgresConnection) throws {
        let owners = try ownersOfBoth(input, on: tx)
        guard owners.contains(where: principal.mayWrite(rowsOf:)) else {
            throw WireError(.forbidden, "only the tenant of either resource may change their backup link")
        }
    }

    private static func ownersOfBoth(_ input: LinkInput, on tx: PostgresConnection) throws -> Set<String> {
        let rows = try tx.query("""
            SELECT id::text AS id, tenant FROM registry.resources
            WHERE id IN (\(input.backerID)::uuid, \(input.backedID)::uuid) AND retired_at IS NULL
            """)
        var owners: [String: String] = [:]
        for row in rows { owners[try row.decode("id")] = try row.decode("tenant") }
        for (field, id) in [("backer_id", input.backerID), ("backed_id", input.backedID)] where owners[id.lowercased()] == nil {
            throw WireError(.notFound, "no active resource \(id) (\(field))")
        }
        return Set(owners.values)
    }

    /// SQL for the backers of resource `r`, transitively, as a JSON array, nearest first: each
    /// backer once, at its nearest `depth`, with every path by which it backs `r` up (`paths`:
    /// each the ids from the one it backs directly down to `r`, and the roles of that link).
    static let backersSQL: StaticString = """
        coalesce((WITH RECURSIVE up(id, depth, path, roles) AS (
                SELECT b.backer_id, 1, ARRAY[r.id, b.backer_id], b.roles FROM registry.backups b WHERE b.backed_id = r.id
                UNION ALL
                SELECT b.backer_id, up.depth + 1, up.path || b.backer_id, b.roles FROM registry.backups b JOIN up ON b.backed_id = up.id
                WHERE NOT b.backer_id = ANY(up.path) AND up.depth < 10),
            each AS (
                SELECT up.id, min(up.depth) AS depth,
                       jsonb_agg(jsonb_build_object('via', (SELECT jsonb_agg(p ORDER BY o DESC) FROM unnest(up.path[1:array_length(up.path, 1) - 1]) WITH ORDINALITY AS v(p, o)),
                                                    'roles', up.roles) ORDER BY up.depth, up.path) AS paths,
                       (array_agg(up.path[array_length(up.path, 1) - 1] ORDER BY up.depth, up.path))[1] AS backs_up,
                       (jsonb_agg(to_jsonb(up.roles) ORDER BY up.depth, up.path))->0 AS roles
                FROM up GROUP BY up.id)
            SELECT jsonb_agg(jsonb_build_object('id', x.id, 'name', x.name, 'kinds', x.kinds, 'depth', e.depth,
                                                'backs_up', e.backs_up, 'roles', e.roles, 'paths', e.paths) ORDER BY e.depth, x.name)
            FROM each e JOIN registry.resources x ON x.id = e.id AND x.retired_at IS NULL), '[]')
        """
}

import Foundation
import JSONSchema
import Logging
import Postgres
import ServiceRuntime
import Testing
import Wire

/// The tenancy rules (`TenancyPolicy`): asked of principals directly, and of a request's caller
/// through a dispatcher whose handlers call the `RequestContext` conveniences (no database, no socket).
@Suite struct TenancyPolicyTests {
    static let tokyo = "130001"
    static let sapporo = "011002"

    func principal(_ tenant: String, _ roles: [String]) -> Principal { Principal(tenant: tenant, roles: roles, tokenID: "tok_t") }

    @Test func aNationalAdminIsTenantNationalWithRoleAdmin() {
        #expect(principal("national", ["admin"]).isNationalAdmin)
        #expect(principal("national", ["staff", "admin"]).isNationalAdmin)
        #expect(!principal("national", ["editor"]).isNationalAdmin)
        #expect(!principal("national", []).isNationalAdmin)
        #expect(!principal(Self.tokyo, ["admin"]).isNationalAdmin)
        #expect(!principal("National", ["admin"]).isNationalAdmin)
        #expect(TenancyPolicy.nationalTenant == TsunaguWire.nationalTenant)
    }

    @Test func writingNeedsTheRoleEditorOrAdmin() throws {
        #expect(principal(Self.tokyo, ["editor"]).isWriter)
        #expect(principal(Self.tokyo, ["admin"]).isWriter)
        #expect(principal(Self.tokyo, ["staff", "editor"]).isWriter)
        for roles in [[], ["staff"], ["viewer"], ["Editor"], ["service"]] {
            #expect(!principal(Self.tokyo, roles).isWriter)
            #expect(throws: WireError.self) { try principal(Self.tokyo, roles).requireWriter() }
            #expect(!principal(Self.tokyo, roles).mayWrite(rowsOf: Self.tokyo))
        }
        try principal(Self.tokyo, ["editor"]).requireWriter()
    }

    @Test func aWriterWritesItsOwnTenantsRowsOnly() throws {
        for role in ["editor", "admin"] {
            let writer = principal(Self.tokyo, [role])
            #expect(writer.mayWrite(rowsOf: Self.tokyo))
            try writer.requireOwner(of: Self.tokyo)
            #expect(!writer.mayWrite(rowsOf: Self.sapporo))
            #expect(!writer.mayWrite(rowsOf: "national"))
            do {
                try writer.requireOwner(of: Self.sapporo)
                Issue.record("expected forbidden")
            } catch {
                #expect(error.code == .forbidden)
                #expect(error.message.contains(Self.sapporo))
            }
        }
    }

    @Test func aNationalAdminWritesEveryTenantsRowsANationalEditorOnlyNationals() throws {
        let admin = principal("national", ["admin"])
        for owner in [Self.tokyo, Self.sapporo, "national"] {
            #expect(admin.mayWrite(rowsOf: owner))
            try admin.requireOwner(of: owner)
        }
        let editor = principal("national", ["editor"])
        #expect(editor.mayWrite(rowsOf: "national"))
        #expect(!editor.mayWrite(rowsOf: Self.tokyo))
        #expect(throws: WireError(.forbidden, "this record belongs to tenant \(Self.tokyo)")) {
            try editor.requireOwner(of: Self.tokyo)
        }
    }

    // MARK: Through a request's context

    let dispatcher: RequestDispatcher
    let pool: PostgresPool

    struct Input: Codable, Sendable { let owner: String }

    init() throws {
        let logger = Logger(label: "test")
        // No handler here touches the database.
        pool = PostgresPool(.init(conninfo: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", size: 1), logger: logger)
        let schema = #"{"type":"object","additionalProperties":false,"required":["owner"],"properties":{"owner":{"type":"string","maxLength":20}}}"#
        let definition = ServiceDefinition(name: "test", version: "1", schema: "test", migrations: [], operations: [
            try .read("write.any", summary: "", schema: schema, input: Input.self) { context, input in
                Input(owner: try context.writer().tenant)
            },
            try .read("write.owned", summary: "", schema: schema, input: Input.self) { context, input in
                Input(owner: try context.requireOwner(of: input.owner).tenant)
            },
        ])
        dispatcher = RequestDispatcher(definition: definition, database: pool, logger: logger)
    }

    func call(_ op: String, owner: String, as principal: Principal?) async -> ReplyEnvelope {
        let envelope = RequestEnvelope(op: op, id: "req-1", principal: principal)
        let reply = await dispatcher.handle([TsunaguWire.marker, envelope.encoded(), Data(#"{"owner":"\#(owner)"}"#.utf8)])
        return try! WireCoding.decoder().decode(ReplyEnvelope.self, from: reply[1])
    }

    @Test func theContextConveniencesApplyTheSameRules() async {
        #expect(await call("write.any", owner: Self.tokyo, as: nil).error?.code == .unauthorized)
        #expect(await call("write.any", owner: Self.tokyo, as: principal(Self.tokyo, ["staff"])).error?.code == .forbidden)
        #expect(await call("write.any", owner: Self.tokyo, as: principal(Self.sapporo, ["editor"])).status == .ok)

        #expect(await call("write.owned", owner: Self.tokyo, as: nil).error?.code == .unauthorized)
        #expect(await call("write.owned", owner: Self.tokyo, as: principal(Self.tokyo, ["staff"])).error?.code == .forbidden)
        #expect(await call("write.owned", owner: Self.tokyo, as: principal(Self.tokyo, ["editor"])).status == .ok)
        #expect(await call("write.owned", owner: Self.tokyo, as: principal(Self.sapporo, ["admin"])).error?.code == .forbidden)
        #expect(await call("write.owned", owner: Self.tokyo, as: principal("national", ["editor"])).error?.code == .forbidden)
        #expect(await call("write.owned", owner: Self.tokyo, as: principal("national", ["admin"])).status == .ok)
    }
}

import Foundation
import JSONSchema
import Logging
import Postgres
import ServiceRuntime
import Testing
import Wire

/// The service-side checks, driven directly (no socket): envelope, operation, roles, schema, and
/// how thrown errors become protocol errors.
@Suite struct RequestDispatcherTests {
    struct Input: Codable, Sendable { let code: String }
    struct Failure: Error {}

    let dispatcher: RequestDispatcher
    let pool: PostgresPool

    init() throws {
        let logger = Logger(label: "test")
        // Connections are made lazily; only the `db` operation asks for one, and gets none.
        pool = PostgresPool(.init(conninfo: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", size: 1), logger: logger)
        let schema = #"{"type":"object","required":["code"],"properties":{"code":{"type":"string","pattern":"^[0-9]{6}$"},"note":{"type":"string","maxLength":10}}}"#
        let definition = ServiceDefinition(name: "test", version: "1", schema: "test", migrations: [], operations: [
            try .read("echo", summary: "", schema: schema, input: Input.self) { _, input in input },
            try .read("admin.only", summary: "", schema: schema, roles: ["admin"], input: Input.self) { _, input in input },
            try .read("conflict", summary: "", schema: schema, input: Input.self) { _, _ -> Input in
                throw WireError(.conflict, "stale version")
            },
            try .read("crash", summary: "", schema: schema, input: Input.self) { _, _ -> Input in throw Failure() },
            try .read("db", summary: "", schema: schema, input: Input.self) { context, input in
                try await context.database.withConnection { _ in input }
            },
            try .inline("inline", summary: "", schema: schema, roles: ["staff"], input: Input.self) { _, input in input },
            try .inline("inline.crash", summary: "", schema: schema, input: Input.self) { _, _ -> Input in throw Failure() },
        ])
        dispatcher = RequestDispatcher(definition: definition, database: pool, logger: logger)
    }

    func call(_ op: String, _ payload: String, roles: [String] = ["staff"], version: Int = 1,
              deadlineMs: Int? = nil) async -> (ReplyEnvelope, Data?) {
        var envelope = RequestEnvelope(op: op, id: "req-1", deadlineMs: deadlineMs,
                                       principal: Principal(tenant: "pref-13", roles: roles, tokenID: "tok_1"))
        envelope.v = version
        let reply = await dispatcher.handle([TsunaguWire.marker, envelope.encoded(), Data(payload.utf8)])
        let decoded = try! WireCoding.decoder().decode(ReplyEnvelope.self, from: reply[1])
        return (decoded, reply.count > 2 ? reply[2] : nil)
    }

    @Test func runsTheHandler() async throws {
        let (envelope, payload) = await call("echo", #"{"code":"131016"}"#)
        #expect(envelope.status == .ok && envelope.id == "req-1")
        #expect(try JSONValue.parse(payload!) == .object(["code": .string("131016")]))
    }

    func body(_ op: String, _ payload: String, roles: [String] = ["staff"]) -> [Data] {
        let envelope = RequestEnvelope(op: op, id: "req-2", principal: Principal(tenant: "pref-13", roles: roles, tokenID: "tok_1"))
        return [TsunaguWire.marker, envelope.encoded(), Data(payload.utf8)]
    }

    @Test func inlineOperationsAreAnsweredWithoutATaskAndCheckedTheSameWay() throws {
        func answered(_ dispatch: RequestDispatcher.Dispatch) throws -> ReplyEnvelope? {
            guard case .answered(let reply) = dispatch else { return nil }
            return try WireCoding.decoder().decode(ReplyEnvelope.self, from: reply[1])
        }
        #expect(try answered(dispatcher.dispatch(body("inline", #"{"code":"131016"}"#)))?.status == .ok)
        #expect(try answered(dispatcher.dispatch(body("inline", #"{"code":"x"}"#)))?.error?.code == .invalidInput)
        #expect(try answered(dispatcher.dispatch(body("inline", #"{"code":"131016"}"#, roles: ["resident"])))?.error?.code == .forbidden)
        #expect(try answered(dispatcher.dispatch(body("inline.crash", #"{"code":"131016"}"#)))?.error?.code == .internal)
        #expect(try answered(dispatcher.dispatch(body("nope", "{}")))?.error?.code == .unknownOperation)
        // A `.read` goes to a task: its input is checked there, in parallel with other requests.
        #expect(try answered(dispatcher.dispatch(body("echo", #"{"code":"x"}"#))) == nil)
    }

    @Test func mapsEachFailureToItsCode() async {
        #expect(await call("nope", "{}").0.error?.code == .unknownOperation)
        #expect(await call("echo", "{not json").0.error?.code == .badRequest)
        #expect(await call("echo", #"{"code":"x"}"#).0.error?.code == .invalidInput)
        #expect(await call("echo", #"{"code":"131016"}"#, version: 2).0.error?.code == .badRequest)
        #expect(await call("echo", #"{"code":"131016"}"#, deadlineMs: 0).0.error?.code == .timeout)
        #expect(await call("admin.only", #"{"code":"131016"}"#).0.error?.code == .forbidden)
        #expect(await call("admin.only", #"{"code":"131016"}"#, roles: ["admin"]).0.status == .ok)
        #expect(await call("conflict", #"{"code":"131016"}"#).0.error?.code == .conflict)
        #expect(await call("crash", #"{"code":"131016"}"#).0.error?.code == .internal)
        #expect(await call("db", #"{"code":"131016"}"#).0.error?.code == .unavailable)
    }

    @Test func oneParseDuplicateKeysNULAndSizes() async {
        // Duplicate keys: the checked value and the used value could differ, so neither is used.
        #expect(await call("echo", #"{"code":"131016","code":"x"}"#).0.error?.code == .badRequest)
        // NUL cannot be stored by PostgreSQL: a typed error naming the place, never `internal`.
        let nul = await call("echo", #"{"code":"131016","note":"a\u0000b"}"#).0.error
        #expect(nul?.code == .invalidInput)
        #expect(nul?.details?["violations"] == .array([.object(["path": .string("/note"), "message": .string("holds a NUL (\\u0000) character")])]))
        // An extra frame after the payload is not silently ignored.
        var envelope = RequestEnvelope(op: "echo", id: "r", principal: Principal(tenant: "t", roles: [], tokenID: nil))
        envelope.v = 1
        let reply = await dispatcher.handle([TsunaguWire.marker, envelope.encoded(), Data("{}".utf8), Data("{}".utf8)])
        #expect(try! WireCoding.decoder().decode(ReplyEnvelope.self, from: reply[1]).error?.code == .badRequest)
    }

    @Test func aReplyLargerThanTheLimitIsTooLarge() async throws {
        let logger = Logger(label: "test")
        let definition = ServiceDefinition(name: "test", version: "1", schema: "test", migrations: [], operations: [
            try .read("big", summary: "", schema: #"{"type":"object","additionalProperties":false}"#, input: JSONValue.self) { _, _ in
                JSONValue.string(String(repeating: "x", count: 5000))
            },
        ])
        let small = RequestDispatcher(definition: definition, database: pool, logger: logger, limits: .init(maxReplyBytes: 1024))
        let envelope = RequestEnvelope(op: "big", id: "r1", principal: Principal(tenant: "t", roles: [], tokenID: nil))
        let reply = await small.handle([TsunaguWire.marker, envelope.encoded(), Data("{}".utf8)])
        #expect(try WireCoding.decoder().decode(ReplyEnvelope.self, from: reply[1]).error?.code == .tooLarge)
    }

    @Test func aDefinitionReportsEveryUnboundedInput() throws {
        let definition = ServiceDefinition(name: "test", version: "1", schema: "test", migrations: [], operations: [
            try .read("loose", summary: "", schema: #"{"type":"object","additionalProperties":false,"properties":{"q":{"type":"string"}}}"#,
                      input: JSONValue.self) { _, input in input },
        ])
        #expect(definition.unboundedInputs() == ["loose /properties/q: string without maxLength"])
    }

    @Test func schemaViolationsAreListedInDetails() async {
        let error = await call("echo", #"{"code":131016}"#).0.error
        #expect(error?.details == .object(["violations": .array([
            .object(["path": .string("/code"), "message": .string("expected string, got integer")]),
        ])]))
    }

    @Test func aBodyWithoutTheEnvelopeIsABadRequest() async throws {
        let reply = await dispatcher.handle([Data("hello".utf8)])
        let envelope = try WireCoding.decoder().decode(ReplyEnvelope.self, from: reply[1])
        #expect(envelope.error?.code == .badRequest)
        let garbled = await dispatcher.handle([TsunaguWire.marker, Data("{".utf8)])
        #expect(try WireCoding.decoder().decode(ReplyEnvelope.self, from: garbled[1]).error?.code == .badRequest)
    }
}

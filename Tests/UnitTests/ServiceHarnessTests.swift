import Foundation
import JSONSchema
import ServiceRuntime
import Testing
import TsunaguTesting
import Wire

/// The test-support product: a service driven in process, its logs kept in memory.
@Suite struct ServiceHarnessTests {
    struct Note: Codable, Sendable { let text: String }

    @Test func payloadsNeverReachTheLogsEvenWhenAHandlerFails() async throws {
        struct Boom: Error {}
        let store = InMemoryLogHandler.Store()
        let definition = ServiceDefinition(name: "notes", version: "1", operations: [
            try .read("fail", summary: "", schema: #"{"type":"object","additionalProperties":false,"required":["text"],"properties":{"text":{"type":"string","maxLength":100}}}"#,
                      input: Note.self) { _, _ -> Note in throw Boom() },
        ])
        let harness = ServiceHarness(definition, logger: InMemoryLogHandler.logger(store: store))
        let (envelope, _) = try await harness.call("fail", #"{"text":"山田花子さんの相談記録"}"#)
        #expect(envelope.error?.code == .internal)
        #expect(store.records.contains { $0.level == .error && $0.message == "handler failed" })
        #expect(!store.contains("山田花子"))
    }

    @Test func aServiceWithoutADatabaseAnswersReads() async throws {
        let definition = ServiceDefinition(name: "echo", version: "1", operations: [
            try .read("echo", summary: "", schema: #"{"type":"object","additionalProperties":false,"properties":{"text":{"type":"string","maxLength":10}}}"#,
                      input: Note.self) { _, note in note },
        ])
        let harness = ServiceHarness(definition, logger: InMemoryLogHandler.logger(store: .init()))
        let (envelope, payload) = try await harness.call("echo", #"{"text":"hi"}"#)
        #expect(envelope.status == .ok && payload == .object(["text": .string("hi")]))
        #expect(definition.schema == nil)
    }
}

@Suite struct EchoShapeTests {
    struct Echo: Codable, Sendable { let n: Int? }

    @Test func anOptionalFieldRoundTrips() async throws {
        let definition = ServiceDefinition(name: "bench", version: "1", operations: [
            try .read("echo", summary: "Returns its input.",
                      schema: #"{"type":"object","additionalProperties":false,"properties":{"n":{"type":"integer","minimum":-9007199254740991,"maximum":9007199254740991}}}"#,
                      input: Echo.self) { _, input in input },
        ])
        let harness = ServiceHarness(definition, logger: InMemoryLogHandler.logger(store: .init()))
        let (envelope, payload) = try await harness.call("echo", #"{"n":1}"#)
        #expect(envelope.status == .ok && payload == .object(["n": .integer(1)]))
        let (keyed, _) = try await harness.call("echo", #"{"n":2}"#, idempotencyKey: "k", deadlineMs: 5000)
        #expect(keyed.status == .ok)
    }
}

import Foundation
import Synchronization
import JSONSchema
import ServiceRuntime
import Testing
import TsunaguClient
import TsunaguTesting
import Wire
import ZMQ

/// A client, the real gateway and a real service instance in this process (TsunaguTesting's
/// InProcessGateway), against the PostgreSQL deploy/test.sh starts (a database of its own).
let gatewayTestDatabaseURL = ProcessInfo.processInfo.environment["TSUNAGU_TEST_GATEWAY_DATABASE_URL"]

@Suite(.enabled(if: gatewayTestDatabaseURL != nil, "needs TSUNAGU_TEST_GATEWAY_DATABASE_URL (set by deploy/test.sh)"), .serialized)
struct InProcessGatewayTests {
    struct Empty: Codable, Sendable {}
    struct NeverRegistered: Error {}
    struct Caller: Codable, Sendable { let tenant: String }

    static func whoami(delay: Duration = .zero) throws -> ServiceDefinition {
        ServiceDefinition(name: "whoami", version: "1", operations: [
            try .read("whoami", summary: "The caller's tenant.", schema: #"{"type":"object","additionalProperties":false}"#,
                      input: Empty.self) { context, _ in
                if delay > .zero { try await Task.sleep(for: delay) }
                return Caller(tenant: context.principal?.tenant ?? "")
            },
        ])
    }

    /// The blocking client runs on a thread of its own, never on the cooperative pool.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    @Test func aRequestGoesThroughTheGatewayToTheServiceAndBack() async throws {
        let logs = InMemoryLogHandler.Store()
        let logger = InMemoryLogHandler.logger(store: logs)
        let system = try await InProcessGateway(databaseURL: gatewayTestDatabaseURL!, logger: logger)
        do {
            try await system.serve(try Self.whoami(), logger: logger)
            let token = try await system.gateway.issueToken(tenant: "pref-13", roles: ["prefecture_staff"])
            let endpoint = system.gateway.endpoints.client
            let reply = try await Self.onThread { () throws -> ClientReply in
                let context = try ZMQContext()
                defer { context.terminate() }
                let client = try TsunaguClient(context: context, endpoint: endpoint, token: token)
                defer { client.close() }
                // The instance registers shortly after it starts: until then, unknown_service.
                for _ in 0..<100 {
                    let reply = try client.call(service: "whoami", operation: "whoami", payload: Data("{}".utf8), timeoutMs: 5_000)
                    if reply.envelope.error?.code != .unknownService { return reply }
                    Thread.sleep(forTimeInterval: 0.05)
                }
                throw NeverRegistered()
            }
            #expect(reply.envelope.status == .ok)
            #expect(try reply.payload.map { try JSONValue.parse($0) } == .object(["tenant": .string("pref-13")]))
            #expect(!logs.contains(token))
        } catch {
            await system.stop()
            throw error
        }
        await system.stop()
    }

    @Test func aGracefulStopAnswersTheRequestsInFlight() async throws {
        let logger = InMemoryLogHandler.logger(store: .init())
        let system = try await InProcessGateway(databaseURL: gatewayTestDatabaseURL!, logger: logger)
        try await system.serve(try Self.whoami(delay: .milliseconds(400)), logger: logger)
        let token = try await system.gateway.issueToken(tenant: "pref-01", roles: ["prefecture_staff"])
        let endpoint = system.gateway.endpoints.client
        let sent = Mutex(false)
        async let reply = Self.onThread { () throws -> ClientReply? in
            let context = try ZMQContext()
            defer { context.terminate() }
            let client = try TsunaguClient(context: context, endpoint: endpoint, token: token)
            defer { client.close() }
            for _ in 0..<100 {  // until the instance is registered
                let reply = try client.call(service: "whoami", operation: "whoami", payload: Data("{}".utf8), timeoutMs: 5_000)
                if reply.envelope.error?.code != .unknownService { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            try client.send(service: "whoami", operation: "whoami", payload: Data("{}".utf8))
            sent.withLock { $0 = true }
            return try client.receive(timeoutMs: 10_000)
        }
        while !sent.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(100))  // the request is with the instance now
        await system.gateway.stop()  // the gateway alone: it drains before it closes
        let answered = try await reply
        #expect(answered?.envelope.status == .ok)
        await system.stop()
    }
}

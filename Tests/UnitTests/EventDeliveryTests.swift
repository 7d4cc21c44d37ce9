import Foundation
import Logging
@testable import ServiceRuntime
import Testing
import Wire
import ZMQ

/// The visibility rule every reader of events shares, and the worker connection's event batches:
/// handed over whole and in order with the credential, or waited for and given up after their
/// time, never dropped silently.
@Suite struct EventDeliveryTests {
    @Test func visibilityByTenantAndTypePrefix() {
        let osakaMeetings = EventPermissions(tenants: ["270008"], types: ["jp.tsunagu.meetings."])
        #expect(osakaMeetings.visible(tenant: "270008", type: "jp.tsunagu.meetings.meeting.held"))
        #expect(!osakaMeetings.visible(tenant: "270008", type: "jp.tsunagu.registry.resource.created"))
        #expect(!osakaMeetings.visible(tenant: "130001", type: "jp.tsunagu.meetings.meeting.held"))
        let everything = EventPermissions(tenants: ["*"], types: [])
        #expect(everything.visible(tenant: "130001", type: "anything"))
        let wholeType = EventPermissions(tenants: ["*"], types: ["jp.tsunagu.registry.resource.retired"])
        #expect(wholeType.visible(tenant: "011002", type: "jp.tsunagu.registry.resource.retired"))
        #expect(!wholeType.visible(tenant: "011002", type: "jp.tsunagu.registry.resource.created"))
        #expect(!EventPermissions(tenants: [], types: []).visible(tenant: "130001", type: "x"))
    }

    @Test func theDefaultRuleIsEveryEventForNationalAndTheOwnTenantOtherwise() {
        let national = Principal(tenant: "national", roles: ["staff"], tokenID: nil)
        #expect(national.eventPermissions == EventPermissions(tenants: ["*"], types: []))
        let tokyo = Principal(tenant: "130001", roles: ["admin"], tokenID: nil)
        #expect(tokyo.eventPermissions == EventPermissions(tenants: ["130001"], types: []))
        #expect(tokyo.eventPermissions.visible(tenant: "130001", type: "jp.tsunagu.registry.resource.created"))
        #expect(!tokyo.eventPermissions.visible(tenant: "270008", type: "jp.tsunagu.registry.resource.created"))
    }

    private func connection(_ context: ZMQContext, events endpoint: String) throws -> WorkerConnection {
        try WorkerConnection(
            settings: .init(endpoint: "inproc://nobody-\(UUID().uuidString)", service: "t", manifest: nil,
                            heartbeatInterval: .milliseconds(100), drainTimeout: .milliseconds(10),
                            eventsEndpoint: endpoint, credential: "service-credential"),
            context: context, logger: Logger(label: "test")) { _, _ in }
    }

    @Test func aBatchReachesTheGatewayWholeInOrderWithTheCredential() async throws {
        let context = try ZMQContext()
        let endpoint = "inproc://events-\(UUID().uuidString)"
        let pull = try context.socket(.pull)
        try pull.bind(endpoint)
        let worker = try connection(context, events: endpoint)
        worker.start()
        let batch = (1...3).map { [Data("topic/\($0)".utf8), Data("{\"sequence\":\($0)}".utf8)] }
        #expect(await worker.publish(batch, within: .seconds(5)) == 3)
        for expected in batch {
            #expect(try pull.receive() == expected + [Data("service-credential".utf8)])
        }
        #expect(await worker.publish([], within: .seconds(1)) == 0)
        await worker.stopAndWait()
        try pull.close()
        context.terminate()
    }

    @Test func aBatchNobodyTakesIsGivenUpAfterItsTimeNotDropped() async throws {
        let context = try ZMQContext()
        // An endpoint nobody listens on (inproc queues for a binder still to come). A unique IPC
        // path, not a TCP port found free, which another process may take meanwhile.
        let endpoint = "ipc://\(FileManager.default.temporaryDirectory.path)/tsunagu-events-\(UUID().uuidString).sock"
        let worker = try connection(context, events: endpoint)  // no gateway: the socket takes nothing
        worker.start()
        #expect(await worker.publish([[Data("t".utf8), Data("{}".utf8)]], within: .milliseconds(200)) == 0)
        // Once a gateway is there, the same batch goes through (the publisher sends it again).
        let pull = try context.socket(.pull)
        try pull.bind(endpoint)
        #expect(await worker.publish([[Data("t".utf8), Data("{}".utf8)]], within: .seconds(5)) == 1)
        #expect(try pull.receive().count == 3)
        await worker.stopAndWait()
        #expect(await worker.publish([[Data("t".utf8)]], within: .seconds(1)) == 0)  // the loop has ended
        try pull.close()
        context.terminate()
        try? FileManager.default.removeItem(atPath: String(endpoint.dropFirst("ipc://".count)))
    }
}

/// The publisher's sleep ends when a write of the instance commits.
@Suite struct EventNudgeTests {
    @Test(.timeLimit(.minutes(1))) func aNudgeEndsTheSleepOrTheNextOneAtOnce() async {
        let nudge = EventNudge()
        nudge.nudge()
        #expect(await nudge.sleep(for: .seconds(3600)))  // nudged before it slept: returns at once
        let sleeping = Task { await nudge.sleep(for: .seconds(3600)) }
        nudge.nudge()  // before that sleep begins (kept for it) or during it (ends it)
        #expect(await sleeping.value)
        // A sleep nobody nudged says so (a standing-by publisher then relays nothing).
        #expect(await nudge.sleep(for: .milliseconds(10)) == false)
    }
}

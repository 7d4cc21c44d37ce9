import ArgumentParser
import Foundation
import Logging
import ServiceRuntime
import Wire
import ZMQ

/// tsunagu-bench: measures requests through the gateway against the same traffic over bare libzmq
/// sockets through a minimal forwarder. deploy/bench.sh runs the whole comparison.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tsunagu-bench",
        abstract: "Gateway throughput and latency against a bare libzmq baseline.",
        subcommands: [EchoWorker.self, MinimalWorker.self, Forwarder.self, BareWorker.self, Load.self]
    )
}

/// A Tsunagu service `bench` built on the same runtime pieces as every service (WorkerConnection +
/// RequestDispatcher) with no database work in the handler: `echo` is an `.inline` operation
/// (answered on the connection's thread), `echo_task` the same handler as a `.read` (in a task).
struct EchoWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "echo-worker")
    @Option var endpoint = "tcp://127.0.0.1:5556"
    @Option var concurrency = 256

    struct Echo: Codable, Sendable { let n: Int? }

    func run() throws {
        LoggingBootstrap.bootstrap(level: "warning")
        let logger = Logger(label: "bench.worker")
        let schema = #"{"type":"object","additionalProperties":false,"properties":{"n":{"type":"integer","minimum":-9007199254740991,"maximum":9007199254740991}}}"#
        let definition = ServiceDefinition(name: "bench", version: "1", operations: [
            // The same handler both ways: answered on the connection's thread, or in a task.
            try .inline("echo", summary: "Returns its input.", schema: schema, input: Echo.self) { _, input in input },
            try .read("echo_task", summary: "Returns its input.", schema: schema, input: Echo.self) { _, input in input },
        ])
        let context = try ZMQContext()
        _ = try ServiceRunner.serve(definition, database: nil, context: context, endpoint: endpoint,
                                    heartbeatInterval: .seconds(1), concurrency: concurrency, logger: logger,
                                    credential: ProcessInfo.processInfo.environment["TSUNAGU_SERVICE_TOKEN"])
        while true { sleep(3600) }
    }
}

/// A Tsunagu worker that does as little as a worker can: it announces a manifest (so the gateway
/// does all its envelope work: token, principal, deadline) and answers every request with its
/// payload and a fixed reply envelope. Behind the gateway it isolates the gateway's own cost.
struct MinimalWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "minimal-worker")
    @Option var endpoint = "tcp://127.0.0.1:5556"
    @Option var service = "minimal"

    func run() throws {
        let context = try ZMQContext()
        let socket = try benchSocket(context, .dealer, connect: endpoint)
        let manifest = try WireCoding.encoder().encode(Manifest(service: service, version: "1", concurrency: 100_000, operations: [
            .init(name: "echo", summary: "Returns its input.", input: .object([:]), readOnly: true),
        ]))
        let credential = ProcessInfo.processInfo.environment["TSUNAGU_SERVICE_TOKEN"] ?? ""
        try socket.send([Data(), MDP.workerHeader, MDP.Command.ready.frame, Data(service.utf8), manifest, Data(credential.utf8)])
        let okEnvelope = ReplyEnvelope(id: "", status: .ok).encoded()
        var heartbeatAt = ContinuousClock.now + .seconds(1)
        while true {
            if try zmqPoll([.socket(socket)], timeoutMs: 200)[0] {
                while let frames = try socket.receiveIfReady() {
                    // [empty, MDPW01, REQUEST, address, empty, marker, envelope, payload]
                    guard frames.count >= 8, frames[2] == MDP.Command.request.frame else { continue }
                    try socket.send([Data(), MDP.workerHeader, MDP.Command.reply.frame, frames[3], Data(),
                                     TsunaguWire.marker, okEnvelope, frames[7]])
                }
            }
            if ContinuousClock.now >= heartbeatAt {
                try socket.send([Data(), MDP.workerHeader, MDP.Command.heartbeat.frame])
                heartbeatAt = ContinuousClock.now + .seconds(1)
            }
        }
    }
}

/// The baseline's middle: ROUTER in front, DEALER behind, frames passed through untouched.
struct Forwarder: ParsableCommand {
    @Option var front = "tcp://127.0.0.1:5655"
    @Option var back = "tcp://127.0.0.1:5656"

    func run() throws {
        let context = try ZMQContext()
        let frontend = try benchSocket(context, .router, bind: front)
        let backend = try benchSocket(context, .dealer, bind: back)
        while true {
            let ready = try zmqPoll([.socket(frontend), .socket(backend)], timeoutMs: -1)
            if ready[0] { while let frames = try frontend.receiveIfReady() { try backend.send(frames) } }
            if ready[1] { while let frames = try backend.receiveIfReady() { try frontend.send(frames) } }
        }
    }
}

/// The baseline's worker: echoes every message (routing frames included) back.
struct BareWorker: ParsableCommand {
    @Option var endpoint = "tcp://127.0.0.1:5656"

    func run() throws {
        let context = try ZMQContext()
        let socket = try benchSocket(context, .dealer, connect: endpoint)
        while true { try socket.send(try socket.receive()) }
    }
}

/// Keeps `inflight` requests outstanding for `seconds` (at most `requests` in all), then waits for
/// the last answers; prints one result line.
struct Load: ParsableCommand {
    enum Mode: String, ExpressibleByArgument { case gateway, bare }

    @Option var mode: Mode
    @Option var endpoint: String
    @Option(help: "Service to call through the gateway.") var service = "bench"
    @Option(help: "Operation to call through the gateway.") var operation = "echo"
    @Option(name: .customLong("payload-file"), help: "JSON lines, sent in turn (gateway mode); replies are matched by request id.")
    var payloadFile: String?
    @Option(help: "Name of this row in the output.") var label: String?
    @Option var inflight = 1
    @Option var requests = 2_000_000
    @Option(help: "How long to keep sending.") var seconds = 3.0
    @Option var token = ProcessInfo.processInfo.environment["TSUNAGU_TOKEN"] ?? ""

    func run() throws {
        let context = try ZMQContext()
        let socket = try benchSocket(context, .dealer, connect: endpoint)
        defer { try? socket.close() }

        let clock = ContinuousClock()
        var sentAt = [ContinuousClock.Instant?](repeating: nil, count: requests)
        var latencies: [Double] = []
        latencies.reserveCapacity(requests)
        var sent = 0, answered = 0, errors = 0
        let tokenJSON = String(decoding: try JSONEncoder().encode(token), as: UTF8.self)

        let serviceFrame = Data(service.utf8)
        let envelopeTail = Data(#"","deadline_ms":30000,"token":\#(tokenJSON)}"#.utf8)
        let opJSON = String(decoding: try JSONEncoder().encode(operation), as: UTF8.self)
        var payloads: [Data] = []
        if let payloadFile {
            guard let text = try? String(contentsOfFile: payloadFile, encoding: .utf8) else {
                throw ValidationError("cannot read \(payloadFile)")
            }
            payloads = text.split(separator: "\n").map { Data($0.utf8) }
            guard !payloads.isEmpty else { throw ValidationError("\(payloadFile) has no payloads") }
        }

        // Frames are built by hand so the client's own JSON cost does not cap the measurement.
        // Every reply carries the payload {"n":N} back; N matches it to its request in both modes.
        func send(_ n: Int) throws {
            sentAt[n] = clock.now
            let payload = payloads.isEmpty ? Data(#"{"n":\#(n)}"#.utf8) : payloads[n % payloads.count]
            switch mode {
            case .gateway:
                var envelope = Data(#"{"v":1,"op":\#(opJSON),"id":"\#(n)"#.utf8)
                envelope.append(envelopeTail)
                try socket.send([Data(), MDP.clientHeader, serviceFrame, TsunaguWire.marker, envelope, payload])
            case .bare:
                try socket.send([Data(), payload])
            }
        }

        func requestNumber(_ frames: [Data]) -> Int? {
            let payload: Data
            switch mode {
            case .gateway:
                // [empty, MDPC01, service, TSUNAGU/1, envelope, payload]
                guard frames.count >= 6 else {
                    errors += 1
                    return nil
                }
                if !payloads.isEmpty {
                    // The reply envelope is {"id":"N",...}: N is the request number.
                    let envelope = frames[4]
                    guard let start = envelope.range(of: Data(#""id":""#.utf8))?.upperBound,
                          let end = envelope[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                    return Int(String(decoding: envelope[start..<end], as: UTF8.self))
                }
                payload = frames[5]
            case .bare:
                guard frames.count >= 2 else { return nil }
                payload = frames[1]
            }
            // {"n":N}
            guard payload.count > 6 else { return nil }
            return Int(String(decoding: payload.dropFirst(5).dropLast(), as: UTF8.self))
        }

        let started = clock.now
        let stopSending = started + .milliseconds(Int(seconds * 1000))
        let giveUp = stopSending + .seconds(60)
        while sent < min(inflight, requests) { try send(sent); sent += 1 }
        while answered < sent && clock.now < giveUp {
            guard try zmqPoll([.socket(socket)], timeoutMs: 1000)[0] else { continue }
            while let frames = try socket.receiveIfReady() {
                let now = clock.now
                if let n = requestNumber(frames), n < requests, let at = sentAt[n] {
                    latencies.append(Double((now - at).components.attoseconds) / 1e12 + Double((now - at).components.seconds) * 1e6)
                    sentAt[n] = nil
                }
                answered += 1
                if sent < requests && now < stopSending { try send(sent); sent += 1 }
            }
        }
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        latencies.sort()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
        let throughput = Double(answered) / seconds
        print(String(format: "%@ inflight=%d requests=%d answered=%d errors=%d throughput=%.0f p50_us=%.0f p99_us=%.0f",
                     label ?? mode.rawValue, inflight, sent, answered, errors, throughput, percentile(0.5), percentile(0.99)))
        if answered < sent || errors > 0 { throw ExitCode(1) }
    }
}

/// A socket as every benchmark process uses it: no linger, deep queues. The processes run until
/// killed, so their sockets are never closed.
func benchSocket(_ context: ZMQContext, _ kind: ZMQSocketKind, connect: String? = nil, bind: String? = nil) throws -> ZMQSocket {
    let socket = try context.socket(kind)
    try socket.setLinger(milliseconds: 0)
    try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
    if let connect { try socket.connect(connect) }
    if let bind { try socket.bind(bind) }
    return socket
}

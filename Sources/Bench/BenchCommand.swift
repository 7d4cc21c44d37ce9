import ArgumentParser
import Foundation
import Logging
import Postgres
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
        subcommands: [EchoWorker.self, Forwarder.self, BareWorker.self, Load.self]
    )
}

/// A Tsunagu service `bench` with one operation, `echo`, built on the same runtime pieces as every
/// service (WorkerConnection + RequestDispatcher) but with no database work in the handler.
struct EchoWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "echo-worker")
    @Option var endpoint = "tcp://127.0.0.1:5556"
    @Option var concurrency = 256

    struct Echo: Codable, Sendable { let n: Int? }

    func run() throws {
        LoggingBootstrap.bootstrap(level: "warning")
        let logger = Logger(label: "bench.worker")
        let definition = ServiceDefinition(name: "bench", version: "1", schema: "bench", migrations: [], operations: [
            try ServiceOperation("echo", summary: "Returns its input.", schema: #"{"type":"object"}"#, input: Echo.self) { _, input in input },
        ])
        // The pool connects lazily; the echo handler never asks it for a connection.
        let pool = PostgresPool(.init(conninfo: "postgresql://unused@127.0.0.1:1/unused", size: 1), logger: logger)
        let context = try ZMQContext()
        _ = try ServiceRunner.serve(definition, database: pool, context: context, endpoint: endpoint,
                                    heartbeatInterval: .seconds(1), concurrency: concurrency, logger: logger)
        while true { sleep(3600) }
    }
}

/// The baseline's middle: ROUTER in front, DEALER behind, frames passed through untouched.
struct Forwarder: ParsableCommand {
    @Option var front = "tcp://127.0.0.1:5655"
    @Option var back = "tcp://127.0.0.1:5656"

    func run() throws {
        let context = try ZMQContext()
        let frontend = try context.socket(.router)
        let backend = try context.socket(.dealer)
        for socket in [frontend, backend] {
            try socket.setLinger(milliseconds: 0)
            try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
        }
        try frontend.bind(front)
        try backend.bind(back)
        while true {
            let ready = try zmqPoll([.socket(frontend), .socket(backend)], timeoutMs: -1)
            if ready[0] { while try frontend.hasIncoming() { try backend.send(try frontend.receive(dontWait: true)) } }
            if ready[1] { while try backend.hasIncoming() { try frontend.send(try backend.receive(dontWait: true)) } }
        }
    }
}

/// The baseline's worker: echoes every message (routing frames included) back.
struct BareWorker: ParsableCommand {
    @Option var endpoint = "tcp://127.0.0.1:5656"

    func run() throws {
        let context = try ZMQContext()
        let socket = try context.socket(.dealer)
        try socket.setLinger(milliseconds: 0)
        try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
        try socket.connect(endpoint)
        while true { try socket.send(try socket.receive()) }
    }
}

/// Keeps `inflight` requests outstanding until `requests` are answered; prints one result line.
struct Load: ParsableCommand {
    enum Mode: String, ExpressibleByArgument { case gateway, bare }

    @Option var mode: Mode
    @Option var endpoint: String
    @Option var inflight = 1
    @Option var requests = 20_000
    @Option var token = ProcessInfo.processInfo.environment["TSUNAGU_TOKEN"] ?? ""

    func run() throws {
        let context = try ZMQContext()
        let socket = try context.socket(.dealer)
        try socket.setLinger(milliseconds: 0)
        try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
        try socket.connect(endpoint)
        defer { try? socket.close() }

        let payload = Data(#"{"n":1}"#.utf8)
        let clock = ContinuousClock()
        var sentAt = [ContinuousClock.Instant?](repeating: nil, count: requests)
        var latencies: [Double] = []
        latencies.reserveCapacity(requests)
        var sent = 0, answered = 0, errors = 0
        let tokenJSON = String(decoding: try JSONEncoder().encode(token), as: UTF8.self)

        func send(_ n: Int) throws {
            sentAt[n] = clock.now
            switch mode {
            case .gateway:
                // Built by hand so the client's own JSON cost does not cap the measurement.
                let envelope = Data(#"{"v":1,"op":"echo","id":"\#(n)","deadline_ms":30000,"token":\#(tokenJSON)}"#.utf8)
                try socket.send([Data(), MDP.clientHeader, Data("bench".utf8), TsunaguWire.marker, envelope, payload])
            case .bare:
                var big = UInt64(n).bigEndian
                try socket.send([Data(), Data(bytes: &big, count: 8), payload])
            }
        }

        func requestNumber(_ frames: [Data]) -> Int? {
            switch mode {
            case .gateway:
                // [empty, MDPC01, service, TSUNAGU/1, envelope, payload]; the envelope begins {"id":"N",...
                guard frames.count >= 5 else { return nil }
                let envelope = frames[4]
                if envelope.range(of: Data(#""status":"error""#.utf8)) != nil { errors += 1 }
                guard let start = envelope.range(of: Data(#""id":""#.utf8))?.upperBound,
                      let end = envelope[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                return Int(String(decoding: envelope[start..<end], as: UTF8.self))
            case .bare:
                guard frames.count >= 2, frames[1].count == 8 else { return nil }
                return Int(UInt64(bigEndian: frames[1].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
            }
        }

        let started = clock.now
        let giveUp = started + .seconds(120)
        while sent < min(inflight, requests) { try send(sent); sent += 1 }
        while answered < requests && clock.now < giveUp {
            guard try zmqPoll([.socket(socket)], timeoutMs: 1000)[0] else { continue }
            while try socket.hasIncoming() {
                let frames = try socket.receive(dontWait: true)
                let now = clock.now
                if let n = requestNumber(frames), n < requests, let at = sentAt[n] {
                    latencies.append(Double((now - at).components.attoseconds) / 1e12 + Double((now - at).components.seconds) * 1e6)
                    sentAt[n] = nil
                }
                answered += 1
                if sent < requests { try send(sent); sent += 1 }
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
                     mode.rawValue, inflight, requests, answered, errors, throughput, percentile(0.5), percentile(0.99)))
        if answered < requests || errors > 0 { throw ExitCode(1) }
    }
}

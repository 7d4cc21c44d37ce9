import Foundation

/// Settings shared by every Tsunagu process, read from the environment and, below it, from an
/// optional file of `KEY=VALUE` lines named by `TSUNAGU_CONFIG_FILE`. The environment wins.
/// Every key, its default and meaning is listed in docs/configuration.md.
public struct Configuration: Sendable {
    public var values: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) {
        var values: [String: String] = [:]
        if let path = environment["TSUNAGU_CONFIG_FILE"], !path.isEmpty {
            values = try Self.readFile(path)
        }
        for (key, value) in environment where key.hasPrefix("TSUNAGU_") { values[key] = value }
        self.values = values
    }

    static func readFile(_ path: String) throws(ConfigurationError) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError(key: "TSUNAGU_CONFIG_FILE", message: "cannot read \(path)")
        }
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError(key: "TSUNAGU_CONFIG_FILE", message: "\(path):\(number + 1): expected KEY=VALUE")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        return values
    }

    public func string(_ key: String, default value: String) -> String {
        values[key].flatMap { $0.isEmpty ? nil : $0 } ?? value
    }

    public func optionalString(_ key: String) -> String? {
        values[key].flatMap { $0.isEmpty ? nil : $0 }
    }

    public func int(_ key: String, default value: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let text = optionalString(key) else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw ConfigurationError(key: key, message: "must be a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    public func list(_ key: String) -> [String] {
        (optionalString(key) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    // The settings every process reads, with their defaults in one place.

    /// Where clients reach the gateway.
    public var clientEndpoint: String { string("TSUNAGU_CLIENT_ENDPOINT", default: "tcp://127.0.0.1:5555") }
    /// Where workers reach the gateway.
    public var workerEndpoint: String { string("TSUNAGU_WORKER_ENDPOINT", default: "tcp://127.0.0.1:5556") }
    /// Where services push their events to the gateway (keep it as private as the worker endpoint).
    public var eventsInEndpoint: String { string("TSUNAGU_EVENTS_IN_ENDPOINT", default: "tcp://127.0.0.1:5557") }
    /// Where subscribers receive events from the gateway (ZeroMQ SUB).
    public var eventsOutEndpoint: String { string("TSUNAGU_EVENTS_OUT_ENDPOINT", default: "tcp://127.0.0.1:5558") }
    /// The gateway's CURVE secret key (Z85, 40 characters): when set, every gateway endpoint
    /// encrypts and authenticates with CURVE. Read by the gateway only.
    public func gatewayCurveSecretKey() throws(ConfigurationError) -> String? {
        try curveKey("TSUNAGU_GATEWAY_CURVE_SECRET_KEY")
    }
    /// The gateway's CURVE public key: services and clients that have it connect with CURVE.
    public func gatewayCurvePublicKey() throws(ConfigurationError) -> String? {
        try curveKey("TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY")
    }

    private func curveKey(_ key: String) throws(ConfigurationError) -> String? {
        guard let value = optionalString(key) else { return nil }
        guard value.count == 40 else { throw ConfigurationError(key: key, message: "must be a 40-character Z85 key (tsunagu keys)") }
        return value
    }

    public var databaseURL: String {
        string("TSUNAGU_DATABASE_URL", default: "postgresql://tsunagu@127.0.0.1:5432/tsunagu")
    }
    public func heartbeatInterval() throws(ConfigurationError) -> Duration {
        .milliseconds(try int("TSUNAGU_HEARTBEAT_MS", default: 2500, range: 50...60_000))
    }
    public func databasePoolSize() throws(ConfigurationError) -> Int {
        try int("TSUNAGU_DB_POOL_SIZE", default: 4, range: 1...64)
    }
    public var logLevel: String { string("TSUNAGU_LOG_LEVEL", default: "info") }
}

public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let key: String
    public let message: String
    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { "configuration \(key): \(message)" }
}

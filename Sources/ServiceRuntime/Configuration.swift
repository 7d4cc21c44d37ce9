import Foundation
import Postgres
import ZMQ

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

    /// This process's own CURVE key pair (a service's or a client's), from its secret key
    /// `TSUNAGU_CURVE_SECRET_KEY`; nil makes a throwaway pair per socket (fine for clients; a
    /// service behind an allow-list needs its own).
    public func curveKeyPair() throws(ConfigurationError) -> ZMQCurveKeyPair? {
        guard let secret = try curveKey("TSUNAGU_CURVE_SECRET_KEY") else { return nil }
        do { return try ZMQCurveKeyPair(secretKey: secret) } catch {
            throw ConfigurationError(key: "TSUNAGU_CURVE_SECRET_KEY", message: "is not a valid Z85 secret key")
        }
    }

    /// The public keys that may connect to the gateway's service endpoints (worker, events-in),
    /// from `TSUNAGU_CURVE_ALLOWED_KEYS` (comma-separated) and `TSUNAGU_CURVE_ALLOWED_KEYS_FILE`
    /// (one key per line; lines starting with `#` are comments); nil when neither is set. Read by
    /// the gateway only.
    public func curveAllowedKeys() throws(ConfigurationError) -> Set<String>? {
        var keys = Set(list("TSUNAGU_CURVE_ALLOWED_KEYS"))
        let fileKey = "TSUNAGU_CURVE_ALLOWED_KEYS_FILE"
        if let path = optionalString(fileKey) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(key: fileKey, message: "cannot read \(path)")
            }
            // `#` is also a Z85 digit: a line of exactly one 40-character word is a key (even if it
            // starts with `#`), any other line starting with `#` a comment.
            for line in text.split(separator: "\n") {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty || (trimmed.hasPrefix("#") && (trimmed.utf8.count != 40 || trimmed.contains(" "))) { continue }
                keys.insert(trimmed)
            }
        } else if optionalString("TSUNAGU_CURVE_ALLOWED_KEYS") == nil {
            return nil
        }
        if let bad = keys.first(where: { $0.utf8.count != 40 }) {
            throw ConfigurationError(key: "TSUNAGU_CURVE_ALLOWED_KEYS", message: "\(bad.prefix(8))… is not a 40-character Z85 public key")
        }
        return keys
    }

    /// The credential the operator issued for this service (`tsunagu token create --service NAME`);
    /// the gateway registers no instance without it.
    public var serviceToken: String? { optionalString("TSUNAGU_SERVICE_TOKEN") }

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
    /// The pool settings: size, how many jobs may wait for a connection, and for how long.
    public func databasePool() throws(ConfigurationError) -> PostgresPool.Configuration {
        .init(conninfo: databaseURL, size: try databasePoolSize(),
              maxWaiting: try int("TSUNAGU_DB_MAX_WAITING", default: 1000, range: 1...1_000_000),
              waitTimeout: .milliseconds(try int("TSUNAGU_DB_WAIT_TIMEOUT_MS", default: 10_000, range: 1...600_000)))
    }
    /// The largest message (request or reply payload) in bytes.
    public func maxMessageBytes() throws(ConfigurationError) -> Int {
        try int("TSUNAGU_MAX_MESSAGE_BYTES", default: 1_048_576, range: 1024...268_435_456)
    }
    /// The largest reply payload a service sends, in bytes.
    public func maxReplyBytes() throws(ConfigurationError) -> Int {
        try int("TSUNAGU_MAX_REPLY_BYTES", default: 16_777_216, range: 1024...268_435_456)
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

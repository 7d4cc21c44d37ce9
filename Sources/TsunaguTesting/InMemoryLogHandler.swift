import Foundation
import Logging

/// A log handler that keeps every record in memory, for tests that check what was logged (and,
/// as important here, what was not: payloads and personal data never reach a log line).
/// - Note: `Sendable`: records are kept under a lock.
public struct InMemoryLogHandler: LogHandler {
    public struct Record: Sendable {
        public let level: Logger.Level
        public let message: String
        public let metadata: Logger.Metadata
        public let label: String

        /// The message and every metadata value as one string, for "does this text appear" checks.
        public var text: String {
            ([message] + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: " ")
        }
    }

    /// The records of one or more loggers; read them after the work under test.
    public final class Store: @unchecked Sendable {
        // Guarded by `lock`.
        private let lock = NSLock()
        private var kept: [Record] = []

        public init() {}

        public var records: [Record] { lock.withLock { kept } }

        func append(_ record: Record) { lock.withLock { kept.append(record) } }

        /// True when `text` appears in any record's message or metadata.
        public func contains(_ text: String) -> Bool { records.contains { $0.text.contains(text) } }
    }

    public let store: Store
    public var logLevel: Logger.Level = .trace
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String, store: Store) {
        self.label = label
        self.store = store
    }

    /// A logger whose records go to `store`.
    public static func logger(label: String = "test", store: Store) -> Logger {
        Logger(label: label) { InMemoryLogHandler(label: $0, store: store) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        store.append(Record(level: event.level, message: "\(event.message)", metadata: merged, label: label))
    }
}

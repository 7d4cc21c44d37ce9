import Foundation
import Logging

/// Metadata keys used across the suite, defined once.
public enum LogKey {
    public static let requestID = "request.id"
    public static let service = "service.name"
    public static let operation = "service.operation"
    public static let worker = "worker.id"
    public static let errorCode = "error.code"
}

public enum LoggingBootstrap {
    /// Sends logs to stderr at the configured level. Call once, first thing in `main`.
    public static func bootstrap(level: String) {
        let parsed = Logger.Level(rawValue: level.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
    }
}

import Logging
import Postgres
import Wire

/// The one error protocol of every Tsunagu process (the dispatcher of each service and the
/// gateway's own operations): an error that knows its wire code (`WireErrorConvertible`) says
/// so; a value that did not decode into the operation's input type is `invalid_input`; anything
/// else is `internal` plus one log line. Payloads are never logged (they may hold personal data):
/// the line names the error's type and, for database errors, the SQLSTATE only.
public enum ErrorProtocol {
    public static func wireError(for error: any Error, requestID: String, operation: String, logger: Logger) -> WireError {
        let metadata: Logger.Metadata = [LogKey.requestID: "\(requestID)", LogKey.operation: "\(operation)"]
        if let known = error as? any WireErrorConvertible {
            let wire = known.wireError
            if let postgres = error as? PostgresError, postgres.isConnectivity {
                logger.warning("database unavailable", metadata: metadata.merging(["db.error": "\(postgres)"]) { $1 })
            } else {
                logger.debug("request failed", metadata: metadata.merging([LogKey.errorCode: "\(wire.code.rawValue)"]) { $1 })
            }
            if wire.code != .internal { return wire }
        }
        if error is DecodingError {
            return WireError(.invalidInput, "the input does not have the expected shape (or a number is out of range)")
        }
        logger.error("handler failed", metadata: metadata.merging(["error.type": "\(type(of: error))", "error": "\(error)"]) { $1 })
        return WireError(.internal, "internal error; quote request id \(requestID)")
    }
}

extension Principal {
    /// Throws `forbidden` unless this principal holds one of `roles` (empty: any principal), as
    /// every operation's declared roles are checked before its handler runs.
    public func requireOneOf(_ roles: [String], for operation: String) throws(WireError) {
        guard roles.isEmpty || roles.contains(where: hasRole) else {
            throw WireError(.forbidden, "\(operation) needs one of the roles \(roles.joined(separator: ", "))")
        }
    }
}

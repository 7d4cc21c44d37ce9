import Foundation
import JSONSchema

/// The error codes a client can act on. Stable strings on the wire; see docs/protocol.md.
public enum ErrorCode: String, Sendable, Codable, CaseIterable {
    /// The message is not the protocol, or the envelope is malformed. Fix the client.
    case badRequest = "bad_request"
    /// The body is JSON but breaks the operation's input schema; `details` lists each violation.
    case invalidInput = "invalid_input"
    /// No token, or a token that is unknown or revoked.
    case unauthorized
    /// The token is valid but its roles or tenant do not allow this.
    case forbidden
    case notFound = "not_found"
    /// No service of that name has ever been announced to this gateway.
    case unknownService = "unknown_service"
    /// The service exists but has no such operation.
    case unknownOperation = "unknown_operation"
    /// The state changed under the caller (stale version, duplicate key).
    case conflict
    /// The message is larger than the gateway accepts.
    case tooLarge = "too_large"
    /// No instance can take the request now (none up, database down). Retry later.
    case unavailable
    /// The deadline passed before an answer came.
    case timeout
    /// A bug or an unexpected failure; the server logged it under the request id.
    case `internal`
}

/// An error as it travels in a reply envelope.
/// - Note: `Sendable`; a value type.
public struct WireError: Error, Sendable, Codable, Equatable {
    public let code: ErrorCode
    public let message: String
    public let details: JSONValue?

    public init(_ code: ErrorCode, _ message: String, details: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }
}

extension WireError {
    /// `invalid_input` listing each place the input is wrong, as `details.violations`
    /// (`[{"path": JSON Pointer, "message": ...}]`): the one shape clients parse.
    public static func invalidInput(_ message: String, violations: [JSONSchemaViolation]) -> WireError {
        WireError(.invalidInput, message, details: .object(["violations": .array(violations.map {
            .object(["path": .string($0.path), "message": .string($0.message)])
        })]))
    }
}

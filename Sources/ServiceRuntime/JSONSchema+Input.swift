import Foundation
import JSONSchema
import Wire

extension JSONSchema {
    /// An operation's payload as every operation takes it, the gateway's own included: parsed once
    /// (an empty body is `{}`; duplicate keys are refused), checked against this schema, and free
    /// of NUL characters — or the typed error a client gets (`bad_request`, `invalid_input`).
    public func checkedInput(_ payload: Data, operation: String) throws(WireError) -> JSONValue {
        let input: JSONValue
        do {
            input = try JSONValue.parse(payload.isEmpty ? Data("{}".utf8) : payload)
        } catch {
            throw WireError(.badRequest, "the body is not valid JSON (\(error.message))")
        }
        let violations = violations(of: input)
        if !violations.isEmpty {
            throw WireError.invalidInput("the input breaks the schema of \(operation)", violations: violations)
        }
        if input.containsNUL, let place = input.firstNULPlace() {
            throw WireError.invalidInput("text may not hold NUL characters",
                                         violations: [.init(path: place, message: "holds a NUL (\\u0000) character")])
        }
        return input
    }
}

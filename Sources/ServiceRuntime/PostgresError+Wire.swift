import Postgres
import Wire

/// What a client is told when the database refused or could not do the work. Input that
/// PostgreSQL cannot store (data exceptions, values too large for an index) is the caller's to
/// fix; a lost connection, a full pool or a serialisation failure is worth a retry; a statement
/// cut off by the request's deadline changed nothing. Anything else is a bug: `internal`.
extension PostgresError: WireErrorConvertible {
    public var wireError: WireError {
        if isConnectivity { return WireError(.unavailable, "the database is unavailable; retry later") }
        if code == .invalidValue { return WireError(.invalidInput, "text may not hold NUL characters") }
        if code == .poolBusy { return WireError(.unavailable, "this instance has too much database work queued; retry later") }
        if code == .waitTimedOut {
            return WireError(.timeout, "no database connection became free before the deadline; nothing was changed")
        }
        switch sqlState {
        case "23505"?: return WireError(.conflict, "a record with the same key exists")
        case "23503"?, "23514"?: return WireError(.invalidInput, "the input refers to something that does not exist or breaks a rule of the data")
        case "57014"?: return WireError(.timeout, "the deadline passed while the database was working; nothing was changed")
        case "40001"?, "40P01"?: return WireError(.unavailable, "the change collided with another one; retry")
        case let state? where state.hasPrefix("22"):
            return WireError(.invalidInput, "a value cannot be stored (out of range, or text the database cannot hold)")
        case let state? where state.hasPrefix("54"):
            return WireError(.invalidInput, "a value is too large for the database (for example, too long to index)")
        default: return WireError(.internal, "internal error")
        }
    }
}

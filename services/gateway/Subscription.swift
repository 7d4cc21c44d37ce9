import Foundation
import Wire

/// One subscriber of the events-out endpoint (one DEALER connection) that SUBSCRIBEd with a
/// valid token. A value inside `EventStreams.subscriptions`, mutated in place.
struct Subscription {
    let identity: Data
    /// What the subscriber's principal may see (`Principal.eventPermissions`).
    let permissions: EventPermissions
    /// Id of the token it subscribed with: revoking that token ends the subscription.
    let tokenID: String?
    /// The token itself, kept to check it again every `recheckInterval` (revoked on another
    /// gateway, it ends here within that time too). Never logged.
    let token: String
    let streams: Set<String>
    /// Per stream, sequences seen one after another that this subscriber may not see and has
    /// not been told about yet (sent as WITHHELD before its next EVENT of that stream, or heartbeat).
    var withheld: [String: ClosedRange<Int64>] = [:]
    /// Forgotten after this unless it sends something (PING).
    var expiry: ContinuousClock.Instant
    /// When its token is next checked again.
    var recheckAt: ContinuousClock.Instant
    /// Messages not sent to it since the last heartbeat because its queue was full.
    var dropped = 0
}

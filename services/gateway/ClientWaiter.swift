import Foundation

/// Work waiting for a client token to be looked up: a request, or a subscriber.
enum ClientWaiter {
    case request(AuthWaiter)
    case subscription(SubscriptionWaiter)
}

/// A subscriber waiting for its token to be looked up.
enum SubscriptionWaiter {
    /// A SUBSCRIBE; `attempt` tells it from a later SUBSCRIBE (or UNSUBSCRIBE) of the same connection.
    case subscribe(identity: Data, token: String, streams: [String], attempt: UInt64)
    /// A subscription whose token is checked again (it may have been revoked on another gateway).
    case recheck(identity: Data, token: String)
}

import Foundation

/// A request the gateway accepted and has not answered yet. A value inside `RoutingCore.pending`,
/// updated in place as it moves from queue to instance to retry.
struct PendingRequest {
    let clientIdentity: Data
    let service: String
    let requestID: String
    /// The body as the worker gets it (principal set, token removed).
    let workerBody: [Data]
    /// The client speaks the Tsunagu envelope but the worker is opaque: wrap its reply.
    let wrapReply: Bool
    let deadline: ContinuousClock.Instant
    /// May be sent again to another instance when the first dies: the operation is read-only, or
    /// the request carries an idempotency key.
    let retryable: Bool
    /// The instance holding it; nil while it waits in its service's queue.
    var worker: Data?
    /// Sent again once already after an instance died; a second loss is answered `unavailable`.
    var retried = false

    init(clientIdentity: Data, service: String, requestID: String, workerBody: [Data], wrapReply: Bool,
         deadline: ContinuousClock.Instant, retryable: Bool) {
        self.retryable = retryable
        self.clientIdentity = clientIdentity
        self.service = service
        self.requestID = requestID
        self.workerBody = workerBody
        self.wrapReply = wrapReply
        self.deadline = deadline
    }
}

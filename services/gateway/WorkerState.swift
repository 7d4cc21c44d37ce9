import Foundation

/// One connected worker instance (one DEALER socket on the worker endpoint).
/// A value inside `RoutingCore.workers`, mutated in place through the dictionary.
struct WorkerState {
    let identity: Data
    let service: String
    /// Requests it may hold at once: the manifest's `concurrency`, 1 for plain 7/MDP workers.
    let capacity: Int
    var inFlight: Set<UInt64> = []
    var expiry: ContinuousClock.Instant
    /// It sent DISCONNECT: no new work; it stays until its in-flight replies are in.
    var draining = false
    var served = 0
    /// Id of the service credential it registered with (nil for plain 7/MDP workers).
    let tokenID: String?

    init(identity: Data, service: String, capacity: Int, expiry: ContinuousClock.Instant, tokenID: String?) {
        self.tokenID = tokenID
        self.identity = identity
        self.service = service
        self.capacity = capacity
        self.expiry = expiry
    }

    var hasFreeSlot: Bool { !draining && inFlight.count < capacity }
}

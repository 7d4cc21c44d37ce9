import Foundation
import Wire

/// A service as the gateway knows it: the instances that announced it and the requests waiting.
/// A service stays known after its last instance leaves, so callers get `unavailable`, not `unknown_service`.
/// A value inside `RoutingCore.services`, always mutated in place through the dictionary
/// (`services[name]?.enqueue(…)`), so its queue is never copied on the per-request path.
struct ServiceState {
    let name: String
    /// The manifest the newest instance announced; nil for plain 7/MDP workers (opaque services).
    var manifest: Manifest?
    var operations: Set<String> = []
    /// Operations the manifest marks read-only: the ones sent again to another instance when one dies.
    var readOnly: Set<String> = []
    /// Instances in the order they joined (draining ones too, until they leave); dispatch walks
    /// it round-robin.
    private(set) var workers: [Data] = []
    var nextWorker = 0
    /// Instances that take new work: joined and not draining.
    private(set) var liveInstances = 0
    /// Requests waiting for an instance with a free slot, per client connection, oldest first.
    /// Clients take turns (`rotation`), so one client's burst waits behind itself, not in front
    /// of everybody else.
    private var waiting: [Data: [UInt64]] = [:]
    private var rotation: [Data] = []
    private var nextTurn = 0
    private(set) var queued = 0

    init(name: String) { self.name = name }

    mutating func instanceJoined(_ identity: Data) {
        workers.append(identity)
        liveInstances += 1
    }

    /// An instance sent DISCONNECT: it takes nothing new, and leaves once its replies are in.
    mutating func instanceStartedDraining() {
        liveInstances -= 1
    }

    mutating func instanceLeft(_ identity: Data, wasDraining: Bool) {
        workers.removeAll { $0 == identity }
        nextWorker = 0
        if !wasDraining { liveInstances -= 1 }
    }

    mutating func enqueue(_ id: UInt64, client: Data) {
        if waiting[client] == nil { rotation.append(client) }
        waiting[client, default: []].append(id)
        queued += 1
    }

    /// First in its client's line (a retry, or a request that could not be sent: it waited longest).
    mutating func enqueueFirst(_ id: UInt64, client: Data) {
        if waiting[client] == nil { rotation.append(client) }
        waiting[client, default: []].insert(id, at: 0)
        queued += 1
    }

    /// The next waiting request, taking clients in turn.
    mutating func popQueued() -> UInt64? {
        guard !rotation.isEmpty else { return nil }
        if nextTurn >= rotation.count { nextTurn = 0 }
        let client = rotation[nextTurn]
        guard waiting[client]?.isEmpty == false else { return nil }
        let id = waiting[client]!.removeFirst()  // in place: no copy of the line
        queued -= 1
        if waiting[client]!.isEmpty {
            waiting[client] = nil
            rotation.remove(at: nextTurn)
        } else {
            nextTurn += 1
        }
        return id
    }

    /// Takes out of the queue every waiting request for which `gone` holds (answered meanwhile).
    mutating func dropQueued(where gone: (UInt64) -> Bool) {
        for (client, line) in waiting {
            let kept = line.filter { !gone($0) }
            queued -= line.count - kept.count
            waiting[client] = kept.isEmpty ? nil : kept
        }
        rotation.removeAll { waiting[$0] == nil }
    }
}

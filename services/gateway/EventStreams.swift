import Foundation
import JSONSchema
import Logging
import Wire

/// The live event streams as the gateway relays them: each stream's head, and the subscribers
/// with what each may see. A state machine with no sockets and no clock of its own, driven by
/// `RoutingCore` (which authenticates subscribers and services first); every method appends the
/// messages to send to `actions`.
///
/// For each event, every subscriber of its stream gets either the EVENT (visible to it) or,
/// later, a WITHHELD range that covers its sequence: consecutive sequences it may not see are
/// merged into one range while they arrive one after another, and the range is sent before the
/// subscriber's next EVENT of that stream or its next heartbeat. A range is only ever made of
/// sequences this gateway saw, so a sequence it never saw stays a gap the subscriber notices.
/// - Note: A value; the broker's loop thread is its only user.
struct EventStreams {
    struct Configuration: Sendable {
        var heartbeatInterval: Duration = EventStreamWire.defaultHeartbeatInterval
        var maxSubscribers = 1000
        /// How often a subscriber's token is checked again.
        var recheckInterval: Duration = .seconds(30)
    }

    /// Metadata keys of the lines logged here.
    enum LogKeys {
        static let subscriber = "subscriber.id"
        static let stream = "event.stream"
    }

    let configuration: Configuration
    /// The latest sequence known per stream: the highest seen in an event or a head.
    private(set) var heads: [String: Int64] = [:]
    private(set) var subscriptions: [Data: Subscription] = [:]
    private(set) var nextHeartbeat: ContinuousClock.Instant

    init(configuration: Configuration, now: ContinuousClock.Instant) {
        self.configuration = configuration
        self.nextHeartbeat = now + configuration.heartbeatInterval
    }

    var isFull: Bool { subscriptions.count >= configuration.maxSubscribers }

    // MARK: Subscribers

    /// A subscriber authenticated: it is (again) subscribed to `streams` and told their heads.
    /// Refused (`unavailable`) when `maxSubscribers` others are subscribed already.
    mutating func subscribe(_ identity: Data, permissions: EventPermissions, tokenID: String?, token: String,
                            streams: [String], now: ContinuousClock.Instant, _ actions: inout RoutingActions) {
        guard subscriptions[identity] != nil || !isFull else {
            Self.sendError(to: identity, WireError(.unavailable, "this gateway has \(configuration.maxSubscribers) subscribers already; retry later"),
                           &actions)
            return
        }
        let names = Set(streams)
        subscriptions[identity] = Subscription(
            identity: identity, permissions: permissions, tokenID: tokenID, token: token, streams: names,
            expiry: now + configuration.heartbeatInterval * EventStreamWire.liveness,
            recheckAt: now + max(configuration.recheckInterval, configuration.heartbeatInterval))
        actions.append(.sendToSubscriber(identity: identity, .subscribed, body: streamHeads(names)))
        actions.append(.log(.info, "subscriber joined", [LogKeys.subscriber: "\(identity.hexString)",
                                                         "streams": "\(names.sorted().joined(separator: ","))"]))
    }

    /// The subscriber sent something: it is alive. False when it is not subscribed.
    mutating func heard(from identity: Data, now: ContinuousClock.Instant) -> Bool {
        guard let index = subscriptions.index(forKey: identity) else { return false }
        subscriptions.values[index].expiry = now + configuration.heartbeatInterval * EventStreamWire.liveness
        return true
    }

    /// Ends a subscription, telling the subscriber why when `error` is given.
    mutating func end(_ identity: Data, reason: String, error: WireError? = nil, _ actions: inout RoutingActions) {
        guard subscriptions.removeValue(forKey: identity) != nil else { return }
        if let error { Self.sendError(to: identity, error, &actions) }
        actions.append(.log(.info, "subscriber left", [LogKeys.subscriber: "\(identity.hexString)", "reason": "\(reason)"]))
    }

    /// Subscriptions made with the token `tokenID` end (`unauthorized`): it was revoked.
    mutating func endSubscriptions(ofToken tokenID: String, _ actions: inout RoutingActions) {
        let ended = subscriptions.values.filter { $0.tokenID == tokenID }.map(\.identity)
        for identity in ended {
            end(identity, reason: "its token was revoked", error: WireError(.unauthorized, "the token was revoked"), &actions)
        }
    }

    /// Every subscription ends with `error` (the gateway stops).
    mutating func endAll(_ error: WireError, _ actions: inout RoutingActions) {
        for identity in subscriptions.keys { Self.sendError(to: identity, error, &actions) }
        subscriptions.removeAll()
    }

    /// The subscription of `identity` if it still uses `token` (a re-SUBSCRIBE may have changed it).
    func subscription(_ identity: Data, usingToken token: String) -> Subscription? {
        guard let subscription = subscriptions[identity], subscription.token == token else { return nil }
        return subscription
    }

    /// Sends the shell could not make: a full queue counts as dropped (logged at the next
    /// heartbeat); a subscriber found gone is forgotten.
    mutating func sendsFailed(to identity: Data, unreachable: Bool, _ actions: inout RoutingActions) {
        if unreachable {
            end(identity, reason: "unreachable (the connection is gone)", &actions)
        } else if let index = subscriptions.index(forKey: identity) {
            subscriptions.values[index].dropped += 1
        }
    }

    // MARK: Events from services (authenticated by the caller)

    mutating func headReceived(stream: String, sequence: Int64) {
        heads[stream] = max(heads[stream] ?? 0, sequence)
    }

    /// Sends the event to the subscribers of its stream that may see it, and counts it withheld
    /// for the others.
    mutating func publish(_ event: StreamEvent, _ actions: inout RoutingActions) {
        headReceived(stream: event.stream, sequence: event.sequence)
        let sequence = event.sequence
        // A loop over `subscriptions.indices` would hold a copy of the dictionary, and each change
        // below would then copy it whole: indices are walked by hand.
        var index = subscriptions.startIndex
        while index != subscriptions.endIndex {
            defer { subscriptions.formIndex(after: &index) }
            guard subscriptions.values[index].streams.contains(event.stream) else { continue }
            let identity = subscriptions.values[index].identity
            let pending = subscriptions.values[index].withheld[event.stream]
            if subscriptions.values[index].permissions.visible(tenant: event.tenant, type: event.type) {
                if let pending {
                    subscriptions.values[index].withheld[event.stream] = nil
                    Self.sendWithheld(pending, stream: event.stream, to: identity, &actions)
                }
                actions.append(.sendToSubscriber(identity: identity, .event, body: event.json))
            } else if let pending, pending.upperBound &+ 1 == sequence {
                subscriptions.values[index].withheld[event.stream] = pending.lowerBound...sequence
            } else if let pending, pending.contains(sequence) {
                continue  // sent again (at least once): already counted
            } else {
                // Not next to what is pending: that range is told now, and a new one begins.
                if let pending { Self.sendWithheld(pending, stream: event.stream, to: identity, &actions) }
                subscriptions.values[index].withheld[event.stream] = sequence...sequence
            }
        }
    }

    // MARK: Time

    /// Every `heartbeatInterval`: silent subscribers are forgotten, and each other one gets its
    /// pending WITHHELD ranges and a HEARTBEAT with the heads of its streams. Returns the
    /// subscriptions whose token is due to be checked again (their next check is moved on).
    mutating func tick(now: ContinuousClock.Instant, _ actions: inout RoutingActions) -> [(identity: Data, token: String)] {
        guard now >= nextHeartbeat else { return [] }
        nextHeartbeat = now + configuration.heartbeatInterval
        let silent = subscriptions.values.filter { $0.expiry < now }.map(\.identity)
        for identity in silent { end(identity, reason: "silent for \(EventStreamWire.liveness) heartbeat intervals", &actions) }
        var due: [(identity: Data, token: String)] = []
        var index = subscriptions.startIndex  // walked by hand, as in `publish`
        while index != subscriptions.endIndex {
            defer { subscriptions.formIndex(after: &index) }
            let identity = subscriptions.values[index].identity
            let pending = subscriptions.values[index].withheld
            if !pending.isEmpty {
                subscriptions.values[index].withheld.removeAll()
                for stream in pending.keys.sorted() { Self.sendWithheld(pending[stream]!, stream: stream, to: identity, &actions) }
            }
            actions.append(.sendToSubscriber(identity: identity, .heartbeat, body: streamHeads(subscriptions.values[index].streams)))
            if subscriptions.values[index].dropped > 0 {
                actions.append(.log(.info, "messages to a slow subscriber dropped (its queue is full; it replays the gap)",
                                    [LogKeys.subscriber: "\(identity.hexString)", "dropped": "\(subscriptions.values[index].dropped)"]))
                subscriptions.values[index].dropped = 0
            }
            if subscriptions.values[index].recheckAt <= now {
                subscriptions.values[index].recheckAt = now + max(configuration.recheckInterval, configuration.heartbeatInterval)
                due.append((identity, subscriptions.values[index].token))
            }
        }
        return due
    }

    // MARK: Message bodies

    /// `{"streams":{"meetings":12,"registry":1042}}`: the head of each stream (0 if none is known yet).
    private func streamHeads(_ streams: Set<String>) -> Data {
        var out: [UInt8] = Array(#"{"streams":{"#.utf8)
        for (position, stream) in streams.sorted().enumerated() {
            if position > 0 { out.append(UInt8(ascii: ",")) }
            JSONValue.appendQuoted(stream, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: String(heads[stream] ?? 0).utf8)
        }
        out.append(contentsOf: "}}".utf8)
        return Data(out)
    }

    private static func sendWithheld(_ range: ClosedRange<Int64>, stream: String, to identity: Data, _ actions: inout RoutingActions) {
        var out: [UInt8] = Array(#"{"from":"#.utf8)
        out.append(contentsOf: String(range.lowerBound).utf8)
        out.append(contentsOf: #","stream":"#.utf8)
        JSONValue.appendQuoted(stream, to: &out)
        out.append(contentsOf: #","to":"#.utf8)
        out.append(contentsOf: String(range.upperBound).utf8)
        out.append(UInt8(ascii: "}"))
        actions.append(.sendToSubscriber(identity: identity, .withheld, body: Data(out)))
    }

    /// `ERROR {"code":…,"message":…}`.
    static func sendError(to identity: Data, _ error: WireError, _ actions: inout RoutingActions) {
        let body = JSONValue.object(["code": .string(error.code.rawValue), "message": .string(error.message)]).serialized()
        actions.append(.sendToSubscriber(identity: identity, .error, body: body))
    }
}

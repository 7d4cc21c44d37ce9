import Foundation

/// The wire constants of event delivery: what services push to the gateway's events-in endpoint,
/// and the subscriber protocol of its events-out endpoint (docs/protocol.md §10). Every header,
/// command and timing of the event stream lives here and nowhere else.
///
/// Service → gateway (PUSH → PULL): `[topic, CloudEvent JSON, service credential]` with topic
/// `<type>/<tenant>`, and `["tsunagu.head", {"stream","sequence"}, service credential]`.
/// Subscriber ↔ gateway (DEALER ↔ ROUTER): every message is `["TSUNAGU-EVENTS/1", COMMAND, JSON]`.
public enum EventStreamWire {
    /// First frame of every message between a subscriber and the gateway.
    public static let header = Data("TSUNAGU-EVENTS/1".utf8)

    /// The topic frame of a head message: the highest sequence a service has numbered.
    public static let headTopic = Data("tsunagu.head".utf8)

    /// The commands of the subscriber protocol (the second frame).
    public enum Command: String, Sendable, CaseIterable {
        // Subscriber → gateway.
        case subscribe = "SUBSCRIBE"
        case ping = "PING"
        case unsubscribe = "UNSUBSCRIBE"
        // Gateway → subscriber.
        case subscribed = "SUBSCRIBED"
        case event = "EVENT"
        case withheld = "WITHHELD"
        case heartbeat = "HEARTBEAT"
        case error = "ERROR"

        /// The command as its frame (made once: it goes with every message).
        public var frame: Data {
            switch self {
            case .subscribe: Frames.subscribe
            case .ping: Frames.ping
            case .unsubscribe: Frames.unsubscribe
            case .subscribed: Frames.subscribed
            case .event: Frames.event
            case .withheld: Frames.withheld
            case .heartbeat: Frames.heartbeat
            case .error: Frames.error
            }
        }
    }

    private enum Frames {
        static let subscribe = Data(Command.subscribe.rawValue.utf8)
        static let ping = Data(Command.ping.rawValue.utf8)
        static let unsubscribe = Data(Command.unsubscribe.rawValue.utf8)
        static let subscribed = Data(Command.subscribed.rawValue.utf8)
        static let event = Data(Command.event.rawValue.utf8)
        static let withheld = Data(Command.withheld.rawValue.utf8)
        static let heartbeat = Data(Command.heartbeat.rawValue.utf8)
        static let error = Data(Command.error.rawValue.utf8)
    }

    /// Default interval of HEARTBEAT messages (`TSUNAGU_EVENTS_HEARTBEAT_MS`).
    public static let defaultHeartbeatInterval: Duration = .milliseconds(1000)
    /// A subscriber silent for this many heartbeat intervals is forgotten.
    public static let liveness = 3

    /// Streams one SUBSCRIBE may name.
    public static let maxStreamsPerSubscription = 64

    /// The CloudEvents `source` of a stream's events, `/tsunagu/<stream>`.
    public static func source(ofStream stream: String) -> String { "/tsunagu/\(stream)" }

    /// Whether `name` can be a stream (a service name): `^[a-z][a-z0-9_.-]{0,63}$`.
    public static func isStreamName(_ name: some StringProtocol) -> Bool {
        let bytes = name.utf8
        guard let first = bytes.first, (1...64).contains(bytes.count), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else {
            return false
        }
        return bytes.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }
}

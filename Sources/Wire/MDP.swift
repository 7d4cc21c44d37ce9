import Foundation

/// The wire constants of ZeroMQ's Majordomo Protocol (7/MDP) and of Tsunagu's body envelope.
/// Every header, command code and heartbeat timing lives here and nowhere else.
public enum MDP {
    /// 7/MDP client header: first frame after the REQ/DEALER empty delimiter.
    public static let clientHeader = Data("MDPC01".utf8)
    /// 7/MDP worker header.
    public static let workerHeader = Data("MDPW01".utf8)

    /// 7/MDP worker commands (one byte frame after the header).
    public enum Command: UInt8, Sendable {
        case ready = 0x01
        case request = 0x02
        case reply = 0x03
        case heartbeat = 0x04
        case disconnect = 0x05

        public var frame: Data { Data([rawValue]) }
    }

    /// 8/MMI: services whose names start with this are answered by the gateway itself.
    public static let mmiPrefix = "mmi."
    /// 8/MMI reply codes for `mmi.service`.
    public static let mmiFound = Data("200".utf8)
    public static let mmiNotFound = Data("404".utf8)
    public static let mmiNotImplemented = Data("501".utf8)

    /// Default heartbeat interval; a peer silent for `liveness` intervals is dead (7/MDP).
    public static let defaultHeartbeatInterval: Duration = .milliseconds(2500)
    public static let liveness = 3

    /// The most frames a message on any Tsunagu socket may have (a request with the envelope and
    /// its routing frames has at most nine). Larger messages are refused, their frames dropped.
    public static let maxFrames = 16
}

/// Tsunagu's additions to 7/MDP, carried inside MDP bodies so plain Majordomo peers pass them through.
public enum TsunaguWire {
    /// The protocol version of the envelope. Bump for incompatible changes; peers reject others.
    public static let version = 1
    /// First body frame of a Tsunagu request or reply; the envelope JSON follows in the next frame.
    public static let marker = Data("TSUNAGU/1".utf8)
    /// The tenant of the national secretariat; its admins administer every tenant.
    public static let nationalTenant = "national"

    /// The longest `deadline_ms` taken as given (a day); longer ones count as this.
    public static let maxDeadlineMs: Int64 = 86_400_000

    /// The gateway's own service, answering catalogue and token operations.
    public static let gatewayService = "tsunagu.gateway"

    /// Event messages (service PUSH -> gateway PULL -> gateway PUB -> subscriber SUB) are two
    /// frames: the topic `<type>/<tenant>` (subscribers filter by its prefix) and the CloudEvent JSON.
    public static func eventTopic(type: String, tenant: String) -> String { "\(type)/\(tenant)" }
}

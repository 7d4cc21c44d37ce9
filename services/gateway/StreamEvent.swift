import Foundation
import JSONSchema
import Wire

/// An event pushed by a service, read once on arrival: what routing needs from it (its stream,
/// sequence, tenant and type) and the CloudEvent JSON as it came, sent on unchanged.
struct StreamEvent: Equatable {
    let stream: String
    let sequence: Int64
    let tenant: String
    let type: String
    let json: Data
}

/// A message from the events-in endpoint, its credential taken off: an event, or a head (the
/// highest sequence the service has numbered so far).
enum EventsInMessage: Equatable {
    case event(StreamEvent)
    case head(stream: String, sequence: Int64)

    /// The stream the message claims to belong to: its credential must be one of that service.
    var stream: String {
        switch self {
        case .event(let event): event.stream
        case .head(let stream, _): stream
        }
    }

    /// The largest sequence taken (2^53 − 1, what every JSON reader holds exactly).
    static let maxSequence: Int64 = 9_007_199_254_740_991

    /// Reads `[topic, JSON]`. The failure says what was wrong, never what the event held.
    static func parse(topic: Data, body: Data) -> Result<EventsInMessage, ParseFailure> {
        if topic == EventStreamWire.headTopic {
            guard let members = try? JSONValue.parseObject(body, members: ["stream", "sequence"]) else {
                return .failure(ParseFailure("a head that is not a JSON object"))
            }
            guard let stream = members[0]?.stringValue, EventStreamWire.isStreamName(stream) else {
                return .failure(ParseFailure("a head without a valid stream name"))
            }
            guard let sequence = members[1]?.integerValue, (0...maxSequence).contains(sequence) else {
                return .failure(ParseFailure("a head without an integer sequence in 0…2^53−1"))
            }
            return .success(.head(stream: stream, sequence: sequence))
        }
        guard let members = try? JSONValue.parseObject(body, members: ["sequence", "stream", "tenant", "type", "source"]) else {
            return .failure(ParseFailure("an event that is not a JSON object"))
        }
        guard let sequence = members[0]?.integerValue, (1...maxSequence).contains(sequence) else {
            return .failure(ParseFailure("an event without an integer sequence in 1…2^53−1"))
        }
        guard let tenant = members[2]?.stringValue, (1...64).contains(tenant.utf8.count) else {
            return .failure(ParseFailure("an event without a tenant"))
        }
        guard let type = members[3]?.stringValue, (1...256).contains(type.utf8.count) else {
            return .failure(ParseFailure("an event without a type"))
        }
        // The `stream` attribute, or (from publishers that do not send it) the stream named by `source`.
        let stream: String
        if let named = members[1]?.stringValue {
            stream = named
        } else if let source = members[4]?.stringValue, source.hasPrefix("/tsunagu/") {
            stream = String(source.dropFirst("/tsunagu/".count))
        } else {
            return .failure(ParseFailure("an event without a stream (neither a stream attribute nor a source /tsunagu/<stream>)"))
        }
        guard EventStreamWire.isStreamName(stream) else { return .failure(ParseFailure("an event with an invalid stream name")) }
        return .success(.event(StreamEvent(stream: stream, sequence: sequence, tenant: tenant, type: type, json: body)))
    }

    struct ParseFailure: Error, Equatable {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }
}

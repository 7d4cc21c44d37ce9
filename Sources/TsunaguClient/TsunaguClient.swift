import Foundation
import Wire
import ZMQ

/// A reply as the client sees it.
public struct ClientReply: Sendable {
    public let service: String
    public let envelope: ReplyEnvelope
    /// The payload frame of an ok reply (JSON); nil for errors.
    public let payload: Data?
}

public struct ClientError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A Tsunagu client over one DEALER socket to the gateway's client endpoint (7/MDP + envelope).
/// Several requests may be in flight; replies are matched by request id.
/// - Warning: Not thread-safe: one thread owns it.
public final class TsunaguClient {
    private let socket: ZMQSocket
    public var token: String?
    private var counter = 0
    private let prefix = String(UInt32.random(in: 0...UInt32.max), radix: 36)

    /// - Parameter curveServerKey: the gateway's CURVE public key (Z85), when it requires CURVE.
    /// - Parameter curveKeyPair: this client's own CURVE key pair; nil makes a throwaway one.
    public init(context: ZMQContext, endpoint: String, token: String?, curveServerKey: String? = nil,
                curveKeyPair: ZMQCurveKeyPair? = nil) throws(ZMQError) {
        socket = try context.socket(.dealer)
        do {
            try socket.setLinger(milliseconds: 0)
            try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
            if let curveServerKey, let own = curveKeyPair {
                try socket.makeCurveClient(serverKey: Data(curveServerKey.utf8), publicKey: Data(own.publicKey.utf8),
                                           secretKey: Data(own.secretKey.utf8))
            } else if let curveServerKey {
                try socket.makeCurveClient(serverKey: curveServerKey)
            }
            try socket.connect(endpoint)
        } catch {
            try? socket.close()
            throw error
        }
        self.token = token
    }

    public func close() { try? socket.close() }

    public func nextRequestID() -> String {
        counter += 1
        return "\(prefix)-\(counter)"
    }

    /// Sends one request without waiting; returns its id.
    @discardableResult
    public func send(service: String, operation: String, payload: Data, id: String? = nil,
                     deadlineMs: Int? = nil, idempotencyKey: String? = nil) throws -> String {
        let requestID = id ?? nextRequestID()
        let envelope = RequestEnvelope(op: operation, id: requestID, deadlineMs: deadlineMs,
                                       idempotencyKey: idempotencyKey, token: token)
        let encoded = try WireCoding.encoder().encode(envelope)
        try socket.send([Data(), MDP.clientHeader, Data(service.utf8), TsunaguWire.marker, encoded, payload])
        return requestID
    }

    /// Waits up to `timeoutMs` for the next reply; nil when none came.
    public func receive(timeoutMs: Int) throws -> ClientReply? {
        let ready = try zmqPoll([.socket(socket)], timeoutMs: timeoutMs)
        guard ready[0] else { return nil }
        let frames = try socket.receive()
        // [empty, MDPC01, service, TSUNAGU/1, envelope, payload?]
        guard frames.count >= 5, frames[0].isEmpty, frames[1] == MDP.clientHeader, frames[3] == TsunaguWire.marker else {
            throw ClientError(message: "the gateway sent a reply this client does not understand")
        }
        let envelope = try WireCoding.decoder().decode(ReplyEnvelope.self, from: frames[4])
        return ClientReply(service: String(decoding: frames[2], as: UTF8.self), envelope: envelope,
                           payload: frames.count >= 6 ? frames[5] : nil)
    }

    /// Sends a request and waits for its reply (others that arrive meanwhile are dropped).
    public func call(service: String, operation: String, payload: Data, timeoutMs: Int = 30_000,
                     idempotencyKey: String? = nil) throws -> ClientReply {
        let id = try send(service: service, operation: operation, payload: payload, deadlineMs: timeoutMs,
                          idempotencyKey: idempotencyKey)
        let giveUp = ContinuousClock.now + .milliseconds(timeoutMs + 1000)
        while ContinuousClock.now < giveUp {
            let left = giveUp - ContinuousClock.now
            guard let reply = try receive(timeoutMs: Int(left.components.seconds * 1000) + 1) else { break }
            if reply.envelope.id == id || reply.envelope.id.isEmpty { return reply }
        }
        throw ClientError(message: "no reply from the gateway within \(timeoutMs) ms (is it running?)")
    }
}

@available(*, unavailable)
extension TsunaguClient: Sendable {}

import Foundation
import ZMQ

/// The gateway's ZeroMQ authentication handler (27/ZAP): with CURVE on, libzmq asks it, for every
/// new connection, whether the peer's public key may connect. Services (the worker and events-in
/// endpoints) must hold a key on the operator's allow-list; clients and subscribers may use any
/// key (they are authenticated by their tokens). Protocol logic only: the broker owns the REP
/// socket bound at `endpoint` and hands each request here.
/// - Note: `Sendable`; immutable.
struct ZAPHandler: Sendable {
    /// libzmq sends ZAP requests to this inproc endpoint of the socket's context.
    static let endpoint = "inproc://zeromq.zap.01"
    /// The ZAP domains the gateway's sockets announce.
    static let serviceDomain = "tsunagu.services"
    static let clientDomain = "tsunagu.clients"

    /// Z85 public keys that may connect as services.
    let allowedServiceKeys: Set<String>

    /// The reply to one ZAP request: `[version, request id, domain, address, identity, mechanism,
    /// credentials...]` -> `[version, request id, status code, status text, user id, metadata]`.
    func reply(to request: [Data]) -> (reply: [Data], refusedKey: String?) {
        guard request.count >= 6, request[0] == Data("1.0".utf8) else {
            return ([Data("1.0".utf8), request.count > 1 ? request[1] : Data(), Data("400".utf8),
                     Data("malformed ZAP request".utf8), Data(), Data()], nil)
        }
        let id = request[1]
        func answer(_ code: String, _ text: String, user: String = "") -> [Data] {
            [Data("1.0".utf8), id, Data(code.utf8), Data(text.utf8), Data(user.utf8), Data()]
        }
        let domain = String(decoding: request[2], as: UTF8.self)
        let mechanism = String(decoding: request[5], as: UTF8.self)
        guard domain == Self.serviceDomain else { return (answer("200", "OK"), nil) }
        guard mechanism == "CURVE", request.count >= 7, let key = ZMQCurveKeyPair.z85(request[6]) else {
            return (answer("400", "services must connect with CURVE"), "-")
        }
        guard allowedServiceKeys.contains(key) else { return (answer("400", "key not on the allow-list"), key) }
        return (answer("200", "OK", user: key), nil)
    }
}

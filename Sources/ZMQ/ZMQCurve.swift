import Foundation
internal import CLibZMQ

/// A CURVE key pair in Z85 text (40 characters each), as `zmq_curve_keypair` makes them.
public struct ZMQCurveKeyPair: Sendable {
    public let publicKey: String
    public let secretKey: String

    public static func generate() throws(ZMQError) -> ZMQCurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        _ = try zmqCall { zmq_curve_keypair(&pub, &sec) }
        func text(_ chars: [CChar]) -> String {
            String(decoding: chars.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return ZMQCurveKeyPair(publicKey: text(pub), secretKey: text(sec))
    }
}

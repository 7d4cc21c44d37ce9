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

extension ZMQCurveKeyPair {
    /// The key pair whose secret key is `secretKey` (Z85), its public key derived by libzmq.
    public init(secretKey: String) throws(ZMQError) {
        guard secretKey.utf8.count == 40 else { throw ZMQError(.invalidArgument) }
        var pub = [CChar](repeating: 0, count: 41)
        _ = try zmqCall { zmq_curve_public(&pub, secretKey) }
        self.init(publicKey: String(decoding: pub.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self), secretKey: secretKey)
    }

    /// Z85 text of a 32-byte key as it arrives in a ZAP request; nil for any other length.
    public static func z85(_ key: Data) -> String? {
        guard key.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        let ok = key.withUnsafeBytes { raw in
            zmq_z85_encode(&text, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), 32) != nil
        }
        return ok ? String(decoding: text.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }
}

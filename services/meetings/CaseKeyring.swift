import Crypto
import Foundation
import ServiceRuntime
import Wire

/// The master key that wraps every case's data key, and the AES-GCM sealing of case content.
///
/// Each case has its own 256-bit data key; the content (JSON) is sealed with it, and the data key
/// is sealed (wrapped) with a key derived from the master key. Both seals authenticate the case
/// id as associated data, so neither a ciphertext nor a wrapped key moved to another row opens.
/// Destroying a case's wrapped key (erasure) leaves nothing that opens its content, even in a
/// backup that still holds the ciphertext. The master key never reaches PostgreSQL; only its key
/// id (a fingerprint from which the key cannot be recovered) is stored, so a service started with
/// another master key answers a typed `CaseCryptoError` instead of trying to open the data.
/// - Note: `Sendable`; immutable.
struct CaseKeyring: Sendable {
    static let environmentKey = "TSUNAGU_MEETINGS_CASE_KEY"
    static let fileKey = "TSUNAGU_MEETINGS_CASE_KEY_FILE"

    /// Derived from the master key: what wraps data keys.
    private let wrappingKey: SymmetricKey
    /// A fingerprint of the master key, stored with each wrapped key (16 hex digits).
    let keyID: String

    init(masterKey: SymmetricKey) {
        precondition(masterKey.bitCount == 256, "the master key is 32 bytes")
        wrappingKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey, info: Data("tsunagu.meetings.case-key-wrap.v1".utf8),
                                             outputByteCount: 32)
        let fingerprint = HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey, info: Data("tsunagu.meetings.case-key-id.v1".utf8),
                                                 outputByteCount: 8)
        keyID = fingerprint.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }

    /// The master key from `TSUNAGU_MEETINGS_CASE_KEY` (32 bytes, base64) or from the file named by
    /// `TSUNAGU_MEETINGS_CASE_KEY_FILE` (the same text; surrounding whitespace ignored). The service
    /// does not start without one: it holds cases and would have nothing to open them with.
    init(configuration: Configuration) throws(ConfigurationError) {
        let text: String
        if let inline = configuration.optionalString(Self.environmentKey) {
            guard configuration.optionalString(Self.fileKey) == nil else {
                throw ConfigurationError(key: Self.environmentKey, message: "set either it or \(Self.fileKey), not both")
            }
            text = inline
        } else if let path = configuration.optionalString(Self.fileKey) {
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(key: Self.fileKey, message: "cannot read \(path)")
            }
            text = contents
        } else {
            throw ConfigurationError(key: Self.environmentKey, message: """
                is not set: the meetings service encrypts case content with it (32 random bytes in base64, \
                e.g. `openssl rand -base64 32`; or name a file holding it with \(Self.fileKey))
                """)
        }
        self.init(masterKey: try Self.parse(text))
    }

    /// 32 bytes in base64; the error names no part of the value.
    static func parse(_ text: String) throws(ConfigurationError) -> SymmetricKey {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = Data(base64Encoded: trimmed), bytes.count == 32 else {
            throw ConfigurationError(key: environmentKey, message: "must be 32 bytes in base64 (44 characters)")
        }
        return SymmetricKey(data: bytes)
    }

    /// A new case's data key, wrapped: what is stored (nonce, ciphertext and tag in one).
    func newWrappedKey(caseID: UUID) throws -> (dataKey: SymmetricKey, wrapped: Data) {
        let dataKey = SymmetricKey(size: .bits256)
        let sealed = try dataKey.withUnsafeBytes { bytes in
            try AES.GCM.seal(Data(bytes), using: wrappingKey, authenticating: Self.associatedData(.wrappedKey, caseID))
        }
        guard let combined = sealed.combined else { throw CaseCryptoError.unreadable }
        return (dataKey, combined)
    }

    /// The data key of a case, from its stored wrapped key and key id.
    func unwrap(_ wrapped: Data, keyID storedKeyID: String, caseID: UUID) throws(CaseCryptoError) -> SymmetricKey {
        guard storedKeyID == keyID else { throw .wrongMasterKey }
        do {
            let box = try AES.GCM.SealedBox(combined: wrapped)
            return SymmetricKey(data: try AES.GCM.open(box, using: wrappingKey, authenticating: Self.associatedData(.wrappedKey, caseID)))
        } catch {
            throw .unreadable
        }
    }

    /// Content sealed with a case's data key (a fresh nonce each time).
    static func seal(_ plaintext: Data, with dataKey: SymmetricKey, caseID: UUID) throws -> Data {
        let sealed = try AES.GCM.seal(plaintext, using: dataKey, authenticating: associatedData(.content, caseID))
        guard let combined = sealed.combined else { throw CaseCryptoError.unreadable }
        return combined
    }

    static func open(_ ciphertext: Data, with dataKey: SymmetricKey, caseID: UUID) throws(CaseCryptoError) -> Data {
        do {
            return try AES.GCM.open(try AES.GCM.SealedBox(combined: ciphertext), using: dataKey,
                                    authenticating: associatedData(.content, caseID))
        } catch {
            throw .unreadable
        }
    }

    enum Purpose: String { case wrappedKey = "key", content }

    /// What each seal authenticates besides its ciphertext: its purpose and the case's id.
    static func associatedData(_ purpose: Purpose, _ caseID: UUID) -> Data {
        Data("tsunagu.meetings.case.v1/\(purpose.rawValue)/\(caseID.uuidString.lowercased())".utf8)
    }
}

/// Case content that this instance cannot open; never says anything about the content.
enum CaseCryptoError: Error, Equatable, WireErrorConvertible {
    /// The case's key was wrapped under another master key than this service's.
    case wrongMasterKey
    /// The stored ciphertext or wrapped key does not authenticate (changed, or moved from another row).
    case unreadable

    var wireError: WireError {
        switch self {
        case .wrongMasterKey:
            WireError(.unavailable, "this case was encrypted under another case master key than this instance has (check \(CaseKeyring.environmentKey))",
                      details: .object(["reason": .string("case_key_mismatch")]))
        case .unreadable:
            WireError(.unavailable, "this case's stored content does not authenticate: it was changed or moved outside the service",
                      details: .object(["reason": .string("case_content_unreadable")]))
        }
    }
}

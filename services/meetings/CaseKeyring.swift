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
///
/// While the master key is rotated, the keyring also holds the previous master key: it opens data
/// keys wrapped under either (chosen by the stored key id) and wraps new ones under the current
/// key only; `rewrap` moves a data key from the previous key to the current one (`CaseKeyRewrap`).
/// - Note: `Sendable`; immutable.
struct CaseKeyring: Sendable {
    static let environmentKey = "TSUNAGU_MEETINGS_CASE_KEY"
    static let fileKey = "TSUNAGU_MEETINGS_CASE_KEY_FILE"
    static let previousEnvironmentKey = "TSUNAGU_MEETINGS_CASE_KEY_PREVIOUS"
    static let previousFileKey = "TSUNAGU_MEETINGS_CASE_KEY_PREVIOUS_FILE"

    /// One master key as the keyring uses it: what it derives, never the key itself.
    struct MasterKey: Sendable {
        /// Derived from the master key: what wraps data keys.
        let wrappingKey: SymmetricKey
        /// A fingerprint of the master key, stored with each wrapped key (16 hex digits).
        let keyID: String

        init(_ masterKey: SymmetricKey) {
            precondition(masterKey.bitCount == 256, "the master key is 32 bytes")
            wrappingKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey, info: Data("tsunagu.meetings.case-key-wrap.v1".utf8),
                                                 outputByteCount: 32)
            let fingerprint = HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey, info: Data("tsunagu.meetings.case-key-id.v1".utf8),
                                                     outputByteCount: 8)
            keyID = fingerprint.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
        }
    }

    /// What new data keys are wrapped under.
    private let current: MasterKey
    /// The key being rotated away from, while a rotation runs: opens, never wraps.
    private let previous: MasterKey?

    /// The current master key's id: stored with every key wrapped from now on.
    var keyID: String { current.keyID }
    /// The previous master key's id, when one is configured.
    var previousKeyID: String? { previous?.keyID }

    init(masterKey: SymmetricKey) {
        current = MasterKey(masterKey)
        previous = nil
    }

    /// A keyring in rotation; the same key twice is a configuration error (it would rotate nothing,
    /// and most likely the new key was pasted in the wrong place).
    init(masterKey: SymmetricKey, previousMasterKey: SymmetricKey?) throws(ConfigurationError) {
        current = MasterKey(masterKey)
        previous = previousMasterKey.map(MasterKey.init)
        guard previous?.keyID != current.keyID else {
            throw ConfigurationError(key: Self.previousEnvironmentKey, message: """
                is the same key as \(Self.environmentKey): set it only while rotating, to the key being replaced \
                (the new key goes in \(Self.environmentKey))
                """)
        }
    }

    /// The master key from `TSUNAGU_MEETINGS_CASE_KEY` (32 bytes, base64) or from the file named by
    /// `TSUNAGU_MEETINGS_CASE_KEY_FILE` (the same text; surrounding whitespace ignored). The service
    /// does not start without one: it holds cases and would have nothing to open them with. The
    /// previous key, optional, comes the same way from `TSUNAGU_MEETINGS_CASE_KEY_PREVIOUS` or
    /// `…_PREVIOUS_FILE`. No error repeats any part of a value.
    init(configuration: Configuration) throws(ConfigurationError) {
        guard let current = try Self.key(configuration, environmentKey: Self.environmentKey, fileKey: Self.fileKey) else {
            throw ConfigurationError(key: Self.environmentKey, message: """
                is not set: the meetings service encrypts case content with it (32 random bytes in base64, \
                e.g. `openssl rand -base64 32`; or name a file holding it with \(Self.fileKey))
                """)
        }
        let previous = try Self.key(configuration, environmentKey: Self.previousEnvironmentKey, fileKey: Self.previousFileKey)
        try self.init(masterKey: current, previousMasterKey: previous)
    }

    /// One key from its variable or its file (set one, not both); nil when neither is set.
    private static func key(_ configuration: Configuration, environmentKey: String,
                            fileKey: String) throws(ConfigurationError) -> SymmetricKey? {
        if let inline = configuration.optionalString(environmentKey) {
            guard configuration.optionalString(fileKey) == nil else {
                throw ConfigurationError(key: environmentKey, message: "set either it or \(fileKey), not both")
            }
            return try parse(inline, key: environmentKey)
        }
        guard let path = configuration.optionalString(fileKey) else { return nil }
        guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError(key: fileKey, message: "cannot read \(path)")
        }
        return try parse(contents, key: fileKey)
    }

    /// 32 bytes in base64; the error names the setting (`key`) and no part of the value.
    static func parse(_ text: String, key: String = environmentKey) throws(ConfigurationError) -> SymmetricKey {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = Data(base64Encoded: trimmed), bytes.count == 32 else {
            throw ConfigurationError(key: key, message: "must be 32 bytes in base64 (44 characters)")
        }
        return SymmetricKey(data: bytes)
    }

    /// A new case's data key, wrapped: what is stored (nonce, ciphertext and tag in one).
    func newWrappedKey(caseID: UUID) throws -> (dataKey: SymmetricKey, wrapped: Data) {
        let dataKey = SymmetricKey(size: .bits256)
        return (dataKey, try wrap(dataKey, caseID: caseID))
    }

    /// A data key wrapped under the current master key (a fresh nonce): what `rewrap` stores.
    private func wrap(_ dataKey: SymmetricKey, caseID: UUID) throws(CaseCryptoError) -> Data {
        let sealed = try? dataKey.withUnsafeBytes { bytes in
            try AES.GCM.seal(Data(bytes), using: current.wrappingKey, authenticating: Self.associatedData(.wrappedKey, caseID))
        }
        guard let combined = sealed?.combined else { throw .unreadable }
        return combined
    }

    /// The same data key, wrapped under the current master key instead of the one `storedKeyID`
    /// names (which must be one this keyring holds). The content sealed with it is untouched.
    func rewrap(_ wrapped: Data, keyID storedKeyID: String, caseID: UUID) throws(CaseCryptoError) -> Data {
        try wrap(try unwrap(wrapped, keyID: storedKeyID, caseID: caseID), caseID: caseID)
    }

    /// The data key of a case, from its stored wrapped key and key id.
    /// The key id picks the master key (current or previous); one this keyring does not hold is
    /// `wrongMasterKey`.
    func unwrap(_ wrapped: Data, keyID storedKeyID: String, caseID: UUID) throws(CaseCryptoError) -> SymmetricKey {
        let master: MasterKey
        if storedKeyID == current.keyID {
            master = current
        } else if let previous, storedKeyID == previous.keyID {
            master = previous
        } else {
            throw .wrongMasterKey
        }
        do {
            let box = try AES.GCM.SealedBox(combined: wrapped)
            return SymmetricKey(data: try AES.GCM.open(box, using: master.wrappingKey, authenticating: Self.associatedData(.wrappedKey, caseID)))
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
            WireError(.unavailable, "this case was encrypted under another case master key than this instance has (check \(CaseKeyring.environmentKey) and \(CaseKeyring.previousEnvironmentKey))",
                      details: .object(["reason": .string("case_key_mismatch")]))
        case .unreadable:
            WireError(.unavailable, "this case's stored content does not authenticate: it was changed or moved outside the service",
                      details: .object(["reason": .string("case_content_unreadable")]))
        }
    }
}

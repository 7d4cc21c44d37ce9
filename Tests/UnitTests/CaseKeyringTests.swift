import Crypto
import Foundation
@testable import Meetings
import ServiceRuntime
import Testing
import Wire

/// The sealing of case content: what opens, and what is refused with a typed error.
@Suite struct CaseKeyringTests {
    let keyring = CaseKeyring(masterKey: SymmetricKey(size: .bits256))
    let caseID = UUID()

    @Test func contentRoundTripsThroughTheWrappedDataKey() throws {
        let (dataKey, wrapped) = try keyring.newWrappedKey(caseID: caseID)
        let sealed = try CaseKeyring.seal(Data("仮名A 長期入院".utf8), with: dataKey, caseID: caseID)
        let opened = try CaseKeyring.open(sealed, with: try keyring.unwrap(wrapped, keyID: keyring.keyID, caseID: caseID), caseID: caseID)
        #expect(String(decoding: opened, as: UTF8.self) == "仮名A 長期入院")
        #expect(!sealed.contains(Data("仮名A".utf8)))
    }

    @Test func aCiphertextOrKeyMovedToAnotherCaseDoesNotOpen() throws {
        let (dataKey, wrapped) = try keyring.newWrappedKey(caseID: caseID)
        let sealed = try CaseKeyring.seal(Data("x".utf8), with: dataKey, caseID: caseID)
        let other = UUID()
        #expect(throws: CaseCryptoError.unreadable) { try keyring.unwrap(wrapped, keyID: keyring.keyID, caseID: other) }
        #expect(throws: CaseCryptoError.unreadable) { try CaseKeyring.open(sealed, with: dataKey, caseID: other) }
    }

    @Test func anotherMasterKeyIsATypedErrorNotACrash() throws {
        let (_, wrapped) = try keyring.newWrappedKey(caseID: caseID)
        let stranger = CaseKeyring(masterKey: SymmetricKey(size: .bits256))
        #expect(stranger.keyID != keyring.keyID)
        #expect(throws: CaseCryptoError.wrongMasterKey) { try stranger.unwrap(wrapped, keyID: keyring.keyID, caseID: caseID) }
        // Even when the stored key id is forged to match, the wrapped key does not open.
        #expect(throws: CaseCryptoError.unreadable) { try stranger.unwrap(wrapped, keyID: stranger.keyID, caseID: caseID) }
        #expect(CaseCryptoError.wrongMasterKey.wireError.code == .unavailable)
    }

    @Test func aTamperedOrTruncatedCiphertextIsUnreadable() throws {
        let (dataKey, _) = try keyring.newWrappedKey(caseID: caseID)
        var sealed = try CaseKeyring.seal(Data("content".utf8), with: dataKey, caseID: caseID)
        sealed[sealed.count - 1] ^= 1
        #expect(throws: CaseCryptoError.unreadable) { try CaseKeyring.open(sealed, with: dataKey, caseID: caseID) }
        #expect(throws: CaseCryptoError.unreadable) { try CaseKeyring.open(Data([1, 2, 3]), with: dataKey, caseID: caseID) }
    }

    @Test func theKeyIDIsStableForOneMasterKey() {
        let master = SymmetricKey(size: .bits256)
        #expect(CaseKeyring(masterKey: master).keyID == CaseKeyring(masterKey: master).keyID)
        #expect(CaseKeyring(masterKey: master).keyID.count == 16)
    }

    @Test func theMasterKeyComesFromTheEnvironmentOrAFileAndIsRequired() throws {
        let text = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let fromEnvironment = try CaseKeyring(configuration: try Configuration(environment: [CaseKeyring.environmentKey: text]))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("case-key-\(UUID())").path
        try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fromFile = try CaseKeyring(configuration: try Configuration(environment: [CaseKeyring.fileKey: path]))
        #expect(fromEnvironment.keyID == fromFile.keyID)

        #expect(throws: ConfigurationError.self) { try CaseKeyring(configuration: try Configuration(environment: [:])) }
        for bad in ["", "not base64!", Data(count: 16).base64EncodedString(), Data(count: 33).base64EncodedString()] {
            #expect(throws: ConfigurationError.self) {
                try CaseKeyring(configuration: try Configuration(environment: [CaseKeyring.environmentKey: bad, "X": "y"]))
            }
        }
        #expect(throws: ConfigurationError.self) {
            try CaseKeyring(configuration: try Configuration(environment: [CaseKeyring.environmentKey: text, CaseKeyring.fileKey: path]))
        }
        #expect(throws: ConfigurationError.self) {
            try CaseKeyring(configuration: try Configuration(environment: [CaseKeyring.fileKey: path + ".missing"]))
        }
    }

    // MARK: Rotation

    /// The error a keyring configured by `environment` is refused with; nil when it is accepted.
    func keyringError(_ environment: [String: String]) -> ConfigurationError? {
        let result: Result<CaseKeyring, ConfigurationError> = Result { () throws(ConfigurationError) in
            try CaseKeyring(configuration: try Configuration(environment: environment))
        }
        guard case .failure(let error) = result else { return nil }
        return error
    }

    @Test func aKeyringInRotationOpensKeysWrappedUnderEitherKeyAndWrapsUnderTheCurrentOne() throws {
        let old = SymmetricKey(size: .bits256), new = SymmetricKey(size: .bits256)
        let before = CaseKeyring(masterKey: old)
        let (dataKey, wrappedUnderOld) = try before.newWrappedKey(caseID: caseID)
        let sealed = try CaseKeyring.seal(Data("仮名B".utf8), with: dataKey, caseID: caseID)

        let rotating = try CaseKeyring(masterKey: new, previousMasterKey: old)
        #expect(rotating.keyID == CaseKeyring(masterKey: new).keyID)
        #expect(rotating.previousKeyID == before.keyID)
        // Under the previous key: opens, by the stored key id.
        let opened = try rotating.unwrap(wrappedUnderOld, keyID: before.keyID, caseID: caseID)
        #expect(String(decoding: try CaseKeyring.open(sealed, with: opened, caseID: caseID), as: UTF8.self) == "仮名B")
        // New cases: under the current key only.
        let (_, fresh) = try rotating.newWrappedKey(caseID: caseID)
        _ = try CaseKeyring(masterKey: new).unwrap(fresh, keyID: rotating.keyID, caseID: caseID)
        #expect(throws: CaseCryptoError.self) { try before.unwrap(fresh, keyID: before.keyID, caseID: caseID) }

        // Rewrapped: the same data key (the content opens as it is), now under the current key.
        let rewrapped = try rotating.rewrap(wrappedUnderOld, keyID: before.keyID, caseID: caseID)
        #expect(rewrapped != wrappedUnderOld)
        let afterRotation = CaseKeyring(masterKey: new)
        let sameKey = try afterRotation.unwrap(rewrapped, keyID: afterRotation.keyID, caseID: caseID)
        #expect(String(decoding: try CaseKeyring.open(sealed, with: sameKey, caseID: caseID), as: UTF8.self) == "仮名B")
        #expect(throws: CaseCryptoError.wrongMasterKey) { try before.unwrap(rewrapped, keyID: afterRotation.keyID, caseID: caseID) }
        // A rewrapped key is bound to its case like any wrapped key.
        #expect(throws: CaseCryptoError.unreadable) { try afterRotation.unwrap(rewrapped, keyID: afterRotation.keyID, caseID: UUID()) }
    }

    @Test func aKeyIDMatchingNeitherKeyIsTheTypedWrongMasterKeyError() throws {
        let rotating = try CaseKeyring(masterKey: SymmetricKey(size: .bits256), previousMasterKey: SymmetricKey(size: .bits256))
        let stranger = CaseKeyring(masterKey: SymmetricKey(size: .bits256))
        let (_, wrapped) = try stranger.newWrappedKey(caseID: caseID)
        #expect(throws: CaseCryptoError.wrongMasterKey) { try rotating.unwrap(wrapped, keyID: stranger.keyID, caseID: caseID) }
        #expect(throws: CaseCryptoError.wrongMasterKey) { try rotating.rewrap(wrapped, keyID: stranger.keyID, caseID: caseID) }
        #expect(CaseCryptoError.wrongMasterKey.wireError.details == .object(["reason": .string("case_key_mismatch")]))
        // A wrapped key under another key, labelled with the previous key's id, does not open either.
        #expect(throws: CaseCryptoError.unreadable) { try rotating.unwrap(wrapped, keyID: rotating.previousKeyID ?? "", caseID: caseID) }
    }

    @Test func thePreviousKeyEqualToTheCurrentOneIsRefused() throws {
        let master = SymmetricKey(size: .bits256)
        #expect(throws: ConfigurationError.self) { try CaseKeyring(masterKey: master, previousMasterKey: master) }
        let text = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let error = try #require(keyringError([CaseKeyring.environmentKey: text, CaseKeyring.previousEnvironmentKey: " \(text)\n"]))
        #expect(error.key == CaseKeyring.previousEnvironmentKey)
        #expect(!error.description.contains(text))
    }

    @Test func thePreviousKeyComesFromTheEnvironmentOrAFileNotBoth() throws {
        let current = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let previous = Data((0..<32).map { UInt8(255 - $0) }).base64EncodedString()
        let withoutPrevious = try CaseKeyring(configuration: try Configuration(environment: [CaseKeyring.environmentKey: current]))
        #expect(withoutPrevious.previousKeyID == nil)
        let fromEnvironment = try CaseKeyring(configuration: try Configuration(environment: [
            CaseKeyring.environmentKey: current, CaseKeyring.previousEnvironmentKey: previous]))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("case-key-previous-\(UUID())").path
        try (previous + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fromFile = try CaseKeyring(configuration: try Configuration(environment: [
            CaseKeyring.environmentKey: current, CaseKeyring.previousFileKey: path]))
        #expect(fromEnvironment.previousKeyID == fromFile.previousKeyID)
        #expect(fromEnvironment.previousKeyID == CaseKeyring(masterKey: try CaseKeyring.parse(previous)).keyID)
        #expect(fromEnvironment.keyID == withoutPrevious.keyID)

        let both = try #require(keyringError([CaseKeyring.environmentKey: current, CaseKeyring.previousEnvironmentKey: previous,
                                              CaseKeyring.previousFileKey: path]))
        #expect(both.key == CaseKeyring.previousEnvironmentKey && both.message.contains(CaseKeyring.previousFileKey))
        #expect(!both.description.contains(previous))
        #expect(throws: ConfigurationError.self) {
            try CaseKeyring(configuration: try Configuration(environment: [
                CaseKeyring.environmentKey: current, CaseKeyring.previousFileKey: path + ".missing"]))
        }
        // A previous key without a current one is no configuration either.
        #expect(throws: ConfigurationError.self) {
            try CaseKeyring(configuration: try Configuration(environment: [CaseKeyring.previousEnvironmentKey: previous]))
        }
    }

    @Test func malformedKeysAreRefusedWithoutEchoingTheValue() throws {
        let current = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let malformed = ["not base64 but secret-ish MKSECRET", Data(count: 16).base64EncodedString(),
                         Data(repeating: 7, count: 33).base64EncodedString(), String(current.dropLast(4))]
        for bad in malformed {
            for (key, environment) in [(CaseKeyring.environmentKey, [CaseKeyring.environmentKey: bad]),
                                       (CaseKeyring.previousEnvironmentKey,
                                        [CaseKeyring.environmentKey: current, CaseKeyring.previousEnvironmentKey: bad])] {
                let error = try #require(keyringError(environment), "\(key): a malformed key was accepted")
                #expect(error.key == key)
                #expect(!error.description.contains(bad) && !error.message.contains(bad))
                #expect(!error.description.contains(current))
            }
        }
        // From a file: the error names the setting and the path, never the file's contents.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("case-key-bad-\(UUID())").path
        try malformed[0].write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fromFile = try #require(keyringError([CaseKeyring.environmentKey: current, CaseKeyring.previousFileKey: path]))
        #expect(fromFile.key == CaseKeyring.previousFileKey && !fromFile.description.contains(malformed[0]))
    }

    @Test func reviewDatesMustBeCalendarDates() {
        #expect(CaseContent.isCalendarDate("2028-02-29"))
        #expect(!CaseContent.isCalendarDate("2027-02-29"))
        #expect(!CaseContent.isCalendarDate("2027-13-01"))
        #expect(!CaseContent.isCalendarDate("2027-04-00"))
    }

    @Test func theCaseOperationsBoundEveryInput() throws {
        let definition = ServiceDefinition(name: "meetings", version: "0", schema: "meetings", migrations: [],
                                           operations: try Cases.operations(keyring: keyring))
        #expect(definition.unboundedInputs().isEmpty)
    }
}

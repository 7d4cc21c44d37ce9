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

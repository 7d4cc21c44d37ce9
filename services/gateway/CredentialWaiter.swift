import Foundation
import Wire

/// Work waiting for a service credential to be looked up: an instance's READY, or an event.
enum CredentialWaiter {
    case registration(identity: Data, service: String, manifest: Manifest)
    case event([Data])

    var isEvent: Bool { if case .event = self { true } else { false } }
}

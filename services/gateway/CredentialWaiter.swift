import Foundation
import Wire

/// Work waiting for a service credential to be looked up: an instance's READY, or a message on
/// the events-in endpoint (an event or a head).
enum CredentialWaiter {
    case registration(identity: Data, service: String, manifest: Manifest)
    case event(EventsInMessage)

    var isEvent: Bool { if case .event = self { true } else { false } }
}

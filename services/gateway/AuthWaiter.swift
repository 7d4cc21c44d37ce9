import Foundation
import Wire

/// A client request waiting for its token to be looked up.
struct AuthWaiter {
    let identity: Data
    let service: String
    let envelope: RequestEnvelope
    let payload: [Data]
    let received: ContinuousClock.Instant
}

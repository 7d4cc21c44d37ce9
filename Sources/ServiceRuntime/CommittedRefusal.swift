import Wire

/// Thrown by a write handler to refuse the request while keeping what it wrote before the
/// refusal: the runtime commits the transaction (with no idempotency record, so a repeat is
/// judged again) and answers `error`. For the record of a refused attempt, which must outlive
/// the refusal (the meetings service audits every refused case access). Anything else a
/// handler throws rolls its transaction back.
/// - Note: `Sendable`; immutable.
public struct CommittedRefusal: Error, Sendable {
    public let error: WireError

    public init(_ error: WireError) { self.error = error }
}

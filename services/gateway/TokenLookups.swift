/// What the gateway remembers about bearer tokens and service credentials, and which database
/// lookups it has asked for, so that a flood of unknown tokens costs a bounded amount of work:
/// - each token is looked up at most once at a time (callers asking for the same token while its
///   lookup runs wait for that one answer: single flight);
/// - answers are kept, a known token for `positiveTTL`, an unknown one or a failed lookup for
///   `negativeTTL` (briefly: a token made on another gateway works here soon after);
/// - at most `maxRunning` lookups run at once and at most `maxQueued` distinct tokens wait for
///   one, and at most `maxWaitersPerToken` callers wait for one token; past that a caller is
///   refused at once (`unavailable`) instead of queueing.
/// A value type driven by the broker's loop thread: `begin` says what to do, `finish` hands back
/// the waiters to answer and the next lookup to start.
struct TokenLookups<Value, Waiter> {
    enum Outcome {
        case found(Value)
        /// No such token, or it is revoked.
        case unknown
        /// The lookup itself failed (database unreachable).
        case failed

        var value: Value? { if case .found(let value) = self { value } else { nil } }

        /// The same outcome about another form of the value.
        func map<Other>(_ transform: (Value) -> Other) -> TokenLookups<Other, Waiter>.Outcome {
            switch self {
            case .found(let value): .found(transform(value))
            case .unknown: .unknown
            case .failed: .failed
            }
        }
    }

    enum Answer {
        /// Known from memory.
        case known(Outcome)
        /// Waiting for a lookup that runs or is queued; the waiter is answered by `finish`.
        case waiting
        /// The caller should start a lookup of this token now.
        case startLookup
        /// Too many lookups pending: refuse the caller.
        case refused
    }

    private struct Remembered {
        let outcome: Outcome
        let expires: ContinuousClock.Instant
    }

    let positiveTTL: Duration
    let negativeTTL: Duration
    let maxRunning: Int
    let maxQueued: Int
    let maxRemembered: Int
    /// Callers that may wait for one token's lookup.
    let maxWaitersPerToken = 10_000

    /// Known tokens and unknown ones apart, each capped on its own: a flood of unknown tokens
    /// can only push out other unknown ones, never a valid client's principal.
    private var found: [String: Remembered] = [:]
    private var missing: [String: Remembered] = [:]
    private var waiters: [String: [Waiter]] = [:]
    /// Tokens waiting for a free lookup slot, oldest first.
    private var queue: [String] = []
    private(set) var running = 0

    init(positiveTTL: Duration, negativeTTL: Duration, maxRunning: Int = 8, maxQueued: Int = 256,
         maxRemembered: Int = 100_000) {
        self.positiveTTL = positiveTTL
        self.negativeTTL = negativeTTL
        self.maxRunning = max(1, maxRunning)
        self.maxQueued = max(0, maxQueued)
        self.maxRemembered = max(1, maxRemembered)
    }

    /// How many distinct tokens wait for a lookup slot.
    var queued: Int { queue.count }

    mutating func begin(_ token: String, waiter: Waiter, now: ContinuousClock.Instant) -> Answer {
        if let entry = found[token] ?? missing[token] {
            if entry.expires > now { return .known(entry.outcome) }
            found[token] = nil
            missing[token] = nil
        }
        if waiters[token] != nil {
            guard waiters[token]!.count < maxWaitersPerToken else { return .refused }
            waiters[token]!.append(waiter)
            return .waiting
        }
        if running < maxRunning {
            running += 1
            waiters[token] = [waiter]
            return .startLookup
        }
        guard queue.count < maxQueued else { return .refused }
        queue.append(token)
        waiters[token] = [waiter]
        return .waiting
    }

    /// Records a lookup's outcome. Returns the waiters to answer with it and the next queued
    /// token to look up, if any.
    mutating func finish(_ token: String, outcome: Outcome, now: ContinuousClock.Instant) -> (waiters: [Waiter], next: String?) {
        if outcome.value == nil {
            if missing.count >= maxRemembered { missing.removeAll(keepingCapacity: true) }
            missing[token] = Remembered(outcome: outcome, expires: now + negativeTTL)
        } else {
            if found.count >= maxRemembered { found.removeAll(keepingCapacity: true) }
            found[token] = Remembered(outcome: outcome, expires: now + positiveTTL)
        }
        let answered = waiters.removeValue(forKey: token) ?? []
        running -= 1
        guard !queue.isEmpty else { return (answered, nil) }
        running += 1
        return (answered, queue.removeFirst())
    }

    /// Forgets remembered answers for which `matches` holds (a revoked token stops working here at once).
    mutating func forget(where matches: (Value) -> Bool) {
        found = found.filter { entry in entry.value.outcome.value.map { !matches($0) } ?? true }
    }

    /// Forgets every negative answer (a token was just made here: it must work at once).
    mutating func forgetUnknown() {
        missing.removeAll()
    }
}

extension TokenLookups.Outcome: Sendable where Value: Sendable {}

import Synchronization

/// Wakes a sleeping event publisher early: a write of this instance that committed (it may have
/// appended events) nudges it, so the publisher numbers and pushes at once instead of at its next
/// poll. A write on another instance reaches the publishing one as a PostgreSQL notification
/// (`EventPublisher`), which nudges it in turn.
/// - Note: `Sendable`: its state is behind a `Mutex`.
final class EventNudge: Sendable {
    private struct State {
        /// A nudge came while nobody slept: the next sleep returns at once.
        var pending = false
        var sleeper: Task<Void, Never>?
    }

    private let state = Mutex(State())

    /// Ends the current sleep, or the next one at once.
    func nudge() {
        let sleeper = state.withLock { state -> Task<Void, Never>? in
            state.pending = true
            return state.sleeper
        }
        sleeper?.cancel()
    }

    /// Sleeps up to `duration`, less if nudged (or if the calling task is cancelled). Returns
    /// whether it was nudged.
    @discardableResult
    func sleep(for duration: Duration) async -> Bool {
        let sleeper = Task<Void, Never> { _ = try? await Task.sleep(for: duration) }
        let nudged = state.withLock { state -> Bool in
            if state.pending { return true }
            state.sleeper = sleeper
            return false
        }
        if nudged { sleeper.cancel() }
        await withTaskCancellationHandler { await sleeper.value } onCancel: { sleeper.cancel() }
        // The round that follows sees every commit that nudged so far.
        return state.withLock { state in
            let nudged = state.pending
            state.sleeper = nil
            state.pending = false
            return nudged
        }
    }
}

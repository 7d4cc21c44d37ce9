import Foundation

/// Which municipalities an area holds, remembered for a minute: searches by area ask it on every
/// call, and area definitions change only by import (which clears this instance's cache; other
/// instances see the change within the minute).
/// - Note: `Sendable`; its dictionary is guarded by `lock`.
final class AreaCache: @unchecked Sendable {
    static let shared = AreaCache()
    typealias Entry = (municipalities: [String], dailyLifeArea: String?)

    private let lock = NSLock()
    private var entries: [String: (entry: Entry, expires: ContinuousClock.Instant)] = [:]
    private let lifetime: Duration = .seconds(60)

    /// `asOf`: the day asked for (nil, today: a new day is at most a minute late here too).
    func within(area: String, asOf: String? = nil, resolve: () throws -> Entry) throws -> Entry {
        let now = ContinuousClock.now
        let key = "\(area)@\(asOf ?? "")"
        if let hit = lock.withLock({ entries[key] }), hit.expires > now { return hit.entry }
        let entry = try resolve()
        lock.withLock {
            if entries.count > 10_000 { entries.removeAll() }
            entries[key] = (entry, now + lifetime)
        }
        return entry
    }

    func clear() {
        lock.withLock { entries.removeAll() }
    }
}

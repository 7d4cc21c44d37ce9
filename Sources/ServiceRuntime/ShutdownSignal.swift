import Dispatch
import Foundation

/// Waits for SIGTERM or SIGINT. The first signal starts a graceful stop; the process keeps
/// running until the caller has drained and returns.
public final class ShutdownSignal: @unchecked Sendable {
    // Invariant: sources are made once in init and only touched on `queue`.
    private let queue = DispatchQueue(label: "tsunagu.signals")
    private var sources: [DispatchSourceSignal] = []
    private let stream: AsyncStream<Int32>
    private let continuation: AsyncStream<Int32>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            let continuation = self.continuation
            source.setEventHandler { continuation.yield(signalNumber) }
            source.resume()
            sources.append(source)
        }
    }

    /// Ends `wait()` as if a signal came, for a process whose own machinery has failed (a message
    /// loop that died): it then stops like on SIGTERM and exits with an error status.
    public func fail() { continuation.yield(Self.failure) }

    /// What `wait()` returns after `fail()`.
    public static let failure: Int32 = -1

    /// Returns when the first signal arrives.
    public func wait() async -> Int32 {
        for await number in stream { return number }
        return 0
    }
}

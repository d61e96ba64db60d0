import Synchronization

/// What vw printed for one request: the raw bytes and where each example's answer lies in them.
public struct ShardAnswer: Sendable {
    /// Exactly the bytes vw printed for this request's examples (blank lines included).
    public let raw: [UInt8]
    /// The answer of example `i` is `raw[answers[i]]`: its line(s) without the final newline
    /// (and, for multiline models, without the blank line that ends it).
    public let answers: [Range<Int>]
}

/// Why a shard could not answer a request.
public enum ShardFailure: Error, Equatable, Sendable {
    /// The vw process exited (or was killed) while holding the request.
    case processDied(String)
    /// The shard is not accepting work (starting, restarting or stopping).
    case notReady
}

/// One request in a shard's pipeline: the reader fills it in, the requester waits on it.
final class PendingPrediction: Sendable {
    /// What vw must print for this request.
    let frame: AnswerFrame
    /// Bytes to reserve for the answer.
    let capacity: Int
    let enqueuedAt: ContinuousClock.Instant

    /// Woken once the outcome is recorded (the one way the engine waits: a condition with a deadline).
    private let done = Condition()
    private let outcome = Mutex<Result<ShardAnswer, ShardFailure>?>(nil)

    init(frame: AnswerFrame, capacity: Int) {
        self.frame = frame
        self.capacity = capacity
        self.enqueuedAt = .now
    }

    /// Records the outcome once; later calls are ignored.
    func complete(_ result: Result<ShardAnswer, ShardFailure>) {
        done.broadcast {
            outcome.withLock { current in
                if current == nil { current = result }
            }
        }
    }

    func finish(with framer: AnswerFramer) {
        complete(.success(ShardAnswer(raw: framer.raw, answers: framer.answers)))
    }

    /// Waits until `deadline`; nil when it passed first.
    func wait(until deadline: Deadline) -> Result<ShardAnswer, ShardFailure>? {
        var result: Result<ShardAnswer, ShardFailure>?
        done.wait(until: deadline) {
            result = outcome.withLock { $0 }
            return result != nil
        }
        return result
    }
}

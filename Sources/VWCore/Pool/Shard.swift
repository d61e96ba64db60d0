// Over 400 lines on purpose: one vw process's state machine (spawn, probe, pipeline, answer reader, restart); its
// threads share the private state.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// A point-in-time view of one shard, for status pages.
public struct ShardStatus: Sendable, Equatable {
    public let pid: Int32?
    public let ready: Bool
    public let restarts: Int
    public let inflight: Int
}

/// One vw process and the pipeline of requests written to it.
///
/// Requests are written whole, in the order they are queued, so vw answers them in that order;
/// one reader thread per shard hands each answer to the oldest unfinished request through an
/// ``AnswerFramer``, which checks every line. A vw that exits, or prints what no request
/// expects, is (killed and) restarted with backoff; the requests it held fail with
/// `processDied` and are retried by the pool.
public final class Shard: Sendable {
    /// Where the shard is in its life; each case carries what exists in it.
    enum Phase {
        /// Created, not started yet.
        case idle
        /// Serving: requests are written to this process.
        case running(VWProcess)
        /// The process exited; a replacement starts after the backoff delay.
        case restarting
        /// No new requests; waits for the process (if any) to finish what it holds.
        case stopping(VWProcess?)
        case stopped

        var process: VWProcess? {
            switch self {
            case .running(let process): process
            case .stopping(let process): process
            case .idle, .restarting, .stopped: nil
            }
        }

        var isRunning: Bool {
            if case .running = self { return true }
            return false
        }

        var isStopping: Bool {
            switch self {
            case .stopping, .stopped: true
            default: false
            }
        }

        var isStopped: Bool {
            if case .stopped = self { return true }
            return false
        }
    }

    /// Lock-free copies of what dispatch reads for every request.
    final class Gauges: Sendable {
        let ready = Atomic<Bool>(false)
        let load = Atomic<Int>(0)
    }

    struct State {
        let gauges: Gauges
        var phase: Phase = .idle {
            didSet { gauges.ready.store(phase.isRunning, ordering: .relaxed) }
        }
        var queue = RequestQueue() {
            didSet { gauges.load.store(queue.count, ordering: .relaxed) }
        }
        /// Payloads queued but not yet written to vw; one request thread at a time writes them.
        var outbox: [UInt8] = []
        var writerActive = false
        var restarts = 0
        /// Crashes in a row, each within `stableRun` of its start: the restart delay doubles with each.
        var crashStreak = 0
        var startedAt = ContinuousClock.now
        /// Whether the current process has answered a request: then its exit is not a crash loop.
        var answered = false
        var stderrTail: [UInt8] = []
        /// Whether the stderr of the latest process has been read to its end.
        var stderrClosed = false
    }

    public let index: Int
    let modelName: String
    let arguments: [String]
    let logger: Logger
    /// The request timeout: how long one write to vw's stdin may block, and twice how long vw may hold its
    /// oldest request unanswered when another times out, before the process is deemed hung.
    let hangTimeout: Duration
    /// Broadcast whenever the phase changes; shared by the pool's shards.
    let changed: Condition
    private let gauges: Gauges
    private let state: Mutex<State>
    /// Held while writing to vw's stdin or closing it, so a write never reaches a closed descriptor.
    private let writeLock = Mutex(())

    init(index: Int, modelName: String, arguments: [String], hangTimeout: Duration = .seconds(5),
         changed: Condition = Condition(), logger: Logger) {
        self.index = index
        self.modelName = modelName
        let gauges = Gauges()
        self.gauges = gauges
        self.state = Mutex(State(gauges: gauges))
        self.arguments = arguments
        self.hangTimeout = hangTimeout
        self.changed = changed
        var logger = logger
        logger[metadataKey: "shard"] = "\(index)"
        self.logger = logger
    }

    // MARK: Status

    public var status: ShardStatus {
        state.withLock { s in
            ShardStatus(pid: s.phase.process?.pid, ready: s.phase.isRunning, restarts: s.restarts, inflight: s.queue.count)
        }
    }

    var isReady: Bool { gauges.ready.load(ordering: .relaxed) }
    var load: Int { gauges.load.load(ordering: .relaxed) }

    /// The last bytes vw wrote to stderr, to explain a failed load; waits up to `deadline` for vw's last words.
    func stderrTail(waitingUntil deadline: Deadline = .after(.zero)) -> String {
        changed.wait(until: deadline) { state.withLock { $0.stderrClosed } }
        return state.withLock { String(decoding: $0.stderrTail, as: UTF8.self) }
    }

    private func setPhase(_ phase: Phase) {
        changed.broadcast { state.withLock { $0.phase = phase } }
    }

    // MARK: Lifecycle

    /// Starts the vw process and its reader threads; the shard is ready once this returns.
    func start() throws(ProcessError) {
        let process = try VWProcess.spawn(arguments: arguments)
        changed.broadcast {
            state.withLock { s in
                s.phase = .running(process)
                s.startedAt = .now
                s.stderrClosed = false
            }
        }
        DetachedThread.start(name: "vw-out-\(process.pid)") { [self] in readAnswers(from: process) }
        startStderrDrain(of: process)
    }

    /// Stops accepting requests, lets vw answer what it holds, then ends it (SIGKILL after `grace`).
    func stop(grace: Duration) {
        let running: VWProcess? = state.withLock { s in
            switch s.phase {
            case .stopped, .stopping:
                return nil
            case .running(let process):
                s.phase = .stopping(process)
                return process
            case .idle:
                // Never started: nothing to wait for.
                s.phase = .stopped
                return nil
            case .restarting:
                // The restart loop sees `.stopping` and finishes the shard itself.
                s.phase = .stopping(nil)
                return nil
            }
        }
        changed.broadcast()
        if let running {
            writeLock.withLock { _ in running.closeInput() }
        }
        let isStopped = { self.state.withLock { $0.phase.isStopped } }
        if changed.wait(until: .after(grace), for: isStopped) { return }
        // Signal only a process not reaped yet, so a recycled pid is never hit; its whole group,
        // so nothing it forked keeps the pipes open.
        state.withLock { s in s.phase.process?.killGroup() }
        changed.wait(until: .never, for: isStopped)
    }

    /// Kills a vw process that stopped answering; the reader restarts it.
    ///
    /// `request` ran out of time while this process held it. That alone does not prove vw hung: a retry or a
    /// request that spent its deadline elsewhere may reach a healthy vw with milliseconds left. vw is deemed hung
    /// only when the oldest request it holds has waited at least half of `hangTimeout` (the request timeout);
    /// otherwise the request fails alone and its answer, when it comes, is dropped.
    func killHung(holding request: PendingPrediction) {
        let killed: Int32? = state.withLock { s in
            guard case .running(let process) = s.phase, s.queue.contains(request), let oldest = s.queue.first,
                  ContinuousClock.now - oldest.enqueuedAt >= hangTimeout / 2 else { return nil }
            process.killGroup()
            return process.pid
        }
        if let killed {
            logger.warning("vw did not answer in time, killed it", metadata: ["pid": "\(killed)"])
        }
    }

    // MARK: Requests

    /// Queues `batch` and writes it to vw; the answer arrives through the returned request.
    func submit(_ batch: PreparedBatch) throws(ShardFailure) -> PendingPrediction {
        let request = PendingPrediction(frame: batch.frame, capacity: batch.count * 12)
        if batch.count == 0 {
            // vw prints nothing for nothing: never queue a request no answer would complete.
            request.finish(with: AnswerFramer(frame: batch.frame))
            return request
        }
        let mustWrite: Bool = try state.withLock { s throws(ShardFailure) in
            guard s.phase.isRunning else { throw .notReady }
            s.queue.append(request)
            // An idle outbox takes the payload itself (shared, not copied); a busy one queues it behind what waits.
            if s.outbox.isEmpty { s.outbox = batch.payload } else { s.outbox.append(contentsOf: batch.payload) }
            if s.writerActive { return false }
            s.writerActive = true
            return true
        }
        if mustWrite { writeOutbox() }
        return request
    }

    /// Writes queued payloads until none is left, coalescing what arrives meanwhile into one write.
    ///
    /// The queue order and the byte order on the pipe are the same because both are appended
    /// under one lock and only one thread writes at a time. The process is looked up under
    /// `writeLock`, which `processExited` and `stop` also hold to close vw's input, so a write
    /// never reaches a closed (and possibly reused) descriptor.
    private func writeOutbox() {
        var chunk: [UInt8] = []
        while true {
            let finished: Bool = writeLock.withLock { _ in
                let process: VWProcess? = state.withLock { s in
                    guard !s.outbox.isEmpty, case .running(let process) = s.phase else {
                        s.outbox.removeAll(keepingCapacity: true)
                        s.writerActive = false
                        return nil
                    }
                    swap(&chunk, &s.outbox)
                    return process
                }
                guard let process else { return true }
                let deadline = Deadline.after(hangTimeout)
                if !chunk.withUnsafeBytes({ process.writeAll($0, by: deadline) }) {
                    // A broken, stalled or half-written pipe: the stream can no longer be trusted.
                    logger.error("cannot write to vw (broken pipe or no progress within \(hangTimeout)); killing it",
                                 metadata: ["pid": "\(process.pid)"])
                    process.killGroup()
                }
                // A large buffer is let go: kept, it would hold a big request's memory for good.
                if chunk.capacity > 1 << 20 { chunk = [] } else { chunk.removeAll(keepingCapacity: true) }
                return false
            }
            if finished { return }
        }
    }

    // MARK: Reader

    private func readAnswers(from process: VWProcess) {
        var current = process
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            var reading: Reading? = nil
            var inStep = true
            while true {
                let n = VWProcess.read(current.stdoutFD, into: buffer)
                if n <= 0 { break }
                // Once out of step, nothing more this process prints is delivered: it is being killed.
                guard inStep else { continue }
                do throws(FramingViolation) {
                    try consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), &reading)
                } catch {
                    inStep = false
                    EngineMetrics.framingViolation(model: modelName)
                    logger.error("vw's output does not match the requests it holds; killing it, its requests are retried",
                                 metadata: ["pid": "\(current.pid)", "violation": "\(error)"])
                    current.killGroup()
                }
            }
            guard let next = processExited(current) else { return }
            current = next
        }
    }

    /// The request at the head of the pipeline and the framer checking its answer.
    private struct Reading {
        let request: PendingPrediction
        var framer: AnswerFramer
    }

    /// Hands bytes to the oldest requests through their framers; throws when vw printed what no request expects.
    private func consume(_ bytes: UnsafeRawBufferPointer, _ reading: inout Reading?) throws(FramingViolation) {
        var offset = 0
        while offset < bytes.count {
            if reading == nil {
                guard let head = state.withLock({ $0.queue.first }) else {
                    throw FramingViolation(example: 0, line: 0, reason: "vw printed output no request was waiting for")
                }
                reading = Reading(request: head, framer: AnswerFramer(frame: head.frame, capacity: head.capacity))
            }
            offset += try reading!.framer.consume(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            guard let finished = reading, finished.framer.isComplete else { continue }
            state.withLock { s in
                _ = s.queue.removeFirst()
                s.answered = true
            }
            finished.request.finish(with: finished.framer)
            reading = nil
        }
    }

    /// Fails the requests the dead process held and starts a replacement; nil when stopping.
    private func processExited(_ process: VWProcess) -> VWProcess? {
        let (held, stopping) = state.withLock { s in
            let held = s.queue.removeAll()
            s.outbox.removeAll()
            let stopping = s.phase.isStopping
            // The process is about to be reaped: no phase may name it any more (its pid can be reused).
            s.phase = stopping ? .stopping(nil) : .restarting
            return (held, stopping)
        }
        changed.broadcast()
        _ = Glibc.close(process.stdoutFD)
        if !stopping {
            // When stopping, `stop` has already closed vw's input.
            writeLock.withLock { _ in process.closeInput() }
        }
        let how = process.reap()
        let reason = "vw (pid \(process.pid)) \(how)"
        for request in held { request.complete(.failure(.processDied(reason))) }
        if stopping {
            setPhase(.stopped)
            return nil
        }
        let streak = state.withLock { s in
            let stable = s.answered || ContinuousClock.now - s.startedAt >= Self.stableRun
            s.crashStreak = stable ? 0 : s.crashStreak + 1
            return s.crashStreak
        }
        var delay = Self.restartDelay(afterCrashes: streak)
        logger.warning("vw exited, restarting", metadata: [
            "reason": "\(reason)", "failed_requests": "\(held.count)", "delay": "\(delay)",
        ])
        while true {
            // Sleeps out the backoff, woken early by `stop`.
            if changed.wait(until: .after(delay), for: { isStopping }) {
                setPhase(.stopped)
                return nil
            }
            do {
                let replacement = try VWProcess.spawn(arguments: arguments)
                let stoppedMeanwhile = state.withLock { s in
                    s.startedAt = .now
                    s.answered = false
                    s.restarts += 1
                    s.stderrClosed = false
                    if s.phase.isStopping {
                        s.phase = .stopping(replacement)
                        return true
                    }
                    s.phase = .running(replacement)
                    return false
                }
                changed.broadcast()
                startStderrDrain(of: replacement)
                EngineMetrics.shardRestarted(model: modelName)
                if stoppedMeanwhile {
                    // Let the reader see it end like any stopping process.
                    writeLock.withLock { _ in replacement.closeInput() }
                }
                return replacement
            } catch {
                logger.error("could not restart vw", metadata: ["error": "\(error)"])
                delay = min(max(delay * 2, .milliseconds(100)), Self.maxRestartDelay)
            }
        }
    }

    private var isStopping: Bool { state.withLock { $0.phase.isStopping } }

    /// A process that answered a request, or ran this long, was stable: its replacement starts at once.
    static let stableRun: Duration = .seconds(10)
    static let maxRestartDelay: Duration = .seconds(5)

    /// No delay for a first crash, then 100 ms doubling up to 5 s for crashes in a row
    /// (processes that exit before answering anything, e.g. a model vw cannot load).
    static func restartDelay(afterCrashes streak: Int) -> Duration {
        guard streak > 1 else { return .zero }
        return min(.milliseconds(100) * (1 << min(streak - 2, 10)), maxRestartDelay)
    }

    // MARK: stderr

    private func startStderrDrain(of process: VWProcess) {
        DetachedThread.start(name: "vw-err-\(process.pid)") { [self] in drainStderr(of: process) }
    }

    /// Reads vw's stderr until it closes: a chatty vw must never block on a full pipe.
    private func drainStderr(of process: VWProcess) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer {
            buffer.deallocate()
            _ = Glibc.close(process.stderrFD)
            changed.broadcast { state.withLock { $0.stderrClosed = true } }
        }
        while true {
            let n = VWProcess.read(process.stderrFD, into: buffer)
            if n <= 0 { return }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            state.withLock { s in
                s.stderrTail.append(contentsOf: chunk)
                if s.stderrTail.count > 2048 { s.stderrTail.removeFirst(s.stderrTail.count - 2048) }
            }
            if logger.logLevel <= .debug {
                logger.debug("vw stderr", metadata: ["pid": "\(process.pid)", "text": "\(String(decoding: chunk, as: UTF8.self))"])
            }
        }
    }
}

/// A FIFO of requests with O(1) removal at the front.
struct RequestQueue {
    private var items: [PendingPrediction] = []
    private var head = 0

    var count: Int { items.count - head }
    var first: PendingPrediction? { head < items.count ? items[head] : nil }

    mutating func append(_ request: PendingPrediction) { items.append(request) }

    mutating func removeFirst() -> PendingPrediction {
        let request = items[head]
        head += 1
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return request
    }

    mutating func removeAll() -> [PendingPrediction] {
        let rest = Array(items[head...])
        items.removeAll()
        head = 0
        return rest
    }

    func contains(_ request: PendingPrediction) -> Bool {
        items[head...].contains { $0 === request }
    }
}

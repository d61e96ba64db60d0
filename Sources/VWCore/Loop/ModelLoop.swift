#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import Logging
import Synchronization

/// One model's decide, log, reward and join loop on this instance (SPEC §8.2–8.5).
public final class ModelLoop: Sendable {
    public let name: String
    let log: EventLog
    /// The join, once this process holds the model's join lock (nil before, and after it gave the lock up).
    private let joiner = Mutex<Joiner?>(nil)
    /// What retention knows of `joined/` (taken inside `joiner`'s lock when both are).
    private let joinedFiles = Mutex(JoinedFileIndex())
    /// The descriptor holding `<state>/<name>/join.lock` (flock), -1 when this process does not hold it.
    private let joinLock = Atomic<Int32>(-1)
    private let stateDirectory: String
    /// `vwfcgi train`: this process joins and learns the models whose loop says `"trainer": "external"`.
    private let externalTrainer: Bool
    /// Learns the model, on the trainer thread only (see `LearningLoops.startLearning`).
    let learner: Learner
    let decisions = Atomic<Int>(0)
    let rewards = Atomic<Int>(0)
    let activations = Atomic<Int>(0)
    let learns = Atomic<Int>(0)
    /// The slots of this instance's recent multislot decisions (SPEC §9), to check the slot ids of their rewards.
    let recentSlots = RecentSlotDecisions()
    private let sums = Mutex(Sums())
    /// What `GET …/loop` shows of the join, published after each step (never read under the joiner's lock,
    /// which is held across file I/O).
    private let joinView = Mutex(JoinView())
    /// When freed memory was last given back after a join step.
    private let lastTrim = Mutex(ContinuousClock.now)
    private let metrics: LoopMetrics

    private struct Sums {
        /// Rewards received by this instance.
        var received = 0.0
        /// The rewards (or default rewards) of the events joined since start: the logged policy's reward.
        var joined = 0.0
        var joinedDecisions = 0
        /// Joined lines: decisions and `:learn` examples.
        var joinedCount = 0
    }

    private let logger: Logger

    init(name: String, log: EventLog, stateDirectory: String, externalTrainer: Bool, logger: Logger) {
        self.name = name
        self.stateDirectory = stateDirectory
        self.externalTrainer = externalTrainer
        let metrics = LoopMetrics(model: name)
        self.metrics = metrics
        learner = Learner(stateDirectory: stateDirectory, name: name, metrics: metrics, logger: logger)
        var logger = logger
        logger[metadataKey: "model"] = "\(name)"
        self.logger = logger
        self.log = log
    }

    /// Appends lines to the log; returns once they are on disk.
    func append(_ lines: [[UInt8]], kind: LoopMetrics.Kind, rewardSum: Double = 0) throws(EventLogError) {
        try log.append(lines: lines)
        switch kind {
        case .decision: decisions.wrappingAdd(lines.count, ordering: .relaxed)
        case .reward: rewards.wrappingAdd(lines.count, ordering: .relaxed)
        case .activation: activations.wrappingAdd(lines.count, ordering: .relaxed)
        case .learn: learns.wrappingAdd(lines.count, ordering: .relaxed)
        }
        let total = sums.withLock { s in
            s.received += rewardSum
            return s.received
        }
        metrics.recorded(kind, count: lines.count, rewardSum: total)
    }

    /// Joins what is due under `config`, the serving version's loop settings (nil: the model does not serve:
    /// nothing is joined, and nothing is fixed by it), and adds the joined events' rewards to the logged policy's average.
    ///
    /// Several instances may share one state directory (SPEC §8.4): only the one holding
    /// `<state>/<name>/join.lock` (flock, released when its process dies) joins; the others log
    /// only and try again on the next round. The join state is read from disk when the lock is
    /// taken, so a takeover continues exactly where the previous joiner stopped. A serving instance of a model
    /// whose loop says `"trainer": "external"` does not join, and gives the lock up if it held it.
    /// Returns whether the log has more to read at once (the step read its budget).
    @discardableResult
    func join(now: Int64, config: LoopConfig?) -> Bool {
        guard let config else { return false }
        joinView.withLock { $0.settings = config }
        guard externalTrainer || !config.externalTrainer else {
            releaseJoinLock()
            return false
        }
        let outcome = joiner.withLock { current -> Result<(JoinStep, Int, Int, Bool, Int), EventLogError>? in
            do throws(EventLogError) {
                if current == nil {
                    if joinLock.load(ordering: .relaxed) < 0 {
                        guard let fd = try takeJoinLock() else { return nil }
                        joinLock.store(fd, ordering: .relaxed)
                    }
                    // Reads the saved join state; a failure is retried on the next round, the lock kept.
                    let opened = try Joiner(stateDirectory: stateDirectory, name: name, settings: JoinSettings(config))
                    current = opened
                    logger.info("joining this model's events here (join lock taken)")
                    if let problem = opened.restoreProblem {
                        logger.error("join state could not be used", metadata: ["problem": "\(problem)"])
                        joinView.withLock { $0.lastError = LoopError.now(problem) }
                    }
                }
                guard let joiner = current else { return nil }
                joiner.settings = JoinSettings(config)
                let read = joiner.bytesRead
                let step = try joiner.step(nowMilliseconds: now)
                return .success((step, joiner.pendingCount, joiner.orphanCount, joiner.caughtUp, joiner.bytesRead - read))
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case nil:
            return false
        case .failure(let error)?:
            logger.error("join failed", metadata: ["error": "\(error.message)"])
            joinView.withLock { $0.lastError = LoopError.now("join: " + error.message) }
            return false
        case .success(let (step, pending, orphans, caughtUp, read))?:
            absorb(step, pending: pending, orphans: orphans)
            // A step that read a lot parsed many lines: give the freed memory back (glibc keeps it otherwise); after
            // smaller ones, at most once a second (the request threads' parsing of a flood is freed meanwhile).
            if read >= 64 << 10 || step.wroteSnapshot || (read > 0 && ContinuousClock.now - lastTrim.withLock({ $0 }) >= .seconds(1)) {
                lastTrim.withLock { $0 = .now }
                MemoryTuning.returnFreedMemory()
            }
            return !caughtUp
        }
    }

    private func absorb(_ step: JoinStep, pending: Int, orphans: Int) {
        metrics.pending.record(pending)
        // A torn last line (kill -9 while writing: never acknowledged) or any unreadable line is skipped, and said.
        for skipped in step.skipped {
            logger.warning("event log line skipped", metadata: ["line": "\(skipped)"])
            metrics.skipped(skipped.kind)
        }
        if step.clippedProbabilities > 0 { metrics.skipped(.clippedProbability, count: step.clippedProbabilities) }
        let droppedPending = step.droppedPendingOverCap + step.droppedDeferred
        let droppedOrphans = step.droppedOrphansOverCap + step.droppedOrphans
        if droppedPending > 0 { metrics.droppedPending.increment(by: droppedPending) }
        if droppedOrphans > 0 { metrics.droppedOrphans.increment(by: droppedOrphans) }
        joinView.withLock { view in
            view.pending = pending
            view.orphans = orphans
            view.droppedPending += droppedPending
            view.droppedOrphans += droppedOrphans
            view.skipped += step.skipped.count
            view.clippedProbabilities += step.clippedProbabilities
            if let last = step.skipped.last { view.lastError = LoopError.now("log line skipped: \(last)") }
            if step.droppedPendingOverCap > 0 || step.droppedOrphansOverCap > 0 {
                view.lastError = LoopError.now("over the caps: dropped \(step.droppedPendingOverCap) pending decisions and "
                    + "\(step.droppedOrphansOverCap) orphan events (max_pending, max_orphans)")
            }
        }
        guard !step.joined.isEmpty else { return }
        let average = sums.withLock { s -> Double? in
            s.joined += step.rewardSum
            s.joinedDecisions += step.decisionsJoined
            s.joinedCount += step.joined.count
            return s.joinedDecisions > 0 ? s.joined / Double(s.joinedDecisions) : nil
        }
        metrics.joined.increment(by: step.joined.count)
        if let average { metrics.averageReward.record(average) }
    }

    /// This model's state usage and the files nothing needs any more (issue 24); nil when its directory cannot be opened.
    func scanState(config: LoopConfig, learns: Bool, now: Int) -> StateUsage? {
        guard let model = try? StateDirectory.root(stateDirectory).directory(name, create: false) else { return nil }
        // The periodic listing of joined/ (long with millions of files) does not hold up the join.
        if let joined = try? model.directory("joined", create: false) { joinedFiles.withLock { $0.rescanIfDue(joined, now: now) } }
        return joiner.withLock { current in
            joinedFiles.withLock { index in
                Retention.scan(model: model, joiner: current, joined: &index, loop: config, learns: learns, now: now)
            }
        }
    }

    /// Deletes `file` (a file retention found deletable), counting its bytes.
    func delete(_ file: StateFile) {
        file.directory.remove(file.name)
        if file.kind == .joined, let number = Joiner.joinedNumber(file.name) {
            joinedFiles.withLock { $0.remove(number) }
        }
        metrics.deleted(file.kind, bytes: file.bytes)
        joinView.withLock { $0.deletedBytes[file.kind.rawValue, default: 0] += file.bytes }
    }

    /// Publishes the state usage and the budget's verdict for `/loop` and the metrics.
    func publishState(_ usage: StateUsage, budget: Int?, free: Int?, refusal: String?) {
        for kind in StateKind.allCases { metrics.stateBytes(kind, usage.bytes[kind] ?? 0) }
        joinView.withLock { view in
            view.stateBytes = Dictionary(uniqueKeysWithValues: StateKind.allCases.map { ($0.rawValue, usage.bytes[$0] ?? 0) })
            view.stateBudget = budget
            view.freeBytes = free
            view.overBudget = refusal
            if let refusal { view.lastError = LoopError.now(refusal) }
        }
    }

    /// `loop:rotate`: closes the current segment (the next append starts a new one), so that it can be shipped.
    func rotate() {
        log.close()
    }

    /// Takes the exclusive lock `<state>/<name>/join.lock` for the life of the process (or until given up);
    /// nil when another holds it. The lock file is opened by descriptor, never through a symlink, and must be a
    /// regular file.
    private func takeJoinLock() throws(EventLogError) -> Int32? {
        let directory = try StateDirectory.root(stateDirectory).directory(name)
        let fd = try directory.openRegular("join.lock", flags: O_RDWR | O_CREAT) ?? -1
        guard fd >= 0 else { return nil }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return fd }  // the descriptor stays open: the lock lives with it
        close(fd)
        return nil
    }

    private func releaseJoinLock() {
        joiner.withLock { current in
            current = nil
            let fd = joinLock.exchange(-1, ordering: .relaxed)
            if fd >= 0 {
                close(fd)
                logger.info("not joining this model's events here any more (its loop is trained externally)")
            }
        }
    }

    /// `GET /v1/models/<name>/loop`.
    public var status: LoopStatus {
        let (joined, decisionsJoined, joinedSum, received) = sums.withLock { ($0.joinedCount, $0.joinedDecisions, $0.joined, $0.received) }
        let view = joinView.withLock { $0 }
        var learning = learner.status.withLock { $0 }
        if let joinError = view.lastError, learning.lastError == nil || (learning.lastErrorTime ?? "") < joinError.time {
            learning.lastError = joinError.message
        }
        return LoopStatus(
            decisions: decisions.load(ordering: .relaxed), rewards: rewards.load(ordering: .relaxed),
            activations: activations.load(ordering: .relaxed), learns: learns.load(ordering: .relaxed), joined: joined,
            pending: view.pending, rewardSum: received, averageReward: decisionsJoined > 0 ? joinedSum / Double(decisionsJoined) : nil,
            learning: learning, orphans: view.orphans, droppedPending: view.droppedPending, droppedOrphans: view.droppedOrphans,
            skippedLines: view.skipped + learning.skippedLines, clippedProbabilities: view.clippedProbabilities, settings: view.settings,
            joinsHere: joinLock.load(ordering: .relaxed) >= 0, stateBytes: view.stateBytes, deletedBytes: view.deletedBytes,
            stateBudget: view.stateBudget, freeBytes: view.freeBytes, overBudget: view.overBudget
        )
    }
}

/// The join's part of the loop status, published after each step.
struct JoinView {
    var pending = 0
    var orphans = 0
    var droppedPending = 0
    var droppedOrphans = 0
    var skipped = 0
    var clippedProbabilities = 0
    var lastError: LoopError?
    var settings: LoopConfig?
    var stateBytes: [String: Int] = [:]
    var deletedBytes: [String: Int] = [:]
    var stateBudget: Int?
    var freeBytes: Int?
    var overBudget: String?
}

/// A loop error with its RFC 3339 time (for `last_error`, newest wins).
struct LoopError: Equatable {
    var time: String
    var message: String

    static func now(_ message: String) -> LoopError {
        LoopError(time: rfc3339Now(), message: message)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
public import Logging
import Synchronization

/// One model's decide, log, reward and join loop on this instance (SPEC §8.2–8.5).
public final class ModelLoop: Sendable {
    public let name: String
    let log: EventLog
    /// The join, once this process holds the model's join lock (nil before, and after it gave the lock up).
    private let joiner = Mutex<Joiner?>(nil)
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
        return joiner.withLock { current in
            Retention.scan(model: model, joiner: current, loop: config, learns: learns, deletesSegments: !externalTrainer, now: now)
        }
    }

    /// Deletes `file` (a file retention found deletable), counting its bytes.
    func delete(_ file: StateFile) {
        file.directory.remove(file.name)
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

/// What `GET /v1/models/<name>/loop` reports (the learning half, issue 13, adds updates and estimates).
public struct LoopStatus: Sendable, Equatable {
    /// Decisions, rewards and activations this instance logged since it started.
    public let decisions: Int
    public let rewards: Int
    public let activations: Int
    /// Labelled examples (`:learn`) this instance logged since it started.
    public let learns: Int
    /// Events this instance joined since it started, and decisions waiting for their rewards.
    public let joined: Int
    public let pending: Int
    /// The sum of the rewards this instance received.
    public let rewardSum: Double
    /// The logged policy's average reward over the events joined since start (nil before the first).
    public let averageReward: Double?
    /// Updates, the learned version and the policy estimate (SPEC §8.6, §8.8).
    public let learning: LearnStatus
    /// Event ids with rewards but no decision yet; dropped by age or the caps since start; log lines skipped;
    /// logged probabilities clipped to `min_probability` (SPEC §8.9).
    public var orphans = 0
    public var droppedPending = 0
    public var droppedOrphans = 0
    public var skippedLines = 0
    public var clippedProbabilities = 0
    /// The loop settings in force (the serving version's `.json`), nil before the model served.
    public var settings: LoopConfig?
    /// Whether this instance holds the model's join lock.
    public var joinsHere = false
    /// Bytes of the model's state by kind (log, joined, learned, rejected, join), bytes deleted by retention since
    /// start by kind, the state budget (`--state-max-bytes`), the volume's free bytes, and why the write routes answer
    /// 503 when the budget is exceeded with nothing left to delete (issue 24).
    public var stateBytes: [String: Int] = [:]
    public var deletedBytes: [String: Int] = [:]
    public var stateBudget: Int?
    public var freeBytes: Int?
    public var overBudget: String?
}

/// Every model's loop on this instance, created on first use, and the thread that joins them.
public final class LearningLoops: Sendable {
    public let stateDirectory: String
    public let instance: String
    private let loops = Mutex<[String: ModelLoop]>([:])
    private let joinerStarted = Atomic<Bool>(false)
    /// The loop settings in force for a model: its serving version's (nil while it does not serve), and whether its
    /// `.json` has a `"loop"` (learning) at all. Set by the engine.
    private let settingsSource = Mutex<(@Sendable (String) -> ServingLoop?)?>(nil)
    /// `--state-max-bytes` (nil: no budget; retention ages still apply).
    public let stateBudget: Int?
    /// Why the loop's write routes answer 503 (the state directory is over its budget and nothing more can be deleted).
    private let refusalReason = Mutex<String?>(nil)
    private let refusing = Atomic<Bool>(false)
    /// How often retention runs: at every join round when a budget is set (so the state exceeds it by at most what a
    /// round writes), else every 2 s.
    var retentionPeriod: Duration { stateBudget == nil ? .seconds(2) : Self.joinPeriod }
    private let trainerStarted = Atomic<Bool>(false)
    /// `vwfcgi train`: joins every model, and learns those whose loop says `"trainer": "external"`.
    public let externalTrainer: Bool
    private let logger: Logger
    /// How often the joiner looks for due decisions.
    static let joinPeriod: Duration = .milliseconds(250)

    /// Log segments rotate at this size or age (SPEC §8.4).
    private let segmentBytes: Int
    private let segmentAge: Duration

    public init(stateDirectory: String, instance: String, externalTrainer: Bool = false, stateBudget: Int? = nil,
                segmentBytes: Int = 64 << 20, segmentAge: Duration = .seconds(3600), logger: Logger) {
        self.stateDirectory = stateDirectory
        self.stateBudget = stateBudget
        self.segmentBytes = segmentBytes
        self.segmentAge = segmentAge
        self.instance = instance
        self.externalTrainer = externalTrainer
        self.logger = logger
    }

    /// The model learned from file version `base` of model `name`, to load in its place (`EngineSettings.learnedModel`),
    /// when this process learns it (a serving instance of an externally trained model gets its models from the sidecar).
    public func learnedModel(name: String, base: String, loop: LoopConfig) -> LearnedModel? {
        guard loop.externalTrainer == externalTrainer else { return nil }
        return Learner.learnedModel(stateDirectory: stateDirectory, name: name, base: base)
    }

    /// Starts the trainer thread: every model whose serving version has a `"loop"` that this process learns
    /// (internal here, external in `vwfcgi train`) is joined and, every `update_interval`, learned (SPEC §8.6).
    public func startLearning(store: ModelStore, settings: TrainerSettings) {
        guard trainerStarted.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else { return }
        follow { [store] name in ServingLoop(store.serving(name)) }
        DetachedThread.start(name: "trainer") { [self] in
            let tick = Condition()
            while true {
                tick.wait(until: .after(Self.joinPeriod)) { false }
                for name in store.modelNames {
                    guard let config = store.serving(name)?.loop, config.externalTrainer == externalTrainer,
                          config.learningMode != .loggingOnly else { continue }
                    do throws(EventLogError) {
                        try loop(for: name).learner.tick(store: store, settings: settings)
                    } catch {
                        logger.error("cannot open the model's loop", metadata: ["model": "\(name)", "error": "\(error.message)"])
                    }
                }
            }
        }
    }

    /// Makes the join follow the serving versions: `source(name)` is the loop settings of model `name`'s serving
    /// version (its `"loop"`, or the defaults for a log-only model), nil while it does not serve.
    public func follow(_ source: @escaping @Sendable (String) -> ServingLoop?) {
        settingsSource.withLock { $0 = source }
    }

    /// Why the loop's write routes must answer 503 now, nil when they may write.
    /// Read by every loop write: an atomic flag first, the lock only while refusing.
    public var refusal: String? {
        guard refusing.load(ordering: .relaxed) else { return nil }
        return refusalReason.withLock { $0 }
    }

    /// Deletes what retention allows and what the budget requires, oldest first; sets or clears the refusal (issue 24).
    func enforceRetention(source: ((String) -> ServingLoop?)?) {
        let now = Int(EventLine.nowMilliseconds() / 1000)
        var scanned: [(loop: ModelLoop, usage: StateUsage)] = []
        for loop in loops.withLock({ Array($0.values) }) {
            let serving = source?(loop.name)
            let config = serving?.config ?? LoopConfig()
            let learns = serving.map { $0.hasLoop && $0.config.externalTrainer == externalTrainer } ?? true
            guard var usage = loop.scanState(config: config, learns: learns, now: now) else { continue }
            usage.deletable.removeAll { file in
                guard file.expired else { return false }
                loop.delete(file)
                usage.bytes[file.kind, default: 0] -= file.bytes
                return true
            }
            scanned.append((loop, usage))
        }
        var total = scanned.reduce(0) { $0 + $1.usage.total }
        if let budget = stateBudget, total > budget {
            var candidates = scanned.indices.flatMap { index in scanned[index].usage.deletable.map { (index, $0) } }
            candidates.sort { ($0.1.modified, $0.1.name) < ($1.1.modified, $1.1.name) }
            for (index, file) in candidates where total > budget {
                scanned[index].loop.delete(file)
                scanned[index].usage.bytes[file.kind, default: 0] -= file.bytes
                total -= file.bytes
            }
        }
        var refusal: String?
        if let budget = stateBudget, total > budget {
            refusal = "the state directory holds \(total) bytes, over its budget of \(budget) (--state-max-bytes), and nothing more "
                + "can be deleted (segments with unjoined events, joined events not learned yet, the serving and rollback models)"
        }
        let previous = refusalReason.withLock { reason in
            defer { reason = refusal }
            return reason
        }
        refusing.store(refusal != nil, ordering: .relaxed)
        if refusal != previous {
            if let refusal { logger.error("loop writes refused", metadata: ["reason": "\(refusal)"]) } else if previous != nil {
                logger.info("the state directory is back within its budget; loop writes accepted again")
            }
        }
        let free = (try? StateDirectory.root(stateDirectory)).flatMap(Retention.freeBytes)
        LoopMetrics.recordBudget(stateBudget, free: free)
        for (loop, usage) in scanned { loop.publishState(usage, budget: stateBudget, free: free, refusal: refusal) }
    }

    /// The loop of model `name`, opening its log and joiner on first use.
    func loop(for name: String) throws(EventLogError) -> ModelLoop {
        if let existing = loops.withLock({ $0[name] }) { return existing }
        let log = try EventLog(stateDirectory: stateDirectory, name: name, instance: instance, maxSegmentBytes: segmentBytes,
                               maxSegmentAge: segmentAge)
        let created = ModelLoop(name: name, log: log, stateDirectory: stateDirectory, externalTrainer: externalTrainer, logger: logger)
        let loop = loops.withLock { all in
            if let raced = all[name] { return raced }
            all[name] = created
            return created
        }
        if loop !== created { log.close() }
        startJoiner()
        return loop
    }

    /// The loop of `name` if it was used since start.
    public func existing(_ name: String) -> ModelLoop? { loops.withLock { $0[name] } }

    /// Whether model `name` has a loop on disk from an earlier run (its log or join state).
    func hasState(_ name: String) -> Bool {
        access(stateDirectory + "/" + name, F_OK) == 0
    }

    private func startJoiner() {
        guard joinerStarted.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else { return }
        DetachedThread.start(name: "joiner") { [self] in
            let tick = Condition()
            var lastRetention = ContinuousClock.now
            while true {
                tick.wait(until: .after(Self.joinPeriod)) { false }
                let source = settingsSource.withLock { $0 }
                for loop in loops.withLock({ Array($0.values) }) {
                    // Steps back to back while the log has more than a step reads (bounded: 64 steps, then the others' turn);
                    // with a budget, retention runs after each step, so the state exceeds it by at most what one step lets in.
                    for _ in 0..<64 {
                        let behind = loop.join(now: EventLine.nowMilliseconds(), config: source?(loop.name)?.config)
                        if stateBudget != nil {
                            lastRetention = .now
                            enforceRetention(source: source)
                        }
                        if !behind { break }
                    }
                }
                if ContinuousClock.now - lastRetention >= retentionPeriod {
                    lastRetention = .now
                    enforceRetention(source: source)
                }
            }
        }
    }
}

/// `vwfcgi_loop_*` of one model.
struct LoopMetrics: Sendable {
    enum Kind: String {
        case decision, reward, activation, learn
    }

    let joined: Counter
    private let model: String
    let droppedPending: Counter
    let droppedOrphans: Counter
    let updatesRejected: Counter
    let pending: Gauge
    let rewardSum: Gauge
    let averageReward: Gauge
    /// `vwfcgi_loop_events_total{kind}`: SPEC §8.8 names the kinds decision, reward and learn; an activation
    /// counts as a reward-side event. Made once: a metric looked up per request takes the factory's lock.
    private let decisions: Counter
    private let rewards: Counter
    private let learns: Counter
    /// The learning half (SPEC §8.6, §8.8).
    let updatesOK: Counter
    let updatesFailed: Counter
    let learnedEvents: Gauge
    let ipsEstimate: Gauge

    init(model: String) {
        func counter(_ label: String, _ extra: [(String, String)] = []) -> Counter {
            let counter = Counter(label: label, dimensions: [("model", model)] + extra)
            counter.increment(by: 0)
            return counter
        }
        func gauge(_ label: String) -> Gauge { Gauge(label: label, dimensions: [("model", model)]) }
        joined = counter("vwfcgi_loop_joined_total")
        self.model = model
        droppedPending = counter("vwfcgi_loop_dropped_total", [("kind", "pending")])
        droppedOrphans = counter("vwfcgi_loop_dropped_total", [("kind", "orphan")])
        updatesRejected = counter("vwfcgi_loop_updates_total", [("result", "rejected")])
        pending = gauge("vwfcgi_loop_pending_events")
        rewardSum = gauge("vwfcgi_loop_reward_sum")
        averageReward = gauge("vwfcgi_loop_average_reward")
        decisions = Counter(label: "vwfcgi_loop_events_total", dimensions: [("model", model), ("kind", "decision")])
        rewards = Counter(label: "vwfcgi_loop_events_total", dimensions: [("model", model), ("kind", "reward")])
        learns = Counter(label: "vwfcgi_loop_events_total", dimensions: [("model", model), ("kind", "learn")])
        updatesOK = counter("vwfcgi_loop_updates_total", [("result", "ok")])
        updatesFailed = counter("vwfcgi_loop_updates_total", [("result", "failed")])
        learnedEvents = gauge("vwfcgi_loop_learned_events")
        ipsEstimate = gauge("vwfcgi_loop_ips_estimate")
        pending.record(0)
        rewardSum.record(0)
        learnedEvents.record(0)
    }

    /// `vwfcgi_state_bytes{model,kind}`.
    func stateBytes(_ kind: StateKind, _ bytes: Int) {
        Gauge(label: "vwfcgi_state_bytes", dimensions: [("model", model), ("kind", kind.rawValue)]).record(bytes)
    }

    /// `vwfcgi_state_deleted_bytes_total{model,kind}`.
    func deleted(_ kind: StateKind, bytes: Int) {
        Counter(label: "vwfcgi_state_deleted_bytes_total", dimensions: [("model", model), ("kind", kind.rawValue)]).increment(by: bytes)
    }

    /// `vwfcgi_state_budget_bytes` and `vwfcgi_state_volume_free_bytes`.
    static func recordBudget(_ budget: Int?, free: Int?) {
        if let budget { Gauge(label: "vwfcgi_state_budget_bytes").record(budget) }
        if let free { Gauge(label: "vwfcgi_state_volume_free_bytes").record(free) }
    }

    /// `vwfcgi_loop_skipped_lines_total{model,reason}` (rare: looked up when it happens).
    func skipped(_ reason: SkipReason, count: Int = 1) {
        Counter(label: "vwfcgi_loop_skipped_lines_total", dimensions: [("model", model), ("reason", reason.rawValue)]).increment(by: count)
    }

    func recorded(_ kind: Kind, count: Int, rewardSum total: Double) {
        switch kind {
        case .decision: decisions.increment(by: count)
        case .reward, .activation: rewards.increment(by: count)
        case .learn: learns.increment(by: count)
        }
        if kind == .reward { rewardSum.record(total) }
    }

    /// One learning update ended.
    func updated(ok success: Bool, learnedEvents events: Int?, ips estimate: Double?) {
        (success ? updatesOK : updatesFailed).increment()
        if let events { learnedEvents.record(events) }
        if let estimate { ipsEstimate.record(estimate) }
    }
}

/// A model's loop as its serving version says: the settings in force, and whether its `.json` has a `"loop"`.
public struct ServingLoop: Sendable {
    public var config: LoopConfig
    public var hasLoop: Bool

    public init?(_ version: ModelVersion?) {
        guard let version else { return nil }
        config = version.loop ?? LoopConfig()
        hasLoop = version.loop != nil
    }
}

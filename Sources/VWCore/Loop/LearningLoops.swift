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
    /// The join, once this process holds the model's join lock (nil before), and whether it holds the lock.
    private let joiner = Mutex<Joiner?>(nil)
    private let holdsJoinLock = Atomic<Bool>(false)
    private let stateDirectory: String
    private let settings: JoinSettings
    /// Whether this process joins the model's events (not a serving instance of an externally trained model).
    private let joins: Bool
    /// Learns the model, on the trainer thread only (see `LearningLoops.startLearning`).
    let learner: Learner
    let decisions = Atomic<Int>(0)
    let rewards = Atomic<Int>(0)
    let activations = Atomic<Int>(0)
    let learns = Atomic<Int>(0)
    private let sums = Mutex(Sums())
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

    init(name: String, log: EventLog, stateDirectory: String, settings: JoinSettings, joins: Bool, logger: Logger) {
        self.name = name
        self.stateDirectory = stateDirectory
        self.settings = settings
        self.joins = joins
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

    /// Joins what is due, and adds the joined events' rewards to the logged policy's average.
    ///
    /// Several instances may share one state directory (SPEC §8.4): only the one holding
    /// `<state>/<name>/join.lock` (flock, released when its process dies) joins; the others log
    /// only and try again on the next round. The join state is read from disk when the lock is
    /// taken, so a takeover continues exactly where the previous joiner stopped.
    func join(now: Int64) throws(EventLogError) {
        guard joins else { return }
        let outcome = try joiner.withLock { current throws(EventLogError) -> (JoinStep, Int)? in
            if current == nil {
                if !holdsJoinLock.load(ordering: .relaxed) {
                    guard Self.takeJoinLock(stateDirectory + "/" + name + "/join.lock") else { return nil }
                    holdsJoinLock.store(true, ordering: .relaxed)
                }
                // Reads the saved join state; a failure is retried on the next round, the lock kept.
                current = try Joiner(stateDirectory: stateDirectory, name: name, settings: settings)
                logger.info("joining this model's events here (join lock taken)")
            }
            let joiner = current!
            return (try joiner.step(nowMilliseconds: now), joiner.pendingCount)
        }
        guard let (step, pending) = outcome else { return }
        metrics.pending.record(pending)
        // A torn last line (kill -9 while writing: never acknowledged) or any unreadable line is skipped, and said.
        for skipped in step.skipped {
            logger.warning("event log line skipped", metadata: ["line": "\(skipped)"])
        }
        if !step.skipped.isEmpty { metrics.skipped.increment(by: step.skipped.count) }
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

    /// Takes the exclusive lock at `path` for the life of the process; false when another holds it.
    private static func takeJoinLock(_ path: String) -> Bool {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }  // the descriptor stays open: the lock lives with the process
        close(fd)
        return false
    }

    /// `GET /v1/models/<name>/loop`.
    public var status: LoopStatus {
        let (joined, decisionsJoined, joinedSum, received) = sums.withLock { ($0.joinedCount, $0.joinedDecisions, $0.joined, $0.received) }
        let pending = joiner.withLock { $0?.pendingCount ?? 0 }
        return LoopStatus(
            decisions: decisions.load(ordering: .relaxed), rewards: rewards.load(ordering: .relaxed),
            activations: activations.load(ordering: .relaxed), learns: learns.load(ordering: .relaxed), joined: joined,
            pending: pending, rewardSum: received, averageReward: decisionsJoined > 0 ? joinedSum / Double(decisionsJoined) : nil,
            learning: learner.status.withLock { $0 }
        )
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
}

/// Every model's loop on this instance, created on first use, and the thread that joins them.
public final class LearningLoops: Sendable {
    public let stateDirectory: String
    public let instance: String
    private let loops = Mutex<[String: ModelLoop]>([:])
    private let joinerStarted = Atomic<Bool>(false)
    private let trainerStarted = Atomic<Bool>(false)
    /// `vwfcgi train`: joins every model, and learns those whose loop says `"trainer": "external"`.
    public let externalTrainer: Bool
    private let logger: Logger
    /// How often the joiner looks for due decisions.
    static let joinPeriod: Duration = .milliseconds(250)

    public init(stateDirectory: String, instance: String, externalTrainer: Bool = false, logger: Logger) {
        self.stateDirectory = stateDirectory
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
        DetachedThread.start(name: "trainer") { [self] in
            let tick = Condition()
            while true {
                tick.wait(until: .after(Self.joinPeriod)) { false }
                for name in store.modelNames {
                    guard let config = store.serving(name)?.loop, config.externalTrainer == externalTrainer else { continue }
                    do throws(EventLogError) {
                        try loop(for: name, config: config).learner.tick(store: store, settings: settings)
                    } catch {
                        logger.error("cannot open the model's loop", metadata: ["model": "\(name)", "error": "\(error.message)"])
                    }
                }
            }
        }
    }

    /// The loop of model `name`, opening its log and joiner on first use.
    func loop(for name: String, config: LoopConfig?) throws(EventLogError) -> ModelLoop {
        if let existing = loops.withLock({ $0[name] }) { return existing }
        let loopConfig = config ?? LoopConfig()
        let settings = JoinSettings(rewardWait: loopConfig.rewardWait, defaultReward: loopConfig.defaultReward)
        let log = try EventLog(stateDirectory: stateDirectory, name: name, instance: instance)
        let joins = externalTrainer || !loopConfig.externalTrainer
        let created = ModelLoop(name: name, log: log, stateDirectory: stateDirectory, settings: settings, joins: joins, logger: logger)
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
            while true {
                tick.wait(until: .after(Self.joinPeriod)) { false }
                for loop in loops.withLock({ Array($0.values) }) {
                    do throws(EventLogError) {
                        try loop.join(now: EventLine.nowMilliseconds())
                    } catch {
                        logger.error("join failed", metadata: ["model": "\(loop.name)", "error": "\(error.message)"])
                    }
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
    let skipped: Counter
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
        skipped = Counter(label: "vwfcgi_loop_skipped_lines_total", dimensions: [("model", model)])
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

#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
public import Logging
import Synchronization

/// Every model's loop on this instance, created on first use, and the services that join and learn them
/// (``joining``, ``learning(store:settings:)``, run by the command's ``ServiceGroup``).
public final class LearningLoops: Sendable {
    public let stateDirectory: String
    public let instance: String
    fileprivate let loops = Mutex<[String: ModelLoop]>([:])
    /// The loop settings in force for a model: its serving version's (nil while it does not serve), and whether its
    /// `.json` has a `"loop"` (learning) at all. Set by the engine.
    fileprivate let settingsSource = Mutex<(@Sendable (String) -> ServingLoop?)?>(nil)
    /// `--state-max-bytes` (nil: no budget; retention ages still apply).
    public let stateBudget: Int?
    /// Why the loop's write routes answer 503 (the state directory is over its budget and nothing more can be deleted).
    private let refusalReason = Mutex<String?>(nil)
    private let refusing = Atomic<Bool>(false)
    /// How often retention runs: at every join round when a budget is set (so the state exceeds it by at most what a
    /// round writes), else every 2 s.
    var retentionPeriod: Duration { stateBudget == nil ? .seconds(2) : Self.joinPeriod }
    /// `vwfcgi train`: joins every model, and learns those whose loop says `"trainer": "external"`.
    public let externalTrainer: Bool
    fileprivate let logger: Logger
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

    /// The model learned from file version `base` of model `name`, to load in its place (``LearnedModelSource``),
    /// when this process learns it (a serving instance of an externally trained model gets its models from the sidecar).
    public func learnedModel(name: String, base: String, baseFile: String, loop: LoopConfig) -> LearnedModel? {
        guard loop.externalTrainer == externalTrainer else { return nil }
        return Learner.learnedModel(stateDirectory: stateDirectory, name: name, base: base, baseFile: baseFile)
    }

    /// The trainer (a ``BackgroundService``): every model whose serving version has a `"loop"` that this process
    /// learns (internal here, external in `vwfcgi train`) is learned every `update_interval` (SPEC §8.6). Stopped, it
    /// returns after the update in progress. Also makes the join follow the store's serving versions.
    public func learning(store: ModelStore, settings: TrainerSettings) -> some BackgroundService {
        follow { [store] name in ServingLoop(store.serving(name)) }
        return Trainer(loops: self, store: store, settings: settings)
    }

    private struct Trainer: BackgroundService {
        let loops: LearningLoops
        let store: ModelStore
        let settings: TrainerSettings
        var serviceName: String { "trainer" }

        func run(until stop: StopToken) {
            while !stop.wait(for: LearningLoops.joinPeriod) {
                for name in store.modelNames where !stop.isStopped {
                    guard let config = store.serving(name)?.loop, config.externalTrainer == loops.externalTrainer,
                          config.learningMode != .loggingOnly else { continue }
                    do throws(EventLogError) {
                        try loops.loop(for: name).learner.tick(store: store, settings: settings)
                    } catch {
                        loops.logger.error("cannot open the model's loop", metadata: ["model": "\(name)", "error": "\(error.message)"])
                    }
                }
            }
        }
    }

    /// The joiner (a ``BackgroundService``): every `joinPeriod`, joins each loop's new events and enforces retention
    /// and the state budget. Stopped, it returns after the step in progress (what it joined is on disk).
    public var joining: some BackgroundService { Join(loops: self) }

    private struct Join: BackgroundService {
        let loops: LearningLoops
        var serviceName: String { "joiner" }

        func run(until stop: StopToken) {
            var lastRetention = ContinuousClock.now
            while !stop.wait(for: LearningLoops.joinPeriod) {
                let source = loops.settingsSource.withLock { $0 }
                for loop in loops.loops.withLock({ Array($0.values) }) where !stop.isStopped {
                    // Steps back to back while the log has more than a step reads (bounded: 64 steps, then the others' turn);
                    // with a budget, retention runs after each step, so the state exceeds it by at most what one step lets in.
                    for _ in 0..<64 {
                        let behind = loop.join(now: EventLine.nowMilliseconds(), config: source?(loop.name)?.config)
                        if loops.stateBudget != nil {
                            lastRetention = .now
                            loops.enforceRetention(source: source)
                        }
                        if !behind || stop.isStopped { break }
                    }
                }
                if ContinuousClock.now - lastRetention >= loops.retentionPeriod {
                    lastRetention = .now
                    loops.enforceRetention(source: source)
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
        let moreDeletable = scanned.contains { $0.usage.moreDeletable }
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
        // Over the budget with more files deletable than one pass offers: the next pass deletes them, writes go on.
        if let budget = stateBudget, total > budget, !moreDeletable {
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
        return loop
    }

    /// The loop of `name` if it was used since start.
    public func existing(_ name: String) -> ModelLoop? { loops.withLock { $0[name] } }

    /// Whether model `name` has a loop on disk from an earlier run (its log or join state).
    func hasState(_ name: String) -> Bool {
        access(stateDirectory + "/" + name, F_OK) == 0
    }
}

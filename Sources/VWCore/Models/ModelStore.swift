import CoreMetrics
public import Logging
import Synchronization

/// All models of the model directory, each with at most one serving version.
///
/// The store composes its parts: the ``ModelReconciler`` reads the directory and says which files
/// settled, the ``VersionLoader`` turns files into started versions, each model's ``ModelEntry``
/// holds its lifecycle, the ``ServingTable`` publishes what serves, and the ``VersionRetirer``
/// stops what no longer does.
public final class ModelStore: Sendable {
    /// A request thread's copy of the serving table.
    public typealias ReaderCache = ServingTable.ReaderCache

    public let settings: EngineSettings
    let logger: Logger
    private let entries = Mutex<[String: ModelEntry]>([:])
    private let table = ServingTable()
    private let reconciler: ModelReconciler
    private let loader: VersionLoader
    private let retirer: VersionRetirer
    /// Serialises reconciliations (startup, watcher, rescans).
    private let reconciling = Mutex(())
    private let loadsInProgress = Atomic<Int>(0)
    /// Broadcast when a load finishes.
    private let loadFinished = Condition()
    private let phase = Mutex(StorePhase.starting)

    /// - Parameter learnedModels: where a model learned from a file is found, to load in its place (the learning loop).
    public init(settings: EngineSettings, logger: Logger, learnedModels: (any LearnedModelSource)? = nil) {
        self.settings = settings
        self.logger = logger
        reconciler = ModelReconciler(directory: settings.modelDirectory, logger: logger)
        loader = VersionLoader(settings: settings, logger: logger, learnedModels: learnedModels)
        retirer = VersionRetirer(drainGrace: settings.drainGrace)
    }

    // MARK: Serving

    /// Whether the directory holds a model of this name (serving or not).
    public func contains(_ name: String, cache: inout ReaderCache) -> Bool {
        table.contains(name, cache: &cache)
    }

    /// Runs `body` with the model's serving version, which stays alive until `body` returns (lock-free, see ``ServingTable``).
    public func withServingVersion<R>(
        of name: String, cache: inout ReaderCache, _ body: (ModelVersion) throws(PredictError) -> R
    ) throws(PredictError) -> R {
        try table.withServingVersion(of: name, cache: &cache, body)
    }

    /// Runs `body` with the model's serving version (a convenience for callers without a cache).
    public func withServingVersion<R>(of name: String, _ body: (ModelVersion) throws(PredictError) -> R) throws(PredictError) -> R {
        var cache = ReaderCache()
        return try withServingVersion(of: name, cache: &cache, body)
    }

    /// The version of `name` that serves now, if any.
    public func serving(_ name: String) -> ModelVersion? {
        entries.withLock { $0[name] }?.current
    }

    public var modelNames: [String] { entries.withLock { $0.keys.sorted() } }

    public func status(of name: String) -> ModelStatus? {
        entries.withLock { $0[name] }?.status
    }

    public var statuses: [ModelStatus] { modelNames.compactMap { status(of: $0) } }

    /// Publishes every entry's serving version; must happen before a replaced version is retired.
    private func publishTable() {
        table.publish {
            let all = entries.withLock { $0 }
            return (all.compactMapValues(\.current), Set(all.keys))
        }
    }

    // MARK: Readiness

    /// Marks the models present at start-up as tried: from now on `/readyz` follows the models.
    public func finishStartup() {
        phase.withLock { if $0 == .starting { $0 = .serving } }
    }

    /// Marks the server as draining: `/readyz` answers 503 from now on.
    public func beginDraining() {
        phase.withLock { $0 = .draining }
    }

    /// Whether the server should receive traffic, per `settings.readiness` (SPEC §5).
    public func readiness() -> Readiness {
        Readiness(phase: phase.withLock { $0 }, statuses: statuses, rule: settings.readiness)
    }

    // MARK: Loading files

    /// Brings the store in line with the model directory: loads new and changed files, unloads removed ones.
    ///
    /// - Parameters:
    ///   - finished: file names known to be completely written (closed after writing, or renamed into place).
    ///   - writing: file names inotify saw modified and not yet closed (a writer has them open).
    ///   - settleAll: treat every file as completely written (at start, after a Kubernetes `..data` swap).
    /// - Returns: true when a changed file was left for later because it may still be being written.
    @discardableResult
    public func reconcile(finished: Set<String> = [], writing: Set<String> = [], settleAll: Bool = true) -> Bool {
        reconciling.withLock { _ in
            guard let found = reconciler.scan() else { return false }
            var plan = ModelReconciler.plan(
                found, now: realtimeNanoseconds(), finished: finished, writing: writing, settleAll: settleAll
            ) { name, files in
                entries.withLock { $0[name] }?.isChanged(files) ?? true
            }
            for (name, files) in plan.settled.sorted(by: { $0.key < $1.key }) where startLoad(name: name, files: files) {
                plan.unsettled = true
            }
            let removed = entries.withLock { all in
                all.keys.filter { !plan.present.contains($0) }.compactMap { all.removeValue(forKey: $0) }
            }
            publishTable()
            for entry in removed { unload(entry) }
            return plan.unsettled
        }
    }

    /// Starts loading the model's files on a thread of their own unless they were seen already.
    ///
    /// Loads of different models never wait for each other: one whose probe hangs until
    /// `--load-timeout` holds back only its own reloads. Returns true when the model is still
    /// loading an earlier state of its files (it is looked at again once that load ends).
    private func startLoad(name: String, files: ModelFiles) -> Bool {
        let entry = entries.withLock { all in
            if let existing = all[name] { return existing }
            let created = ModelEntry(name: name)
            all[name] = created
            return created
        }
        let current: String?
        switch entry.beginFileLoad(of: files) {
        case .busy: return true
        case .unchanged: return false
        case .started(let serving): current = serving
        }
        loadsInProgress.add(1, ordering: .sequentiallyConsistent)
        entry.loads.submit(name: name) { [self] in
            load(entry, files: files, unlessVersion: current)
            loadFinished.broadcast { loadsInProgress.subtract(1, ordering: .sequentiallyConsistent) }
        }
        return false
    }

    /// Waits until no load is in progress (at start-up: the models present were each tried).
    public func waitForLoads() {
        loadFinished.wait(until: .never) { loadsInProgress.load(ordering: .sequentiallyConsistent) == 0 }
    }

    private func load(_ entry: ModelEntry, files: ModelFiles, unlessVersion: String?) {
        let name = entry.name
        let loaded: ModelVersion
        do {
            guard let candidate = try loader.load(name: name, unlessVersion: unlessVersion) else {
                // The files are back to what already serves: nothing failed to load.
                entry.endLoad(files: files)
                return
            }
            loaded = candidate
        } catch {
            logger.error("model failed to load", metadata: ["model": "\(name)", "reason": "\(error.description)"])
            EngineMetrics.modelLoaded(name, ok: false)
            let serving = entry.failLoad(files: files, failure: LoadFailure(time: rfc3339Now(), reason: error.description))
            entry.readyGauge.record(serving ? 1 : 0)
            return
        }
        guard case .success(let previous) = entry.finishLoad(loaded, files: files) else {
            // The model was removed (or the server is stopping) while it loaded.
            retirer.retire(loaded)
            return
        }
        logger.info("model serving", metadata: ["model": "\(name)", "version": "\(loaded.version)", "shards": "\(loaded.pool.shards.count)"])
        EngineMetrics.modelLoaded(name, ok: true)
        entry.readyGauge.record(1)
        publishTable()
        if let previous { retirer.retire(previous) }
    }

    // MARK: Publishing learned models

    /// Why a learned model was not published.
    public enum PublishError: Error, CustomStringConvertible {
        /// The model is loading a file, was removed, or now serves another base: the learner must look again.
        case superseded(String)
        /// The learned model failed the same checks and probe as a dropped file.
        case invalid(LoadError)
        /// The learner could not persist it (the model is not swapped in).
        case notPersisted(String)

        public var description: String {
            switch self {
            case .superseded(let why): "superseded: \(why)"
            case .invalid(let error): error.description
            case .notPersisted(let why): "not persisted: \(why)"
            }
        }
    }

    /// Validates a learned model exactly like a dropped file (allowlist, config, probe), lets `persist`
    /// make it durable, then swaps it in through the ordinary path: no request fails (SPEC §8.6).
    ///
    /// Publishes only while the model still serves `current`, the version it was learned from: a file
    /// the operator dropped meanwhile wins. File loads of the model wait meanwhile. `base` is the file
    /// version the learning started from, `events` the joined events learned since.
    public func publishLearned(
        name: String, path: String, current: String, base: String, events: Int, persist: (ModelVersion) -> String?
    ) throws(PublishError) -> ModelVersion {
        guard let entry = entries.withLock({ $0[name] }) else { throw .superseded("\(name) is not in the model directory") }
        guard entry.beginPublish(replacing: current) else {
            throw .superseded("\(name) is loading, or serves another version than \(current)")
        }
        let candidate: ModelVersion
        do throws(LoadError) {
            // The entry serves `current` until this publication ends (beginPublish).
            candidate = try loader.load(name: name, path: path, origin: .learned(base: base, events: events),
                                        baseFile: serving(name)?.baseFile ?? base)
        } catch {
            entry.endLoad()
            EngineMetrics.modelLoaded(name, ok: false)
            throw .invalid(error)
        }
        if let why = persist(candidate) {
            entry.endLoad()
            retirer.retire(candidate)
            throw .notPersisted(why)
        }
        guard case .success(let replaced) = entry.finishLoad(candidate, files: nil) else {
            retirer.retire(candidate)
            throw .superseded("\(name) was removed")
        }
        logger.info("learned model serving", metadata: ["model": "\(name)", "version": "\(candidate.version)", "base": "\(base)", "events": "\(events)"])
        EngineMetrics.modelLoaded(name, ok: true)
        publishTable()
        if let replaced { retirer.retire(replaced) }
        return candidate
    }

    // MARK: Unloading

    private func unload(_ entry: ModelEntry) {
        let current = entry.remove()
        logger.info("model removed", metadata: ["model": "\(entry.name)"])
        entry.readyGauge.destroy()
        if let current { retirer.retire(current) }
        EngineMetrics.forget(model: entry.name)
    }

    /// Stops every model: waits for in-flight requests, then lets vw finish and exit.
    public func shutdown() {
        beginDraining()
        let all = entries.withLock { all in
            defer { all.removeAll() }
            return Array(all.values)
        }
        let versions = all.compactMap { $0.remove() }
        publishTable()
        retirer.retireNow(versions)
    }
}

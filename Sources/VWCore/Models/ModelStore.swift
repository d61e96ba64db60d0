#if canImport(Glibc)
import Glibc
#endif
public import Logging
import CoreMetrics
import Synchronization

/// How the engine runs models; every limit is configurable from the command line.
public struct EngineSettings: Sendable {
    public var modelDirectory: String
    /// The vw command, e.g. `["/srv/vwfcgi/bin/vw"]`; model arguments are appended.
    public var vwCommand: [String]
    public var defaultShards = 1
    public var maxBatch = 10_000
    public var limits = ExampleLimits()
    /// The most feature computations one request may cost vw (see `InteractionCost`).
    public var maxInteractionFeatures = 50_000_000
    public var requestTimeout: Duration = .seconds(5)
    public var loadTimeout: Duration = .seconds(60)
    public var maxQueuedRequests = 1024
    public var drainGrace: Duration = .seconds(10)
    /// Largest address space of each vw process in bytes (0: unlimited); applied through `Sandbox.configure`.
    public var vwMemoryLimit: UInt64 = SandboxPolicy.defaultMemoryLimit
    /// Private directory holding the exact bytes each loaded version was started from.
    public var stagingDirectory: String
    /// Largest model file loaded (`--max-model-bytes`); larger ones are refused before they are read.
    public var maxModelBytes = 1 << 30
    /// Whether `<name>.sha256` must exist next to `<name>.vw` (`--require-checksum`).
    public var requireChecksum = false
    /// When `/readyz` answers 200 (SPEC §5).
    public var readiness: ReadinessRule = .anyModel
    /// The model the learning loop learned from file version `base` of model `name`, if any: loaded in
    /// place of that file (SPEC §8.6, a restart resumes the learned model).
    public var learnedModel: (@Sendable (_ name: String, _ base: String, _ loop: LoopConfig) -> LearnedModel?)?
    /// The native scorer's engine mode and shadow checks (`--engine`, SPEC §11).
    public var native = NativeSettings()

    public init(modelDirectory: String, vwCommand: [String], stagingDirectory: String) {
        self.modelDirectory = modelDirectory
        self.vwCommand = vwCommand
        self.stagingDirectory = stagingDirectory
    }
}

/// A model file the learning loop wrote, and how many joined events it learned.
public struct LearnedModel: Sendable {
    public var path: String
    public var events: Int

    public init(path: String, events: Int) {
        self.path = path
        self.events = events
    }
}

/// A model's state for `GET /v1/models/<name>`.
public struct ModelStatus: Sendable {
    public let name: String
    public let ready: Bool
    public let version: String?
    public let loadedAt: String?
    public let shards: [ShardStatus]
    public let vwArgs: [String]
    public let multiline: Bool?
    public let lastError: LoadFailure?
    /// Where the serving version's bytes came from; nil when none serves.
    public let origin: ModelOrigin?
}

/// When the server counts as ready (`GET /readyz`).
public enum ReadinessRule: String, Sendable {
    /// Once the start-up models were each tried, while at least one model serves (SPEC §5): one bad
    /// file dropped into every pod's directory must not take every model off the Service.
    case anyModel = "any"
    /// Only while every model of the directory serves (`--readiness all`).
    case allModels = "all"
}

/// What `GET /readyz` reports.
public struct Readiness: Sendable {
    public let isReady: Bool
    /// Why the server is not ready, nil when it is.
    public let reason: String?
    public let ready: [String]
    public let notReady: [String]
}

/// The latest failure to load a model's current files.
public struct LoadFailure: Sendable, Equatable {
    public let time: String
    public let reason: String
}

/// All models of the model directory, each with at most one serving version.
public final class ModelStore: Sendable {
    final class Entry: Sendable {
        struct State {
            var current: ModelVersion?
            var lastError: LoadFailure?
            /// The files last looked at, so an unchanged directory costs only stat(2) calls.
            var seenFiles: ModelFiles?
            var seenContent: String?
            /// A load of this model's files is running on its own thread.
            var loading = false
            /// The model left the directory (or the server is stopping): a load that ends now is retired.
            var removed = false
        }

        let name: String
        let state = Mutex(State())
        /// `vwfcgi_model_ready{model}`: 1 while a version serves, removed with the model.
        let readyGauge: Gauge

        /// Runs the model's loads in order, on a thread of their own, so models load in parallel.
        let loader = Loader()

        init(name: String) {
            self.name = name
            readyGauge = Gauge(label: "vwfcgi_model_ready", dimensions: [("model", name)])
            readyGauge.record(0)
        }
    }

    /// Runs one model's loads in order on a thread of its own, which ends when no load is left.
    ///
    /// A load may outlive its thread's work: the vw processes it starts are forked by the
    /// spawner thread (`VWProcess.spawn`), so their parent-death signal does not follow this one.
    final class Loader: Sendable {
        private struct Queue {
            var jobs: [@Sendable () -> Void] = []
            var running = false
        }

        private let queue = Mutex(Queue())

        func submit(name: String, _ job: @escaping @Sendable () -> Void) {
            let start = queue.withLock { q in
                q.jobs.append(job)
                defer { q.running = true }
                return !q.running
            }
            if start { DetachedThread.start(name: "load-\(name.prefix(10))") { [self] in run() } }
        }

        private func run() {
            while let job = queue.withLock({ q -> (@Sendable () -> Void)? in
                if q.jobs.isEmpty {
                    q.running = false
                    return nil
                }
                return q.jobs.removeFirst()
            }) {
                job()
            }
        }
    }

    public let settings: EngineSettings
    let logger: Logger
    private let entries = Mutex<[String: Entry]>([:])
    /// Serialises reconciliations (startup, watcher, rescans).
    private let reconciling = Mutex(())
    private let reportedIgnored = Mutex<Set<String>>([])
    /// Makes every staged copy's name unique (A→B→A must not share a file with the retiring A).
    private let stagingSerial = Atomic<Int>(0)
    private let loadsInProgress = Atomic<Int>(0)
    /// Broadcast when a load finishes.
    private let loadFinished = Condition()
    /// 0 while the start-up models are being tried, 1 once they were, 2 while draining.
    private let phase = Atomic<Int>(0)

    public init(settings: EngineSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    // MARK: Serving

    /// What serves, as one immutable value: request threads read it without taking a lock.
    public final class ServingTable: Sendable {
        let generation: Int
        let versions: [String: ModelVersion]
        let names: Set<String>

        init(generation: Int, versions: [String: ModelVersion], names: Set<String>) {
            self.generation = generation
            self.versions = versions
            self.names = names
        }
    }

    /// A request thread's copy of the serving table, refreshed when the store publishes a new one.
    public struct ReaderCache: Sendable {
        var table: ServingTable?

        public init() {}
    }

    private let table = Mutex(ServingTable(generation: 0, versions: [:], names: []))
    private let generation = Atomic<Int>(0)

    /// Publishes the current versions; must happen before a replaced version is retired.
    private func publishTable() {
        // Under the table lock throughout, so concurrent loads cannot publish an older state over a newer one.
        table.withLock { table in
            let all = entries.withLock { $0 }
            var versions: [String: ModelVersion] = [:]
            for (name, entry) in all {
                if let current = entry.state.withLock({ $0.current }) { versions[name] = current }
            }
            table = ServingTable(generation: table.generation + 1, versions: versions, names: Set(all.keys))
            generation.store(table.generation, ordering: .sequentiallyConsistent)
        }
    }

    private func currentTable(_ cache: inout ReaderCache) -> ServingTable {
        let published = generation.load(ordering: .sequentiallyConsistent)
        if let table = cache.table, table.generation == published { return table }
        let fresh = table.withLock { $0 }
        cache.table = fresh
        return fresh
    }

    /// Whether the directory holds a model of this name (serving or not).
    public func contains(_ name: String, cache: inout ReaderCache) -> Bool {
        currentTable(&cache).names.contains(name)
    }

    /// Runs `body` with the model's serving version, which stays alive until `body` returns.
    ///
    /// Lock-free on the request path: the version is taken from the thread's cached table, its
    /// in-flight count raised, then the table's generation checked again. A version retired
    /// meanwhile is published as a new generation first, so the check sends the request to
    /// the new version, and the old one is stopped only once its in-flight count is zero.
    public func withServingVersion<R>(
        of name: String, cache: inout ReaderCache, _ body: (ModelVersion) throws(PredictError) -> R
    ) throws(PredictError) -> R {
        while true {
            let table = currentTable(&cache)
            guard let version = table.versions[name] else {
                throw table.names.contains(name) ? .modelNotReady(name) : .modelNotFound(name)
            }
            version.inflight.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if generation.load(ordering: .sequentiallyConsistent) != table.generation {
                version.inflight.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                continue
            }
            defer { version.requestFinished() }
            return try body(version)
        }
    }

    /// Runs `body` with the model's serving version (a convenience for callers without a cache).
    public func withServingVersion<R>(of name: String, _ body: (ModelVersion) throws(PredictError) -> R) throws(PredictError) -> R {
        var cache = ReaderCache()
        return try withServingVersion(of: name, cache: &cache, body)
    }

    public var modelNames: [String] { entries.withLock { $0.keys.sorted() } }

    public func status(of name: String) -> ModelStatus? {
        guard let entry = entries.withLock({ $0[name] }) else { return nil }
        return entry.state.withLock { s in
            ModelStatus(
                name: name,
                ready: s.current != nil,
                version: s.current?.version,
                loadedAt: s.current?.loadedAt,
                shards: s.current?.pool.status ?? [],
                vwArgs: s.current?.vwArgs ?? [],
                multiline: s.current?.multiline,
                lastError: s.lastError,
                origin: s.current?.origin
            )
        }
    }

    public var statuses: [ModelStatus] { modelNames.compactMap { status(of: $0) } }

    /// Marks the models present at start-up as tried: from now on `/readyz` follows the models.
    public func finishStartup() {
        _ = phase.compareExchange(expected: 0, desired: 1, ordering: .sequentiallyConsistent)
    }

    /// Marks the server as draining: `/readyz` answers 503 from now on.
    public func beginDraining() {
        phase.store(2, ordering: .sequentiallyConsistent)
    }

    /// Whether the server should receive traffic, per `settings.readiness` (SPEC §5).
    public func readiness() -> Readiness {
        let all = statuses
        let ready = all.filter(\.ready).map(\.name)
        let notReady = all.filter { !$0.ready }.map(\.name)
        let reason: String? =
            switch phase.load(ordering: .sequentiallyConsistent) {
            case 0: "starting: the models present at start-up are still loading"
            case 2: "draining: shutting down"
            default:
                if ready.isEmpty {
                    all.isEmpty ? "no model is loaded" : "no model serves"
                } else if settings.readiness == .allModels && !notReady.isEmpty {
                    "models without a serving version"
                } else {
                    nil
                }
            }
        return Readiness(isReady: reason == nil, reason: reason, ready: ready, notReady: notReady)
    }

    // MARK: Loading

    /// How long a changed file must be left alone before it is loaded, unless the kernel said it was closed or renamed into place:
    /// 300 ms plus the time to write its size at 50 MB/s, so a large file copied slowly is not read while it grows.
    static let settleTime: Duration = .milliseconds(300)
    static let settleBytesPerSecond: Int64 = 50_000_000

    static func settleNanoseconds(size: Int64) -> Int64 {
        300_000_000 + max(0, size) * 1_000_000_000 / settleBytesPerSecond
    }

    /// A file inotify saw being written and not yet closed loads only once closed, or once it was
    /// left alone this long (a writer that keeps it open).
    static let openWriterNanoseconds: Int64 = 30_000_000_000

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
            guard let files = ModelDirectory.entries(of: settings.modelDirectory) else {
                logger.error("cannot read the model directory", metadata: ["dir": "\(settings.modelDirectory)"])
                return false
            }
            var found: [String: ModelFiles] = [:]
            for file in files {
                if ModelDirectory.isTransient(file) { continue }
                guard let (name, kind) = ModelDirectory.classify(file) else {
                    let isNew = reportedIgnored.withLock { $0.insert(file).inserted }
                    if isNew { logger.info("ignoring file in the model directory", metadata: ["file": "\(file)"]) }
                    continue
                }
                let stamp = FileStamp(path: settings.modelDirectory + "/" + file)
                var entry = found[String(name)] ?? ModelFiles()
                switch kind {
                case .model: entry.model = stamp
                case .config: entry.config = stamp
                case .checksum: entry.checksum = stamp
                }
                found[String(name)] = entry
            }
            var unsettled = false
            let now = realtimeNanoseconds()
            for (name, files) in found.sorted(by: { $0.key < $1.key }) where files.model != nil {
                let fileNames = [".vw", ".json", ".sha256"].map { name + $0 }
                let announced = settleAll || fileNames.contains { finished.contains($0) }
                let open = fileNames.contains { writing.contains($0) }
                let quietSince = now - files.newestModification
                let settleNanos = Self.settleNanoseconds(size: files.model?.size ?? 0)
                let wait = open ? max(settleNanos, Self.openWriterNanoseconds) : announced ? 0 : settleNanos
                if quietSince < wait && isChanged(name: name, files: files) {
                    unsettled = true
                    continue
                }
                if reconcile(name: name, files: files) { unsettled = true }
            }
            let removed = entries.withLock { all in
                all.keys.filter { found[$0]?.model == nil }.compactMap { all.removeValue(forKey: $0) }
            }
            publishTable()
            for entry in removed { unload(entry) }
            return unsettled
        }
    }

    private func isChanged(name: String, files: ModelFiles) -> Bool {
        guard let entry = entries.withLock({ $0[name] }) else { return true }
        return entry.state.withLock { $0.seenFiles != files }
    }

    /// Starts loading the model's files on a thread of their own unless they were seen already.
    ///
    /// Loads of different models never wait for each other: one whose probe hangs until
    /// `--load-timeout` holds back only its own reloads. Returns true when the model is still
    /// loading an earlier state of its files (it is looked at again once that load ends).
    private func reconcile(name: String, files: ModelFiles) -> Bool {
        let entry = entries.withLock { all in
            if let existing = all[name] { return existing }
            let created = Entry(name: name)
            all[name] = created
            return created
        }
        let (start, busy, current) = entry.state.withLock { s -> (Bool, Bool, ModelVersion?) in
            if s.loading { return (false, true, nil) }
            if s.seenFiles == files { return (false, false, nil) }
            s.loading = true
            return (true, false, s.current)
        }
        if !start { return busy }
        loadsInProgress.add(1, ordering: .sequentiallyConsistent)
        entry.loader.submit(name: name) { [self] in
            load(entry, files: files, unlessVersion: current?.version)
            loadFinished.broadcast { loadsInProgress.subtract(1, ordering: .sequentiallyConsistent) }
        }
        return false
    }

    /// Waits until no load is in progress (at start-up: the models present were each tried).
    public func waitForLoads() {
        loadFinished.wait(until: .never) { loadsInProgress.load(ordering: .sequentiallyConsistent) == 0 }
    }

    private func load(_ entry: Entry, files: ModelFiles, unlessVersion: String?) {
        let name = entry.name
        let loaded: ModelVersion
        do {
            guard let candidate = try load(name: name, unlessVersion: unlessVersion) else {
                // The files are back to what already serves: nothing failed to load.
                entry.state.withLock { s in
                    s.seenFiles = files
                    s.lastError = nil
                    s.loading = false
                }
                return
            }
            loaded = candidate
        } catch {
            let failure = LoadFailure(time: rfc3339Now(), reason: error.description)
            logger.error("model failed to load", metadata: ["model": "\(name)", "reason": "\(error.description)"])
            EngineMetrics.modelLoaded(name, ok: false)
            let serving = entry.state.withLock { s in
                s.lastError = failure
                s.seenFiles = files
                s.loading = false
                return s.current != nil
            }
            entry.readyGauge.record(serving ? 1 : 0)
            return
        }
        let (previous, removed) = entry.state.withLock { s -> (ModelVersion?, Bool) in
            s.loading = false
            if s.removed { return (nil, true) }
            let previous = s.current
            s.current = loaded
            s.lastError = nil
            s.seenFiles = files
            return (previous, false)
        }
        if removed {
            // The model was removed (or the server is stopping) while it loaded.
            retire(loaded)
            return
        }
        logger.info("model serving", metadata: ["model": "\(name)", "version": "\(loaded.version)", "shards": "\(loaded.pool.shards.count)"])
        EngineMetrics.modelLoaded(name, ok: true)
        entry.readyGauge.record(1)
        publishTable()
        if let previous { retire(previous) }
    }

    /// A model file copied into the staging directory: the exact bytes a version starts from.
    private struct StagedFile {
        var path: String
        var hash: SHA256
        var headerPrefix: [UInt8]
    }

    /// Streams `source` into a private staged copy, hashing it and checking its header on the way
    /// (on the first 64 KiB, before anything else is read); never reads it whole into memory.
    private func stage(_ source: String, name: String) throws(LoadError) -> StagedFile {
        let serial = String(stagingSerial.add(1, ordering: .relaxed).newValue)
        let staged = settings.stagingDirectory + "/" + name + "-" + serial + ".partial"
        var headerPrefix: [UInt8] = []
        do {
            let hash = try ModelDirectory.stage(source, to: staged, maxBytes: settings.maxModelBytes) { prefix throws(LoadError) in
                do throws(ModelHeaderError) {
                    _ = try ModelHeader.parse(prefix)
                } catch {
                    throw .unreadable("not a VW model file: \(error.reason)")
                }
                headerPrefix = prefix
            }
            return StagedFile(path: staged, hash: hash, headerPrefix: headerPrefix)
        } catch {
            unlink(staged)
            throw error
        }
    }

    /// The version name of a model's bytes with its config: the first 12 hex digits of SHA-256(model + config).
    private static func versionName(_ staged: StagedFile, config: [UInt8]?) -> String {
        var hash = staged.hash
        hash.update(config ?? [])
        return String(hash.finalize().hexString.prefix(12))
    }

    /// Loads the model's files into a new version, or returns nil when their content is `unlessVersion`.
    ///
    /// When the learning loop has a model learned from exactly this file (`EngineSettings.learnedModel`),
    /// that model is loaded instead, so a restart resumes the learned version (SPEC §8.6); if it does not
    /// load, the file is.
    private func load(name: String, unlessVersion: String?) throws(LoadError) -> ModelVersion? {
        let base = settings.modelDirectory + "/" + name
        let staged = try stage(base + ".vw", name: name)
        var started = false
        defer { if !started { unlink(staged.path) } }
        let configBytes: [UInt8]? = FileStamp(path: base + ".json") != nil ? try ModelDirectory.read(base + ".json") : nil
        let version = Self.versionName(staged, config: configBytes)
        if FileStamp(path: base + ".sha256") != nil {
            let text = String(decoding: try ModelDirectory.read(base + ".sha256"), as: UTF8.self)
            let expected = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).first.map { $0.lowercased() } ?? ""
            var digest = staged.hash
            let actual = digest.finalize().hexString
            if expected != actual { throw .checksumMismatch(expected: expected, actual: actual) }
        } else if settings.requireChecksum {
            throw .unreadable("\(name).sha256 is missing (--require-checksum)")
        }
        let loop = try configBytes.map { bytes throws(LoadError) in try ModelConfig.parse(bytes) }?.loop
        if let loop, let learned = settings.learnedModel?(name, version, loop) {
            do {
                let learnedStaged = try stage(learned.path, name: name)
                var learnedStarted = false
                defer { if !learnedStarted { unlink(learnedStaged.path) } }
                let learnedVersion = Self.versionName(learnedStaged, config: configBytes)
                if learnedVersion == unlessVersion { return nil }
                let loaded = try start(
                    name: name, staged: learnedStaged, version: learnedVersion, configBytes: configBytes,
                    origin: .learned(base: version, events: learned.events)
                )
                learnedStarted = true
                return loaded
            } catch {
                logger.error("the learned model does not load; serving the model file", metadata: [
                    "model": "\(name)", "learned": "\(learned.path)", "reason": "\(error.description)",
                ])
            }
        }
        if version == unlessVersion { return nil }
        let loaded = try start(name: name, staged: staged, version: version, configBytes: configBytes, origin: .file)
        started = true
        return loaded
    }

    /// Checks a staged model against the allowlist and its config, and starts its shards (probed).
    ///
    /// On success the staged copy belongs to the returned version (renamed to a unique name and
    /// unlinked when the version retires); on failure the caller still owns (and removes) it.
    private func start(
        name: String, staged: StagedFile, version: String, configBytes: [UInt8]?, origin: ModelOrigin
    ) throws(LoadError) -> ModelVersion {
        let config = try configBytes.map { bytes throws(LoadError) in try ModelConfig.parse(bytes) } ?? ModelConfig()
        let header: ModelHeader
        do {
            header = try ModelHeader.parse(staged.headerPrefix)
        } catch {
            throw .unreadable("not a VW model file: \(error.reason)")
        }
        // vw applies the options stored in the model file itself (their checksum is no protection):
        // they pass the same allowlist as `vw_args`.
        let options = try ModelOptions.check(header: header, extra: config.vwArgs)
        // A 231-byte model can ask for gigabytes (`-b 26 --random_weights`): estimated from the header, refused before vw starts.
        if settings.vwMemoryLimit > 0, let estimate = ModelMemoryEstimate(options: options, shards: config.shards ?? settings.defaultShards),
           let why = estimate.problem(limit: settings.vwMemoryLimit) {
            throw .invalidConfig(why)
        }
        let framing = ExampleFraming(family: options.family, blankLineAfterEach: options.answersEndWithBlankLine)
        let jsonGrammar: VWJSONGrammar?
        switch config.input {
        case .vwText:
            jsonGrammar = nil
        case .vwJSON:
            guard let grammar = VWJSONGrammar(family: options.family, limits: settings.limits) else {
                throw .invalidConfig("\"input\": \"vw_json\" is not supported for \(options.family) models")
            }
            jsonGrammar = grammar
        }
        let probe = try probeBatch(config: config, framing: framing, json: jsonGrammar)

        // Unique per load: a retiring version unlinks its own copy, never the one of a newer load of the same bytes.
        let serial = String(stagingSerial.add(1, ordering: .relaxed).newValue)
        let path = settings.stagingDirectory + "/" + name + "-" + version + "-" + serial + ".vw"
        guard rename(staged.path, path) == 0 else {
            throw .unreadable("cannot stage \(name): \(String(cString: strerror(errno)))")
        }
        // `--json` is the server's own choice (SPEC §8.1), never a user option: the allowlist refuses it in vw_args.
        let arguments = VWProcess.arguments(
            command: settings.vwCommand, modelPath: path, extraArguments: config.vwArgs + (jsonGrammar != nil ? ["--json"] : [])
        )
        var poolLogger = logger
        poolLogger[metadataKey: "model"] = "\(name)"
        poolLogger[metadataKey: "version"] = "\(version)"
        let pool = ShardPool(
            modelName: name, arguments: arguments, count: config.shards ?? settings.defaultShards,
            maxQueuedRequests: settings.maxQueuedRequests, writeTimeout: settings.requestTimeout, logger: poolLogger
        )
        do {
            try pool.start(probe: probe, timeout: settings.loadTimeout)
        } catch {
            pool.stop(grace: .milliseconds(100))
            unlink(path)
            throw error
        }
        let loaded = ModelVersion(
            name: name, version: version, loadedAt: rfc3339Now(), vwArgs: config.vwArgs, framing: framing,
            options: options, jsonGrammar: jsonGrammar, loop: config.loop, origin: origin,
            maxBatch: config.maxBatch ?? settings.maxBatch, pool: pool, stagedPath: path
        )
        loaded.attachNative(config: config, settings: settings, logger: poolLogger)  // SPEC §11: native only once verified
        return loaded
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

    /// The version of `name` that serves now, if any.
    public func serving(_ name: String) -> ModelVersion? {
        entries.withLock { $0[name] }?.state.withLock { $0.current }
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
        let claimed = entry.state.withLock { s -> Bool in
            guard !s.loading, !s.removed, s.current?.version == current else { return false }
            s.loading = true
            return true
        }
        guard claimed else { throw .superseded("\(name) is loading, or serves another version than \(current)") }
        defer { entry.state.withLock { $0.loading = false } }
        let candidate: ModelVersion
        do throws(LoadError) {
            let configPath = settings.modelDirectory + "/" + name + ".json"
            let configBytes: [UInt8]? = FileStamp(path: configPath) != nil ? try ModelDirectory.read(configPath) : nil
            let staged = try stage(path, name: name)
            do {
                candidate = try start(
                    name: name, staged: staged, version: Self.versionName(staged, config: configBytes), configBytes: configBytes,
                    origin: .learned(base: base, events: events)
                )
            } catch {
                unlink(staged.path)
                throw error
            }
        } catch {
            EngineMetrics.modelLoaded(name, ok: false)
            throw .invalid(error)
        }
        if let why = persist(candidate) {
            retire(candidate)
            throw .notPersisted(why)
        }
        let previous = entry.state.withLock { s -> ModelVersion?? in
            if s.removed { return .none }
            defer { s.current = candidate }
            return .some(s.current)
        }
        guard case .some(let replaced) = previous else {
            retire(candidate)
            throw .superseded("\(name) was removed")
        }
        logger.info("learned model serving", metadata: ["model": "\(name)", "version": "\(candidate.version)", "base": "\(base)", "events": "\(events)"])
        EngineMetrics.modelLoaded(name, ok: true)
        publishTable()
        if let replaced { retire(replaced) }
        return candidate
    }

    /// The warmup examples, or a minimal example of the model's family that every model answers.
    ///
    /// For a `vw_json` model each warmup example is the text of one JSON object.
    private func probeBatch(config: ModelConfig, framing: ExampleFraming, json: VWJSONGrammar?) throws(LoadError) -> PreparedBatch {
        var builder = ExampleBatchBuilder(framing: framing, limits: settings.limits)
        let minimal = json.map { $0.isADF ? #"{"_multi":[{}]}"# : "{}" } ?? Self.minimalExample(of: framing.family)
        let examples = config.warmup.isEmpty ? [minimal] : config.warmup
        for (index, example) in examples.enumerated() {
            do throws(ExampleProblem) {
                if let json {
                    builder.append(json: try json.parse(bytes: Array(example.utf8)))
                } else {
                    let lines = framing.isMultiline ? example.split(separator: "\n", omittingEmptySubsequences: false) : [Substring(example)]
                    try builder.append(lines: lines)
                }
            } catch {
                throw .invalidConfig("warmup example \(index): \(error.reason)")
            }
        }
        return builder.finish()
    }

    /// The smallest example vw answers for each family (`--csoaa_ldf` answers nothing for an unlabelled one).
    static func minimalExample(of family: ExampleFamily) -> String {
        switch family {
        case .csoaaLDF: "0:0 |"
        case .ccb: "ccb shared |\nccb action |\nccb slot |"
        case .slates: "slates shared |\nslates action 0 |\nslates slot |"
        default: "|"
        }
    }

    /// Stops a replaced or removed version once its in-flight requests have finished.
    private func retire(_ version: ModelVersion) {
        let grace = settings.drainGrace
        DetachedThread.start(name: "retire-\(version.version)") {
            version.waitUntilDrained(by: .after(grace))
            version.pool.stop(grace: grace)
            unlink(version.stagedPath)
        }
        version.infoGauge.destroy()
    }

    private func unload(_ entry: Entry) {
        let current = entry.state.withLock { s in
            defer {
                s.current = nil
                s.removed = true
            }
            return s.current
        }
        logger.info("model removed", metadata: ["model": "\(entry.name)"])
        entry.readyGauge.destroy()
        if let current { retire(current) }
        EngineMetrics.forget(model: entry.name)
    }

    /// Stops every model: waits for in-flight requests, then lets vw finish and exit.
    public func shutdown() {
        beginDraining()
        let all = entries.withLock { all in
            defer { all.removeAll() }
            return Array(all.values)
        }
        let versions = all.compactMap { entry in
            entry.state.withLock { s in
                defer {
                    s.current = nil
                    s.removed = true
                }
                return s.current
            }
        }
        publishTable()
        let deadline = Deadline.after(settings.drainGrace)
        for version in versions { version.waitUntilDrained(by: deadline) }
        for version in versions {
            version.pool.stop(grace: .seconds(2))
            unlink(version.stagedPath)
        }
    }
}

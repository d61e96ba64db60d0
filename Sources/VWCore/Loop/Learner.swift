// Over 400 lines on purpose: one type, the trainer's update (train, probe, gate, commit, publish, retire), whose
// steps share its private state and whose order is what makes an update crash-safe.
#if canImport(Glibc)
import Glibc
#endif
public import Logging
import CoreMetrics
import Synchronization

/// Learns one model from its joined events with the real vw and publishes each learned model through the
/// store's ordinary swap (SPEC §8.6), when the publish gate lets it through (SPEC §8.9). Runs on the trainer thread only.
///
/// ## Files under `<state>/<name>/` (each directory opened by descriptor, never through a symlink)
/// * `learned/<version>.vw`: the model learned from (first a copy of the served base file, then each learned
///   model), written by the server, never by vw; `learn-state.json` names the current one. The base and the
///   last `retention.learned_versions` learned versions stay (a rollback publishes the one before the current).
/// * `rejected/<version>.vw` and `<version>.why`: the latest learned models the gate refused, for inspection.
/// * `train/out/`: the only directory the trainer's vw may write in (Landlock grants it alone, on a descriptor),
///   emptied before each run; vw writes `train/out/next.vw` there. `train/input`: the new joined lines, read by vw.
///
/// ## The publish gate
/// Before a learned model is published, a read-only sandboxed vw scores a sample of the update's own lines with
/// it (`-t`): every prediction must be finite (a valid PMF for action-probability models), or the candidate is
/// refused. With `"gate": {"max_regression": x}` (action-probability models), the serving model scores the same
/// sample, and a candidate whose IPS estimate is below the serving model's by more than `x` is refused. A refused
/// candidate is kept under `rejected/`, counted (`vwfcgi_loop_updates_total{result="rejected"}`), shown in
/// `/loop` (`rejected_updates`, `last_error`); the serving version stays, and the join position moves past the
/// update's lines (they are not learned: a poisoned batch must not block learning for good).
///
/// ## Crash safety
/// An update is committed by the atomic replacement of `learn-state.json` (after the learned model was
/// renamed into `learned/` and fsynced), before the swap. A crash before the commit leaves the old state:
/// the same joined files are learned again from the same model, giving the same model (vw is
/// deterministic). A crash after it: the restart loads the committed model (``LearnedModelSource``).
///
/// Unchecked Sendable: its mutable members are used by the trainer thread alone; `status` is a Mutex, and
/// `rollbackRequested` an atomic the request thread sets.
final class Learner: @unchecked Sendable {
    let name: String
    let directory: String
    private let stateDirectory: String
    private var learnedDirectory: String { directory + "/learned" }
    private var joinedDirectory: String { directory + "/joined" }
    private var state: LearnState?
    private var stateRead = false
    /// When the last update was tried; the first is one `update_interval` after the learner starts.
    private var lastAttempt: ContinuousClock.Instant? = .now
    let status = Mutex(LearnStatus())
    /// Set by `loop:rollback`; the trainer thread publishes the previous version at its next tick.
    let rollbackRequested = Atomic<Bool>(false)
    private let logger: Logger
    private let metrics: LoopMetrics
    /// Learned versions kept besides the base (the current one and those a rollback can go back to): the loop's
    /// `retention.learned_versions`.
    private var keptVersions = 5
    /// Rejected candidates kept.
    static let keptRejected = 3
    /// Lines of an update the gate scores.
    static let gateSample = 2000

    init(stateDirectory: String, name: String, metrics: LoopMetrics, logger: Logger) {
        self.name = name
        self.stateDirectory = stateDirectory
        directory = stateDirectory + "/" + name
        self.logger = logger
        self.metrics = metrics
    }

    /// `loop:rollback`: done by the trainer thread at its next tick.
    func requestRollback() { rollbackRequested.store(true, ordering: .relaxed) }

    /// `<state>/<name>/<relative>`, opened (and created) by descriptor.
    private func open(_ relative: String) throws(EventLogError) -> StateDirectory {
        let model = try StateDirectory.root(stateDirectory).directory(name)
        return relative.isEmpty ? model : try model.directory(relative)
    }

    /// The learned model to load in place of file version `base` (whose model file alone is `baseFile`): when the
    /// state learned from that file (with this `.json` or another: a settings edit keeps what was learned), or that
    /// file is one of its own earlier publications.
    static func learnedModel(stateDirectory: String, name: String, base: String, baseFile: String) -> LearnedModel? {
        guard let model = try? StateDirectory.root(stateDirectory).directory(name, create: false),
              let bytes = try? model.read("learn-state.json", maxBytes: 1 << 20), let state = LearnState.parse(bytes),
              state.base == base || state.published.contains(base) || (state.baseFile == baseFile && state.modelVersion != state.base),
              state.modelVersion != base,
              let learned = try? model.directory("learned", create: false),
              let fd = try? learned.openRegular(state.model) else { return nil }
        close(fd)
        return LearnedModel(path: learned.path + "/" + state.model, events: state.learnedEvents)
    }

    /// One look at the model: adopts a new base, rolls back when asked, and trains and publishes when an update is due.
    func tick(store: ModelStore, settings: TrainerSettings) {
        guard let serving = store.serving(name), let loop = serving.loop else { return }
        keptVersions = loop.retention.learnedVersions
        if !stateRead {
            stateRead = true
            do throws(EventLogError) {
                state = try open("").read("learn-state.json", maxBytes: 1 << 20).flatMap(LearnState.parse)
            } catch {
                status.withLock { $0.lastError = error.message }
            }
            if let state {
                publishStatus(state, learnedVersion: state.modelVersion == state.base ? nil : state.modelVersion)
                metrics.learnedEvents.record(state.learnedEvents)
            }
        }
        do throws(LearnError) {
            if rollbackRequested.exchange(false, ordering: .relaxed) {
                try rollback(serving: serving, store: store)
            } else {
                try update(serving: serving, loop: loop, store: store, settings: settings)
            }
        } catch {
            switch error {
            case .superseded:
                lastAttempt = nil  // look again at the next tick, from the new serving version
            case .storage(let why):
                status.withLock { $0.lastError = why }
                logger.error("learning state cannot be written", metadata: ["model": "\(name)", "error": "\(why)"])
            case .failed(let why):
                metrics.updated(ok: false, learnedEvents: nil, ips: nil)
                status.withLock { s in
                    s.failedUpdates += 1
                    s.lastError = why
                }
                logger.error("learning update failed; the serving version stays", metadata: ["model": "\(name)", "reason": "\(why)"])
            case .rejected(let why):
                metrics.updatesRejected.increment()
                status.withLock { s in
                    s.rejectedUpdates += 1
                    s.lastError = "update rejected by the publish gate: " + why
                }
                logger.error("learned model rejected by the publish gate; the serving version stays", metadata: ["model": "\(name)", "reason": "\(why)"])
            }
        }
    }

    private func update(serving: ModelVersion, loop: LoopConfig, store: ModelStore, settings: TrainerSettings) throws(LearnError) {
        if state?.modelVersion != serving.version {
            do { try adopt(serving, store: store) } catch { throw .storage(error.message) }
        }
        guard var current = state else { return }
        if let lastAttempt, ContinuousClock.now - lastAttempt < loop.updateInterval { return }
        let joined: StateDirectory
        do { joined = try open("joined") } catch { throw .storage(error.message) }
        var files: [Int] = []
        var input: [UInt8] = []
        for file in Joiner.joinedNumbers(joined.list()) where file > current.position {
            // A backlog is learned a bounded piece at a time: the next update goes on from this one's position.
            if !files.isEmpty && input.count >= settings.maxUpdateBytes { break }
            do { input += try joined.read("\(file).dsjson") ?? [] } catch { throw .storage(error.message) }
            files.append(file)
        }
        let lines = input.split(separator: 0x0A)
        guard lines.count >= loop.minEvents, let last = files.last else { return }
        // Checked again on the way to vw: the logs may have come from elsewhere (see TrainingInput).
        let checked = TrainingInput(
            lines: lines, json: serving.jsonGrammar,
            text: ExampleGrammar(family: serving.options.family, limits: store.settings.limits, keepsLabels: true), loop: loop
        )
        for why in checked.skipped {
            logger.warning("joined line not learned", metadata: ["model": "\(name)", "reason": "\(why)"])
        }
        if let first = checked.skipped.first {
            // Counted and shown: a trainer that refuses every line must not look healthy in /loop.
            metrics.skipped(.training, count: checked.skipped.count)
            status.withLock { s in
                s.skippedLines += checked.skipped.count
                s.lastError = "\(checked.skipped.count) of \(lines.count) joined lines not learned (\(first))"
            }
        }
        lastAttempt = .now
        let started = ContinuousClock.now
        let trained = try train(from: current, input: checked.bytes, serving: serving, settings: settings)
        let events = current.learnedEvents + lines.count
        let learned: StateDirectory, out: StateDirectory, model: StateDirectory
        do {
            learned = try open("learned")
            out = try open("train/out")
            model = try open("")
        } catch {
            throw .storage(error.message)
        }
        // The candidate loads and answers its probe on fresh shards first (publishLearned), then passes the gate,
        // then is committed, then swapped in.
        var estimate: (ips: Double?, logged: Double?) = (nil, nil)
        var rejection: String?
        let publication: Result<ModelVersion, LearnError>
        do throws(LearnError) {
            publication = .success(try store.publishLearnedOrThrow(name: name, path: trained.output, current: current.modelVersion,
                                                                   base: current.base, events: events) { candidate in
            do throws(LearnError) {
                estimate = try gate(trained, checked: checked, serving: serving, current: current, loop: loop, settings: settings)
            } catch {
                if case .rejected(let why) = error { rejection = why }
                return "\(error)"
            }
            // The commit: the model under its version, then the state naming it with the new position.
            let file = candidate.version + ".vw"
            var next = current
            next.modelVersion = candidate.version
            next.position = last
            next.learnedEvents = events
            next.updates += 1
            next.lastUpdate = rfc3339Now()
            next.published = Array((current.published + [candidate.version]).suffix(16))
            do throws(EventLogError) {
                try out.move("next.vw", into: learned, as: file)
                try learned.sync()
                try model.writeAtomically(next.serialized(), to: "learn-state.json")
            } catch {
                return error.message
            }
            current = next
            // `vwfcgi train`: into the model directory the sidecar distributes (after the commit: a file there
            // that the state does not know of would be taken for the operator's). The store defers reading
            // these files until this publication ends, then finds the version it serves.
            if let directory = settings.publishDirectory {
                if let why = ModelDirectory.publish(name: name, model: learnedDirectory + "/" + file, into: directory) {
                    logger.error("cannot write the learned model into the model directory", metadata: ["model": "\(name)", "error": "\(why)"])
                }
            }
            return nil
            })
        } catch {
            publication = .failure(error)
        }
        if let rejection {
            reject(trained.output, why: rejection)
            // Past the refused lines: they are not learned (a poisoned batch must not block learning for good).
            var next = current
            next.position = last
            do { try model.writeAtomically(next.serialized(), to: "learn-state.json") } catch { throw .storage(error.message) }
            state = next
            throw .rejected(rejection)
        }
        let published = try publication.get()
        state = current
        removeStaleModels()
        status.withLock { s in
            s.ipsEstimate = estimate.ips
            s.loggedAverage = estimate.logged
            s.lastError = nil
        }
        publishStatus(current, learnedVersion: published.version)
        metrics.updated(ok: true, learnedEvents: events, ips: estimate.ips)
        logger.info("model learned and published", metadata: [
            "model": "\(name)", "version": "\(published.version)", "events": "\(lines.count)",
            "learned_events": "\(events)", "seconds": "\(ContinuousClock.now - started)",
        ])
        if loop.learningMode == .apprentice {
            apprentice(checked.decisions, pmfs: trained.predictions, serving: serving, loop: loop, store: store, settings: settings)
        }
    }

    /// Apprentice mode: evaluates the switch criterion (``ApprenticeCriterion``) on the update's decisions and, when
    /// met, switches the model to online as `PUT …/configurations/service` with `learningMode` `Online` does (the
    /// model's `.json` rewritten, then reloaded). Only the internal trainer does: `vwfcgi train` (an external
    /// trainer) evaluates nothing, and its operator switches the model.
    private func apprentice(_ decisions: [TrainingInput.Decision], pmfs: [[Double]], serving: ModelVersion, loop: LoopConfig,
                            store: ModelStore, settings: TrainerSettings) {
        guard settings.publishDirectory == nil, !loop.externalTrainer, serving.jsonGrammar?.isCCB != true,
              let evaluation = ApprenticeCriterion.evaluate(decisions, pmfs: pmfs, defaultReward: loop.defaultReward,
                                                            threshold: loop.apprenticeThreshold, minEvents: loop.minEvents)
        else { return }
        let now = rfc3339Now()
        status.withLock { s in
            s.apprentice = ApprenticeStatus(evaluations: (s.apprentice?.evaluations ?? 0) + 1, evaluatedAt: now, last: evaluation,
                                            switchedAt: s.apprentice?.switchedAt)
        }
        let metadata: Logger.Metadata = [
            "model": "\(name)", "events": "\(evaluation.events)", "baseline_reward": "\(evaluation.baselineReward)",
            "learned_reward": "\(evaluation.learnedReward)", "imitation": "\(evaluation.imitation)",
        ]
        guard evaluation.met else {
            logger.info("apprentice: the learned policy does not meet the switch criterion yet", metadata: metadata)
            return
        }
        let path = store.settings.modelDirectory + "/" + name + ".json"
        do throws(PredictError) {
            let config = try Engine.modelJSON(at: path, name: name)
            // The file says otherwise already (the operator changed the mode): nothing to switch.
            guard (try? PersonalizerSettings.loopConfig(of: config))?.learningMode == .apprentice else { return }
            // The reload this causes serves the learned model: the model file is the same (LearnState.baseFile).
            _ = try Engine.applyServiceConfiguration(.object([("learningMode", .string("Online"))]), to: config, at: path, name: name)
        } catch {
            status.withLock { $0.lastError = "apprentice: cannot switch to online: \(error)" }
            logger.error("apprentice: the criterion is met but the model's .json cannot be rewritten", metadata: metadata.merging(
                ["error": "\(error)"]) { $1 })
            return
        }
        status.withLock { $0.apprentice?.switchedAt = now }
        metrics.apprenticeSwitches.increment()
        logger.notice("apprentice: the learned policy meets the criterion; the model switches to online", metadata: metadata)
    }

    /// The publish gate (see the type's notes); returns the estimates for the status, throws `.rejected`.
    private func gate(_ trained: Trained, checked: TrainingInput, serving: ModelVersion, current: LearnState, loop: LoopConfig,
                      settings: TrainerSettings) throws(LearnError) -> (ips: Double?, logged: Double?) {
        let lines = checked.bytes.split(separator: 0x0A)
        guard !lines.isEmpty else { return (nil, nil) }
        // An even sample of the update's lines (all of them when few).
        let stride = max(1, lines.count / Self.gateSample)
        var sample: [UInt8] = []
        var sampled: [TrainingInput.Decision] = []
        var index = 0
        // The decisions of each sampled line (a multislot line has one per slot, as vw prints one PMF per slot).
        var cursor = 0
        while index < lines.count {
            sample += lines[index]
            sample.append(0x0A)
            while cursor < checked.decisions.count && checked.decisions[cursor].line < index { cursor += 1 }
            while cursor < checked.decisions.count && checked.decisions[cursor].line == index {
                sampled.append(checked.decisions[cursor])
                cursor += 1
            }
            index += stride
        }
        let actionProbabilities = serving.predictionKind == .actionProbabilities
        let candidate = try score(model: trained.output, input: sample, serving: serving, settings: settings)
        if actionProbabilities {
            let pmfs = Self.pmfs(candidate)
            guard pmfs.count == sampled.count else {
                throw .rejected("the candidate printed \(pmfs.count) PMFs for \(sampled.count) sampled events")
            }
            if let bad = Self.firstNonDistribution(pmfs) {
                throw .rejected("the candidate's PMF for sampled event \(bad.index) is not a probability distribution (sum \(bad.sum))")
            }
        } else {
            let values = candidate.split(separator: 0x0A).map { line in
                Double(String(decoding: line.split(separator: 0x20).first ?? [], as: UTF8.self)) ?? .nan
            }
            guard !values.isEmpty, values.allSatisfy(\.isFinite) else {
                throw .rejected("the candidate's predictions on the update's examples are not all finite numbers")
            }
        }
        let estimate = Self.estimate(checked.decisions, pmfs: trained.predictions)
        guard actionProbabilities, let margin = loop.maxRegression, !sampled.isEmpty else { return estimate }
        let candidateIPS = Self.estimate(sampled, pmfs: Self.pmfs(candidate)).ips
        let servingIPS = Self.estimate(sampled, pmfs: Self.pmfs(
            try score(model: learnedDirectory + "/" + current.model, input: sample, serving: serving, settings: settings)
        )).ips
        if let candidateIPS, let servingIPS, candidateIPS < servingIPS - margin {
            throw .rejected("its IPS estimate \(candidateIPS) on the update's events is below the serving model's \(servingIPS) "
                + "by more than max_regression \(margin)")
        }
        return estimate
    }

    /// What a read-only sandboxed `vw -t` prints for `input` with `model`.
    private func score(model: String, input: [UInt8], serving: ModelVersion, settings: TrainerSettings) throws(LearnError) -> [UInt8] {
        let train: StateDirectory
        do {
            train = try open("train")
            try train.writeAtomically(input, to: "gate-input")
        } catch {
            throw .failed(error.message)
        }
        defer { train.remove("gate-input") }
        let arguments = settings.vwCommand + ["-i", model, "-t"] + (serving.jsonGrammar != nil ? ["--dsjson"] : [])
            + ["-d", train.path + "/gate-input", "-p", "/dev/stdout", "--quiet"] + serving.vwArgs
        let result = VWProcess.runToEnd(arguments: arguments, memoryLimit: settings.memoryLimit, writableDirectory: nil,
                                        deadline: .after(settings.timeout))
        guard result.exitStatus == 0 else {
            throw .rejected("vw could not score the update's examples with it: "
                + (result.errorText.isEmpty ? "exit status \(result.exitStatus)" : result.errorText))
        }
        return result.output
    }

    /// Keeps a refused candidate under `rejected/` (the newest ``keptRejected``) with why.
    private func reject(_ path: String, why: String) {
        do throws(EventLogError) {
            let rejected = try open("rejected")
            let out = try open("train/out")
            let stamp = "\(EventLine.nowMilliseconds())"
            try out.move("next.vw", into: rejected, as: stamp + ".vw")
            try rejected.writeAtomically(Array((why + "\n").utf8), to: stamp + ".why")
            let stamps = Set(rejected.list().compactMap { name -> Int? in
                LoopFiles.number(in: name.split(separator: ".").first ?? "")
            }).sorted()
            for old in stamps.dropLast(Self.keptRejected) {
                rejected.remove("\(old).vw")
                rejected.remove("\(old).why")
            }
        } catch {
            logger.error("cannot keep the rejected model", metadata: ["model": "\(name)", "error": "\(error.message)"])
        }
    }

    /// Publishes the version before the current one (the previous learned version, or the base) through the swap.
    private func rollback(serving: ModelVersion, store: ModelStore) throws(LearnError) {
        if state?.modelVersion != serving.version {
            do { try adopt(serving, store: store) } catch { throw .storage(error.message) }
        }
        guard var current = state else { throw .failed("rollback: nothing learned yet") }
        let history = [current.base] + current.published
        guard let index = history.lastIndex(of: current.modelVersion), index > 0 else {
            throw .failed("rollback: the serving version \(current.modelVersion) has no earlier version to go back to")
        }
        let previous = history[index - 1]
        let learned: StateDirectory, model: StateDirectory
        do {
            learned = try open("learned")
            model = try open("")
        } catch {
            throw .storage(error.message)
        }
        guard let fd = try? learned.openRegular(previous + ".vw") else {
            throw .failed("rollback: learned/\(previous).vw is no longer kept")
        }
        close(fd)
        let published = try store.publishLearnedOrThrow(name: name, path: learned.path + "/" + previous + ".vw",
                                                        current: current.modelVersion, base: current.base,
                                                        events: current.learnedEvents) { candidate in
            var next = current
            next.modelVersion = candidate.version
            next.published = Array(current.published.prefix(max(0, index - 1)))
            do throws(EventLogError) {
                // A version learned before a `.json` edit serves under a new name (its bytes with the new `.json`):
                // its file and its place in the history take that name, so the next rollback finds it.
                if index > 1 && candidate.version != previous {
                    try learned.rename(previous + ".vw", to: candidate.version + ".vw")
                    next.published[next.published.count - 1] = candidate.version
                }
                try model.writeAtomically(next.serialized(), to: "learn-state.json")
            } catch {
                return error.message
            }
            current = next
            return nil
        }
        state = current
        publishStatus(current, learnedVersion: published.version == current.base ? nil : published.version)
        status.withLock { $0.lastError = nil }
        logger.info("rolled back", metadata: ["model": "\(name)", "version": "\(published.version)"])
    }

    private func publishStatus(_ state: LearnState, learnedVersion: String?) {
        status.withLock { s in
            s.updates = state.updates
            s.lastUpdate = state.lastUpdate
            s.learnedVersion = learnedVersion
            s.learnedEvents = state.learnedEvents
        }
    }

    /// Takes the serving version as the model to learn from: a file the operator dropped (the new base;
    /// events already learned are not learned again), or the first look at this model.
    private func adopt(_ serving: ModelVersion, store: ModelStore) throws(EventLogError) {
        let learned = try open("learned")
        let model = serving.version + ".vw"
        let path = learned.path + "/" + model
        // The staged copy stays while the version is held: a retirement waits for it.
        let copied: Bool = (try? store.withServingVersion(of: name) { (version: ModelVersion) throws(PredictError) -> Bool in
            guard version === serving else { return false }
            if let fd = try? learned.openRegular(model) {
                close(fd)
                return true  // already kept (a learned version served again)
            }
            learned.remove(model)  // whatever else holds the name (not a regular file)
            return ModelDirectory.copyDurably(version.stagedPath, to: path) != nil
        }) ?? false
        guard copied else { throw .system("copy the serving model to", path) }
        try learned.sync()
        let previous = state
        // The same model file with another `.json` (a settings edit) keeps the history of the base it edited.
        let sameBase = previous?.base == serving.baseVersion || previous?.baseFile == serving.baseFile
        var published = sameBase ? previous?.published ?? [] : []
        if sameBase, let previous, previous.base != serving.baseVersion {
            // Only the `.json` changed: the base and the served learned model take their new versions' names, so
            // a rollback still walks back through what was learned to the base.
            if let fd = try? learned.openRegular(serving.baseVersion + ".vw") {
                close(fd)
            } else {
                try? learned.rename(previous.base + ".vw", to: serving.baseVersion + ".vw")
            }
            published = published.map { $0 == previous.modelVersion ? serving.version : $0 }
        }
        let next = LearnState(
            base: serving.baseVersion, modelVersion: serving.version, position: previous?.position ?? 0,
            learnedEvents: previous?.learnedEvents ?? 0, updates: previous?.updates ?? 0, lastUpdate: previous?.lastUpdate,
            published: published, baseFile: serving.baseFile
        )
        try open("").writeAtomically(next.serialized(), to: "learn-state.json")
        state = next
        removeStaleModels()
        publishStatus(next, learnedVersion: serving.origin == .file ? nil : serving.version)
        logger.info("learning from the serving version", metadata: [
            "model": "\(name)", "version": "\(serving.version)", "position": "\(next.position)",
        ])
    }

    private struct Trained {
        var output: String
        /// vw's progressive predictions, one per joined line (empty for models without action probabilities).
        var predictions: [[Double]]
    }

    /// Runs the trainer's vw: `-i <model> [--dsjson] -d train/input --save_resume -f train/out/next.vw -p /dev/stdout`.
    private func train(from state: LearnState, input: [UInt8], serving: ModelVersion, settings: TrainerSettings) throws(LearnError) -> Trained {
        let train: StateDirectory, out: StateDirectory
        do throws(EventLogError) {
            train = try open("train")
            out = try train.directory("out")
            try train.writeAtomically(input, to: "input")
            // Empty and private: the one directory the sandboxed vw may write in.
            for file in out.list() { out.remove(file) }
        } catch {
            throw .failed(error.message)
        }
        let output = out.path + "/next.vw"
        let dsjson = serving.jsonGrammar != nil
        let arguments = settings.vwCommand + ["-i", learnedDirectory + "/" + state.model] + (dsjson ? ["--dsjson"] : [])
            + ["-d", train.path + "/input", "--save_resume", "-f", output, "-p", "/dev/stdout", "--quiet"] + serving.vwArgs
        let result = VWProcess.runToEnd(
            arguments: arguments, memoryLimit: settings.memoryLimit,
            writableDirectory: WritableDirectory(out, maxFileBytes: settings.maxModelBytes), deadline: .after(settings.timeout)
        )
        train.remove("input")
        guard result.exitStatus == 0 else {
            out.remove("next.vw")
            let why = result.errorText.isEmpty ? "vw exited with status \(result.exitStatus)" : result.errorText
            throw .failed("training: \(why)")
        }
        let predictions = serving.predictionKind == .actionProbabilities ? Self.pmfs(result.output) : []
        return Trained(output: output, predictions: predictions)
    }

    /// `0:0.85,1:0.05,...` lines (blank lines between multiline examples) as probabilities by action index.
    static func pmfs(_ output: [UInt8]) -> [[Double]] {
        output.split(separator: 0x0A).compactMap { line -> [Double]? in
            var pmf: [Double] = []
            for pair in line.split(separator: 0x2C) {
                let parts = pair.split(separator: 0x3A)
                guard parts.count == 2, let action = Int(String(decoding: parts[0], as: UTF8.self)),
                      let p = Double(String(decoding: parts[1], as: UTF8.self)), (0..<1 << 16).contains(action) else { return nil }
                if pmf.count <= action { pmf += [Double](repeating: 0, count: action + 1 - pmf.count) }
                pmf[action] = p
            }
            return pmf.isEmpty ? nil : pmf
        }
    }

    /// The first PMF that is not a probability distribution (a value outside [0, 1], or a sum off 1 by more than 1e-3), nil when none.
    static func firstNonDistribution(_ pmfs: [[Double]]) -> (index: Int, sum: Double)? {
        for (index, pmf) in pmfs.enumerated() {
            let sum = pmf.reduce(0, +)
            if !pmf.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }) || abs(sum - 1) > 1e-3 { return (index, sum) }
        }
        return nil
    }

    /// The inverse-propensity estimate of the learning policy's average reward (SPEC §8.8) on the decisions given
    /// to vw, from its progressive predictions (each made before learning that decision), and the logged policy's
    /// average on the same decisions. No estimate without one prediction per decision.
    static func estimate(_ decisions: [TrainingInput.Decision], pmfs: [[Double]]) -> (ips: Double?, logged: Double?) {
        guard !decisions.isEmpty else { return (nil, nil) }
        let logged = decisions.reduce(0) { $0 + $1.reward } / Double(decisions.count)
        guard pmfs.count == decisions.count else { return (nil, logged) }
        var ipsSum = 0.0
        for (decision, pmf) in zip(decisions, pmfs) where decision.action - 1 < pmf.count {
            ipsSum += decision.reward * pmf[decision.action - 1] / decision.probability
        }
        return (ipsSum / Double(decisions.count), logged)
    }

    /// Removes learned models but the base, the current one and the last `keptVersions` published (inside
    /// `learned/` only, by descriptor: a symlink in its place is refused, never followed).
    private func removeStaleModels() {
        guard let state, let learned = try? open("learned") else { return }
        let keep = Set(([state.base, state.modelVersion] + state.published.suffix(keptVersions)).map { $0 + ".vw" })
        for file in learned.list() where !keep.contains(file) { learned.remove(file) }
    }
}

/// Why an update did not happen.
enum LearnError: Error {
    /// The model changed under the learner (a file was dropped, a load runs): look again.
    case superseded
    /// Training or validation failed: counted, and the serving version stays.
    case failed(String)
    /// The learner's own files could not be written.
    case storage(String)
    /// The publish gate refused the learned model.
    case rejected(String)
}

#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import Logging
import Synchronization

/// How the engine may score natively (SPEC §11).
public struct NativeSettings: Sendable, Equatable {
    /// `auto` by default: the differential tests found no difference from vw (SPEC §11).
    public var mode: EngineMode = .auto
    /// One request in `shadowEvery` is also answered by vw and compared (0: never).
    public var shadowEvery = 1000

    public init(mode: EngineMode = .auto, shadowEvery: Int = 1000) {
        self.mode = mode
        self.shadowEvery = shadowEvery
    }
}

/// The engine a version serves with, as `GET /v1/models/<name>` shows it.
public struct EngineStatus: Sendable, Equatable {
    /// `"native"` or `"vw"`.
    public let engine: String
    /// Why the version is on vw (nil when native).
    public let reason: String?
}

/// A version's native scorer, once verified, and the switch back to vw.
///
/// `scorer` and `shadowEvery` are written once by `attach`, before the store publishes the version
/// (publication goes through the store's lock); afterwards only `active` and `reason` change.
public final class NativeSlot: @unchecked Sendable {
    private var scorer: NativeScorer?
    private var shadowEvery = 0
    private var modelName = ""
    private var logger = Logger(label: "vwfcgi.native")
    private let active = Atomic<Bool>(false)
    private let turns = ShadowTurns()
    private let reason = Mutex<String>("engine vw (the native scorer has not been tried on this version)")

    init() {}

    /// Which engine answers, and why vw when it is vw.
    public var status: EngineStatus {
        active.load(ordering: .acquiring) ? EngineStatus(engine: "native", reason: nil)
            : EngineStatus(engine: "vw", reason: reason.withLock { $0 })
    }

    /// Decides the engine of a freshly started version: with `auto` or `native`, builds the scorer
    /// and serves natively only if it answers the whole probe set exactly as the version's vw pool.
    func attach(
        mode: EngineMode, version: ModelVersion, modelBytes: () -> [UInt8]?, warmup: [String], limits: ExampleLimits,
        shadowEvery: Int, timeout: Duration, logger: Logger
    ) {
        self.logger = logger
        self.modelName = version.name
        self.shadowEvery = shadowEvery
        guard mode != .vw else {
            reason.withLock { $0 = "engine vw (configured)" }
            return
        }
        let outcome = Self.verify(version: version, modelBytes: modelBytes, warmup: warmup, limits: limits, timeout: timeout)
        switch outcome {
        case .success(let verified):
            scorer = verified.scorer
            active.store(true, ordering: .releasing)
            logger.info("native scorer serves the model", metadata: ["probes": "\(verified.probes)"])
        case .failure(let refusal):
            let why = refusal.reason
            reason.withLock { $0 = why }
            if mode == .native {
                logger.warning("native scorer not used: \(why)")
            } else {
                logger.debug("native scorer not used: \(why)")
            }
        }
    }

    /// Why a version stays on vw.
    struct NativeRefusal: Error {
        let reason: String
    }

    struct Verified {
        let scorer: NativeScorer
        let probes: Int
    }

    /// Builds the scorer and compares it with the version's vw on the probe set.
    static func verify(
        version: ModelVersion, modelBytes: () -> [UInt8]?, warmup: [String], limits: ExampleLimits, timeout: Duration
    ) -> Result<Verified, NativeRefusal> {
        if let grammar = version.jsonGrammar, grammar.isCCB {
            return .failure(NativeRefusal(reason: "not supported by the native scorer: vw_json input with _slots (ccb)"))
        }
        let adf = version.options.family == .cbADF
        guard adf || (version.options.family == .simple || version.options.family == .multiclass) && !version.framing.blankLineAfterEach else {
            return .failure(NativeRefusal(reason: "not supported by the native scorer: \(version.options.family) models"))
        }
        var scorer: NativeScorer
        do {
            // The options first: a model the scorer cannot reproduce is never read a second time.
            let configuration = try NativeConfiguration(options: version.options)
            guard let bytes = modelBytes() else { return .failure(NativeRefusal(reason: "cannot read the staged model file")) }
            guard (configuration.adf != nil) == adf else {
                return .failure(NativeRefusal(reason: "not supported by the native scorer: a \(version.options.family) model with these options"))
            }
            scorer = try NativeScorer.load(configuration: configuration, file: bytes)
        } catch {
            return .failure(NativeRefusal(reason: error.reason))
        }
        var builder = ExampleBatchBuilder(framing: version.framing, limits: limits)
        var accepted: [String] = []
        let interactions = scorer.configuration.interactions
        if let grammar = version.jsonGrammar {
            // VW JSON (SPEC §11): the JSON probes, each checked by the model's grammar as a client's would be.
            scorer.readsJSON = true
            for example in warmup + NativeProbeSet.jsonExamples(interactions: interactions, adf: adf) {
                guard let parsed = try? grammar.parse(bytes: Array(example.utf8)) else { continue }
                builder.append(json: parsed)
                accepted.append(example)
            }
        } else {
            let probes = adf ? NativeProbeSet.adfExamples(interactions: interactions, warmup: warmup)
                : NativeProbeSet.examples(interactions: interactions, warmup: warmup)
            for example in probes {
                let lines = adf ? example.split(separator: "\n", omittingEmptySubsequences: false) : [Substring(example)]
                guard (try? builder.append(lines: lines)) != nil else { continue }
                accepted.append(example)
            }
        }
        let batch = builder.finish()
        let expected: ShardAnswer
        do {
            expected = try version.pool.predict(batch, deadline: .after(timeout))
        } catch {
            return .failure(NativeRefusal(reason: "the probe set could not be scored by vw: \(error.message)"))
        }
        guard let native = scorer.answer(batch) else { return .failure(NativeRefusal(reason: "the native scorer refused a probe example")) }
        if let index = firstDifference(native, expected) {
            return .failure(NativeRefusal(reason: "native answer differs from vw's on probe example \(index) (\(accepted[index].debugDescription))"))
        }
        return .success(Verified(scorer: scorer, probes: accepted.count))
    }

    /// The index of the first example whose answers differ, nil when both are byte for byte equal.
    static func firstDifference(_ a: ShardAnswer, _ b: ShardAnswer) -> Int? {
        if a.raw == b.raw && a.answers == b.answers { return nil }
        for index in 0..<min(a.answers.count, b.answers.count) where a.raw[a.answers[index]] != b.raw[b.answers[index]] {
            return index
        }
        return min(a.answers.count, b.answers.count)
    }

    /// Answers `batch` natively when the version is native (one request in `shadowEvery` is also
    /// answered by vw, which decides), else through the vw pool.
    func answer(_ batch: PreparedBatch, pool: ShardPool, deadline: Deadline) throws(PoolError) -> ShardAnswer {
        guard active.load(ordering: .acquiring), let scorer, let native = scorer.answer(batch) else {
            return try pool.predict(batch, deadline: deadline)
        }
        guard turns.take(every: shadowEvery) else { return native }
        let checked: ShardAnswer
        do {
            checked = try pool.predict(batch, deadline: deadline)
        } catch {
            return native  // vw could not check this one (busy, restarting): the next shadow request will.
        }
        if let index = Self.firstDifference(native, checked) {
            switchToVW(batch: batch, example: index, native: native, vw: checked)
        }
        return checked
    }

    /// The native answer to `batch` when it needs no vw: the version is native, the scorer answers it, and it is not
    /// a shadow check's turn (that turn is left to the next ``answer(_:pool:deadline:)``); else nil.
    func answerAlone(_ batch: PreparedBatch) -> ShardAnswer? {
        guard active.load(ordering: .acquiring), let scorer, turns.takeUnlessDue(every: shadowEvery) else { return nil }
        return scorer.answer(batch)
    }

    /// Whether the version answers natively now (its shadow checks aside).
    public var isNative: Bool { active.load(ordering: .acquiring) && scorer != nil }

    /// A shadow check found a difference: back to vw at once, counted and logged with the example.
    private func switchToVW(batch: PreparedBatch, example index: Int, native: ShardAnswer, vw: ShardAnswer) {
        active.store(false, ordering: .releasing)
        // The example's text: its line, or for a multiline VW text model its lines up to the blank one
        // (a VW JSON example is one line, ADF or not).
        let multiline = batch.multiline && scorer?.readsJSON != true
        var examples: [ArraySlice<UInt8>] = []
        var start = batch.payload.startIndex
        for position in batch.payload.indices where batch.payload[position] == 0x0A {
            let next = position + 1
            let ends = !multiline || (next < batch.payload.endIndex && batch.payload[next] == 0x0A)
            if ends {
                examples.append(batch.payload[start..<position])
                start = multiline ? next + 1 : next
            }
        }
        let text = index < examples.count ? String(decoding: examples[index].prefix(2048), as: UTF8.self) : ""
        let nativeText = index < native.answers.count ? String(decoding: native.raw[native.answers[index]], as: UTF8.self) : "-"
        let vwText = index < vw.answers.count ? String(decoding: vw.raw[vw.answers[index]], as: UTF8.self) : "-"
        // The example goes to the log only: the status document is no place for clients' data.
        reason.withLock { $0 = "native answer differed from vw's while serving (the example is in the log): switched back to vw" }
        Counter(label: "vwfcgi_native_mismatches_total", dimensions: [("model", modelName)]).increment()
        logger.error(
            "native scorer mismatch: model switched back to vw",
            metadata: ["example": "\(text)", "native": "\(nativeText)", "vw": "\(vwText)"]
        )
    }
}

extension NativeScorer {
    /// The answer of a prepared batch, framed exactly as the pool frames vw's output (client tags
    /// restored); nil when the scorer refuses a line or its output does not fit the frame.
    func answer(_ batch: PreparedBatch) -> ShardAnswer? {
        // ADF and VW JSON models take their own paths (predictADF, predictJSON).
        guard configuration.adf == nil, !readsJSON else {
            guard let printed = predict(payload: batch.payload) else { return nil }
            return Self.framed(printed, batch.frame)
        }
        // A linear model scores in the thread's own scratch: no allocation but the answer's.
        let scratch = NativeScratch.current
        defer { scratch.trim() }
        scratch.output.removeAll(keepingCapacity: true)
        guard predictLines(payload: batch.payload, example: &scratch.example, into: &scratch.output) else { return nil }
        return Self.framed(scratch.output, batch.frame)
    }

    /// `printed` checked against `frame` as vw's output is (server tags, line counts), client tags restored.
    private static func framed(_ printed: [UInt8], _ frame: AnswerFrame) -> ShardAnswer? {
        var framer = AnswerFramer(frame: frame, capacity: printed.count)
        let used = printed.withUnsafeBytes { bytes -> Int? in try? framer.consume(bytes) }
        guard used == printed.count, framer.isComplete else { return nil }
        return ShardAnswer(raw: framer.raw, answers: framer.answers)
    }
}

extension ModelVersion {
    /// The store's hook: decides the engine from the model's `"engine"` (else `--engine`), its
    /// staged bytes and its warmup examples, before the version is published.
    func attachNative(config: ModelConfig, settings: EngineSettings, logger: Logger) {
        let mode = config.engine ?? settings.native.mode
        let path = stagedPath
        let readModel = { () -> [UInt8]? in
            let descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return nil }
            defer { close(descriptor) }
            return try? FileIO.readToEnd(descriptor, maxBytes: settings.maxModelBytes)
        }
        native.attach(
            mode: mode, version: self, modelBytes: readModel, warmup: config.warmup, limits: settings.limits,
            shadowEvery: settings.native.shadowEvery, timeout: settings.loadTimeout, logger: logger
        )
    }
}

/// Counts a version's native answers: every `every`-th is a shadow check's turn (0: none is).
final class ShadowTurns: Sendable {
    private let count = Atomic<UInt64>(0)

    /// Counts one answer; true when it is a shadow check's turn.
    func take(every: Int) -> Bool {
        every > 0 && count.add(1, ordering: .relaxed).newValue % UInt64(every) == 0
    }

    /// Counts one answer unless it would be a shadow check's turn, which is left to the next ``take(every:)``;
    /// false then.
    func takeUnlessDue(every: Int) -> Bool {
        guard every > 0 else { return true }
        var seen = count.load(ordering: .relaxed)
        while true {
            if (seen &+ 1) % UInt64(every) == 0 { return false }
            let (exchanged, original) = count.compareExchange(expected: seen, desired: seen &+ 1, ordering: .relaxed)
            if exchanged { return true }
            seen = original
        }
    }
}

import CoreMetrics
import Synchronization

/// Where a serving version's bytes came from.
public enum ModelOrigin: Sendable, Equatable {
    /// The model directory (a dropped file).
    case file
    /// The learning loop: learned from file version `base`, `events` joined events learned in all.
    case learned(base: String, events: Int)
}

/// One loaded version of a model: immutable, swapped atomically by the store.
public final class ModelVersion: Sendable {
    public let name: String
    /// The first 12 hex digits of SHA-256(model bytes + config bytes).
    public let version: String
    /// RFC 3339 time the version started serving.
    public let loadedAt: String
    public let vwArgs: [String]
    /// How examples are written to vw and answers framed.
    public let framing: ExampleFraming
    public let predictionKind: PredictionKind
    /// The options vw runs with (stored and `vw_args`), as checked by the allowlist.
    public let options: ModelOptions
    /// The VW JSON grammar of a model whose `.json` says `"input": "vw_json"` (its shards run with `--json`).
    public let jsonGrammar: VWJSONGrammar?
    /// The learning loop's settings from the model's `.json`, when it has a `"loop"` object.
    public let loop: LoopConfig?
    /// What the model's interactions cost per example, for the per-request budget.
    public let interactionCost: InteractionCost
    /// Where the bytes came from: the model directory, or the learning loop.
    public let origin: ModelOrigin
    /// The first 12 hex digits of SHA-256 of the model file's bytes alone (no `.json`) this version is (`.file`) or was
    /// learned from (`.learned`): a `.json` edit changes `version`, not this, so the loop keeps what it learned.
    public let baseFile: String
    public let maxBatch: Int
    public let pool: ShardPool
    /// The native scorer, when this version passed its probe set (SPEC §11); see `NativeSlot`.
    public let native = NativeSlot()
    let stagedPath: String
    let inflight = Atomic<Int>(0)
    /// Set once the version no longer takes new requests; then every finished request wakes `drained`.
    let retiring = Atomic<Bool>(false)
    let drained = Condition()
    /// `vwfcgi_model_info{model,version}`, removed when the version retires.
    let infoGauge: Gauge

    public var multiline: Bool { framing.isMultiline }

    /// The version of the model file this version is (`.file`) or was learned from (`.learned`).
    public var baseVersion: String {
        switch origin {
        case .file: version
        case .learned(let base, _): base
        }
    }

    init(name: String, version: String, loadedAt: String, vwArgs: [String], framing: ExampleFraming,
         options: ModelOptions, jsonGrammar: VWJSONGrammar? = nil, loop: LoopConfig? = nil, origin: ModelOrigin = .file,
         baseFile: String, maxBatch: Int, pool: ShardPool, stagedPath: String) {
        self.name = name
        self.version = version
        self.loadedAt = loadedAt
        self.vwArgs = vwArgs
        self.framing = framing
        self.options = options
        self.jsonGrammar = jsonGrammar
        self.loop = loop
        self.origin = origin
        self.baseFile = baseFile
        self.interactionCost = InteractionCost(interactions: options.interactions)
        self.predictionKind = options.predictionKind
        self.maxBatch = maxBatch
        self.pool = pool
        self.stagedPath = stagedPath
        infoGauge = Gauge(label: "vwfcgi_model_info", dimensions: [("model", name), ("version", version)])
        infoGauge.record(1)
    }

    /// One request finished with this version.
    func requestFinished() {
        inflight.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        if retiring.load(ordering: .sequentiallyConsistent) { drained.broadcast() }
    }

    /// Waits until no request uses this version, or `deadline`; the version must be unpublished first.
    func waitUntilDrained(by deadline: Deadline) {
        retiring.store(true, ordering: .sequentiallyConsistent)
        drained.wait(until: deadline) { inflight.load(ordering: .sequentiallyConsistent) == 0 }
    }
}

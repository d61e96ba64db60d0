/// How the trainer runs vw (SPEC §8.6).
public struct TrainerSettings: Sendable {
    /// The vw command for training, e.g. `["/srv/vwfcgi/bin/vw"]`.
    public var vwCommand: [String]
    /// Largest address space of the trainer's vw (0: unlimited).
    public var memoryLimit: UInt64 = SandboxPolicy.defaultMemoryLimit
    /// Largest model the trainer's vw may write.
    public var maxModelBytes: UInt64 = 1 << 30
    /// Joined events one update reads at most (at least one joined file): a backlog is learned in pieces, one per
    /// update interval, so a trainer that failed for a day does not read the day's events into memory at once.
    public var maxUpdateBytes = 64 << 20
    /// How long one training run may take before its vw is killed and the update counts as failed.
    public var timeout: Duration = .seconds(600)
    /// `vwfcgi train`: the model directory each learned model is also written into (`<name>.vw`,
    /// `.sha256`, with `.json` as it is; each written then renamed), for the model-sync sidecar.
    public var publishDirectory: String?

    public init(vwCommand: [String]) {
        self.vwCommand = vwCommand
    }
}

/// What the learner persists in `<state>/<name>/learn-state.json`, replaced atomically after each update:
/// the model it learns from and the join position it reached, together (SPEC §8.6).
struct LearnState: Equatable {
    /// The model-directory file version learned from (the operator's base).
    var base: String
    /// The version of the latest model, held in `learned/<modelVersion>.vw`: the base's bytes (then it
    /// equals `base`, or a learned version served from the model directory), then each learned model.
    var modelVersion: String
    /// The file under `learned/` holding it.
    var model: String { modelVersion + ".vw" }
    /// Joined files learned: every `joined/<seq>.dsjson` with `seq <= position`.
    var position: Int
    /// Joined lines learned, from the first in join order.
    var learnedEvents: Int
    var updates: Int
    var lastUpdate: String?
    /// The versions learned from this base, newest last (at most 16): one of them found in the model
    /// directory is this learner's own publication (`vwfcgi train` writes them there), not an operator's file.
    var published: [String] = []
    /// The base's model file alone (``ModelVersion/baseFile``): a version of the same file with another `.json` (an
    /// operator's or Personalizer's settings edit, the apprentice's switch to online) is the same base, and serves
    /// the learned model. Nil in a state written before it was recorded.
    var baseFile: String?

    func serialized() -> [UInt8] {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("version"); writer.int(1)
        writer.key("base"); writer.string(base)
        writer.key("model_version"); writer.string(modelVersion)
        writer.key("position"); writer.int(position)
        writer.key("learned_events"); writer.int(learnedEvents)
        writer.key("updates"); writer.int(updates)
        writer.key("last_update")
        if let lastUpdate { writer.string(lastUpdate) } else { writer.raw("null".utf8) }
        writer.key("published")
        writer.beginArray()
        for version in published { writer.string(version) }
        writer.endArray()
        if let baseFile { writer.key("base_file"); writer.string(baseFile) }
        writer.endObject()
        return writer.bytes + [0x0A]
    }

    static func parse(_ bytes: [UInt8]) -> LearnState? {
        guard let value = try? JSONParser.parse(bytes, maxDepth: 4), value[member: "version"]?.numberText == "1",
              let base = value[member: "base"]?.stringValue,
              let modelVersion = value[member: "model_version"]?.stringValue, FileName.isSafe(modelVersion.utf8),
              let position = value[member: "position"]?.numberText.flatMap({ Int($0) }),
              let learned = value[member: "learned_events"]?.numberText.flatMap({ Int($0) }),
              let updates = value[member: "updates"]?.numberText.flatMap({ Int($0) })
        else { return nil }
        return LearnState(base: base, modelVersion: modelVersion, position: position, learnedEvents: learned,
                          updates: updates, lastUpdate: value[member: "last_update"]?.stringValue,
                          published: value[member: "published"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                          baseFile: value[member: "base_file"]?.stringValue)
    }
}

/// What `GET /v1/models/<name>/loop` reports of learning.
public struct LearnStatus: Sendable, Equatable {
    public var updates = 0
    public var failedUpdates = 0
    public var lastUpdate: String?
    /// The version the last update published (nil before the first update from the current base).
    public var learnedVersion: String?
    /// Joined lines the served model has learned, from the first in join order.
    public var learnedEvents = 0
    /// The learning policy's inverse-propensity estimate of its average reward on the last update's events.
    public var ipsEstimate: Double?
    /// The logged policy's average reward on the same events.
    public var loggedAverage: Double?
    public var lastError: String? {
        didSet { lastErrorTime = lastError == nil ? nil : rfc3339Now() }
    }
    public var lastErrorTime: String?
    /// Learned models the publish gate refused (SPEC §8.9), kept under `<state>/<name>/rejected/`.
    public var rejectedUpdates = 0
    /// Joined lines the trainer refused (TrainingInput) since start.
    public var skippedLines = 0
    /// Apprentice mode's switch criterion as last evaluated by this instance's trainer (nil before the first).
    public var apprentice: ApprenticeStatus?
}

/// What `/loop`'s `"apprentice"` shows: the last evaluation of the switch criterion, and when it switched the model to online.
public struct ApprenticeStatus: Sendable, Equatable {
    public var evaluations = 0
    public var evaluatedAt: String
    public var last: ApprenticeCriterion.Evaluation
    /// When the trainer switched the model to online (nil while it has not, since this instance started).
    public var switchedAt: String?
}

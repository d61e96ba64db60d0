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

/// Where the store finds the model the learning loop learned from file version `base` of model `name`,
/// to load in place of that file (SPEC §8.6: a restart resumes the learned model).
///
/// The store depends on this protocol only; the loop conforms to it, so the two never call each other.
public protocol LearnedModelSource: Sendable {
    /// `base` is the file's version (its bytes and `.json`), `baseFile` its bytes' alone (``ModelVersion/baseFile``).
    func learnedModel(name: String, base: String, baseFile: String, loop: LoopConfig) -> LearnedModel?
}

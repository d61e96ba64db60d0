/// What to evaluate: a model's joined events in a time range, and the candidate policies.
public struct EvaluationRequest: Sendable {
    /// The state directory (`--state-dir` of the server, or a copy of it).
    public var stateDirectory: String
    public var model: String
    /// Events with `from <= Timestamp < to`, in milliseconds since the epoch; nil: unbounded.
    public var from: Int64?
    public var to: Int64?
    /// Candidate policies: VW argument strings (e.g. `--cb_explore_adf --epsilon 0.1 -q UA`), checked by the allowlist.
    public var policies: [String]
    /// With a base policy: also search `PolicyGrid.candidates(around:)` it and report the winner.
    public var optimizationBase: String?
    /// The interval shown and ranked by (both are computed).
    public var interval: IntervalMethod = .normal
    /// Asked before each candidate's vw starts and every 250 ms while it runs: true stops the evaluation (its vw is
    /// killed; `EvaluationError.cancelled`).
    public var isCancelled: @Sendable () -> Bool = { false }
    /// The time series splits the events into this many windows of equal event counts.
    public var windows = 10
    /// The vw command, e.g. `["vw"]`.
    public var vwCommand: [String]
    public var memoryLimit: UInt64 = SandboxPolicy.defaultMemoryLimit
    /// How long each candidate's vw may run.
    public var timeout: Duration = .seconds(3600)
    /// A private directory the events given to vw are written into (removed by the caller).
    public var workDirectory: String

    public init(stateDirectory: String, model: String, policies: [String], vwCommand: [String], workDirectory: String) {
        self.stateDirectory = stateDirectory
        self.model = model
        self.policies = policies
        self.vwCommand = vwCommand
        self.workDirectory = workDirectory
    }
}


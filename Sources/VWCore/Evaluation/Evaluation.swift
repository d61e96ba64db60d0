/// Where a policy in an evaluation comes from (Personalizer's `policySource`, SPEC §10).
public enum PolicySource: String, Sendable {
    /// The logged decisions themselves.
    case online = "Online"
    /// Always the first action offered.
    case baseline = "Baseline"
    /// Uniform over the actions offered.
    case random = "Random"
    /// A VW argument string, trained progressively on the events.
    case custom = "Custom"
}

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

/// The estimate of one window of the time series.
public struct WindowEstimate: Sendable, Equatable {
    /// The first and last event's timestamps.
    public var start: String?
    public var end: String?
    public var estimate: OffPolicyEstimate
}

/// One policy's result.
public struct PolicyResult: Sendable {
    public var name: String
    public var source: PolicySource
    /// The VW arguments (custom policies), else empty.
    public var arguments: String
    public var summary: OffPolicyEstimate
    public var timeseries: [WindowEstimate]
}

/// The result of an evaluation: every policy's estimates over the same events.
public struct EvaluationResult: Sendable {
    public var model: String
    /// The events evaluated (joined decisions in the range that passed the checks).
    public var events: Int
    /// Joined lines left out because they fail the trainer's checks (anywhere in the log: their time cannot be
    /// trusted), with why (at most the first 20 reasons are kept).
    public var skipped: Int
    public var skippedReasons: [String]
    /// The first and last evaluated event's timestamps.
    public var firstTimestamp: String?
    public var lastTimestamp: String?
    /// `Online`, `Baseline`, `Random`, then the candidates in the order asked.
    public var policies: [PolicyResult]
}

/// Why an evaluation cannot run.
public enum EvaluationError: Error, Equatable {
    /// No `<state>/<model>/joined/` directory.
    case modelNotFound(String)
    /// No joined decision in the range.
    case noEvents(String)
    /// A candidate's arguments are refused by the option allowlist, or do not make vw print action probabilities.
    case invalidPolicy(policy: String, reason: String)
    /// A candidate's vw failed or printed something else than one PMF per event.
    case vwFailed(policy: String, reason: String)
    /// The state or work directory cannot be read or written.
    case storage(String)
    /// A `--from`/`--to` that is not a date or RFC 3339 time.
    case invalidTime(String)

    public var reason: String {
        switch self {
        case .modelNotFound(let model): "no joined events for model \(model) (no <state>/\(model)/joined/)"
        case .noEvents(let why): "no events to evaluate: \(why)"
        case .invalidPolicy(let policy, let reason): "policy \"\(policy)\": \(reason)"
        case .vwFailed(let policy, let reason): "policy \"\(policy)\": vw failed: \(reason)"
        case .storage(let why): why
        case .invalidTime(let text): "\(text) is not a date (2026-12-01) or an RFC 3339 UTC time (2026-12-01T10:00:00Z)"
        }
    }
}

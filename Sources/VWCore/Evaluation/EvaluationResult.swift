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
    /// Settings found by the grid search (`PolicyGrid`).
    case offlineExperimentation = "OfflineExperimentation"
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
    /// `Online`, `Baseline`, `Random`, the candidates in the order asked, then the grid's winner (`Optimized`).
    public var policies: [PolicyResult]
    /// The interval the table, plot and metrics show.
    public var interval: IntervalMethod = .normal
    /// Every grid candidate, in grid order (empty without a search).
    public var grid: [PolicyResult] = []

    /// The grid's winner.
    public var optimalPolicy: PolicyResult? { policies.first { $0.source == .offlineExperimentation } }
}


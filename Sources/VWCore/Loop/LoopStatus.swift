/// What `GET …/loop` shows, and the loop settings a serving version puts in force.

/// What `GET /v1/models/<name>/loop` reports (the learning half, issue 13, adds updates and estimates).
public struct LoopStatus: Sendable, Equatable {
    /// Decisions, rewards and activations this instance logged since it started.
    public let decisions: Int
    public let rewards: Int
    public let activations: Int
    /// Labelled examples (`:learn`) this instance logged since it started.
    public let learns: Int
    /// Events this instance joined since it started, and decisions waiting for their rewards.
    public let joined: Int
    public let pending: Int
    /// The sum of the rewards this instance received.
    public let rewardSum: Double
    /// The logged policy's average reward over the events joined since start (nil before the first).
    public let averageReward: Double?
    /// Updates, the learned version and the policy estimate (SPEC §8.6, §8.8).
    public let learning: LearnStatus
    /// Event ids with rewards but no decision yet; dropped by age or the caps since start; log lines skipped;
    /// logged probabilities clipped to `min_probability` (SPEC §8.9).
    public var orphans = 0
    public var droppedPending = 0
    public var droppedOrphans = 0
    public var skippedLines = 0
    public var clippedProbabilities = 0
    /// The loop settings in force (the serving version's `.json`), nil before the model served.
    public var settings: LoopConfig?
    /// Whether this instance holds the model's join lock.
    public var joinsHere = false
    /// Bytes of the model's state by kind (log, joined, learned, rejected, join), bytes deleted by retention since
    /// start by kind, the state budget (`--state-max-bytes`), the volume's free bytes, and why the write routes answer
    /// 503 when the budget is exceeded with nothing left to delete (issue 24).
    public var stateBytes: [String: Int] = [:]
    public var deletedBytes: [String: Int] = [:]
    public var stateBudget: Int?
    public var freeBytes: Int?
    public var overBudget: String?
}

/// A model's loop as its serving version says: the settings in force, and whether its `.json` has a `"loop"`.
public struct ServingLoop: Sendable {
    public var config: LoopConfig
    public var hasLoop: Bool

    public init?(_ version: ModelVersion?) {
        guard let version else { return nil }
        config = version.loop ?? LoopConfig()
        hasLoop = version.loop != nil
    }
}

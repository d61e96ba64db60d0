/// The join's parameters: the serving version's `"loop"` object (SPEC §8.5, §8.9), read again at every step.
public struct JoinSettings: Sendable, Equatable {
    /// How long a decision waits for rewards after the joiner first reads it (a deferred one: after its activation).
    public var rewardWait: Duration
    /// The reward of a decision that got none (its cost is its negation).
    public var defaultReward: Double
    /// How long rewards and activations of an event id without a decision are kept waiting for it (its decision
    /// may be in another instance's log, shipped later); then they are dropped and counted.
    public var orphanWait: Duration
    /// How long a deferred decision that is never activated (no reward, no activation) is kept; then it is
    /// dropped without being joined, and counted.
    public var deferredWait: Duration
    /// Each reward read is clipped to it, and so is an event's aggregated reward.
    public var rewardRange: ClosedRange<Double>
    public var aggregation: RewardAggregation
    /// A logged probability below it is written as it in the joined line (`_label_probability`), and counted.
    public var minProbability: Double
    /// Caps: beyond them the oldest are dropped and counted.
    public var maxPending: Int
    public var maxOrphans: Int

    public init(rewardWait: Duration = .seconds(10), defaultReward: Double = 0, orphanWait: Duration = .seconds(3600),
                deferredWait: Duration = .seconds(86_400), rewardRange: ClosedRange<Double> = -1...1,
                aggregation: RewardAggregation = .sum, minProbability: Double = 1e-4, maxPending: Int = 1_000_000,
                maxOrphans: Int = 1_000_000) {
        self.rewardWait = rewardWait
        self.defaultReward = defaultReward
        self.orphanWait = orphanWait
        self.deferredWait = deferredWait
        self.rewardRange = rewardRange
        self.aggregation = aggregation
        self.minProbability = minProbability
        self.maxPending = maxPending
        self.maxOrphans = maxOrphans
    }

    public init(_ loop: LoopConfig) {
        self.init(rewardWait: loop.rewardWait, defaultReward: loop.defaultReward, orphanWait: loop.orphanWait,
                  deferredWait: loop.deferredWait, rewardRange: loop.rewardRange, aggregation: loop.rewardAggregation,
                  minProbability: loop.minProbability, maxPending: loop.maxPending, maxOrphans: loop.maxOrphans)
    }
}

/// What one ``Joiner/step(nowMilliseconds:writersStopped:)`` did.
public struct JoinStep: Sendable {
    /// The event ids joined, in join order.
    public var joined: [String] = []
    /// The joined file written (`<seq>.dsjson`), nil when nothing was joined.
    public var file: String?
    /// Log lines skipped (torn by a crash, invalid, decisions without valid `a`/`p`, refused files, ...).
    public var skipped: [SkippedLine] = []
    /// Rewards and activations dropped because their decision never came within `orphanWait`.
    public var droppedOrphans = 0
    /// Deferred decisions dropped, never activated within `deferredWait`.
    public var droppedDeferred = 0
    /// Dropped by the caps (`max_pending`, `max_orphans`): the oldest first.
    public var droppedPendingOverCap = 0
    public var droppedOrphansOverCap = 0
    /// Joined decisions whose logged probability was below `min_probability` (written clipped).
    public var clippedProbabilities = 0
    /// Decisions whose event id was already pending (the later line is ignored).
    public var duplicateDecisions = 0
    /// New log lines read, by kind (for the loop status and metrics).
    public var decisionsRead = 0
    public var rewardsRead = 0
    public var activationsRead = 0
    public var learnsRead = 0
    /// Decisions among `joined` (the others are `:learn` lines).
    public var decisionsJoined = 0
    /// The sum of the joined decisions' rewards (their default reward when none came): the logged policy's.
    public var rewardSum = 0.0
    /// Whether the step wrote a full snapshot of the join state (rather than a journal record).
    public var wroteSnapshot = false
}

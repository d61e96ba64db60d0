/// How several rewards for one event make its reward (SPEC §8.3). Each reward is aggregated by the rule in force
/// when it is read: a change applies to the rewards read after it.
public enum RewardAggregation: String, Sendable, Equatable {
    /// The sum of the rewards received, clipped to `reward_range` (the default).
    case sum
    /// The first reward read; later ones are kept in the joined line's `"o"` list only.
    case earliest
}

/// Whether the loop learns from its decisions (Personalizer's learning modes, SPEC §9).
public enum LearningMode: String, Sendable, Equatable {
    /// Decide, log, join, learn and publish (the default).
    case online
    /// Decide, log and join; the trainer learns nothing (Personalizer's `LoggingOnly`).
    case loggingOnly = "logging_only"
    /// Personalizer's `Apprentice`: every decision serves and logs the baseline (the first action offered, with
    /// probability 1) while the trainer learns from those decisions.
    case apprentice
}

/// The `"loop"` object of a model's `.json` (SPEC §8.5, §8.6, §8.9). These settings are in force from the
/// reload that served them: every join step and every update reads the serving version's.
public struct LoopConfig: Sendable, Equatable {
    /// How long a decision waits for its rewards before it is joined.
    public var rewardWait: Duration = .seconds(10)
    /// The reward of a decision joined without any.
    public var defaultReward: Double = 0
    /// How often the trainer runs, and how many new joined events it needs (issue 13).
    public var updateInterval: Duration = .seconds(30)
    public var minEvents = 100
    /// `"external"`: this instance only decides and logs; `vwfcgi train` learns (SPEC §8.7).
    public var externalTrainer = false
    /// `"learning_mode"`: `"logging_only"` keeps the trainer from learning (decisions are still logged and joined).
    public var learningMode: LearningMode = .online
    /// The rewards a client may send (400 outside); an event's aggregated reward is clipped to it.
    public var rewardRange: ClosedRange<Double> = -1...1
    public var rewardAggregation: RewardAggregation = .sum
    /// `:learn` bounds: |label| and |initial value| (and costs), importance weight, |feature value|.
    public var maxAbsLabel = 1e6
    public var maxImportance = 1e3
    public var maxAbsFeatureValue = 1e6
    /// The smallest logged probability learned from as it is: below it, the joiner clips it (counted), and the
    /// trainer refuses a joined line that carries one (a line the joiner did not write).
    public var minProbability = 1e-4
    /// Decisions waiting for rewards, and event ids with rewards but no decision yet: beyond these, the oldest are
    /// dropped and counted (`vwfcgi_loop_dropped_total{kind}`).
    public var maxPending = 1_000_000
    public var maxOrphans = 1_000_000
    /// How long rewards wait for their decision (it may be in another pod's log, shipped later), and how long a
    /// deferred decision waits for its activation.
    public var orphanWait: Duration = .seconds(3600)
    public var deferredWait: Duration = .seconds(86_400)
    /// The publish gate: a learned model whose IPS estimate on its update's events is below the serving
    /// model's by more than this is not published (nil: only the finite/PMF check).
    public var maxRegression: Double? = 0.1
    /// `"apprentice_threshold"`: apprentice mode switches to online when the learned policy's conservative reward
    /// estimate on an update's apprentice decisions reaches this multiple of the baseline's average (SPEC §9,
    /// ``ApprenticeCriterion``); 1.0: as good as the baseline.
    public var apprenticeThreshold = 1.0
    /// How long (or how many) of the loop's files are kept once nothing needs them any more (issue 24).
    public var retention = Retention()

    /// `"retention": {"log": "7d", "joined": "30d", "learned_versions": 5, "rejected": "3d"}`.
    public struct Retention: Sendable, Equatable {
        /// A closed log segment whose every event is joined (or shipped) is deleted this long after its last write.
        public var log: Duration = .seconds(7 * 86_400)
        /// A joined file already learned (or of a model that does not learn here) is deleted this long after it was written.
        public var joined: Duration = .seconds(30 * 86_400)
        /// Learned models kept besides the base and the serving one (a rollback goes back through them).
        public var learnedVersions = 5
        /// Rejected candidates are deleted this long after the gate refused them.
        public var rejected: Duration = .seconds(3 * 86_400)

        public init() {}
    }

    public init() {}

    static let keys = "reward_wait, default_reward, update_interval, min_events, trainer, reward_range, reward_aggregation, "
        + "max_abs_label, max_importance, max_abs_feature_value, min_probability, max_pending, max_orphans, orphan_wait, "
        + "deferred_wait, gate, retention, learning_mode, apprentice_threshold"

    static func parse(_ value: JSONValue) throws(LoadError) -> LoopConfig {
        guard case .object(let members) = value else { throw .invalidConfig("\"loop\" must be an object") }
        var loop = LoopConfig()
        func number(_ key: String, _ value: JSONValue, positive: Bool = false) throws(LoadError) -> Double {
            guard case .number(let text) = value, let number = Double(text), number.isFinite, !positive || number > 0 else {
                throw .invalidConfig("\"loop\".\"\(key)\" must be a finite\(positive ? " positive" : "") number")
            }
            return number
        }
        func count(_ key: String, _ value: JSONValue) throws(LoadError) -> Int {
            guard let n = value.integer, n >= 1 else { throw .invalidConfig("\"loop\".\"\(key)\" must be a positive integer") }
            return n
        }
        for (key, value) in members {
            switch key {
            case "reward_wait", "update_interval", "orphan_wait", "deferred_wait":
                guard case .string(let text) = value, let duration = Self.duration(text) else {
                    throw .invalidConfig("\"loop\".\"\(key)\" must be a duration such as \"10s\", \"500ms\" or \"2m\"")
                }
                // The join keeps its times as 32-bit ms offsets (Offset32Column): its waits stay well inside 49 days.
                guard key == "update_interval" || duration <= Self.longestWait else {
                    throw .invalidConfig("\"loop\".\"\(key)\" must be at most 30 days (\"30d\")")
                }
                switch key {
                case "reward_wait": loop.rewardWait = duration
                case "update_interval": loop.updateInterval = duration
                case "orphan_wait": loop.orphanWait = duration
                default: loop.deferredWait = duration
                }
            case "default_reward":
                loop.defaultReward = try number(key, value)
            case "min_events":
                loop.minEvents = try count(key, value)
            case "max_pending":
                loop.maxPending = try count(key, value)
            case "max_orphans":
                loop.maxOrphans = try count(key, value)
            case "trainer":
                guard case .string(let text) = value, text == "external" || text == "internal" else {
                    throw .invalidConfig("\"loop\".\"trainer\" must be \"internal\" or \"external\"")
                }
                loop.externalTrainer = text == "external"
            case "reward_range":
                guard case .array(let bounds) = value, bounds.count == 2 else {
                    throw .invalidConfig("\"loop\".\"reward_range\" must be [low, high]")
                }
                let low = try number(key, bounds[0]), high = try number(key, bounds[1])
                guard low < high else { throw .invalidConfig("\"loop\".\"reward_range\" must be [low, high] with low < high") }
                loop.rewardRange = low...high
            case "learning_mode":
                guard case .string(let text) = value, let mode = LearningMode(rawValue: text) else {
                    throw .invalidConfig("\"loop\".\"learning_mode\" must be \"online\", \"logging_only\" or \"apprentice\"")
                }
                loop.learningMode = mode
            case "apprentice_threshold":
                loop.apprenticeThreshold = try number(key, value, positive: true)
            case "reward_aggregation":
                guard case .string(let text) = value, let aggregation = RewardAggregation(rawValue: text) else {
                    throw .invalidConfig("\"loop\".\"reward_aggregation\" must be \"sum\" or \"earliest\"")
                }
                loop.rewardAggregation = aggregation
            case "max_abs_label":
                loop.maxAbsLabel = try number(key, value, positive: true)
            case "max_importance":
                loop.maxImportance = try number(key, value, positive: true)
            case "max_abs_feature_value":
                loop.maxAbsFeatureValue = try number(key, value, positive: true)
            case "min_probability":
                let p = try number(key, value, positive: true)
                guard p < 1 else { throw .invalidConfig("\"loop\".\"min_probability\" must be in (0, 1)") }
                loop.minProbability = p
            case "gate":
                switch value {
                case .null:
                    loop.maxRegression = nil
                case .object(let gate):
                    for (name, setting) in gate {
                        guard name == "max_regression" else {
                            throw .invalidConfig("unknown key \"loop\".\"gate\".\"\(name)\" (known: max_regression)")
                        }
                        if setting == .null {
                            loop.maxRegression = nil
                        } else {
                            let x = try number("gate\".\"max_regression", setting)
                            guard x >= 0 else { throw .invalidConfig("\"loop\".\"gate\".\"max_regression\" must be ≥ 0 or null") }
                            loop.maxRegression = x
                        }
                    }
                default:
                    throw .invalidConfig("\"loop\".\"gate\" must be an object {\"max_regression\": x} or null")
                }
            case "retention":
                guard case .object(let settings) = value else {
                    throw .invalidConfig("\"loop\".\"retention\" must be an object {\"log\", \"joined\", \"learned_versions\", \"rejected\"}")
                }
                for (name, setting) in settings {
                    switch name {
                    case "log", "joined", "rejected":
                        guard case .string(let text) = setting, let duration = Self.duration(text) else {
                            throw .invalidConfig("\"loop\".\"retention\".\"\(name)\" must be a duration such as \"7d\" or \"12h\"")
                        }
                        if name == "log" { loop.retention.log = duration } else if name == "joined" { loop.retention.joined = duration } else {
                            loop.retention.rejected = duration
                        }
                    case "learned_versions":
                        guard let n = setting.integer, (1...1000).contains(n) else {
                            throw .invalidConfig("\"loop\".\"retention\".\"learned_versions\" must be an integer from 1 to 1000")
                        }
                        loop.retention.learnedVersions = n
                    default:
                        throw .invalidConfig("unknown key \"loop\".\"retention\".\"\(name)\" (known: log, joined, learned_versions, rejected)")
                    }
                }
            default:
                throw .invalidConfig("unknown key \"loop\".\"\(key)\" (known: \(keys))")
            }
        }
        guard loop.rewardRange.contains(loop.defaultReward) else {
            throw .invalidConfig("\"loop\".\"default_reward\" must lie in \"reward_range\"")
        }
        return loop
    }

    /// The longest `reward_wait`, `orphan_wait` or `deferred_wait`.
    static let longestWait: Duration = .seconds(30 * 86_400)

    /// `"10s"`, `"500ms"`, `"2m"`, `"1h"`, `"7d"`: a positive whole number and a unit.
    static func duration(_ text: String) -> Duration? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard let value = Int64(digits), value > 0, value < 1_000_000 else { return nil }
        switch text.dropFirst(digits.count) {
        case "ms": return .milliseconds(value)
        case "s": return .seconds(value)
        case "m": return .seconds(value * 60)
        case "h": return .seconds(value * 3600)
        case "d": return .seconds(value * 86_400)
        default: return nil
        }
    }

    /// `reward` clipped to `rewardRange`.
    public func clip(reward: Double) -> Double {
        min(max(reward, rewardRange.lowerBound), rewardRange.upperBound)
    }
}

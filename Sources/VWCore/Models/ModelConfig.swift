
/// The format of a model's examples (SPEC §8.1).
public enum ModelInput: String, Sendable, Equatable {
    /// VW's text format (the default).
    case vwText = "vw_text"
    /// VW's JSON format (`vw --json`): instances are JSON objects, ADF contexts carry `_multi`.
    case vwJSON = "vw_json"
}

/// The `"loop"` object of a model's `.json` (SPEC §8.5, §8.6).
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

    public init() {}

    static func parse(_ value: JSONValue) throws(LoadError) -> LoopConfig {
        guard case .object(let members) = value else { throw .invalidConfig("\"loop\" must be an object") }
        var loop = LoopConfig()
        for (key, value) in members {
            switch key {
            case "reward_wait", "update_interval":
                guard case .string(let text) = value, let duration = Self.duration(text) else {
                    throw .invalidConfig("\"loop\".\"\(key)\" must be a duration such as \"10s\", \"500ms\" or \"2m\"")
                }
                if key == "reward_wait" { loop.rewardWait = duration } else { loop.updateInterval = duration }
            case "default_reward":
                guard case .number(let text) = value, let number = Double(text), number.isFinite else {
                    throw .invalidConfig("\"loop\".\"default_reward\" must be a finite number")
                }
                loop.defaultReward = number
            case "min_events":
                guard let n = value.integer, n >= 1 else { throw .invalidConfig("\"loop\".\"min_events\" must be a positive integer") }
                loop.minEvents = n
            case "trainer":
                guard case .string(let text) = value, text == "external" || text == "internal" else {
                    throw .invalidConfig("\"loop\".\"trainer\" must be \"internal\" or \"external\"")
                }
                loop.externalTrainer = text == "external"
            default:
                throw .invalidConfig("unknown key \"loop\".\"\(key)\" (known: reward_wait, default_reward, update_interval, min_events, trainer)")
            }
        }
        return loop
    }

    /// `"10s"`, `"500ms"`, `"2m"`, `"1h"`: a positive whole number and a unit.
    static func duration(_ text: String) -> Duration? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard let value = Int64(digits), value > 0, value < 1_000_000 else { return nil }
        switch text.dropFirst(digits.count) {
        case "ms": return .milliseconds(value)
        case "s": return .seconds(value)
        case "m": return .seconds(value * 60)
        case "h": return .seconds(value * 3600)
        default: return nil
        }
    }
}

/// The optional `<name>.json` next to a model:
/// `{"shards", "vw_args", "warmup", "max_batch", "input", "loop"}`.
public struct ModelConfig: Sendable, Equatable {
    public var shards: Int?
    public var vwArgs: [String] = []
    public var warmup: [String] = []
    public var maxBatch: Int?
    public var input: ModelInput = .vwText
    /// The learning loop's settings; nil when the file has no `"loop"` object.
    public var loop: LoopConfig?
    /// `"engine"`: overrides `--engine` for this model (SPEC §11).
    public var engine: EngineMode?

    public init(shards: Int? = nil, vwArgs: [String] = [], warmup: [String] = [], maxBatch: Int? = nil) {
        self.shards = shards
        self.vwArgs = vwArgs
        self.warmup = warmup
        self.maxBatch = maxBatch
    }

    /// Parses and validates a config file's bytes.
    public static func parse(_ bytes: [UInt8]) throws(LoadError) -> ModelConfig {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw .invalidConfig("not valid JSON (\(error.message))")
        }
        guard case .object(let members) = document else { throw .invalidConfig("must be a JSON object") }
        var config = ModelConfig()
        for (key, value) in members {
            switch key {
            case "shards":
                guard let n = value.integer, (1...64).contains(n) else {
                    throw .invalidConfig("\"shards\" must be an integer from 1 to 64")
                }
                config.shards = n
            case "max_batch":
                guard let n = value.integer, n >= 1 else {
                    throw .invalidConfig("\"max_batch\" must be a positive integer")
                }
                config.maxBatch = n
            case "vw_args":
                guard let args = value.strings else { throw .invalidConfig("\"vw_args\" must be an array of strings") }
                // Each string is one argv token; only allowlisted options pass (see `VWOptions`).
                do {
                    _ = try VWOptions.check(args)
                } catch {
                    throw .invalidConfig("vw_args: \(error.reason)")
                }
                config.vwArgs = args
            case "warmup":
                guard let examples = value.strings else { throw .invalidConfig("\"warmup\" must be an array of strings") }
                config.warmup = examples
            case "input":
                guard case .string(let text) = value, let input = ModelInput(rawValue: text) else {
                    throw .invalidConfig("\"input\" must be \"vw_text\" or \"vw_json\"")
                }
                config.input = input
            case "loop":
                config.loop = try LoopConfig.parse(value)
            case "engine":
                guard case .string(let text) = value, let engine = EngineMode(rawValue: text) else {
                    throw .invalidConfig("\"engine\" must be \"vw\", \"native\" or \"auto\"")
                }
                config.engine = engine
            default:
                throw .invalidConfig("unknown key \"\(key)\" (known: shards, vw_args, warmup, max_batch, input, loop, engine)")
            }
        }
        return config
    }
}

extension JSONValue {
    /// The value of a JSON integer (no fraction or exponent), nil for anything else.
    fileprivate var integer: Int? {
        guard case .number(let text) = self else { return nil }
        return Int(text)
    }

    /// The elements of an array of strings, nil for anything else.
    fileprivate var strings: [String]? {
        guard case .array(let items) = self else { return nil }
        var out: [String] = []
        for item in items {
            guard case .string(let text) = item else { return nil }
            out.append(text)
        }
        return out
    }
}

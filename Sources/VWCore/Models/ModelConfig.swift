
/// The format of a model's examples (SPEC §8.1).
public enum ModelInput: String, Sendable, Equatable {
    /// VW's text format (the default).
    case vwText = "vw_text"
    /// VW's JSON format (`vw --json`): instances are JSON objects, ADF contexts carry `_multi`.
    case vwJSON = "vw_json"
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
            case "personalizer":
                // The Personalizer API's stored settings (SPEC §9, `PersonalizerSettings`): kept, not read by the engine.
                guard case .object = value else { throw .invalidConfig("\"personalizer\" must be an object") }
            default:
                throw .invalidConfig("unknown key \"\(key)\" (known: shards, vw_args, warmup, max_batch, input, loop, engine, personalizer)")
            }
        }
        return config
    }
}

extension JSONValue {
    /// The value of a JSON integer (no fraction or exponent), nil for anything else.
    var integer: Int? {
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

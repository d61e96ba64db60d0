/// Personalizer's service configuration and policy (SPEC §9) as a model's `.json` holds them: the settings the loop
/// has (`rewardWaitTime`, `modelExportFrequency`, `defaultReward`, `rewardAggregation`, `logRetentionDays`) are its
/// `"loop"` members (and `learningMode` its `learning_mode`; `explorationPercentage` its `vw_args`' `--epsilon`), so
/// the settings in force follow the file; the rest of the document (`modelRetrainDays`, the auto-optimization fields,
/// ...) and the policy are kept as given in its `"personalizer"` object and returned, with no effect on serving (the
/// policy's arguments make the model of `DELETE …/model`).
public enum PersonalizerSettings {
    public typealias Members = [(key: String, value: JSONValue)]

    static let learningModes = ["Online", "Apprentice", "LoggingOnly"]

    // MARK: Service configuration

    /// `GET …/configurations/service`: the stored document with the loop's settings in force written over it.
    public static func serviceConfiguration(of config: Members) throws(LoopRequestError) -> JSONValue {
        let loop = try loopConfig(of: config)
        var document = Self.object(member("service", of: member("personalizer", of: config))) ?? []
        let logDays = loop.retention.log.milliseconds / 86_400_000
        let defaults: Members = [
            ("explorationPercentage", .number("0.2")), ("modelRetrainDays", .number("0")), ("learningMode", .string("Online")),
            ("isAutoOptimizationEnabled", .bool(false)),
        ]
        for (key, value) in defaults where !document.contains(where: { $0.key == key }) { document.append((key, value)) }
        set(&document, "rewardWaitTime", .string(isoDuration(milliseconds: loop.rewardWait.milliseconds)))
        set(&document, "modelExportFrequency", .string(isoDuration(milliseconds: loop.updateInterval.milliseconds)))
        set(&document, "defaultReward", .number(String(loop.defaultReward)))
        set(&document, "rewardAggregation", .string(loop.rewardAggregation.rawValue))
        let arguments = strings(member("vw_args", of: config))
        if let index = arguments.firstIndex(of: "--epsilon"), index + 1 < arguments.count, Double(arguments[index + 1]) != nil {
            set(&document, "explorationPercentage", .number(arguments[index + 1]))
        }
        set(&document, "learningMode", .string(personalizerName(of: loop.learningMode)))
        if case .number(let stored)? = member("logRetentionDays", of: .object(document)), stored == "-1" {
            // "Never deleted" is kept as said; the log retention in force is then the loop's default or its own.
        } else {
            set(&document, "logRetentionDays", .number(String(logDays)))
        }
        return .object(document)
    }

    /// `PUT …/configurations/service`: the model's `.json` members with `body` applied (400 for a bad field).
    public static func applying(serviceConfiguration body: JSONValue, to config: Members) throws(LoopRequestError) -> Members {
        guard case .object(let fields) = body else { throw LoopRequestError("the service configuration must be a JSON object") }
        var loop = object(member("loop", of: .object(config))) ?? []
        var epsilon: String?
        for (key, value) in fields {
            switch key {
            case "rewardWaitTime", "modelExportFrequency":
                guard case .string(let text) = value, let milliseconds = parseISODuration(text) else {
                    throw LoopRequestError("\"\(key)\" must be an ISO 8601 duration such as \"PT10M\" or \"PT5S\", not \(value.jsonText)")
                }
                guard let duration = loopDuration(milliseconds: milliseconds) else {
                    throw LoopRequestError("\"\(key)\" \(text) is out of range (1 ms to 999999 days)")
                }
                set(&loop, key == "rewardWaitTime" ? "reward_wait" : "update_interval", .string(duration))
            case "defaultReward":
                guard case .number = value else { throw LoopRequestError("\"defaultReward\" must be a number, not \(value.kindName)") }
                set(&loop, "default_reward", value)
            case "rewardAggregation":
                guard case .string(let text) = value, let aggregation = RewardAggregation(rawValue: text.lowercased()) else {
                    throw LoopRequestError("\"rewardAggregation\" must be \"earliest\" or \"sum\", not \(value.jsonText)")
                }
                set(&loop, "reward_aggregation", .string(aggregation.rawValue))
            case "logRetentionDays":
                guard let days = value.integer, days == -1 || (1...999_999).contains(days) else {
                    throw LoopRequestError("\"logRetentionDays\" must be -1 (never deleted) or a whole number of days from 1, not \(value.jsonText)")
                }
                if days > 0 {
                    var retention = object(member("retention", of: .object(loop))) ?? []
                    set(&retention, "log", .string("\(days)d"))
                    set(&loop, "retention", .object(retention))
                }
            case "learningMode":
                guard case .string(let text) = value, learningModes.contains(text) else {
                    throw LoopRequestError("\"learningMode\" must be one of \(learningModes.joined(separator: ", ")), not \(value.jsonText)")
                }
                set(&loop, "learning_mode", .string(learningMode(personalizer: text).rawValue))
            case "explorationPercentage":
                guard case .number(let text) = value, let p = Double(text), (0...1).contains(p) else {
                    throw LoopRequestError("\"explorationPercentage\" must be a number from 0 to 1, not \(value.jsonText)")
                }
                epsilon = text
            default:
                break
            }
        }
        var result = config
        set(&result, "loop", .object(loop))
        if let epsilon {
            // In force: the model is served (and trained) with `--epsilon p` given at load, which VW lets override
            // the epsilon stored in the model file.
            var arguments = strings(member("vw_args", of: result))
            while let index = arguments.firstIndex(where: { $0 == "--epsilon" || $0.hasPrefix("--epsilon=") }) {
                arguments.removeSubrange(index..<min(arguments.count, index + (arguments[index] == "--epsilon" ? 2 : 1)))
            }
            set(&result, "vw_args", .array((arguments + ["--epsilon", epsilon]).map { .string($0) }))
        }
        var personalizer = object(member("personalizer", of: .object(config))) ?? []
        set(&personalizer, "service", body)
        set(&result, "personalizer", .object(personalizer))
        return result
    }

    /// Personalizer's name of a learning mode.
    static func personalizerName(of mode: LearningMode) -> String {
        switch mode {
        case .online: "Online"
        case .loggingOnly: "LoggingOnly"
        case .apprentice: "Apprentice"
        }
    }

    /// The learning mode of a Personalizer name (one of `learningModes`).
    static func learningMode(personalizer name: String) -> LearningMode {
        switch name {
        case "LoggingOnly": .loggingOnly
        case "Apprentice": .apprentice
        default: .online
        }
    }

    // MARK: Policy

    /// `GET …/configurations/policy`: the stored policy, or the model's own arguments under the name "default".
    public static func policy(of config: Members, modelArguments: String) -> JSONValue {
        if let stored = member("policy", of: member("personalizer", of: .object(config))) { return stored }
        return .object([("name", .string("default")), ("arguments", .string(modelArguments))])
    }

    /// `PUT …/configurations/policy`: `{"name", "arguments"}`, the arguments through the option allowlist.
    public static func applying(policy body: JSONValue, to config: Members) throws(LoopRequestError) -> Members {
        guard case .object(let fields) = body else { throw LoopRequestError("the policy must be a JSON object {\"name\", \"arguments\"}") }
        for (key, _) in fields where key != "name" && key != "arguments" {
            throw LoopRequestError("unknown member \"\(key)\" of the policy (known: name, arguments)")
        }
        guard case .string(let name)? = member("name", of: body) else { throw LoopRequestError("the policy needs a \"name\" string") }
        guard case .string(let arguments)? = member("arguments", of: body) else {
            throw LoopRequestError("the policy needs an \"arguments\" string")
        }
        do throws(VWOptionsError) {
            _ = try VWOptions.check(arguments.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
        } catch {
            throw LoopRequestError("policy arguments refused: \(error.reason)")
        }
        return withPolicy(.object([("name", .string(name)), ("arguments", .string(arguments))]), in: config)
    }

    /// `DELETE …/configurations/policy`: the stored policy removed (the model's own arguments answer again).
    public static func resettingPolicy(in config: Members) -> Members { withPolicy(nil, in: config) }

    private static func withPolicy(_ policy: JSONValue?, in config: Members) -> Members {
        var personalizer = object(member("personalizer", of: .object(config))) ?? []
        personalizer.removeAll { $0.key == "policy" }
        if let policy { personalizer.append(("policy", policy)) }
        var result = config
        set(&result, "personalizer", .object(personalizer))
        return result
    }

    // MARK: Durations

    /// An ISO 8601 duration (`PT5S`, `PT10M`, `P1DT2H`, `PT0.5S`, `P1W`) in milliseconds; nil when malformed, or with
    /// years or months (whose length varies).
    public static func parseISODuration(_ text: String) -> Int64? {
        var bytes = Substring(text)
        guard bytes.first == "P", bytes.count > 1 else { return nil }
        bytes.removeFirst()
        var total: Double = 0
        var inTime = false
        var sawComponent = false
        var number = ""
        var lastRank = -1
        for character in bytes {
            if character == "T" {
                guard !inTime, number.isEmpty else { return nil }
                inTime = true
                lastRank = 2
                continue
            }
            if character.isASCII && (character.isNumber || character == ".") {
                number.append(character)
                continue
            }
            guard let value = Double(number), value.isFinite else { return nil }
            let (rank, seconds): (Int, Double)
            switch (inTime, character) {
            case (false, "W"): (rank, seconds) = (0, 604_800)
            case (false, "D"): (rank, seconds) = (1, 86_400)
            case (true, "H"): (rank, seconds) = (3, 3600)
            case (true, "M"): (rank, seconds) = (4, 60)
            case (true, "S"): (rank, seconds) = (5, 1)
            default: return nil
            }
            guard rank > lastRank else { return nil }
            lastRank = rank
            total += value * seconds
            sawComponent = true
            number = ""
        }
        guard sawComponent, number.isEmpty, total * 1000 < 1e15 else { return nil }
        return Int64((total * 1000).rounded())
    }

    /// Milliseconds as an ISO 8601 duration: `PT10M`, `P1DT2H`, `PT0.5S`.
    public static func isoDuration(milliseconds: Int64) -> String {
        let days = milliseconds / 86_400_000, rest = milliseconds % 86_400_000
        let hours = rest / 3_600_000, minutes = rest % 3_600_000 / 60_000, millis = rest % 60_000
        var text = "P" + (days > 0 ? "\(days)D" : "")
        if rest > 0 || days == 0 {
            text += "T"
            if hours > 0 { text += "\(hours)H" }
            if minutes > 0 { text += "\(minutes)M" }
            if millis > 0 || rest == 0 {
                text += millis % 1000 == 0 ? "\(millis / 1000)S" : "\(Double(millis) / 1000)S"
            }
        }
        return text
    }

    /// The loop's duration text (`"10s"`, `"5m"`) for milliseconds: the largest unit that divides them.
    static func loopDuration(milliseconds: Int64) -> String? {
        guard milliseconds > 0 else { return nil }
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] where milliseconds % size == 0 {
            let count = milliseconds / size
            return count < 1_000_000 ? "\(count)\(unit)" : nil
        }
        return nil
    }

    // MARK: Helpers

    static func loopConfig(of config: Members) throws(LoopRequestError) -> LoopConfig {
        guard let loop = member("loop", of: .object(config)) else { return LoopConfig() }
        do throws(LoadError) {
            return try LoopConfig.parse(loop)
        } catch {
            throw LoopRequestError("the model's .json: \(error)")
        }
    }

    static func member(_ key: String, of value: JSONValue?) -> JSONValue? {
        guard case .object(let members)? = value else { return nil }
        return members.last { $0.key == key }?.value
    }

    static func member(_ key: String, of members: Members) -> JSONValue? { member(key, of: .object(members)) }

    /// The strings of an array (the others skipped); empty for anything else.
    static func strings(_ value: JSONValue?) -> [String] {
        guard case .array(let items)? = value else { return [] }
        return items.compactMap { if case .string(let text) = $0 { text } else { nil } }
    }

    static func object(_ value: JSONValue?) -> Members? {
        guard case .object(let members)? = value else { return nil }
        return members
    }

    static func set(_ members: inout Members, _ key: String, _ value: JSONValue) {
        if let index = members.firstIndex(where: { $0.key == key }) {
            // One member per key: the first keeps its place, later duplicates go.
            members[index].value = value
            members = members.enumerated().filter { $0.offset <= index || $0.element.key != key }.map(\.element)
        } else {
            members.append((key, value))
        }
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

extension JSONValue {
    /// The value as compact JSON text.
    public var jsonText: String { String(decoding: jsonBytes, as: UTF8.self) }

    /// The value as compact JSON bytes (members in order, strings escaped by `JSONQuoting`).
    public var jsonBytes: [UInt8] {
        var bytes: [UInt8] = []
        append(to: &bytes)
        return bytes
    }

    private func append(to bytes: inout [UInt8]) {
        switch self {
        case .null: bytes += "null".utf8
        case .bool(let flag): bytes += (flag ? "true" : "false").utf8
        case .number(let text): bytes += text.utf8
        case .string(let text): JSONQuoting.append(text, to: &bytes)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                item.append(to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                JSONQuoting.append(member.key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                member.value.append(to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }
}

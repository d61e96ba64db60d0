/// What the trainer's vw reads (`-d`): the joined lines of one update, each checked again on its way
/// to vw (SPEC §8.6).
///
/// Joined lines are written by the joiner, but from event logs that may have come from other
/// instances through a bucket (SPEC §8.7) or been edited on disk: as nothing a client sends reaches vw
/// unparsed, nothing read back from disk does either.
/// * A decision line has exactly the members the joiner writes, of the types it writes (labels,
///   `a`/`p` in step, a valid event id), and its `c` passes the model's strict `VWJSONGrammar`. It is
///   given to vw as it is: every byte of it is then a member the joiner wrote from a parsed value.
/// * A `:learn` line (`{"EventId","Learn","Timestamp"}`) gives vw its example re-written by the strict
///   `ExampleGrammar` (labels kept and required), never the text read from disk.
///
/// A line that fails is not learned; its reason is reported (`skipped`), and the update goes on.
struct TrainingInput {
    /// One joined decision given to vw, for the IPS estimate: its reward, the logged probability of the chosen action, and that action (1-based).
    struct Decision: Equatable {
        var reward: Double
        var probability: Double
        var action: Int
        /// How many actions were offered (the length of `"a"`); 0 when unknown.
        var offered = 0
        /// The decision's `"Timestamp"`, as logged.
        var timestamp: String?
        /// Its line in ``bytes`` (a multislot line gives one decision per slot, all with its line).
        var line = 0
    }

    /// The bytes for vw, one example per line.
    private(set) var bytes: [UInt8] = []
    /// The decisions given to vw, in order (empty for a VW text model).
    private(set) var decisions: [Decision] = []
    /// Why each line left out was left out.
    private(set) var skipped: [String] = []

    /// The lines in ``bytes``.
    private(set) var lineCount = 0

    /// The members a joined multislot decision line may have (`Joiner.slotsJoinedLine`).
    private static let slotsDecisionMembers: Set<String> = ["Timestamp", "Version", "EventId", "c", "_outcomes", "VWState"]

    /// The members a joined decision line may have (`Joiner.joinedLine`).
    private static let decisionMembers: Set<String> = [
        "_label_cost", "_label_probability", "_label_Action", "_labelIndex", "o", "Timestamp", "Version", "EventId", "a", "c", "p",
        "VWState",
    ]

    /// - Parameters:
    ///   - json: the model's VW JSON grammar (a `vw_json` model learns decision lines), nil for a VW text model (`:learn` lines).
    ///   - text: the strict grammar of the model's family, keeping labels.
    init(lines: [ArraySlice<UInt8>], json: VWJSONGrammar?, text: ExampleGrammar, loop: LoopConfig = LoopConfig()) {
        for (index, line) in lines.enumerated() {
            guard let value = try? JSONParser.parse(Array(line), maxDepth: 64), case .object(let members) = value else {
                skipped.append("joined line \(index): not a JSON object")
                continue
            }
            if let json, json.isCCB {
                switch Self.slotsDecisions(members, grammar: json, minProbability: loop.minProbability, rewardRange: loop.rewardRange) {
                case .success(let slots):
                    bytes += line
                    bytes.append(0x0A)
                    decisions += slots.map { var decision = $0; decision.line = lineCount; return decision }
                    lineCount += 1
                case .failure(let problem):
                    skipped.append("joined line \(index): \(problem.why)")
                }
            } else if let json {
                switch Self.decision(members, grammar: json, minProbability: loop.minProbability, rewardRange: loop.rewardRange) {
                case .success(var decision):
                    bytes += line
                    bytes.append(0x0A)
                    decision.line = lineCount
                    decisions.append(decision)
                    lineCount += 1
                case .failure(let problem):
                    skipped.append("joined line \(index): \(problem.why)")
                }
            } else {
                guard members.count == 3, members.allSatisfy({ ["EventId", "Learn", "Timestamp"].contains($0.key) }),
                      case .string(let example)? = value[member: "Learn"] else {
                    skipped.append("joined line \(index): not a :learn line {\"EventId\",\"Learn\",\"Timestamp\"}")
                    continue
                }
                do throws(ExampleProblem) {
                    let parsed = try text.parse(lines: [Substring(example)])
                    guard parsed.hasLabel else { throw .invalidLabel("no label") }
                    var canonical: [UInt8] = []
                    parsed.write(serverTag: [], into: &canonical)
                    if let why = LearnBounds(loop).problem(in: String(decoding: canonical.dropLast(), as: UTF8.self), family: text.family) {
                        throw .invalidLabel(why)
                    }
                    parsed.write(serverTag: [], into: &bytes)
                    lineCount += 1
                } catch {
                    skipped.append("joined line \(index): \(error.reason)")
                }
            }
        }
    }

    struct Problem: Error {
        let why: String
    }

    private static func decision(_ members: [(key: String, value: JSONValue)], grammar: VWJSONGrammar, minProbability: Double,
                                 rewardRange: ClosedRange<Double>) -> Result<Decision, Problem> {
        var seen = Set<String>()
        for (key, _) in members {
            guard decisionMembers.contains(key) else { return .failure(Problem(why: "unknown member \"\(key)\"")) }
            guard seen.insert(key).inserted else { return .failure(Problem(why: "member \"\(key)\" given twice")) }
        }
        let value = JSONValue.object(members)
        func number(_ key: String) -> Double? { value[member: key]?.numberText.flatMap(Double.init).flatMap { $0.isFinite ? $0 : nil } }
        func integer(_ element: JSONValue) -> Int? { element.numberText.flatMap { Int($0) } }
        // The joiner writes -(reward clipped to the range) and a probability of at least min_probability.
        guard let cost = number("_label_cost"), rewardRange.contains(-cost),
              let probability = number("_label_probability"), probability >= minProbability, probability <= 1,
              let action = value[member: "_label_Action"].flatMap(integer), action >= 1,
              value[member: "_labelIndex"].flatMap(integer) == action - 1
        else {
            return .failure(Problem(why: "labels are not a cost within the reward range, a probability in [min_probability \(minProbability), 1] "
                + "and action/index in step"))
        }
        let logged: LoggedDecision
        switch LoggedDecision.check(value) {
        case .success(let checked): logged = checked
        case .failure(let problem): return .failure(Problem(why: problem.why))
        }
        guard logged.chosen == action, probability == logged.chosenProbability || (logged.chosenProbability < minProbability && probability == minProbability)
        else { return .failure(Problem(why: "the label is not the first action of \"a\" with its probability in \"p\"")) }
        guard isRewardList(value[member: "o"]) else { return .failure(Problem(why: "\"o\" is not a list of {\"v\": finite reward}")) }
        guard hasJoinerIdentity(value) else { return .failure(Problem(why: "EventId, Version or Timestamp is not what the joiner writes")) }
        let example: VWJSONExample
        switch checkedContext(logged.context, grammar: grammar) {
        case .success(let parsed): example = parsed
        case .failure(let problem): return .failure(problem)
        }
        if let largest = logged.actionIDs.max(), example.isADF, largest > example.actions {
            return .failure(Problem(why: "action \(largest) of \"a\" is past the context's \(example.actions) actions"))
        }
        return .success(Decision(reward: -cost, probability: probability, action: action, offered: logged.actionIDs.count,
                                 timestamp: value[member: "Timestamp"]?.stringValue))
    }

    /// A logged context: no key VW reads as a label, tag or anything but features (``reservedKey(in:top:action:slots:)``),
    /// then the model's strict grammar.
    private static func checkedContext(_ context: JSONValue, grammar: VWJSONGrammar) -> Result<VWJSONExample, Problem> {
        if let key = Self.reservedKey(in: context, top: true, slots: grammar.isCCB) {
            return .failure(Problem(why: "context: key \"\(key)\" is not allowed in a logged context (labels, tags and other \"_\" keys)"))
        }
        do throws(ExampleProblem) {
            return .success(try grammar.parse(context))
        } catch {
            return .failure(Problem(why: "context: \(error.reason)"))
        }
    }

    /// Whether `value` is the rewards list the joiner writes (`"o"`, a slot's `"_o"`): at most ``RewardTally/keep`` `{"v": finite}`.
    private static func isRewardList(_ value: JSONValue?) -> Bool {
        guard let rewards = value?.arrayValue, rewards.count <= RewardTally.keep else { return false }
        return rewards.allSatisfy { reward in
            guard case .object(let fields) = reward, fields.count == 1, fields[0].key == "v",
                  let number = fields[0].value.numberText.flatMap(Double.init) else { return false }
            return number.isFinite
        }
    }

    /// A valid `"EventId"`, a `"Version"` string and, when present, a `"Timestamp"` string.
    private static func hasJoinerIdentity(_ value: JSONValue) -> Bool {
        guard let id = value[member: "EventId"]?.stringValue, EventID(id) != nil, value[member: "Version"]?.stringValue != nil else { return false }
        return value[member: "Timestamp"].map { $0.stringValue != nil } ?? true
    }

    /// A joined multislot line (`--ccb_explore_adf`): one ``Decision`` per slot, each slot's outcome checked like a
    /// single-slot label (cost within the reward range, `_p[0]` at least `min_probability`, the chosen action one
    /// the slot is offered and no earlier slot took), its context by the strict grammar with one outcome per slot.
    private static func slotsDecisions(_ members: [(key: String, value: JSONValue)], grammar: VWJSONGrammar, minProbability: Double,
                                       rewardRange: ClosedRange<Double>) -> Result<[Decision], Problem> {
        var seen = Set<String>()
        for (key, _) in members {
            guard slotsDecisionMembers.contains(key) else { return .failure(Problem(why: "unknown member \"\(key)\"")) }
            guard seen.insert(key).inserted else { return .failure(Problem(why: "member \"\(key)\" given twice")) }
        }
        let value = JSONValue.object(members)
        let logged: LoggedSlotsDecision
        switch LoggedSlotsDecision.check(value, joined: true) {
        case .success(let checked): logged = checked
        case .failure(let problem): return .failure(Problem(why: problem.why))
        }
        guard hasJoinerIdentity(value) else { return .failure(Problem(why: "EventId, Version or Timestamp is not what the joiner writes")) }
        let example: VWJSONExample
        switch checkedContext(logged.context, grammar: grammar) {
        case .success(let parsed): example = parsed
        case .failure(let problem): return .failure(problem)
        }
        guard logged.slots.count == example.slots else {
            return .failure(Problem(why: "\(logged.slots.count) outcomes for the context's \(example.slots) slots"))
        }
        let outcomes = value[member: "_outcomes"]?.arrayValue ?? []
        var decisions: [Decision] = []
        for (index, (slot, outcome)) in zip(logged.slots, outcomes).enumerated() {
            guard let cost = outcome[member: "_label_cost"]?.numberText.flatMap(Double.init), cost.isFinite, rewardRange.contains(-cost) else {
                return .failure(Problem(why: "outcome \(index): \"_label_cost\" is not a cost within the reward range"))
            }
            guard slot.probabilities[0] >= minProbability else {
                return .failure(Problem(why: "outcome \(index): the chosen action's probability is below min_probability \(minProbability)"))
            }
            guard let largest = slot.actions.max(), largest < example.actions else {
                return .failure(Problem(why: "outcome \(index): an action of \"_a\" is past the context's \(example.actions) actions"))
            }
            if let included = example.includedActions[index], !included.contains(slot.actions[0]) {
                return .failure(Problem(why: "outcome \(index): action \(slot.actions[0]) is not offered to the slot (\"_inc\")"))
            }
            guard isRewardList(outcome[member: "_o"]) else {
                return .failure(Problem(why: "outcome \(index): \"_o\" is not a list of {\"v\": finite reward}"))
            }
            decisions.append(Decision(reward: -cost, probability: slot.probabilities[0], action: slot.actions[0] + 1,
                                      offered: slot.actions.count, timestamp: value[member: "Timestamp"]?.stringValue))
        }
        return .success(decisions)
    }

    /// The first key starting with `_` other than `_text` (anywhere) and `_multi` (at the top), nil when none. With
    /// `slots` (a ccb context), `_slots` at the top too, and in each slot `_id`, `_inc` and a `_tag` that seeds its draw (`seed=`).
    static func reservedKey(in value: JSONValue, top: Bool, action: Bool = false, slots: Bool = false) -> String? {
        switch value {
        case .object(let members):
            for (key, member) in members {
                if top && slots && key == "_slots", case .array(let elements) = member {
                    for element in elements {
                        guard case .object(let fields) = element else { return key }
                        for (field, inner) in fields {
                            switch field {
                            case "_id", "_inc": continue
                            case "_tag": if inner.stringValue?.hasPrefix("seed=") != true { return field } else { continue }
                            default:
                                if let found = reservedKey(in: .object([(key: field, value: inner)]), top: false) { return found }
                            }
                        }
                    }
                    continue
                }
                // An action's own `_tag` (its Personalizer id, SPEC §9) names it in the log; vw reads no feature from it.
                if key.hasPrefix("_") && key != "_text" && !(top && key == "_multi") && !(action && key == "_tag") { return key }
                if top && key == "_multi", case .array(let actions) = member {
                    for element in actions {
                        if let found = reservedKey(in: element, top: false, action: true) { return found }
                    }
                    continue
                }
                if let found = reservedKey(in: member, top: false) { return found }
            }
        case .array(let elements):
            for element in elements {
                if let found = reservedKey(in: element, top: false) { return found }
            }
        default:
            break
        }
        return nil
    }
}

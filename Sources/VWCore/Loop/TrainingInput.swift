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
    }

    /// The bytes for vw, one example per line.
    private(set) var bytes: [UInt8] = []
    /// The decisions given to vw, in order (empty for a VW text model).
    private(set) var decisions: [Decision] = []
    /// Why each line left out was left out.
    private(set) var skipped: [String] = []

    /// The members a joined decision line may have (`Joiner.joinedLine`).
    private static let decisionMembers: Set<String> = [
        "_label_cost", "_label_probability", "_label_Action", "_labelIndex", "o", "Timestamp", "Version", "EventId", "a", "c", "p",
        "VWState",
    ]

    /// - Parameters:
    ///   - json: the model's VW JSON grammar (a `vw_json` model learns decision lines), nil for a VW text model (`:learn` lines).
    ///   - text: the strict grammar of the model's family, keeping labels.
    init(lines: [ArraySlice<UInt8>], json: VWJSONGrammar?, text: ExampleGrammar) {
        for (index, line) in lines.enumerated() {
            guard let value = try? JSONParser.parse(Array(line), maxDepth: 64), case .object(let members) = value else {
                skipped.append("joined line \(index): not a JSON object")
                continue
            }
            if let json {
                switch Self.decision(members, grammar: json) {
                case .success(let decision):
                    bytes += line
                    bytes.append(0x0A)
                    decisions.append(decision)
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
                    parsed.write(serverTag: [], into: &bytes)
                } catch {
                    skipped.append("joined line \(index): \(error.reason)")
                }
            }
        }
    }

    struct Problem: Error {
        let why: String
    }

    private static func decision(_ members: [(key: String, value: JSONValue)], grammar: VWJSONGrammar) -> Result<Decision, Problem> {
        var seen = Set<String>()
        for (key, _) in members {
            guard decisionMembers.contains(key) else { return .failure(Problem(why: "unknown member \"\(key)\"")) }
            guard seen.insert(key).inserted else { return .failure(Problem(why: "member \"\(key)\" given twice")) }
        }
        let value = JSONValue.object(members)
        func number(_ key: String) -> Double? { value[member: key]?.numberText.flatMap(Double.init).flatMap { $0.isFinite ? $0 : nil } }
        func integer(_ element: JSONValue) -> Int? { element.numberText.flatMap { Int($0) } }
        func string(_ key: String, required: Bool) -> Bool {
            guard let member = value[member: key] else { return !required }
            return member.stringValue != nil
        }
        guard let cost = number("_label_cost"), let probability = number("_label_probability"), probability > 0, probability <= 1,
              let action = value[member: "_label_Action"].flatMap(integer), action >= 1,
              value[member: "_labelIndex"].flatMap(integer) == action - 1
        else { return .failure(Problem(why: "labels are not a cost, a probability in (0, 1] and action/index in step")) }
        guard let actions = value[member: "a"]?.arrayValue, let probabilities = value[member: "p"]?.arrayValue,
              !actions.isEmpty, actions.count == probabilities.count,
              actions.allSatisfy({ integer($0).map { $0 >= 1 } ?? false }),
              probabilities.allSatisfy({ $0.numberText.flatMap(Double.init).map { (0...1).contains($0) } ?? false })
        else { return .failure(Problem(why: "\"a\" and \"p\" are not action ids with their probabilities")) }
        guard let outcomes = value[member: "o"]?.arrayValue,
              outcomes.allSatisfy({ outcome in
                  guard case .object(let fields) = outcome, fields.count == 1, fields[0].key == "v" else { return false }
                  return fields[0].value.numberText != nil
              })
        else { return .failure(Problem(why: "\"o\" is not a list of {\"v\": reward}")) }
        guard let id = value[member: "EventId"]?.stringValue, EventID(id) != nil,
              string("Version", required: true), string("Timestamp", required: false)
        else { return .failure(Problem(why: "EventId, Version or Timestamp is not what the joiner writes")) }
        if let state = value[member: "VWState"] {
            guard case .object(let fields) = state, fields.count == 1, fields[0].key == "m", fields[0].value.stringValue != nil else {
                return .failure(Problem(why: "\"VWState\" is not {\"m\": version}"))
            }
        }
        guard let context = value[member: "c"] else { return .failure(Problem(why: "no context \"c\"")) }
        do throws(ExampleProblem) {
            _ = try grammar.parse(context)
        } catch {
            return .failure(Problem(why: "context: \(error.reason)"))
        }
        return .success(Decision(reward: -cost, probability: probability, action: action))
    }
}

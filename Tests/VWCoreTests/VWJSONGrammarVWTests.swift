import Glibc
import Testing
@testable import VWCore

/// VWJSONGrammar against the real vw (bin/vw): a `--cb_explore_adf` model trained by VW with
/// `--dsjson` on a synthetic log, and a `--json` regression model. Every accepted example (fixed
/// ones and deterministic random ones near the edges) is written in canonical form with a server
/// tag; vw must exit normally, print exactly one answer line per example ending in ` <tag>` (then a
/// blank line for ADF), with one PMF entry per action, and answer exactly as it does for the
/// client's own bytes (the hashing fidelity the VW JSON input exists for).

/// A synthetic decision log in VW's dsjson format: users alice, bob and carol each prefer one of 3 actions.
private func decisionLog() -> String {
    var random = SplitMix(state: 42)
    let users = ["alice", "bob", "carol"]
    var log = ""
    for _ in 0..<300 {
        let user = random.below(3)
        let action = random.below(3)
        let cost = action == user ? "-1" : "0"
        let others = (0..<3).filter { $0 != action }.map { String($0 + 1) }
        let actions = (0..<3).map { #"{"Action":{"name":"a\#($0)"}}"# }.joined(separator: ",")
        log += #"{"_label_cost":\#(cost),"_label_probability":0.333333,"_label_Action":\#(action + 1),"_labelIndex":\#(action),"a":[\#(action + 1),\#(others.joined(separator: ","))],"p":[0.333333,0.333333,0.333333],"c":{"User":{"id":"\#(users[user])"},"_multi":[\#(actions)]}}"# + "\n"
    }
    return log
}

private let regressionData = """
{"_label":1,"a":{"x":1,"y":"red"},"b":[0.5,1]}
{"_label":2,"a":{"x":2,"y":"blue"},"_text":"hello world"}
{"_label":0,"a":{"x":0.5,"z":true},"b":[1,0]}

"""

// MARK: - Random client objects

/// VWFCGI_VWJSON_FUZZ=N and VWFCGI_VWJSON_FUZZ_SEED=S run N random objects from seed S (a longer search).
private let fuzzCount = getenv("VWFCGI_VWJSON_FUZZ").flatMap { Int(String(cString: $0)) }
private let fuzzSeed = getenv("VWFCGI_VWJSON_FUZZ_SEED").flatMap { UInt64(String(cString: $0)) }

private func pick(_ random: inout SplitMix, _ items: [String]) -> String { random.pick(items) }

private func space(_ random: inout SplitMix) -> String { random.chance(20) ? pick(&random, [" ", "  ", "\t", " \r"]) : "" }

private func value(_ random: inout SplitMix) -> String {
    pick(&random, [
        #""alice""#, #""bob""#, #""carol""#, #""a b""#, #""x:y|z""#, #""\u00e9t\u00E9""#, #""tab\there""#, #""""#, #""\"q\\""#,
        "1", "-2.5", "0", "1e-3", "1E2", "3.4e38", "-0", "12345678901234567890", "1e39", "1e-50",
        "true", "false", "null", "[1,2]", "[null,0.5,null]", "[]", "[1,[2]]", #"["s"]"#, #""nul\u0000""#, "{}",
    ])
}

private func key(_ random: inout SplitMix) -> String {
    pick(&random, [#""id""#, #""age""#, #""x""#, #""\u00e9""#, #""a b""#, #""a:b""#, #""a|b""#, #""1""#, #""q\tr""#, #""id""#, #""id""#, #""""#, #""_comment""#,
                          #""k\"q""#, #""b\\s""#, #""\ud83d\ude00""#, #""s\/l""#, #""_TEXT""#, #""_Tag""#, #""_labelindex""#])
}

private func namespace(_ random: inout SplitMix) -> String {
    pick(&random, [#""User""#, #""U""#, #""a""#, #""x_ns""#, #""1""#, #""User""#, #""\u00fcber""#, #"" sp""#, #""|""#])
}

private func features(_ random: inout SplitMix, depth: Int) -> [String] {
    var members: [String] = []
    for _ in 0..<random.below(4) {
        switch random.below(10) {
        case 0..<5: members.append(key(&random) + space(&random) + ":" + space(&random) + value(&random))
        case 5..<8:
            let inner = depth < 3 ? features(&random, depth: depth + 1) : []
            members.append(namespace(&random) + ":{" + inner.joined(separator: ",") + "}")
        case 8: members.append(#""_text":"# + pick(&random, [#""w1 w2""#, #""a:b|c  d""#, #""""#, #""\u00e9""#]))
        default: members.append(pick(&random, [#""_label":{"Cost":1,"Probability":0.5}"#, #""_label_cost":-1"#, #""_labelIndex":0"#, #""_x":1"#]))
        }
    }
    return members
}

private func adfObject(_ random: inout SplitMix) -> String {
    var members = features(&random, depth: 0)
    if random.chance(30) { members.append(#""User":{"id":"# + pick(&random, [#""alice""#, #""bob""#, #""carol""#]) + "}") }
    if random.chance(20) { members.append(#""_tag":"client""#) }
    var multi: String? = nil
    if random.chance(95) {
        var actions: [String] = []
        for _ in 0..<(random.chance(5) ? 0 : 1 + random.below(4)) {
            var action = features(&random, depth: 1)
            if random.chance(60) { action.append(#""Action":{"name":"# + pick(&random, [#""a0""#, #""a1""#, #""a2""#, #""a9""#]) + "}") }
            action.shuffle(using: &random)
            actions.append("{" + action.joined(separator: "," + space(&random)) + "}")
        }
        multi = #""_multi":["# + actions.joined(separator: ",") + "]"
    }
    members.shuffle(using: &random)
    // Mostly last, as the grammar requires.
    if let multi { members.insert(multi, at: random.chance(85) ? members.count : random.below(members.count + 1)) }
    return space(&random) + "{" + space(&random) + members.joined(separator: "," + space(&random)) + "}" + space(&random)
}

private func singleObject(_ random: inout SplitMix) -> String {
    var members = features(&random, depth: 0)
    if random.chance(40) { members.append(#""a":{"x":"# + pick(&random, ["1", "2", "0.5"]) + #","y":"# + pick(&random, [#""red""#, #""blue""#]) + "}") }
    if random.chance(20) { members.append(#""_tag":"client""#) }
    if random.chance(20) { members.append(pick(&random, [#""_label":1"#, #""_label":"2 0.5""#, #""_label":{"Label":1,"Weight":2}"#])) }
    members.shuffle(using: &random)
    return "{" + members.joined(separator: ",") + "}"
}

// MARK: - Checks

/// The answers in `output`: one per example, each the prediction and its tag ("" when none); nil when the framing is off.
private func answers(_ output: String, count: Int, isADF: Bool) -> [(prediction: Substring, tag: Substring)]? {
    var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
    guard lines.last == "" else { return nil }
    lines.removeLast()
    guard lines.count == count * (isADF ? 2 : 1) else { return nil }
    var result: [(Substring, Substring)] = []
    for index in 0..<count {
        let line = lines[isADF ? 2 * index : index]
        if isADF && !lines[2 * index + 1].isEmpty { return nil }
        guard !line.isEmpty else { return nil }
        if let space = line.firstIndex(of: " ") {
            result.append((line[..<space], line[line.index(after: space)...]))
        } else {
            result.append((line, ""))
        }
    }
    return result
}

private struct Accepted {
    let client: String
    let example: VWJSONExample
}

/// Runs the accepted examples through vw twice (canonical with server tags `s<i>`, then the client's
/// bytes) and checks framing, tags, PMF sizes and equal predictions. Clients with a `"_label…"` key
/// are left out of the second run: the grammar drops labels, and vw aborts on many as sent (under
/// `--json` on a cb_adf model any `"_label_cost"`, or a shared `"_label":{"Cost":1,...}`: "only one
/// cost can be known but found 2", SIGABRT).
private func check(_ accepted: [Accepted], model: String, isADF: Bool, blankAfterAnswer: Bool? = nil) throws {
    let blank = blankAfterAnswer ?? isADF
    let serve = VWProcess.arguments(command: [vwPath], modelPath: model, extraArguments: ["--json"])
    var canonical: [UInt8] = []
    for (number, item) in accepted.enumerated() { item.example.write(serverTag: Array("s\(number)".utf8), into: &canonical) }
    let served = try runSandboxed(serve, input: canonical)
    try #require(served.status == "exited with code 0", "vw on canonical lines: \(served.status)")
    let ours = try #require(answers(served.output, count: accepted.count, isADF: blank), "framing of \(served.output.prefix(500).debugDescription)")

    let comparable = accepted.indices.filter { !accepted[$0].client.contains(#""_label"#) }
    let raw = comparable.map { accepted[$0].client }.joined(separator: "\n") + "\n"
    let direct = try runSandboxed(serve, input: Array(raw.utf8))
    try #require(direct.status == "exited with code 0", "vw on the client's bytes: \(direct.status) after \(direct.output.debugDescription) for \(raw.debugDescription)")
    let theirs = try #require(answers(direct.output, count: comparable.count, isADF: blank), "framing of the client's bytes: \(direct.output.prefix(500).debugDescription)")

    for (position, number) in comparable.enumerated() {
        let item = accepted[number]
        #expect(ours[number].prediction == theirs[position].prediction, "\(item.client) written as \(item.example.canonicalText().debugDescription)")
    }
    for (number, item) in accepted.enumerated() {
        #expect(ours[number].tag == "s\(number)", "\(item.client)")
        if isADF { #expect(ours[number].prediction.split(separator: ",").count == item.example.actions, "\(item.client)") }
    }
}

@Suite(.serialized, .enabled(if: vwAvailable, "needs .venv with vowpalwabbit"))
struct VWJSONGrammarVWTests {
    @Test func contextualBanditModelTrainedFromDSJSON() throws {
        let path = "/tmp/vwfcgi-vwjson-\(getpid())-cb.vw"
        defer { unlink(path) }
        let trained = train(["--dsjson", "--cb_explore_adf", "-q", "UA"], data: decisionLog(), to: path)
        try #require(trained.status == "exited with code 0", "training: \(trained.status)")
        let grammar = VWJSONGrammar(isADF: true)

        // The users' preferred actions come out first: the features are hashed as in training.
        let actions = #""_multi":[{"Action":{"name":"a0"}},{"Action":{"name":"a1"}},{"Action":{"name":"a2"}}]"#
        var fixed = ["alice", "bob", "carol"].map { #"{"User":{"id":"\#($0)"},\#(actions)}"# }
        fixed += [
            #"{ "User" : { "id" : "bob" } , "_tag" : "t" , "_labelIndex" : 1 , \#(actions) }"#,
            #"{"User":{"id":"al\u0069ce","age":null},"_multi":[{"Action":{"name":"a0"},"_label":{"Cost":1}},{"Action":{"name":"a1"}}]}"#,
            #"{"_multi":[{}]}"#,
            #"{"User":{"id":"carol","v":[1,null,2]},"_text":"a b\tc","_multi":[{"Action":{"name":"a2","f":false,"g":true}},{"Action":{"name":"a\/1"}}]}"#,
            // The limits' edges: objects 8 deep, 100 actions, 1,000 array features.
            #"{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":1}}}}}}},"_multi":[{"A":{"B":{"C":{"D":{"E":{"x":1}}}}}}]}"#,
            #"{"User":{"id":"bob"},"_multi":["# + (0..<100).map { #"{"Action":{"name":"a\#($0 % 3)","i":\#($0)}}"# }.joined(separator: ",") + "]}",
            #"{"v":["# + (0..<1000).map { String($0) }.joined(separator: ",") + #"],"_multi":[{"Action":{"name":"a0"}},{}]}"#,
        ]
        let accepted = try fixed.map { Accepted(client: $0, example: try grammar.parse(bytes: Array($0.utf8))) }
        try check(accepted, model: path, isADF: true)

        let serve = VWProcess.arguments(command: [vwPath], modelPath: path, extraArguments: ["--json"])
        var payload: [UInt8] = []
        for item in accepted.prefix(3) { item.example.write(serverTag: [], into: &payload) }
        let output = try runSandboxed(serve, input: payload).output
        #expect(output.split(separator: "\n").map { $0.prefix(2) } == ["0:", "1:", "2:"], "\(output)")

        // Random objects near the edges: every accepted one is framed and answered as VW answers the client.
        var random = SplitMix(state: fuzzSeed ?? 0x15_0A)
        var randomAccepted: [Accepted] = []
        var rejected = 0
        for _ in 0..<(fuzzCount ?? 1_500) {
            let client = adfObject(&random)
            if let example = try? grammar.parse(bytes: Array(client.utf8)) {
                randomAccepted.append(Accepted(client: client, example: example))
            } else {
                rejected += 1
            }
        }
        #expect(randomAccepted.count > 60 && rejected > 60, "\(randomAccepted.count) accepted, \(rejected) rejected")
        try check(randomAccepted, model: path, isADF: true)
        print("VW JSON fuzz (cb_explore_adf): \(randomAccepted.count) accepted, \(rejected) rejected")
    }

    @Test func regressionModelTrainedFromJSON() throws {
        let path = "/tmp/vwfcgi-vwjson-\(getpid())-reg.vw"
        defer { unlink(path) }
        let trained = train(["--json"], data: regressionData, to: path)
        try #require(trained.status == "exited with code 0", "training: \(trained.status)")
        let grammar = VWJSONGrammar(isADF: false)

        let fixed = [
            #"{"a":{"x":1,"y":"red"},"b":[0.5,1]}"#, #"{"_text":"hello world"}"#, #"{}"#, #"{"a":{"z":true,"q":false}}"#,
            #"{"_label":{"Label":3,"Weight":2},"_tag":"mine","a":{"x":2}}"#, #"{"a":{"y":"bl\u0075e"},"b":[null,1]}"#,
        ]
        let accepted = try fixed.map { Accepted(client: $0, example: try grammar.parse(bytes: Array($0.utf8))) }
        try check(accepted, model: path, isADF: false)

        // A label's initial value is added to the prediction even under -t: refused, not dropped.
        let initials = [#"{"_label":{"Label":1,"Initial":0.5},"a":{"x":1}}"#, #"{"_label_Initial":0.5,"a":{"x":1}}"#, #"{"_label":"1 1 0.5","a":{"x":1}}"#]
        for client in initials { #expect(throws: ExampleProblem.self) { try grammar.parse(bytes: Array(client.utf8)) } }
        let serve = VWProcess.arguments(command: [vwPath], modelPath: path, extraArguments: ["--json"])
        let plain = try runSandboxed(serve, input: Array(#"{"a":{"x":1}}"#.utf8) + [10]).output
        let shifted = try runSandboxed(serve, input: Array((initials.joined(separator: "\n") + "\n").utf8)).output.split(separator: "\n")
        #expect(shifted.count == 3 && !shifted.contains(where: { $0 + "\n" == plain }), "\(plain) vs \(shifted)")

        var random = SplitMix(state: fuzzSeed ?? 0x51_46)
        var randomAccepted: [Accepted] = []
        var rejected = 0
        for _ in 0..<(fuzzCount ?? 600) {
            let client = singleObject(&random)
            if let example = try? grammar.parse(bytes: Array(client.utf8)) {
                randomAccepted.append(Accepted(client: client, example: example))
            } else {
                rejected += 1
            }
        }
        #expect(randomAccepted.count > 60 && rejected > 60, "\(randomAccepted.count) accepted, \(rejected) rejected")
        try check(randomAccepted, model: path, isADF: false)
        print("VW JSON fuzz (regression): \(randomAccepted.count) accepted, \(rejected) rejected")
    }

    /// A single-line `--cb` model (trained from text) served with `--json`: an answer line, then a blank line, as for text.
    @Test func singleLineBanditModel() throws {
        let path = "/tmp/vwfcgi-vwjson-\(getpid())-cb1.vw"
        defer { unlink(path) }
        let trained = train(["--cb", "3"], data: "1:1:0.5 |a x\n2:0:0.5 |a y\n3:1:0.3 |a z\n", to: path)
        try #require(trained.status == "exited with code 0", "training: \(trained.status)")
        let grammar = try #require(VWJSONGrammar(family: .contextualBandit))
        let fixed = [#"{"a":{"x":1}}"#, #"{"a":{"y":1},"_tag":"q"}"#, #"{}"#, #"{"_text":"z"}"#]
        let accepted = try fixed.map { Accepted(client: $0, example: try grammar.parse(bytes: Array($0.utf8))) }
        try check(accepted, model: path, isADF: false, blankAfterAnswer: true)
    }

    /// A `--ccb_explore_adf` model: every accepted example (written with a server tag on the shared object) gets one
    /// line per slot and a blank line, exactly as vw answers the client's bytes; with `seed=` tags on the slots the
    /// answers are the same in a fresh process and after other examples (vw draws each slot from its tag).
    @Test func ccbModelTrainedFromDSJSON() throws {
        let path = "/tmp/vwfcgi-vwjson-\(getpid())-ccb.vw"
        defer { unlink(path) }
        var log = ""
        var random = SplitMix(state: 7)
        let actions = #""_multi":[{"_tag":"a","j":[{"C":{"t":"a"}}]},{"_tag":"b","j":[{"C":{"t":"b"}}]},{"_tag":"c","j":[{"C":{"t":"c"}}]}]"#
        for index in 0..<200 {
            let user = ["u", "v"][random.below(2)]
            let first = random.below(3)
            let second = (first + 1 + random.below(2)) % 3
            let slots = #""_slots":[{"_id":"top","sj":[{"P":{"p":"t"}}]},{"_id":"side","sj":[{"P":{"p":"s"}}]}]"#
            let top = #"{"_id":"top","_label_cost":\#(user == "u" && first == 0 ? -1 : 0),"_a":[\#(first)],"_p":[0.33]}"#
            let side = #"{"_id":"side","_label_cost":\#(second == 2 ? -1 : 0),"_a":[\#(second)],"_p":[0.5]}"#
            log += #"{"EventId":"t\#(index)","Version":"1","c":{"FromUrl":[{"U":{"id":"\#(user)"}}],\#(actions),\#(slots)},"_outcomes":[\#(top),\#(side)]}"# + "\n"
        }
        let trained = train(["--dsjson", "--ccb_explore_adf", "--epsilon", "0.3", "-q", "UC"], data: log, to: path)
        try #require(trained.status == "exited with code 0", "training: \(trained.status)")
        let grammar = try #require(VWJSONGrammar(family: .ccb))
        let clients = [
            #"{"FromUrl":[{"U":{"id":"u"}}],\#(actions),"_slots":[{"_id":"top","_tag":"seed=e1_0","sj":[{"P":{"p":"t"}}]},{"_id":"side","_tag":"seed=e1_1","sj":[{"P":{"p":"s"}}]}]}"#,
            #"{"FromUrl":[{"U":{"id":"v"}}],\#(actions),"_slots":[{"_id":"top","_tag":"seed=e2_0","_inc":[1,2]},{"_id":7,"_tag":"seed=e2_1","_inc":[0,1]}]}"#,
            #"{"_tag":"client","FromUrl":[{"U":{"id":"u"}}],\#(actions),"_slots":[{"_tag":"seed=e3_0"},{"_tag":"seed=e3_1"},{"_tag":"seed=e3_2","_label_cost":1}]}"#,
            #"{"FromUrl":[{"U":{"id":"v"}}],\#(actions),"_slots":[{"_id":"only","_tag":"seed=e4_0","_inc":[2]}]}"#,
            // Without tags: seeds derived from the example (the client's bytes are drawn from vw's random state).
            #"{"FromUrl":[{"U":{"id":"u"}}],\#(actions),"_slots":[{"_id":"top"},{"_id":"side"}]}"#,
        ]
        let examples = try clients.map { try grammar.parse(bytes: Array($0.utf8)) }
        #expect(examples.map(\.answerLines) == [2, 2, 3, 1, 2])
        let serve = VWProcess.arguments(command: [vwPath], modelPath: path, extraArguments: ["--json"])
        // The answers: one group of lines per example, each ended by a blank line.
        func groups(_ output: String) -> [[Substring]] {
            var result: [[Substring]] = [[]]
            for line in output.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
                if line.isEmpty { result.append([]) } else { result[result.count - 1].append(line) }
            }
            return Array(result.dropLast())
        }
        var canonical: [UInt8] = []
        for (number, example) in examples.enumerated() { example.write(serverTag: Array("s\(number)".utf8), into: &canonical) }
        let served = try runSandboxed(serve, input: canonical)
        try #require(served.status == "exited with code 0", "vw on canonical lines: \(served.status)")
        let ours = groups(served.output)
        #expect(ours.map(\.count) == examples.map(\.answerLines), "\(served.output)")
        // The client's bytes (without the slot label vw would read as an outcome) answer the same.
        let raw = clients.prefix(4).map { $0.replacing(#","_label_cost":1"#, with: "") }.joined(separator: "\n") + "\n"
        let direct = try runSandboxed(serve, input: Array(raw.utf8))
        #expect(groups(direct.output) == Array(ours.prefix(4)), "\(direct.output) vs \(served.output)")
        // Seeded: the last example alone, in a fresh process, and the whole batch twice in one process.
        var again: [UInt8] = []
        for _ in 0..<2 { for example in examples { example.write(serverTag: [], into: &again) } }
        let twice = groups(try runSandboxed(serve, input: again).output)
        #expect(Array(twice.prefix(5)) == ours && Array(twice.suffix(5)) == ours)
        // Slot 1 of example 1 is offered actions 0 and 1 only, and never the action slot 0 took.
        #expect(ours[1][1].split(separator: ",").allSatisfy { ["0", "1"].contains($0.split(separator: ":")[0]) })
        #expect(ours[1][1].split(separator: ",").first?.split(separator: ":").first != ours[1][0].split(separator: ",").first?.split(separator: ":").first)
    }
}

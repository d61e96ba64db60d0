import Glibc
import Testing
@testable import VWCore

/// Random examples (deterministic seed) near the edges of the grammar, per family and model: every
/// example the grammar accepts is written in canonical form to the real vw, which must exit
/// normally and print exactly the framing the grammar announced, with the server tag echoed
/// where VW echoes tags. A failure names the first example that breaks vw on its own.

/// Random features: namespaces with and without values, names and values near the grammar's edges.
private func features(_ random: inout SplitMix) -> String {
    var text = ""
    for _ in 0..<(1 + random.below(3)) {
        text += random.pick(["|", "| ", "|a ", "|b:0.5 ", "|é ", "|~w ", "|s ", "|a:-2 ", "|\t", "|a\t", "|ns:1e3 "])
        for _ in 0..<random.below(5) {
            let name = random.pick(["x", "y", "1924", "é", "a'b", "q_1", "", "save", "shared", "ccb", "-"])
            var value = random.pick(["", "", ":0", ":1.5", ":-2e-3", ":red", ":1e37", ":.5", ":0.0000001", ":5.", ":east", ":E_x", ":1E+2"])
            if name.isEmpty && value.isEmpty { value = ":1" }
            text += name + value + random.pick([" ", " ", "  ", "\t"])
        }
    }
    return text
}

private func tag(_ random: inout SplitMix) -> String {
    random.pick(["", "", "'t ", "t", "'sav_x ", "'' ", "'é "])
}

private func line(_ label: String, _ random: inout SplitMix) -> Substring {
    Substring(label + (label.isEmpty ? "" : random.pick([" ", "  "])) + tag(&random) + features(&random))
}

private func example(_ family: ExampleFamily, _ random: inout SplitMix) -> [Substring] {
    switch family {
    case .simple:
        return [line(random.pick(["", "1", "0 1 0.5", "-1 2", "1e2 0.5 -3", "0.5 1 2"]), &random)]
    case .csoaaLDF:
        var lines: [Substring] = []
        if random.chance(30) { lines.append(line("shared", &random)) }
        for _ in 0..<(random.below(4) + (random.chance(10) ? 0 : 1)) {
            lines.append(line(random.pick(["1:0", "2:1.5", "3", "7:", "100:-1", "x:0.5"]), &random))
        }
        return lines
    case .cbADF:
        var lines: [Substring] = []
        if random.chance(50) { lines.append(line("shared", &random)) }
        for _ in 0..<(random.below(5) + (random.chance(10) ? 0 : 1)) {
            lines.append(line(random.pick(["", "", "0:1:0.5", "1:0", "3", "7:2:0.1"]), &random))
        }
        return lines
    case .ccb:
        var lines: [Substring] = [line("ccb shared", &random)]
        let actions = random.below(4) + 1
        for _ in 0..<actions { lines.append(line("ccb action", &random)) }
        for _ in 0..<(random.below(actions + 1) + 1) {
            let include = random.pick(["", "", "0", "1", "0,1", "2,1,0", "1,2", "0,0", "3"])
            let outcome = random.pick(["", "", "0:1:0.5", "1:0:1,0:0", "2:1:0.3,0:0.7"])
            lines.append(line(["ccb slot", outcome, include].filter { !$0.isEmpty }.joined(separator: " "), &random))
        }
        return lines
    case .slates:
        let slots = random.below(3) + 1
        var lines: [Substring] = [line(random.pick(["slates shared", "slates shared 0.5"]), &random)]
        for slot in 0..<slots { for _ in 0..<(random.below(2) + 1) { lines.append(line("slates action \(slot)", &random)) } }
        if random.chance(10) { lines.append(line("slates action \(random.below(4))", &random)) }
        for _ in 0..<(slots + (random.chance(10) ? 1 : 0)) {
            lines.append(line(random.pick(["slates slot", "slates slot 0:1", "slates slot 1:0.5,0:0.5"]), &random))
        }
        return lines
    case .multiclass, .costSensitive, .contextualBandit:
        return [line(random.pick(["", "1", "2 0.5", "1:0 2:1", "1,2", "3"]), &random)]
    case .multilabel:
        return [line(random.pick(["", "1", "0,2", "1,2", "7", "2 1"]), &random)]
    }
}

private struct Model {
    let family: ExampleFamily
    let arguments: [String]
    let training: String
    let echoesTags: Bool
    let blankAfterSingleLine: Bool
}

private let models: [Model] = [
    Model(family: .simple, arguments: [], training: "1 |a x y\n0 |b q\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .simple, arguments: ["--loss_function", "logistic", "-q", "ab"], training: "1 |a x |b y\n-1 |a q |b z\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .simple, arguments: ["--nn", "3"], training: "1 |a x y\n0 |b q\n", echoesTags: true, blankAfterSingleLine: false),
    // --bootstrap prints `prediction tag bag1 bag2 ...`: the tag is not at the end of the line.
    Model(family: .simple, arguments: ["--bootstrap", "2"], training: "1 |a x y\n0 |b q\n", echoesTags: false, blankAfterSingleLine: false),
    Model(family: .multilabel, arguments: ["--multilabel_oaa", "3"], training: "0,1 |a x\n2 |a y\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .contextualBandit, arguments: ["--cb_explore", "3"], training: "1:1:0.5 |a x\n2:0:0.5 |a y\n", echoesTags: true, blankAfterSingleLine: true),
    Model(family: .cbADF, arguments: ["--cb_explore_adf", "--bag", "3"], training: "shared |s u1\n0:1:0.5 |a x\n|a y\n\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .ccb, arguments: ["--ccb_explore_adf", "--epsilon", "0.1"], training: "ccb shared |s u1\nccb action |a x\nccb action |a y\nccb slot 0:1:0.5 |f s1\n\n", echoesTags: false, blankAfterSingleLine: false),
    Model(family: .multiclass, arguments: ["--oaa", "3"], training: "1 |a x\n2 |a y\n3 |a z\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .costSensitive, arguments: ["--csoaa", "3"], training: "1:0 2:1 3:1 |a x\n2:0 1:1 3:1 |a y\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .contextualBandit, arguments: ["--cb", "3"], training: "1:1:0.5 |a x\n2:0:0.5 |a y\n", echoesTags: true, blankAfterSingleLine: true),
    Model(family: .cbADF, arguments: ["--cb_adf"], training: "shared |s u1\n0:1:0.5 |a x\n|a y\n\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .cbADF, arguments: ["--cb_explore_adf", "--softmax", "--lambda", "1"], training: "shared |s u1\n0:1:0.5 |a x\n|a y\n\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .cbADF, arguments: ["--cb_explore_adf", "--cover", "3"], training: "shared |s u1\n0:1:0.5 |a x\n|a y\n\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .csoaaLDF, arguments: ["--csoaa_ldf", "multiline"], training: "1:0 |a x\n2:1 |a y\n\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .csoaaLDF, arguments: ["--wap_ldf", "multiline"], training: "1:0 |a x\n2:1 |a y\n\n", echoesTags: true, blankAfterSingleLine: false),
    Model(family: .ccb, arguments: ["--ccb_explore_adf"], training: "ccb shared |s u1\nccb action |a x\nccb action |a y\nccb slot 0:1:0.5 |f s1\n\n", echoesTags: false, blankAfterSingleLine: false),
    Model(family: .slates, arguments: ["--slates"], training: "slates shared 0.8 |s u1\nslates action 0 |a x\nslates action 1 |a z\nslates slot 0:0.5 |f s1\nslates slot 1:0.6 |f s2\n\n", echoesTags: false, blankAfterSingleLine: false),
]

/// Whether `output` is exactly the framing of `parsed` (tags `s<i>` echoed where the model echoes them).
private func fits(_ output: String, _ parsed: [ParsedExample], _ model: Model) -> Bool {
    var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
    guard lines.last == "" else { return false }
    lines.removeLast()
    var index = 0
    for (number, example) in parsed.enumerated() {
        guard index + example.answerLines <= lines.count else { return false }
        for offset in 0..<example.answerLines {
            let answer = lines[index + offset]
            if answer.isEmpty { return false }
            if model.echoesTags && (offset == 0 || example.family == .csoaaLDF) && !answer.hasSuffix(" s\(number)") { return false }
        }
        index += example.answerLines
        if example.family.isMultiline || model.blankAfterSingleLine {
            guard index < lines.count, lines[index].isEmpty else { return false }
            index += 1
        }
    }
    return index == lines.count
}

@Suite(.serialized, .enabled(if: vwAvailable, "needs .venv with vowpalwabbit"))
struct ExampleGrammarVWFuzzTests {
    @Test(arguments: models.indices)
    func acceptedRandomExamplesAreFramedByVW(modelIndex: Int) throws {
        let model = models[modelIndex]
        let path = "/tmp/vwfcgi-grammar-fuzz-\(getpid())-\(modelIndex).vw"
        defer { unlink(path) }
        let trained = train(model.arguments, data: model.training, to: path)
        try #require(trained.status == "exited with code 0", "training \(model.arguments): \(trained.status)")

        let seed = getenv("VWFCGI_GRAMMAR_FUZZ_SEED").flatMap { UInt64(String(cString: $0)) } ?? 0x5EED
        var random = SplitMix(state: seed &+ UInt64(modelIndex))
        let grammar = ExampleGrammar(family: model.family)
        var accepted: [(lines: [Substring], parsed: ParsedExample)] = []
        var rejected = 0
        // VWFCGI_GRAMMAR_FUZZ=N runs N examples per model instead of 2,000 (a longer search).
        let count = getenv("VWFCGI_GRAMMAR_FUZZ").flatMap { Int(String(cString: $0)) } ?? 2_000
        for _ in 0..<count {
            let lines = example(model.family, &random)
            if let parsed = try? grammar.parse(lines: lines) { accepted.append((lines, parsed)) } else { rejected += 1 }
        }
        #expect(accepted.count > count / 10, "\(model.arguments): only \(accepted.count) accepted, \(rejected) rejected")

        func payload(_ examples: ArraySlice<(lines: [Substring], parsed: ParsedExample)>) -> [UInt8] {
            var bytes: [UInt8] = []
            for (number, example) in examples.enumerated() { example.parsed.write(serverTag: Array("s\(number)".utf8), into: &bytes) }
            return bytes
        }
        let serve = VWProcess.arguments(command: [vwPath], modelPath: path, extraArguments: [])
        let answered = try runSandboxed(serve, input: payload(accepted[...]))
        if answered.status == "exited with code 0" && fits(answered.output, accepted.map(\.parsed), model) {
            print("grammar fuzz \(model.arguments): \(accepted.count) accepted, \(rejected) rejected, \(answered.output.utf8.count) bytes framed")
            return
        }

        // Find the first example that breaks vw on its own.
        for index in accepted.indices {
            let single = try runSandboxed(serve, input: payload(accepted[index...index]))
            if single.status != "exited with code 0" || !fits(single.output, [accepted[index].parsed], model) {
                Issue.record("\(model.arguments): \(accepted[index].lines) written as \(accepted[index].parsed.canonicalText(serverTag: "s0").debugDescription): vw \(single.status), printed \(single.output.debugDescription)")
                return
            }
        }
        Issue.record("\(model.arguments): vw \(answered.status) on the whole batch but on no example alone; output \(answered.output.prefix(2000).debugDescription)")
    }
}

import Glibc
import Testing
@testable import VWCore

/// The grammar against the real vw (bin/vw): for each family a tiny model is trained, accepted
/// examples (edge cases included) are written in canonical form with a server tag each, and vw must
/// print exactly `answerLines` lines per example (plus the blank line of multiline families), echo
/// the server tag where VW echoes tags, never crash, and answer as it does for the client's own bytes.

private struct Case {
    let family: ExampleFamily
    let trainArguments: [String]
    let training: String
    /// Whether vw prints the example's tag (of its first line; of every answered line for csoaaLDF).
    let echoesTags: Bool
    /// Whether vw prints a blank line after a single-line example's answer (`--cb` in vw 9.11).
    let blankAfterSingleLine: Bool
    /// Accepted examples, each as its lines; none with a `save` tag, so the raw bytes can be sent too.
    let examples: [[Substring]]
    /// Examples whose labels vw cannot read as the client sent them (the grammar drops those labels):
    /// left out of the comparison with the client's bytes.
    var breaksVWAsSent: Set<Int> = []
}

private let cases: [Case] = [
    Case(family: .simple, trainArguments: [], training: "1 |a x:0.5 y\n0 |a y z\n1 0.5 |b q\n", echoesTags: true, blankAfterSingleLine: false, examples: [
        ["0 1 0.5 'third_house | price:.53 sqft:.32 age:.87 1924"], ["|a x:0.5 y"], ["1 2\t|a  x\ty:-1e-2 |b q"],
        ["t|a x"], ["|"], ["|a x:0"], ["|a color:red é:1 :2"], ["|a x\r"], ["-1.5 2 3e1 |a:2 x |b:0.5 q:1.25"],
        // VW's affix_test.dat, and numbers only strtof reads (VW's fast path stops at `+`).
        ["+1 | happier"], ["+.5e1 2 +0.5 |a x:+1 y:1E+2 z:0x10 w:+red |b:+2 q:."],
    ]),
    Case(family: .multiclass, trainArguments: ["--oaa", "3"], training: "1 |a x\n2 |a y\n3 |a z\n", echoesTags: true, blankAfterSingleLine: false, examples: [
        ["1 |a x"], ["7 0.5 't |a y"], ["x |a z"], ["|a x y z"],
    ], breaksVWAsSent: [2]),
    Case(family: .multilabel, trainArguments: ["--multilabel_oaa", "3"], training: "0,1 |a x\n2 |a y\n", echoesTags: true, blankAfterSingleLine: false, examples: [
        ["0,1 |a x"], ["7 't |a y"], ["|a z"],
    ]),
    Case(family: .costSensitive, trainArguments: ["--csoaa", "3"], training: "1:0 2:1 3:1 |a x\n2:0 1:1 3:1 |a y\n3:0 1:1 2:1 |a z\n", echoesTags: true, blankAfterSingleLine: false, examples: [
        ["|a x"], ["2: 3: |a x"], ["2:0.5 3 'q |a y"], ["5: |a z"], ["1:0 2:1 3:1 |a z"],
    ]),
    Case(family: .contextualBandit, trainArguments: ["--cb", "3"], training: "1:1:0.5 |a x\n2:0:0.5 |a y\n3:1:0.3 |a z\n", echoesTags: true, blankAfterSingleLine: true, examples: [
        ["|a x"], ["1:2:0.5 7 't |a y"], ["2 3 |a z"],
    ]),
    Case(family: .cbADF, trainArguments: ["--cb_adf"], training: "shared |s u1\n0:1:0.5 |a x\n|a y\n\nshared |s u2\n|a x\n0:0:0.5 |a y\n\n", echoesTags: true, blankAfterSingleLine: false, examples: [
        ["shared 't0|s u1", "'t1|a x", "|a y"], ["|a x"], ["0:1:0.5 |a x", "|a y"], ["shared |", "|"], ["shared |s u2", "7:0:0.1 |a x", "|a y", "|a z"],
    ]),
    Case(family: .cbADF, trainArguments: ["--cb_explore_adf"], training: "shared |s u1\n0:1:0.5 |a x\n|a y\n\nshared |s u2\n|a x\n0:0:0.5 |a y\n\n", echoesTags: true, blankAfterSingleLine: false, examples: [
        ["shared 't0|s u1", "|a x", "|a y"], ["|a x"], ["shared |s u1", "|a y"],
    ]),
    Case(family: .csoaaLDF, trainArguments: ["--csoaa_ldf", "multiline"], training: "1:0 |a x\n2:1 |a y\n\n1:1 |a x\n2:0 |a y\n\n", echoesTags: true, blankAfterSingleLine: false, examples: [
        ["1:0 't1|a x", "2:1 't2|a y"], ["shared |s u", "1:0 |a x", "2:0 |a y"], ["1 |a x"], ["100:0 |a x", "7: |a y", "x:1 |a z"],
    ]),
    Case(family: .ccb, trainArguments: ["--ccb_explore_adf"], training: "ccb shared |s u1\nccb action |a x\nccb action |a y\nccb action |a z\nccb slot 0:1:0.5 |f s1\nccb slot 1:0:0.5 |f s2\n\n", echoesTags: false, blankAfterSingleLine: false, examples: [
        ["ccb shared 'x|s u1", "ccb action |a x", "ccb action |a y", "ccb action |a z", "ccb slot |f s1", "ccb slot |f s2"],
        ["ccb shared |", "ccb action |a x", "ccb slot |"],
        ["ccb shared |s u", "ccb action |a x", "ccb action |a y", "ccb slot 1 |f s1", "ccb slot 0,1 |f s2"],
        ["ccb shared |s u", "ccb action |a x", "ccb action |a y", "ccb slot 0:1:0.5,1:0.5 1 |f s1"],
        ["ccb shared |s u", "ccb action |a x", "ccb action |a y", "ccb action |a z", "ccb slot 2:1:0.5 |f s1", "ccb slot |f s2", "ccb slot 0,1,2 |f s3"],
    ]),
    Case(family: .slates, trainArguments: ["--slates"], training: "slates shared 0.8 |s u1\nslates action 0 |a x\nslates action 0 |a y\nslates action 1 |a z\nslates action 1 |a w\nslates slot 0:0.5 |f s1\nslates slot 1:0.6 |f s2\n\n", echoesTags: false, blankAfterSingleLine: false, examples: [
        ["slates shared 'q|s u1", "slates action 0 |a x", "slates action 0 |a y", "slates action 1 |a z", "slates slot |f s1", "slates slot |f s2"],
        ["slates shared 1 |", "slates action 0 |a x", "slates slot 0:1 |"],
        ["slates shared |s u", "slates action 1 |a x", "slates action 0 |a y", "slates slot 1:0.5,0:0.5 |f s1", "slates slot |f s2"],
    ]),
]

/// Splits vw's output into per-example answers following the grammar's framing; nil when it does not fit.
private func frame(_ output: String, _ parsed: [ParsedExample], blankAfterSingleLine: Bool) -> [[Substring]]? {
    var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
    guard lines.last == "" else { return nil }
    lines.removeLast()
    var answers: [[Substring]] = []
    var index = 0
    for example in parsed {
        guard index + example.answerLines <= lines.count else { return nil }
        let answer = Array(lines[index..<(index + example.answerLines)])
        if answer.contains(where: \.isEmpty) { return nil }
        answers.append(answer)
        index += example.answerLines
        if example.family.isMultiline || blankAfterSingleLine {
            guard index < lines.count, lines[index].isEmpty else { return nil }
            index += 1
        }
    }
    return index == lines.count ? answers : nil
}

/// An answer line without its tag (VW prints `prediction tag`).
private func prediction(_ line: Substring) -> Substring {
    guard let space = line.lastIndex(of: " ") else { return line }
    return trimmed(line[..<space])
}

/// Without trailing spaces (`--multilabel_oaa` prints one after its classes).
private func trimmed(_ line: Substring) -> Substring {
    var line = line
    while line.last == " " { line.removeLast() }
    return line
}

@Suite(.serialized, .enabled(if: vwAvailable, "needs .venv with vowpalwabbit"))
struct ExampleGrammarVWTests {
    @Test(arguments: cases.indices)
    func canonicalExamplesAreFramedAsTheGrammarSays(caseIndex: Int) throws {
        let testCase = cases[caseIndex]
        let model = "/tmp/vwfcgi-grammar-\(getpid())-\(caseIndex).vw"
        defer { unlink(model) }
        let trained = train(testCase.trainArguments, data: testCase.training, to: model)
        try #require(trained.status == "exited with code 0", "training \(testCase.trainArguments): \(trained.status)")

        let grammar = ExampleGrammar(family: testCase.family)
        var parsed: [ParsedExample] = []
        var canonical: [UInt8] = []
        var raw: [UInt8] = []
        for (number, lines) in testCase.examples.enumerated() {
            let example = try grammar.parse(lines: lines)
            example.write(serverTag: Array("s\(number)".utf8), into: &canonical)
            parsed.append(example)
            if testCase.breaksVWAsSent.contains(number) { continue }
            for line in lines { raw.append(contentsOf: line.utf8); raw.append(0x0A) }
            if testCase.family.isMultiline { raw.append(0x0A) }
        }
        let serve = VWProcess.arguments(command: [vwPath], modelPath: model, extraArguments: [])
        let answered = try runSandboxed(serve, input: canonical)
        #expect(answered.status == "exited with code 0", "\(testCase.trainArguments): \(answered.status)")
        let framed = frame(answered.output, parsed, blankAfterSingleLine: testCase.blankAfterSingleLine)
        try #require(framed != nil, "\(testCase.trainArguments): output does not fit the framing: \(answered.output.debugDescription)")
        let answers = framed!

        for (number, answer) in answers.enumerated() {
            let example = parsed[number]
            let expectedTag = "s\(number)"
            for line in answer {
                if testCase.echoesTags {
                    #expect(line.hasSuffix(" " + expectedTag), "\(testCase.trainArguments) example \(number): \(line.debugDescription)")
                } else {
                    #expect(!line.contains(expectedTag), "\(testCase.trainArguments) example \(number): \(line.debugDescription)")
                }
                if testCase.family != .csoaaLDF { break }  // only csoaa_ldf tags every answer line
            }
            _ = example
        }

        // The client's own bytes give the same predictions (tags aside).
        let rawAnswered = try runSandboxed(serve, input: raw)
        #expect(rawAnswered.status == "exited with code 0")
        let sent = parsed.indices.filter { !testCase.breaksVWAsSent.contains($0) }
        if let rawAnswers = frame(rawAnswered.output, sent.map { parsed[$0] }, blankAfterSingleLine: testCase.blankAfterSingleLine) {
            for (mine, (number, theirs)) in zip(sent.map { answers[$0] }, zip(sent, rawAnswers)) {
                let stripTags = testCase.echoesTags
                let left = mine.map { stripTags ? prediction($0) : $0 }
                let right = theirs.enumerated().map { answer, line -> Substring in
                    guard stripTags else { return line }
                    // The raw line's tag is the client's as the grammar read it (when empty, vw prints none).
                    let tag = parsed[number].clientTag(answer: answer)
                    if tag.isEmpty { return trimmed(line) }
                    #expect(line.hasSuffix(" " + tag), "\(testCase.trainArguments) example \(number): vw printed \(line.debugDescription), the grammar read tag \(tag.debugDescription)")
                    return prediction(line)
                }
                #expect(left == right, "\(testCase.trainArguments) example \(number): canonical \(mine) vs client bytes \(theirs)")
            }
        } else {
            Issue.record("\(testCase.trainArguments): the client's bytes do not fit the framing: \(rawAnswered.output.debugDescription)")
        }
    }

    /// The file-write attack on a `--csoaa_ldf` model: a featureless line whose tag is `save_<path>`
    /// makes vw save its model to <path> (with or without a BOM before it). The grammar rejects both,
    /// and never lets a client's tag reach vw: the same line with any other tag is written with the
    /// server's tag and writes nothing; the client's bytes, as a control, do write the file.
    @Test func saveTagsNeverReachVW() throws {
        let model = "/tmp/vwfcgi-grammar-\(getpid())-ldf.vw"
        let target = "/tmp/vwfcgi-grammar-\(getpid())-pwned"
        defer { unlink(model); unlink(target) }
        _ = train(["--csoaa_ldf", "multiline"], data: "1:0 |a x\n2:1 |a y\n\n", to: model)
        let serve = VWProcess.arguments(command: [vwPath], modelPath: model, extraArguments: [])
        let grammar = ExampleGrammar(family: .csoaaLDF)

        #expect(throws: ExampleProblem.byteOrderMark) { try grammar.parse(lines: [Substring("\u{FEFF}save_\(target)|")]) }
        #expect(throws: ExampleProblem.saveTag) { try grammar.parse(lines: [Substring("1:0 save_\(target)|")]) }
        var payload: [UInt8] = []
        try grammar.parse(lines: [Substring("1:0 sav_\(target)|")]).write(serverTag: Array("s0".utf8), into: &payload)
        let answered = try runSandboxed(serve, input: payload)
        #expect(answered.status == "exited with code 0")
        #expect(answered.output == "1 s0\n\n")
        #expect(access(target, F_OK) != 0, "vw wrote \(target) from the canonical form")

        // Control: the client's own bytes make vw write the file (outside the sandbox, which would stop it).
        _ = runOutsideSandbox(serve, input: "1:0 save_\(target)|\n\n")
        #expect(access(target, F_OK) == 0, "the attack no longer works on vw itself: the control proves nothing")
    }

    /// VW's `houses` test: the initial value 0.5 is added to the prediction under -t.
    @Test func initialValueReachesThePrediction() throws {
        let model = "/tmp/vwfcgi-grammar-\(getpid())-houses.vw"
        defer { unlink(model) }
        let training = "0 1 0.5 'third_house | price:.53 sqft:.32 age:.87 1924\n1 2 'first_house | price:.23 sqft:.25 age:.05 2006\n0 1 'second_house | price:.18 sqft:.15 age:.35 1976\n"
        _ = train([], data: training, to: model)
        let grammar = ExampleGrammar(family: .simple)
        var payload: [UInt8] = []
        try grammar.parse(lines: ["0 1 0.5 'third_house | price:.53 sqft:.32 age:.87 1924"]).write(serverTag: Array("h".utf8), into: &payload)
        try grammar.parse(lines: ["| price:.53 sqft:.32 age:.87 1924"]).write(serverTag: Array("h".utf8), into: &payload)
        let answered = try runSandboxed(VWProcess.arguments(command: [vwPath], modelPath: model, extraArguments: []), input: payload)
        let lines = answered.output.split(separator: "\n")
        try #require(lines.count == 2)
        let withInitial = Double(prediction(lines[0]))!
        let without = Double(prediction(lines[1]))!
        #expect(abs(withInitial - without - 0.5) < 1e-4, "\(lines)")
    }
}

import Glibc
import Testing
@testable import VWCore

/// The grammar's numbers against VW's own parser, differentially: random and edge-case tokens are
/// read by VW itself (`Fixtures/vw_number_reading.py`, through the vowpalwabbit package) as a feature
/// value, a label, an importance weight and an initial value, and the grammar must accept exactly
/// what VW reads whole, finite and without a warning — refusing only what VW reads in part, as inf
/// or NaN, or (its fast path's `int8_t` power of ten wrapping) as another number than strtof does.

/// Tokens that name the cases of VW's parser one by one.
private let edgeTokens = [
    "1", "+1", "-1", "0", "-0", "+0", ".5", "-.5", "+.5", "5.", "-5.", "+5.", "1e5", "1E5", "1e+5", "1e-5", "+1e+5",
    "1.5e-3", ".5e1", "5.e1", "1e", "1e-", "1e+", "e", "e5", "-e5", "E-2", ".", "-", "+", "-.", "+.", "..", "1..2", "1.2.3",
    "--1", "+-1", "-+1", "1x", "1e5x", "0x10", "+0x10", "-0x1p3", "0x", "0xg", "0x1.8p1", "inf", "-inf", "+inf", "INF",
    "infinity", "Infinity", "nan", "NaN", "-nan", "+nan", "nan(1)", "infx", "nanx", "information", "nancy", "red",
    "+red", "-red", ".x", "e5x", "E", "x1", "1e38", "3.4e38", "3.4028235e38", "3.4028236e38", "1e39", "99e37", "1e-37",
    "1e-38", "1e-45", "1e-46", "1e-100", "1e-130", "1e-200", "1e100", "1e200", "1e999", "0e39", "0e200", "1.5e-92",
    "0.000000000000000000000000000000001e-99", String(repeating: "9", count: 38), String(repeating: "9", count: 39),
    "0." + String(repeating: "1", count: 40), String(repeating: "1", count: 20) + "." + String(repeating: "2", count: 20),
    "1e2147483647", "1e2147483648", "1e-2147483648", "1e4294967296", "1e00000000005", "1.0000001", "16777217",
    "0.1", "0.2", "0.3", "123456789.123456789", "1e-5", "0.00001",
]

private func digits(_ count: Int, _ random: inout SplitMix) -> String {
    String((0..<count).map { _ in Character(Unicode.Scalar(UInt8(0x30 + random.below(10)))) })
}

/// A random token near the edges of VW's number syntax (most of them numbers).
private func randomToken(_ random: inout SplitMix) -> String {
    var token = random.pick(["", "", "", "-", "+"])
    token += digits(random.pick([0, 0, 1, 1, 1, 2, 3, 5, 8, 9, 10, 20, 38, 39, 45]), &random)
    if random.chance(50) { token += "." + digits(random.pick([0, 1, 1, 2, 3, 6, 10, 30, 35, 36, 40]), &random) }
    if random.chance(40) {
        token += random.pick(["e", "E"]) + random.pick(["", "", "-", "+"])
        token += digits(random.pick([0, 1, 1, 2, 2, 2, 3, 10, 12]), &random)
    }
    if random.chance(5) { token += random.pick(["x", ".", "e", "-", "+", "0x", "i"]) }
    return token.isEmpty ? "0" : token
}

/// VW's reading of each token: `<class> <strtof> <labels>` (see the oracle's docstring).
private func vwReadings(_ tokens: [String]) throws -> [[Substring]] {
    let base = "/tmp/vwfcgi-numbers-\(getpid())"
    defer { unlink(base + ".in"); unlink(base + ".out") }
    guard let input = fopen(base + ".in", "w") else { throw ReadingError.io("cannot write \(base).in") }
    for token in tokens { fputs(token + "\n", input) }
    fclose(input)
    let command = "'\(repositoryRoot)/.venv/bin/python' '\(repositoryRoot)/Tests/VWCoreTests/Fixtures/vw_number_reading.py'"
    let status = system(command + " <'\(base).in' >'\(base).out'")
    guard status == 0 else { throw ReadingError.io("the oracle exited with status \(status)") }
    guard let output = fopen(base + ".out", "r") else { throw ReadingError.io("no oracle output") }
    defer { fclose(output) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = fread(&buffer, 1, buffer.count, output)
        if count <= 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { $0.split(separator: " ") }
}

private enum ReadingError: Error { case io(String) }

/// nil when accepted, else the problem's message.
private func refusal(_ line: String) -> String? {
    do {
        _ = try ExampleGrammar(family: .simple).parse(lines: [Substring(line)])
        return nil
    } catch {
        return "\(error)"
    }
}

@Suite(.serialized, .enabled(if: vwAvailable, "needs .venv with vowpalwabbit"))
struct ExampleGrammarVWNumberTests {
    @Test func grammarAcceptsExactlyTheNumbersVWReadsWholeAndFinite() throws {
        var random = SplitMix(state: 0x4E55_4D42)
        let tokens = edgeTokens + (0..<1_500).map { _ in randomToken(&random) }
        let readings = try vwReadings(tokens)
        try #require(readings.count == tokens.count, "the oracle answered \(readings.count) of \(tokens.count) tokens")

        var failures: [String] = []
        var counts: [Substring: Int] = [:]
        for (token, reading) in zip(tokens, readings) {
            let (kind, strtof, labels) = (reading[0], reading[1], reading[2])
            counts[kind, default: 0] += 1
            let feature = refusal("|a x:\(token) y")
            let labelRefusals = ["\(token) |a x", "0 \(token) |a x", "0 1 \(token) |a x"].map(refusal)
            let label = labelRefusals[0]
            if labelRefusals.contains(where: { ($0 == nil) != (label == nil) }) {
                failures.append("\(token): label, importance and initial value disagree: \(labelRefusals)")
                continue
            }
            switch kind {
            case "number" where strtof == "eq":
                if feature != nil || label != nil || labels != "same" {
                    failures.append("\(token): VW reads a number (labels \(labels)); feature \(feature ?? "accepted"), label \(label ?? "accepted")")
                }
            case "number":
                // VW's fast path reads another number than strtof: accepted, or refused for its exponent.
                for problem in [feature, label] where problem != nil && !problem!.contains("exponent") {
                    failures.append("\(token): VW reads \(strtof) strtof; refused for another reason: \(problem!)")
                }
            case "string":
                if feature != nil || label == nil {
                    failures.append("\(token): VW reads a string value; feature \(feature ?? "accepted"), label \(label ?? "accepted")")
                }
            default:
                if feature == nil || label == nil {
                    failures.append("\(token): VW reads it in part, as inf or NaN; feature \(feature ?? "accepted"), label \(label ?? "accepted")")
                }
            }
        }
        print("numbers against vw: \(tokens.count) tokens, \(counts)")
        #expect(failures.isEmpty, "\(failures.count) disagreements with vw:\n\(failures.prefix(30).joined(separator: "\n"))")
        #expect(counts["number", default: 0] > tokens.count / 2)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VWCore

/// The native scorer against the real `vw -t --json`, byte for byte, on VW JSON input (`"input": "vw_json"`):
/// random models per family (the text differential tests' option generators: random `-b`, interactions
/// and `:` wildcards, links, losses, update rules, hashing, `--ignore`/`--keep`, cb types and epsilons) and
/// random client objects (nested namespaces, string/number/bool/null values, arrays of numbers and of
/// objects, `_text`, Unicode, escapes, spaces, `:` and `|` in strings, empty objects, integer keys,
/// numbers of every shape rapidjson reads — long significands, exponents, denormals; for ADF a shared
/// context and 1 to 8 actions, now and then 9 to 20, duplicates that tie) written in canonical form by
/// ``VWJSONGrammar``, all of a model's examples through one vw process. The count per family is
/// `NATIVE_JSON_DIFF_EXAMPLES` (default 100,000; the longer documented run uses 1,000,000). An example
/// the scorer declines (a NaN score over 16 actions) is counted as left to vw, not compared.
@Suite(.serialized)
struct NativeJSONDifferentialTests {
    static let examplesPerFamily = environmentCount("NATIVE_JSON_DIFF_EXAMPLES", default: 100_000)
    static let examplesPerModel = 4_000

    static let namespaces = ["a", "b", "c", "ab", "bc", "A", "1", "12", "s", "act", "Sh", "u", "~"]
    static let keys = ["x", "y", "z", "0", "7", "1924", "4294967295", "4294967296", "f_1", "é", "Zz", "-", "x1", "007", " k", "a b", "k:v", "日"]
    static let strings = [
        "red", "", " ", "a b", "x:y", "p|q", "tab\\tin", "q\\\"d", "b\\\\s", "é", "日本語", "0", "42", "-", "  pad  ", "\\u00e9t\\u00e9",
        "\\ud83d\\ude00", "::", "||", "a:1 b|2",
    ]
    static let moderate = ["1", "0.5", "-2", "0.125", "3", "1e-3", "-0.75", "7", "0.3", "1.1", "-3", "4.75", "2"]
    static let extreme = [
        "0", "-0", "-0.0", "1e37", "-9.9e37", "3e-38", "1e-40", "1.4e-45", "7e-46", "0.0000001", "1E+2", "123456789.123456789",
        "99999999999999999999", "0.1234567890123456789012345678901234567", "4294967296", "-2147483649", "18446744073709551615",
        "9007199254740993", "1e-330", "3.4028234e38", "5e-324", "12345678901234567", "1.0000000000000002", "2.5E-7", "1e22", "1e23",
        "-1e-22", "8.589973e9", "0.30000000000000004", "123456789012345678901234567890", "1.7976931348623157e308",
    ]

    /// A random number as a client could write it: moderate, extreme, or random digits and exponent.
    static func number(_ random: inout SplitMix) -> String {
        switch random.below(10) {
        case 0, 1: return random.pick(extreme)
        case 2:
            let digits = (0..<(1 + random.below(22))).map { _ in String(random.below(10)) }.joined()
            let point = random.below(digits.count + 1)
            var text = (random.chance(50) ? "-" : "")
            let integer = String(digits.prefix(point)).drop { $0 == "0" }
            text += integer.isEmpty ? "0" : String(integer)
            if point < digits.count { text += "." + digits.dropFirst(point) }
            if random.chance(40) { text += random.pick(["e", "E"]) + random.pick(["", "+", "-"]) + String(random.below(40)) }
            return text
        default: return random.pick(moderate)
        }
    }

    /// The members of a random object (without braces).
    static func members(_ random: inout SplitMix, depth: Int = 1, many: Bool = false) -> String {
        var parts: [String] = []
        for _ in 0..<(many ? random.below(60) : random.below(7)) {
            let key = random.pick(keys) + (random.chance(10) ? String(random.below(1000)) : "")
            switch random.below(depth < 3 ? 16 : 11) {
            case 0, 1, 2, 3: parts.append("\"\(key)\":\(number(&random))")
            case 4, 5: parts.append("\"\(key)\":\"\(random.pick(strings))\(random.chance(30) ? random.pick(strings) : "")\"")
            case 6: parts.append("\"\(key)\":\(random.pick(["true", "false", "null", "true"]))")
            case 7: parts.append("\"_text\":\"\((0..<random.below(5)).map { _ in random.pick(strings) }.joined(separator: random.pick([" ", "\\t", "  "])))\"")
            case 8:
                let elements = (0..<random.below(6)).map { _ in random.chance(15) ? "null" : number(&random) }
                parts.append("\"\(random.pick(namespaces))\":[\(elements.joined(separator: ","))]")
            case 9: parts.append(random.pick(["\"_label\":1", "\"_tag\":\"client\"", "\"_labelIndex\":0", "\"x\":null"]))
            case 10: parts.append("\"\(random.pick(namespaces))\":{}")
            case 11, 12:
                let objects = (0..<(1 + random.below(3))).map { _ in "{\(members(&random, depth: depth + 1))}" }
                parts.append("\"\(random.pick(namespaces))\":[\(objects.joined(separator: ","))]")
            default: parts.append("\"\(random.pick(namespaces))\":{\(members(&random, depth: depth + 1, many: many && random.chance(30)))}")
            }
        }
        return parts.joined(separator: ",")
    }

    /// A random single-line (`adf` false) or ADF client object.
    static func example(_ random: inout SplitMix, adf: Bool) -> String {
        guard adf else { return "{\(members(&random, many: random.chance(5)))}" }
        let shared = random.chance(75) ? members(&random) : ""
        var actions: [String] = []
        for index in 0..<(random.chance(4) ? 9 + random.below(12) : 1 + random.below(8)) {
            if index > 0 && random.chance(15) {
                actions.append(actions[random.below(index)])  // a duplicate action: the same score, a tie
            } else {
                var action = members(&random, many: random.chance(3))
                if random.chance(20) { action = "\"_tag\":\"id\(index)\"" + (action.isEmpty ? "" : ",") + action }
                actions.append("{\(action)}")
            }
        }
        return "{\(shared)\(shared.isEmpty ? "" : ",")\"_multi\":[\(actions.joined(separator: ","))]}"
    }

    static func run(family: String, seed: UInt64) throws {
        guard vwAvailable else {
            Issue.record("no vw in .venv")
            return
        }
        var random = SplitMix(state: seed)
        let adf = family == "cb"
        let grammar = VWJSONGrammar(isADF: adf)
        var total = 0
        var refused = 0
        var modelIndex = 0
        var distinct = Set<Substring>()
        while total + refused < examplesPerFamily {
            modelIndex += 1
            let options: [String]
            var training = ""
            if adf {
                options = NativeADFDifferentialTests.options(cbType: random.pick(["mtr", "ips", "dr", "default"]), &random)
                for _ in 0..<(20 + random.below(80)) {
                    training += NativeADFDifferentialTests.example(&random, training: true).joined(separator: "\n") + "\n\n"
                }
            } else {
                options = NativeDifferentialTests.options(family: family == "oaa" ? "oaa" : random.pick(["linear", "logistic", "interactions"]), &random)
                let classes = options.firstIndex(of: "--oaa").flatMap { Int(options[$0 + 1]) }
                for _ in 0..<(20 + random.below(60)) {
                    var label = random.pick(["1 ", "-1 ", "0.25 ", "3 ", "-7.5 "])
                    if let classes { label = String(random.below(classes) + (options.contains("--indexing") ? 0 : 1)) + " " }
                    let line = NativeExamples.line(&random)
                    training += label + line[(line.firstIndex(of: "|") ?? line.startIndex)...] + "\n"
                }
            }
            let model = "/tmp/vwfcgi-native-json-\(getpid())-\(family)-\(modelIndex).vw"
            defer { unlink(model) }
            guard train(options, data: training, to: model).status == "exited with code 0" else {
                Issue.record("training failed: \(options)")
                continue
            }
            var scorer = try nativeScorer(model: model)
            scorer.readsJSON = true
            var texts: [String] = []
            let count = min(examplesPerModel, examplesPerFamily - total - refused)
            while texts.count < count {
                guard let parsed = try? grammar.parse(bytes: Array(example(&random, adf: adf).utf8)) else { continue }
                texts.append(parsed.canonicalText(serverTag: random.chance(50) ? "v\(String(texts.count, radix: 16))" : ""))
            }
            let expected = try vwPredictions(model: model, extra: ["--json"], lines: [String(texts.joined().dropLast())])
            let answers: [String] = adf
                ? expected.split(separator: "\n\n", omittingEmptySubsequences: false).map { $0 + "\n\n" }
                : expected.split(separator: "\n", omittingEmptySubsequences: false).map { $0 + "\n" }
            #expect(answers.count == texts.count + 1, "vw answered every example: \(options)")
            for (index, text) in texts.enumerated() where index < answers.count {
                guard let native = scorer.predict(payload: Array(text.utf8)) else {
                    refused += 1
                    continue
                }
                let got = String(decoding: native, as: UTF8.self)
                if got != answers[index] {
                    Issue.record("\(family) model \(options): example \(index) \(text.debugDescription): vw \(answers[index].debugDescription) native \(got.debugDescription)")
                    return
                }
                total += 1
                distinct.insert(Substring(answers[index].prefix(while: { $0 != " " && $0 != "," })))
            }
        }
        print("native JSON differential \(family): \(total) examples equal to vw --json, 0 different, \(refused) left to vw, \(modelIndex) models, \(distinct.count) distinct first answers")
        #expect(refused * 50 < total, "the scorer answers nearly every example")
    }

    @Test func linearJSONModelsMatchVWByteForByte() throws { try Self.run(family: "linear", seed: 21) }
    @Test func oaaJSONModelsMatchVWByteForByte() throws { try Self.run(family: "oaa", seed: 22) }
    @Test func cbADFJSONModelsMatchVWByteForByte() throws { try Self.run(family: "cb", seed: 23) }
}

/// rapidjson's number reading, as the native JSON reader ports it.
struct NativeJSONNumberTests {
    @Test func integersAndDecimalsReadAsRapidjsonDoes() {
        #expect(NativeScorer.rapidjsonFloat("1") == 1)
        #expect(NativeScorer.rapidjsonFloat("-0") == 0)
        #expect(NativeScorer.rapidjsonFloat("0.5") == 0.5)
        #expect(NativeScorer.rapidjsonFloat("-2e-3") == Float(-0.002))
        #expect(NativeScorer.rapidjsonFloat("18446744073709551615") == Float(UInt64.max))
        #expect(NativeScorer.rapidjsonFloat("-9223372036854775808") == Float(Int64.min))
        #expect(NativeScorer.rapidjsonFloat("1e400") == nil)
        #expect(NativeScorer.rapidjsonFloat("01") == nil)
        #expect(NativeScorer.rapidjsonFloat("1.") == nil)
        #expect(NativeScorer.rapidjsonFloat("") == nil)
    }
}

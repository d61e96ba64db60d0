#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VWCore

/// The native scorer against the real vw, byte for byte: random models per family (random `-b`,
/// interactions, link, update rule, namespaces) and random examples written in canonical form by
/// the grammar, all of a model's examples through one vw process. The count per family is
/// `NATIVE_DIFF_EXAMPLES` (default 100,000; the longer documented run uses 1,000,000).
@Suite(.serialized)
struct NativeDifferentialTests {
    static let examplesPerFamily = environmentCount("NATIVE_DIFF_EXAMPLES", default: 100_000)
    static let examplesPerModel = 5_000

    /// One model's options for a family.
    static func options(family: String, _ random: inout SplitMix) -> [String] {
        var options = ["-b", String(1 + random.below(20))]
        if random.chance(25) { options.append(random.pick(["--sgd", "--adaptive", "--normalized", "--invariant", "--adaptive --normalized"])) }
        if random.chance(20) { options.append("--predict_only_model") }
        if random.chance(15) { options += random.pick([["--l2", "0.001"], ["--l1", "0.0001"], ["--l1", "0.00001", "--l2", "0.0001"]]) }
        if random.chance(15) { options.append("--noconstant") }
        if random.chance(20) { options += ["--hash", "all"] }
        if random.chance(10) { options += ["--hash_seed", String(random.below(1000) + 1)] }
        if random.chance(15) { options += random.pick([["--ignore", "b"], ["--ignore_linear", "a"], ["--keep", "ab"], ["--ignore", "c", "--ignore_linear", "b"]]) }
        switch family {
        case "logistic":
            options += ["--loss_function", "logistic", "--link", "logistic"]
        case "interactions":
            let letters: [String] = ["a", "b", "c", "A", "1"]
            for _ in 0..<(1 + random.below(3)) {
                switch random.below(3) {
                case 0: options += ["-q", random.pick(letters) + random.pick(letters)]
                case 1: options += ["--cubic", random.pick(letters) + random.pick(letters) + random.pick(letters)]
                default: options += ["--interactions", (0..<(2 + random.below(3))).map { _ in random.pick(letters) }.joined()]
                }
            }
            if random.chance(40) { options += ["--link", "logistic"] }
        case "oaa":
            options += ["--oaa", String(2 + random.below(6))]
            if random.chance(30) { options += ["-q", random.pick(["ab", "aa", "bc"])] }
            if random.chance(20) { options += ["--link", "logistic"] }
            if random.chance(20) { options += ["--indexing", "0"] }
        default:
            options += random.pick([[], ["--loss_function", "quantile"], ["--loss_function", "hinge"], ["--loss_function", "squared"]])
        }
        return options.flatMap { $0.split(separator: " ").map(String.init) }
    }

    static func run(family: String, seed: UInt64) throws {
        guard vwAvailable else {
            Issue.record("no vw in .venv")
            return
        }
        var random = SplitMix(state: seed)
        let grammar = ExampleGrammar(family: family == "oaa" ? .multiclass : .simple)
        var total = 0
        var modelIndex = 0
        var distinct = Set<Substring>()
        while total < examplesPerFamily {
            modelIndex += 1
            let options = options(family: family, &random)
            let model = "/tmp/vwfcgi-native-\(getpid())-\(family)-\(modelIndex).vw"
            defer { unlink(model) }
            var training = ""
            for _ in 0..<(20 + random.below(60)) {
                var label = family == "logistic" ? random.pick(["1 ", "-1 "]) : random.pick(["1 ", "-1 ", "0.25 ", "3 ", "-7.5 "])
                if family == "oaa" {
                    let classes = Int(options[options.firstIndex(of: "--oaa")! + 1])!
                    let zeroBased = options.contains("--indexing")
                    label = String(random.below(classes) + (zeroBased ? 0 : 1)) + " "
                }
                let line = NativeExamples.line(&random)
                let features = line[line.firstIndex(of: "|")!...]
                training += label + features + "\n"
            }
            guard train(options, data: training, to: model).status == "exited with code 0" else {
                Issue.record("training failed: \(options)")
                continue
            }
            let scorer = try nativeScorer(model: model)
            var lines: [String] = []
            let count = min(examplesPerModel, examplesPerFamily - total)
            while lines.count < count {
                let client = NativeExamples.line(&random, manyFeatures: random.chance(5))
                guard let parsed = try? grammar.parse(lines: [Substring(client)]) else { continue }
                var text = parsed.canonicalText(serverTag: "v\(String(lines.count, radix: 16))")
                text.removeLast()
                lines.append(text)
            }
            let expected = try vwPredictions(model: model, lines: lines)
            #expect(expected.utf8.filter { $0 == 0x0A }.count == lines.count, "vw answered every example")
            distinct.formUnion(expected.split(separator: "\n").map { $0.split(separator: " ").first ?? "" })
            let payload = Array(lines.map { $0 + "\n" }.joined().utf8)
            guard let native = scorer.predict(payload: payload) else {
                Issue.record("native refused a batch of \(family) model \(options)")
                return
            }
            let got = String(decoding: native, as: UTF8.self)
            if got != expected {
                let want = expected.split(separator: "\n", omittingEmptySubsequences: false)
                let have = got.split(separator: "\n", omittingEmptySubsequences: false)
                let index = (0..<min(want.count, have.count)).first { want[$0] != have[$0] } ?? min(want.count, have.count)
                let example = index < lines.count ? lines[index] : "(none)"
                Issue.record("\(family) model \(options): example \(index) \(example.debugDescription): vw \(index < want.count ? want[index] : "-") native \(index < have.count ? have[index] : "-")")
                return
            }
            total += count
        }
        print("native differential \(family): \(total) examples, \(modelIndex) models, \(distinct.count) distinct answers, all equal to vw")
    }

    @Test func linearModelsMatchVWByteForByte() throws { try Self.run(family: "linear", seed: 1) }
    @Test func logisticModelsMatchVWByteForByte() throws { try Self.run(family: "logistic", seed: 2) }
    @Test func interactionModelsMatchVWByteForByte() throws { try Self.run(family: "interactions", seed: 3) }
    @Test func oaaModelsMatchVWByteForByte() throws { try Self.run(family: "oaa", seed: 4) }
}

/// The bytes of a file.
func readAll(_ path: String) throws -> [UInt8] {
    guard let file = fopen(path, "rb") else { throw NativeModelError.truncated("cannot open \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes += buffer[0..<count]
    }
    return bytes
}

import Testing
@testable import VWCore

/// The ADF scorer's pure parts: which options it serves, VW's wildcard expansion, libstdc++'s sort
/// with NaN, `fmt_float`, the epsilon-greedy PMF with ties, and the ADF probe set.
struct NativeADFTests {
    private func configuration(_ stored: [String], extra: [String] = []) throws -> NativeConfiguration {
        try NativeConfiguration(options: ModelOptions.check(stored: stored, extra: extra))
    }

    @Test func personalizersDefaultPolicyIsServed() throws {
        let stored = ["--cb_adf", "--cb_explore_adf", "--cb_type", "mtr", "--csoaa_ldf", "multiline", "--csoaa_rank",
                      "--epsilon", "0.200000002980232", "--learning_rate", "0.00100000004749745", "--power_t", "0", "--quadratic", "::"]
        let adf = try configuration(stored)
        #expect(adf.adf == NativeADF(explores: true, epsilon: 0.2, doublyRobust: false, rankAll: false))
        #expect(adf.interactions == [Array("::".utf8)])
        let dr = try configuration(["--cb_adf", "--cb_explore_adf", "--cb_type", "dr", "--csoaa_ldf", "multiline", "--csoaa_rank"])
        #expect(dr.adf?.doublyRobust == true && dr.adf?.epsilon == 0.05)
        let plain = try configuration(["--cb_adf", "--cb_type", "ips", "--csoaa_ldf", "multiline", "--csoaa_rank", "--rank_all"])
        #expect(plain.adf?.explores == false && plain.adf?.rankAll == true)
    }

    @Test func otherExplorersAndCBOptionsStayOnVWWithAReason() throws {
        let base = ["--cb_adf", "--cb_explore_adf", "--csoaa_ldf", "multiline", "--csoaa_rank"]
        let refused: [[String]] = [
            ["--softmax"], ["--bag", "3"], ["--cover", "2"], ["--first", "2"], ["--squarecb"], ["--rnd", "2"], ["--regcb"], ["--synthcover"],
            ["--first_only"], ["--cb_type", "dm"], ["--cb_type", "sm"], ["--per_model_save_load"], ["--clip_p", "0.1"],
            ["--large_action_space"], ["--cb_sample"], ["--baseline"], ["--link", "logistic"], ["--ignore", "a"], ["--epsilon", "2"],
        ]
        for extra in refused {
            guard let options = try? ModelOptions.check(stored: base + extra, extra: []) else { continue }
            #expect(throws: NativeModelError.self, "\(extra)") { try NativeConfiguration(options: options) }
        }
        let csoaa = try? ModelOptions.check(stored: ["--cb_adf", "--csoaa_ldf", "mc", "--csoaa_rank"], extra: [])
        if let csoaa { #expect(throws: NativeModelError.self) { try NativeConfiguration(options: csoaa) } }
        // ADF options on a single-line model, and a wildcard there, are not served either.
        #expect(throws: NativeModelError.self) { try configuration(["--epsilon", "0.1"]) }
        #expect(throws: NativeModelError.self) { try configuration(["--quadratic", "::"]) }
    }

    private func expand(_ written: [String], _ present: String) -> [String] {
        let interactions = NativeConfiguration.sortedAndFiltered(written.map { Array($0.utf8) })
        let set = NativeScorer.interactionNamespaces(Array(present.utf8))
        return NativeScorer.expandWildcards(interactions, present: set).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func wildcardsExpandAsVWsGenerateInteractions() {
        #expect(expand(["::"], "as") == ["aa", "as", "ss"])
        // Three wildcards: non-increasing choices in VW's order of them, then its left sorting of repeats
        // ("baa" → "aab"; "cba", all different, stays).
        #expect(expand([":::"], "abc") == ["aaa", "aab", "abb", "bbb", "aac", "cba", "bbc", "acc", "bcc", "ccc"])
        // "s::" is read as "::s" (VW sorts the written interaction, ':' being a byte below 's').
        let sorted = NativeConfiguration.sortedAndFiltered([Array("s::".utf8)]).map { String(decoding: $0, as: UTF8.self) }
        #expect(sorted == ["::s"])
        #expect(expand(["s::"], "as") == ["aas", "ass", "sss"])
        #expect(expand(["s:", "as"], "abs") == ["as", "sb", "ss"])
        // Only ' ' to '~' (and 139) interact; the constant's 128 and 'é''s first byte do not.
        #expect(expand(["::"], "\u{20}a") == ["  ", " a", "aa"])
        #expect(NativeScorer.interactionNamespaces([128, 0xC3]) == (0, 0))
        #expect(expand(["::"], "") == [])
    }

    @Test func sortIsLibstdcxxInsertionSortEvenWithNaN() {
        func sorted(_ scores: [Float]) -> [Int] {
            var order = Array(scores.indices)
            NativeScorer.insertionSort(&order) { a, b in scores[a] == scores[b] ? a < b : scores[a] < scores[b] }
            return order
        }
        #expect(sorted([3, 1, 2, 1]) == [1, 3, 2, 0])
        #expect(sorted([0, -0.0, -1]) == [2, 0, 1])
        // NaN compares false both ways: the insertion sort leaves it where it stops.
        #expect(sorted([2, .nan, 1]) == [2, 0, 1])
        #expect(sorted([.nan, 2, 1]) == [0, 2, 1])
    }

    @Test func fmtFloatTrimsTheSixDecimalsAsVWPrintsThem() {
        func text(_ value: Float) -> String {
            var output: [UInt8] = []
            VWFloatText.appendShortFixed(value, to: &output)
            return String(decoding: output, as: UTF8.self)
        }
        #expect(text(0.2) == "0.2")
        #expect(text(1) == "1")
        #expect(text(10) == "10")
        #expect(text(0.0078125) == "0.007812")  // ties to even, as vw printed it
        #expect(text(0.0234375) == "0.023438")
        #expect(text(1.0 / 3) == "0.333333")
        #expect(text(0.9999999) == "1")
        #expect(text(-1e-9) == "-0")
        #expect(text(0) == "0")
        #expect(text(.infinity) == "inf")
    }

    @Test func tiedBestActionsShareTheGreedyMass() {
        #expect(NativeScorer.areSameRelative(1, 1.00001))
        #expect(!NativeScorer.areSameRelative(1, 1.001))
        #expect(NativeScorer.areSameRelative(0, -0.0))
        #expect(!NativeScorer.areSameRelative(.infinity, .infinity))
    }

    @Test func adfLabelsAreSharedOrNothing() {
        func label(_ line: String) -> (shared: Bool, labelled: Bool, tag: String)? {
            let bytes = Array(line.utf8)
            return bytes.withUnsafeBufferPointer { buffer in
                NativeScorer.readADFLabel(buffer, 0..<buffer.count).map { ($0.shared, $0.labelled, String(decoding: buffer[$0.tag], as: UTF8.self)) }
            }
        }
        #expect(label("shared |s x")! == (true, false, ""))
        #expect(label("shared 'v1 |s x")! == (true, false, "v1"))
        #expect(label("'v1 |a x")! == (false, false, "v1"))
        #expect(label("0:1:0.5 |a x")! == (false, true, ""))
        #expect(label("no bar") == nil)
    }

    @Test func adfProbeSetCoversSharedActionsTiesAndManyActions() throws {
        let examples = NativeProbeSet.adfExamples(interactions: [Array("::".utf8), Array("sa".utf8)], warmup: ["shared |w operator\n|a x"])
        #expect(examples.first == "shared |w operator\n|a x")
        #expect(examples.contains { $0.hasPrefix("shared ") })
        #expect(examples.contains { !$0.contains("shared") })
        #expect(examples.contains { $0.split(separator: "\n").count > 17 })
        #expect(examples.contains("shared |s x\n|a y\n|a y\n|a z"))
        for edge in [":1e-40", ":-9.9e37", ":red"] { #expect(examples.contains { $0.contains(edge) }) }
        let grammar = ExampleGrammar(family: .cbADF)
        let accepted = examples.filter { (try? grammar.parse(lines: $0.split(separator: "\n", omittingEmptySubsequences: false))) != nil }.count
        #expect(accepted * 10 >= examples.count * 9, "most probes reach the scorer: \(accepted) of \(examples.count)")
    }
}

import Testing
@testable import VWCore

@Suite struct LearnerTests {
    @Test func stateRoundTripsAndRefusesUnsafeModelVersions() {
        let state = LearnState(base: "aaa", modelVersion: "bbb", position: 7, learnedEvents: 1234,
                               updates: 3, lastUpdate: "2026-11-30T20:00:00.000Z", published: ["x1", "bbb"], baseFile: "ccc")
        #expect(LearnState.parse(state.serialized()) == state)
        var none = state
        none.lastUpdate = nil
        none.published = []
        none.baseFile = nil
        #expect(LearnState.parse(none.serialized()) == none)
        for unsafe in ["../x.vw", "/etc/passwd", ".hidden", "a/b", ""] {
            var bad = state
            bad.modelVersion = unsafe
            #expect(LearnState.parse(bad.serialized()) == nil, "\(unsafe)")
        }
        #expect(LearnState.parse(Array("{}".utf8)) == nil)
        #expect(LearnState.parse(Array("not json".utf8)) == nil)
    }

    @Test func pmfsAreReadByActionIndex() {
        let output = Array("1:0.7,0:0.2,2:0.1\n\n0:0.5,1:0.5\n\n".utf8)
        #expect(Learner.pmfs(output) == [[0.2, 0.7, 0.1], [0.5, 0.5]])
        #expect(Learner.pmfs(Array("garbage\n\n".utf8)).isEmpty)
    }

    /// IPS: reward x pi(logged action | x) / logged probability, averaged; the logged policy's average beside it.
    @Test func theEstimateIsInversePropensityScoring() {
        let decisions = [TrainingInput.Decision(reward: 1, probability: 0.5, action: 1),
                         TrainingInput.Decision(reward: 0, probability: 0.25, action: 2),
                         TrainingInput.Decision(reward: 1, probability: 0.25, action: 3)]
        let pmfs: [[Double]] = [[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.5, 0.0, 0.5]]
        let estimate = Learner.estimate(decisions, pmfs: pmfs)
        // (1 x 0.9 / 0.5 + 0 + 1 x 0.5 / 0.25) / 3
        #expect(abs(estimate.ips! - (1.8 + 2.0) / 3) < 1e-12)
        #expect(abs(estimate.logged! - 2.0 / 3) < 1e-12)
        // Without one prediction per decision there is no estimate (vw printed less).
        #expect(Learner.estimate(decisions, pmfs: []).ips == nil)
        #expect(Learner.estimate([], pmfs: []).logged == nil)
    }

    /// Apprentice mode's switch criterion (SPEC §9): on the baseline decisions (p = 1), the baseline's average reward
    /// against the learned greedy policy's, which earns the logged reward where it picks the baseline and the
    /// default reward elsewhere.
    @Test func theApprenticeCriterionCreditsOnlyWhatTheBaselineWasSeenToEarn() {
        func decision(_ reward: Double, p: Double = 1) -> TrainingInput.Decision {
            TrainingInput.Decision(reward: reward, probability: p, action: 1)
        }
        func evaluate(_ decisions: [TrainingInput.Decision], _ pmfs: [[Double]], threshold: Double = 1, minEvents: Int = 1)
            -> ApprenticeCriterion.Evaluation? {
            ApprenticeCriterion.evaluate(decisions, pmfs: pmfs, defaultReward: 0, threshold: threshold, minEvents: minEvents)
        }
        let imitates: [Double] = [0.85, 0.05, 0.05, 0.05], differs: [Double] = [0.05, 0.85, 0.05, 0.05]
        // Differs only where the baseline earned nothing: as good as the baseline (2/4), half imitation: met.
        let good = evaluate([decision(1), decision(0), decision(1), decision(0)], [imitates, differs, imitates, differs])!
        #expect(good.events == 4 && good.baselineReward == 0.5 && good.learnedReward == 0.5 && good.imitation == 0.5)
        #expect(good.met)
        // Too few events, or a threshold above what it reaches: not met.
        #expect(evaluate([decision(1), decision(0), decision(1), decision(0)], [imitates, differs, imitates, differs], minEvents: 5)?.met == false)
        #expect(evaluate([decision(1), decision(0), decision(1), decision(0)], [imitates, differs, imitates, differs], threshold: 1.1)?.met == false)
        // Differs where the baseline was rewarded: its estimate is below the baseline's; not met, even at 0.9.
        let bad = evaluate([decision(1), decision(1), decision(0)], [differs, imitates, imitates], threshold: 0.9)!
        #expect(abs(bad.learnedReward - 1.0 / 3) < 1e-12 && abs(bad.baselineReward - 2.0 / 3) < 1e-12 && !bad.met)
        // ... but 0.5 lets it through (learned ≥ half the baseline's).
        #expect(evaluate([decision(1), decision(1), decision(0)], [differs, imitates, imitates], threshold: 0.5)?.met == true)
        // A tie is vw's greedy pick: the first action.
        #expect(evaluate([decision(1)], [[0.25, 0.25, 0.25, 0.25]])?.imitation == 1)
        // Negative rewards: the threshold scales |baseline| (1.0: at least as good; 1.5: better by half its size).
        #expect(evaluate([decision(-1), decision(-1)], [imitates, differs])?.met == true)
        #expect(evaluate([decision(-1), decision(-1)], [imitates, imitates], threshold: 1.5)?.met == false)
        // Decisions not logged as the baseline (served online before the mode changed) do not count.
        let mixed = evaluate([decision(1, p: 0.85), decision(0), decision(1, p: 0.05)], [differs, imitates, imitates])!
        #expect(mixed.events == 1 && mixed.imitation == 1)
        #expect(evaluate([decision(1, p: 0.5)], [imitates]) == nil)
        // No prediction per decision: no evaluation.
        #expect(evaluate([decision(1)], []) == nil)
    }

    // MARK: - What reaches the trainer's vw

    private static let adf = VWJSONGrammar(isADF: true)
    private static let simple = ExampleGrammar(family: .simple, keepsLabels: true)

    private static func decisionLine(_ edit: (inout [String: String]) -> Void = { _ in }) -> ArraySlice<UInt8> {
        var members: [String: String] = [
            "_label_cost": "-1.0", "_label_probability": "0.5", "_label_Action": "2", "_labelIndex": "1", "o": #"[{"v":1.0}]"#,
            "Timestamp": #""2026-11-30T20:00:00.000Z""#, "Version": #""1""#, "EventId": #""e-1""#, "a": "[2,1]",
            "c": #"{"User":{"id":"a"},"_multi":[{"Action":{"t":"x"}},{"Action":{"t":"y"}}]}"#, "p": "[0.5,0.5]",
            "VWState": #"{"m":"abc"}"#,
        ]
        edit(&members)
        let order = ["_label_cost", "_label_probability", "_label_Action", "_labelIndex", "o", "Timestamp", "Version", "EventId",
                     "a", "c", "p", "VWState"]
        let known = order.filter { members[$0] != nil }.map { "\"\($0)\":\(members[$0]!)" }
        let extra = members.keys.filter { !order.contains($0) }.sorted().map { "\"\($0)\":\(members[$0]!)" }
        return ArraySlice(Array(("{" + (known + extra).joined(separator: ",") + "}").utf8))
    }

    /// SPEC §9: a Personalizer decision names its actions by their `_tag`s; it is learned as it is.
    @Test func aPersonalizerDecisionWithActionTagsReachesVW() {
        let line = Self.decisionLine {
            $0["c"] = #"{"FromUrl":[{"User":{"id":"a"}}],"_multi":[{"_tag":"news","j":[{"C":{"t":"x"}}]},{"_tag":"sports","j":[]}]}"#
        }
        let input = TrainingInput(lines: [line], json: Self.adf, text: Self.simple)
        #expect(input.skipped.isEmpty, "\(input.skipped)")
        #expect(input.bytes == Array(line) + [0x0A])
    }

    @Test func aJoinedDecisionReachesVWAsItIsWhenEveryMemberChecks() {
        let line = Self.decisionLine()
        let input = TrainingInput(lines: [line], json: Self.adf, text: Self.simple)
        #expect(input.skipped.isEmpty, "\(input.skipped)")
        #expect(input.bytes == Array(line) + [0x0A])
        #expect(input.decisions == [TrainingInput.Decision(reward: 1, probability: 0.5, action: 2, offered: 2,
                                                           timestamp: "2026-11-30T20:00:00.000Z")])
    }

    /// A log from a bucket or edited on disk: every member the joiner writes is checked, the context by the strict grammar.
    @Test func aTamperedJoinedDecisionNeverReachesVW() {
        let tampered: [(String, (inout [String: String]) -> Void)] = [
            ("unknown member", { $0["_debug"] = "1" }),
            ("context with an unknown _ key", { $0["c"] = #"{"_x":1,"_multi":[{"a":{"b":1}}]}"# }),
            ("context with members after _multi", { $0["c"] = #"{"_multi":[{"a":{"b":1}}],"c":1}"# }),
            ("empty _multi", { $0["c"] = #"{"_multi":[]}"# }),
            ("context not an object", { $0["c"] = #""| a b""# }),
            ("bad event id", { $0["EventId"] = #""e 1 |x""# }),
            ("probability 0", { $0["_label_probability"] = "0" }),
            ("index out of step", { $0["_labelIndex"] = "0" }),
            ("a and p out of step", { $0["p"] = "[0.5]" }),
            ("Version an object", { $0["Version"] = #"{"a":1}"# }),
            ("o not rewards", { $0["o"] = #"[{"v":"x"}]"# }),
            ("VWState with more", { $0["VWState"] = #"{"m":"a","x":1}"# }),
            ("no context", { $0["c"] = nil }),
            // Issue 18: a crafted shipped segment poisoned the fleet model through these.
            ("probability below min_probability", { $0["_label_probability"] = "1e-300"; $0["p"] = "[1e-300,1]" }),
            ("action past the context's actions", { $0["_label_Action"] = "9"; $0["_labelIndex"] = "8"; $0["a"] = "[9,1]" }),
            ("a label inside the context", { $0["c"] = #"{"_label_cost":-100,"User":{"id":"a"},"_multi":[{"Action":{"t":"x"}},{"Action":{"t":"y"}}]}"# }),
            ("a save tag inside an action", { $0["c"] = #"{"User":{"id":"a"},"_multi":[{"_tag":"save_x","Action":{"t":"x"}},{"Action":{"t":"y"}}]}"# }),
            ("a tag inside an action's namespace", { $0["c"] = #"{"User":{"id":"a"},"_multi":[{"Action":{"_tag":"x"}},{"Action":{"t":"y"}}]}"# }),
            ("a tag inside the shared context", { $0["c"] = #"{"_tag":"x","User":{"id":"a"},"_multi":[{"Action":{"t":"x"}},{"Action":{"t":"y"}}]}"# }),
            ("a label inside a namespace", { $0["c"] = #"{"User":{"_label_cost":1},"_multi":[{"Action":{"t":"x"}},{"Action":{"t":"y"}}]}"# }),
            ("p not summing to 1", { $0["p"] = "[0.5,0.2]" }),
            ("label not the first action", { $0["_label_Action"] = "1"; $0["_labelIndex"] = "0" }),
            ("label probability not the first of p", { $0["_label_probability"] = "0.25" }),
            ("cost outside the reward range", { $0["_label_cost"] = "-1e300" }),
            ("a reward that is not finite", { $0["o"] = #"[{"v":1e999}]"# }),
            ("duplicate actions", { $0["a"] = "[2,2]" }),
        ]
        let valid = Self.decisionLine()
        for (what, edit) in tampered {
            let input = TrainingInput(lines: [Self.decisionLine(edit), valid], json: Self.adf, text: Self.simple)
            #expect(input.skipped.count == 1, "\(what): \(input.skipped)")
            #expect(input.bytes == Array(valid) + [0x0A], "\(what)")
            #expect(input.decisions.count == 1, "\(what)")
        }
        let garbage = TrainingInput(lines: [ArraySlice("not json".utf8)], json: Self.adf, text: Self.simple)
        #expect(garbage.bytes.isEmpty && garbage.skipped.count == 1)
    }

    /// A probability the joiner clipped to min_probability is learned (with the clipped value); :learn bounds hold.
    @Test func clippedProbabilitiesAndLearnBounds() {
        let clipped = Self.decisionLine { $0["_label_probability"] = "0.0001"; $0["p"] = "[0.00001,0.99999]" }
        let input = TrainingInput(lines: [clipped], json: Self.adf, text: Self.simple)
        #expect(input.skipped.isEmpty, "\(input.skipped)")
        func learn(_ example: String) -> ArraySlice<UInt8> {
            var json: [UInt8] = []
            JSONQuoting.append(example, to: &json)
            return ArraySlice(Array(#"{"EventId":"l-1","Learn":"#.utf8) + json + Array(#","Timestamp":"t"}"#.utf8))
        }
        let bounded = TrainingInput(lines: [learn("1 1e30 |a x:1e30"), learn("1e7 |a x:1"), learn("1 |a x:2e6"), learn("1 2000 |a x:1"),
                                            learn("1 0.5 |a x:3")], json: nil, text: Self.simple)
        #expect(bounded.skipped.count == 4, "\(bounded.skipped)")
        #expect(String(decoding: bounded.bytes, as: UTF8.self) == "1 0.5 |a x:3\n")
    }

    /// A `:learn` line gives vw its example as the strict grammar re-writes it, labels kept; anything else is left out.
    @Test func learnLinesReachVWReWrittenByTheGrammar() {
        func line(_ example: String, extra: String = "") -> ArraySlice<UInt8> {
            var json: [UInt8] = []
            JSONQuoting.append(example, to: &json)
            return ArraySlice(Array(#"{"EventId":"l-1","Learn":"#.utf8) + json + Array(#","Timestamp":"t"\#(extra)}"#.utf8))
        }
        let input = TrainingInput(
            lines: [line("2 1.5 |f  a:1   b"), line("|f a:1"), line("1 'save_x |f a"), line("1 |f a\n2 |f b"), line("3 |f c", extra: #","x":1"#),
                    line("0.5 |g x:2")],
            json: nil, text: Self.simple
        )
        #expect(String(decoding: input.bytes, as: UTF8.self) == "2 1.5 |f a:1 b\n0.5 |g x:2\n")
        #expect(input.skipped.count == 4, "\(input.skipped)")
        #expect(input.decisions.isEmpty)
    }
}

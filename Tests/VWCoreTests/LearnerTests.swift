import Testing
@testable import VWCore

@Suite struct LearnerTests {
    @Test func stateRoundTripsAndRefusesUnsafeModelNames() {
        let state = LearnState(base: "aaa", model: "bbb.vw", modelVersion: "bbb", position: 7, learnedEvents: 1234,
                               updates: 3, lastUpdate: "2026-11-30T20:00:00.000Z", published: ["x1", "bbb"])
        #expect(LearnState.parse(state.serialized()) == state)
        var none = state
        none.lastUpdate = nil
        none.published = []
        #expect(LearnState.parse(none.serialized()) == none)
        for unsafe in ["../x.vw", "/etc/passwd", ".hidden", "a/b", ""] {
            var bad = state
            bad.model = unsafe
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
        func line(cost: Double, probability: Double, action: Int) -> ArraySlice<UInt8> {
            ArraySlice(Array("{\"_label_cost\":\(cost),\"_label_probability\":\(probability),\"_label_Action\":\(action),\"c\":{}}".utf8))
        }
        let lines = [line(cost: -1, probability: 0.5, action: 1), line(cost: 0, probability: 0.25, action: 2),
                     line(cost: -1, probability: 0.25, action: 3)]
        let pmfs: [[Double]] = [[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.5, 0.0, 0.5]]
        let estimate = Learner.estimate(joined: lines, pmfs: pmfs)
        // (1 x 0.9 / 0.5 + 0 + 1 x 0.5 / 0.25) / 3
        #expect(abs(estimate.ips! - (1.8 + 2.0) / 3) < 1e-12)
        #expect(abs(estimate.logged! - 2.0 / 3) < 1e-12)
        // Without one prediction per line there is no estimate (a text model, or vw printed less).
        #expect(Learner.estimate(joined: lines, pmfs: []).ips == nil)
        #expect(Learner.estimate(joined: [], pmfs: []).logged == nil)
    }
}

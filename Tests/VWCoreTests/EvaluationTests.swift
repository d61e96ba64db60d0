import Testing
@testable import VWCore

/// The offline evaluation's pure parts: the estimators, the windows, the time range and the policy check (SPEC §10).
@Suite struct EvaluationTests {
    @Test func ipsAndSnipsAreTheReweightedMeansWithTheirIntervals() throws {
        let rewards = [1.0, 0.0, 1.0, 1.0]
        let weights = [2.0, 0.0, 0.5, 1.5]
        let estimate = try #require(OffPolicyEstimate(rewards: rewards, weights: weights))
        #expect(estimate.events == 4)
        #expect(estimate.ips == (2.0 + 0.5 + 1.5) / 4)
        #expect(estimate.snips == 4.0 / 4.0)
        #expect(estimate.meanWeight == 1)
        #expect(abs(estimate.effectiveSampleSize - 16 / (4 + 0.25 + 2.25)) < 1e-12)
        // Terms w·r = 2, 0, 0.5, 1.5: mean 1, sample variance (1 + 1 + 0.25 + 0.25) / 3.
        let half = OffPolicyEstimate.z * (2.5 / 3).squareRoot() / 2
        #expect(abs(estimate.ipsInterval.lower - (1 - half)) < 1e-12)
        #expect(abs(estimate.ipsInterval.upper - (1 + half)) < 1e-12)
        // SNIPS 1: residuals w·(r − 1) = 0, 0, 0, 0 except the zero-reward event (weight 0): the interval is a point.
        #expect(estimate.snipsInterval == ConfidenceInterval(lower: 1, upper: 1))
    }

    @Test func aPolicyThatNeverChoosesALoggedActionHasNoSnips() throws {
        let estimate = try #require(OffPolicyEstimate(rewards: [1, 0], weights: [0, 0]))
        #expect(estimate.ips == 0)
        #expect(estimate.snips == nil)
        #expect(estimate.effectiveSampleSize == 0)
        #expect(OffPolicyEstimate(rewards: [], weights: []) == nil)
    }

    @Test func theLoggingPolicysEstimateIsThePlainMeanOfTheRewards() throws {
        let rewards = [0.1, 0.7, 0.2, 0.3, 0.9, 0.0, 0.0, 1.0, 0.4]
        let estimate = try #require(OffPolicyEstimate(loggedRewards: rewards))
        let mean = rewards.reduce(0, +) / Double(rewards.count)
        #expect(estimate.ips == mean)
        #expect(estimate.snips == mean)
        #expect(estimate.effectiveSampleSize == Double(rewards.count))
    }

    @Test func windowsCutTheEventsIntoEqualConsecutiveRanges() {
        #expect(Evaluator.windows(of: 10, 4) == [0..<2, 2..<5, 5..<7, 7..<10])
        #expect(Evaluator.windows(of: 3, 10) == [0..<1, 1..<2, 2..<3])
        #expect(Evaluator.windows(of: 5, 1) == [0..<5])
    }

    @Test func timestampsAndDatesParseAsUTC() {
        #expect(EventLine.milliseconds(timestamp: "1970-01-01") == 0)
        #expect(EventLine.milliseconds(timestamp: "2026-11-30T19:21:23.123Z") == 1_796_066_483_123)
        #expect(EventLine.milliseconds(timestamp: "2026-11-30T19:21Z") == 1_796_066_460_000)
        #expect(EventLine.milliseconds(timestamp: "2026-11-30T19:21:23Z") == 1_796_066_483_000)
        #expect(EventLine.milliseconds(timestamp: "2026-11-30T19:21:23.5Z") == 1_796_066_483_500)
        let now: Int64 = 1_796_066_483_123
        #expect(EventLine.milliseconds(timestamp: EventLine.timestamp(milliseconds: now)) == now)
        for bad in ["", "yesterday", "2026-13-01", "2026-11-30T19:21:23", "2026-11-30T25:00Z", "2026-11-30T19:21:23.Z", "2026-11-30Tx"] {
            #expect(EventLine.milliseconds(timestamp: bad) == nil, "\(bad)")
        }
    }

    @Test func candidatePoliciesMustPassTheAllowlistAndExplore() throws {
        #expect(try Evaluator.checkedArguments("--cb_explore_adf --epsilon 0.1 -q UA") == ["--cb_explore_adf", "--epsilon", "0.1", "-q", "UA"])
        for (policy, says) in [("--cb_adf", "must explore"), ("--cb_explore_adf --daemon", "--daemon"),
                               ("--cb_explore_adf --dsjson", "--dsjson"), ("--cb_explore_adf stray", "data file")] {
            #expect {
                _ = try Evaluator.checkedArguments(policy)
            } throws: { error in
                (error as? EvaluationError)?.reason.contains(says) == true
            }
        }
    }
}

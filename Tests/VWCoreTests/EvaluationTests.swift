#if canImport(Glibc)
import Glibc
#endif
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

    @Test func theEmpiricalBernsteinIntervalIsMaurerAndPontilsBoundOnTheTermsRange() throws {
        let rewards = [1.0, 0.0, 1.0, 1.0, 0.0]
        let weights = [2.0, 0.0, 0.5, 1.5, 4.0]
        let estimate = try #require(OffPolicyEstimate(rewards: rewards, weights: weights, maxWeight: 4))
        // Terms 2, 0, 0.5, 1.5, 0: mean 0.8, sample variance (1.44 + 0.64 + 0.09 + 0.49 + 0.64) / 4 = 0.825.
        // Range: rewards in [0, 1], weights in [0, 4]: R = 4. ln(4 / 0.05) = ln 80.
        let log80 = 4.382026634673881
        let half = (2 * 0.825 * log80 / 5).squareRoot() + 7 * 4 * log80 / (3 * 4)
        let interval = try #require(estimate.ipsBernsteinInterval)
        #expect(abs(interval.lower - (0.8 - half)) < 1e-12 && abs(interval.upper - (0.8 + half)) < 1e-12)
        #expect(estimate.ipsInterval(.bernstein) == interval && estimate.ipsInterval(.normal) == estimate.ipsInterval)
        // Negative rewards widen the range below 0: R = 4·1 − 4·(−1) = 8.
        let signed = try #require(OffPolicyEstimate(rewards: [1, -1], weights: [1, 1], maxWeight: 4)?.ipsBernsteinInterval)
        let signedHalf = (2 * 2.0 * log80 / 2).squareRoot() + 7 * 8 * log80 / 3
        #expect(abs(signed.upper - signedHalf) < 1e-12)
        // Without a bound on the weights, or with one event, there is none (the normal interval is shown instead).
        #expect(OffPolicyEstimate(rewards: rewards, weights: weights)?.ipsBernsteinInterval == nil)
        let single = try #require(OffPolicyEstimate(rewards: [1], weights: [1], maxWeight: 1))
        #expect(single.ipsBernsteinInterval == nil && single.ipsInterval(.bernstein) == single.ipsInterval)
    }

    @Test func theBootstrapIsSplitMix64PercentilesOfTheResampledMeans() throws {
        var random = SplitMix(seed: 0)
        #expect(random.next() == 0xE220_A839_7B1D_CDAF)  // SplitMix64's reference output for seed 0
        // Constant terms: every resample mean is the constant.
        let constant = try #require(OffPolicyEstimate(rewards: [0.5, 0.5, 0.5], weights: [1, 1, 1], bootstrap: true))
        #expect(constant.ipsBootstrapInterval == ConfidenceInterval(lower: 0.5, upper: 0.5))
        // Only when asked; deterministic; around the mean, narrower than Bernstein's bound.
        let rewards = (0..<200).map { Double($0 % 3 == 0 ? 1 : 0) }
        let weights = (0..<200).map { Double($0 % 5) / 2 }
        #expect(OffPolicyEstimate(rewards: rewards, weights: weights, maxWeight: 2)?.ipsBootstrapInterval == nil)
        let once = try #require(OffPolicyEstimate(rewards: rewards, weights: weights, maxWeight: 2, bootstrap: true))
        let again = try #require(OffPolicyEstimate(rewards: rewards, weights: weights, maxWeight: 2, bootstrap: true))
        let interval = try #require(once.ipsBootstrapInterval)
        #expect(again.ipsBootstrapInterval == interval && once.ipsInterval(.bootstrap) == interval)
        #expect(interval.lower < once.ips && once.ips < interval.upper)
        let bernstein = try #require(once.ipsBernsteinInterval)
        #expect(bernstein.lower < interval.lower && interval.upper < bernstein.upper)
    }

    @Test func theGridHas16SettingsAroundTheBaseAndEachPassesTheAllowlist() throws {
        let grid = PolicyGrid.candidates(around: "--cb_explore_adf --epsilon 0.1 --cb_type dr -l 2 -q UA")
        #expect(grid.count == 16 && Set(grid).count == 16)
        #expect(grid.first == "--cb_explore_adf --epsilon 0.1 --quadratic UA --cb_type ips -l 0.001")
        #expect(grid.last == "--cb_explore_adf --epsilon 0.1 --quadratic UA --cb_type mtr -l 0.5 -q ::")
        for policy in grid {
            let tokens = try Evaluator.checkedArguments(policy)
            #expect(tokens.filter { $0 == "--cb_type" }.count == 1 && !tokens.contains("dr") && !tokens.contains("2"), "\(policy)")
        }
        // A base that already interacts every pair gets no second -q ::, so 8 settings.
        #expect(PolicyGrid.candidates(around: "--cb_explore_adf -q ::").count == 8)
        #expect(PolicyGrid.candidates(around: PolicyGrid.defaultBase).count == 16)
    }

    @Test func theGridsWinnerHasTheHighestLowerBound() throws {
        func policy(_ name: String, _ rewards: [Double]) throws -> PolicyResult {
            PolicyResult(name: name, source: .offlineExperimentation, arguments: name,
                         summary: try #require(OffPolicyEstimate(rewards: rewards, weights: rewards.map { _ in 1 }, maxWeight: 1)),
                         timeseries: [])
        }
        // "lucky" has the highest point estimate but a wide interval; "steady" the highest lower bound.
        let lucky = try policy("lucky", [1, 1, 1, 0, 0])
        let steady = try policy("steady", [0.55, 0.6, 0.55, 0.6, 0.55])
        #expect(lucky.summary.ips > steady.summary.ips)
        #expect(PolicyGrid.winner([lucky, steady], interval: .normal)?.name == "steady")
        #expect(PolicyGrid.winner([], interval: .normal) == nil)
    }

    @Test func theMetricsFileIsPrometheusTextWithEscapedLabels() throws {
        let summary = try #require(OffPolicyEstimate(rewards: [1, 0], weights: [1, 1], maxWeight: 1))
        let result = EvaluationResult(
            model: "m", events: 2, skipped: 0, skippedReasons: [], firstTimestamp: "2026-12-01T00:00:00.000Z", lastTimestamp: nil,
            policies: [PolicyResult(name: "Policy 1", source: .custom, arguments: "--cb_explore_adf \"x\\y\"\n", summary: summary, timeseries: [])]
        )
        let text = result.prometheusText(finished: 1.5)
        #expect(text.contains(#"vwfcgi_evaluation_estimate{model="m",policy="Policy 1",source="Custom",arguments="--cb_explore_adf \"x\\y\"\n",estimator="ips",bound="point"} 0.5"#))
        #expect(text.contains("# TYPE vwfcgi_evaluation_estimate gauge\n"))
        #expect(text.contains("vwfcgi_evaluation_finished_timestamp_seconds{model=\"m\"} 1.5\n"))
        #expect(!text.contains("\n\n") && text.hasSuffix("\n"))
        // Two models' evaluations (the server's /metrics): each family's HELP and TYPE once, every model's samples.
        var other = result
        other.model = "n"
        let both = EvaluationResult.prometheusText([(result, 1), (other, 2)])
        #expect(both.split(separator: "\n").filter { $0 == "# TYPE vwfcgi_evaluation_events gauge" }.count == 1)
        #expect(both.contains("vwfcgi_evaluation_events{model=\"m\"} 2.0\nvwfcgi_evaluation_events{model=\"n\"} 2.0\n"))
    }

    /// A deleted evaluation (over HTTP) stops before its next vw starts: with `isCancelled` true the grid search ends
    /// with `.cancelled` before any vw is spawned (here a vw that does not exist, which would fail otherwise).
    @Test func aCancelledEvaluationStopsBeforeItsNextVW() throws {
        var template = Array("/tmp/vwfcgi-cancel-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let joined = try StateDirectory.root(path + "/state/m/joined")
        let work = try StateDirectory.root(path + "/work")
        defer {
            joined.remove("1.dsjson")
            work.remove("events.dsjson")
            for directory in ["/state/m/joined", "/state/m", "/state", "/work", ""] { rmdir(path + directory) }
        }
        let line = #"{"_label_cost":COST,"_label_probability":0.5,"_label_Action":1,"_labelIndex":0,"o":[{"v":REWARD}],"#
            + #""Timestamp":"2025-12-01T00:00:0@I.000Z","Version":"1","EventId":"e-@I","a":[1,2],"#
            + #""c":{"User":{"id":"u"},"_multi":[{"Action":{"t":"sports"}},{"Action":{"t":"news"}}]},"p":[0.5,0.5],"VWState":{"m":"v1"}}"#
        var lines: [String] = []
        for i in 0..<4 {
            let rewarded = i % 2 == 0
            lines.append(line.replacing("COST", with: rewarded ? "-1.0" : "0.0").replacing("REWARD", with: rewarded ? "1" : "0")
                .replacing("@I", with: String(i)))
        }
        try joined.writeAtomically(Array((lines.joined(separator: "\n") + "\n").utf8), to: "1.dsjson")
        var request = EvaluationRequest(stateDirectory: path + "/state", model: "m", policies: [], vwCommand: ["/nonexistent/vw"],
                                        workDirectory: path + "/work")
        // Without a candidate no vw runs: the logged policy's estimate alone.
        let plain = try Evaluator.run(request)
        #expect(plain.events == 4 && plain.policies.map(\.name) == ["Online", "Baseline", "Random"] && plain.policies[0].summary.ips == 0.5)
        request.optimizationBase = PolicyGrid.defaultBase
        var failure: EvaluationError?
        do throws(EvaluationError) { _ = try Evaluator.run(request) } catch { failure = error }
        guard case .vwFailed? = failure else { Issue.record("not a vw failure: \(String(describing: failure))"); return }
        request.isCancelled = { true }
        failure = nil
        do throws(EvaluationError) { _ = try Evaluator.run(request) } catch { failure = error }
        #expect(failure == .cancelled)
    }
}

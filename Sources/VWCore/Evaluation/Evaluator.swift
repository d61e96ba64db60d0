#if canImport(Glibc)
import Glibc
#endif

/// Offline evaluation of candidate policies on a model's joined events (SPEC §10; `vwfcgi evaluate`).
///
/// The joined lines are read in join order (`joined/<n>.dsjson` by number) and checked exactly as the trainer
/// checks them before vw sees them (`TrainingInput`). Each candidate is trained progressively by a sandboxed,
/// read-only vw over the events in the range: `vw --dsjson -d events -p /dev/stdout <args>` prints each event's
/// PMF before it learns that event (VW's progressive validation), so each event is scored by a policy that has
/// not seen it. The weight of event i is `π_i(logged action) / logged probability`; see `OffPolicyEstimate`.
public enum Evaluator {
    /// Runs the evaluation; `progress` is told what runs (for a terminal).
    public static func run(_ request: EvaluationRequest, progress: (String) -> Void = { _ in }) throws(EvaluationError) -> EvaluationResult {
        let candidates = try request.policies.map { policy throws(EvaluationError) in try checkedArguments(policy) }
        let grid = request.optimizationBase.map(PolicyGrid.candidates(around:)) ?? []
        // vw reads the events from the work directory, written as they are read (not held in memory).
        let events = try readEvents(request, writingTo: candidates.isEmpty && grid.isEmpty ? nil : try workDirectory(request))
        guard !events.decisions.isEmpty else {
            throw .noEvents(events.skipped.isEmpty ? "no joined decision in the range" : "every joined line in the range was left out: "
                + events.skipped[0])
        }
        let decisions = events.decisions
        let rewards = decisions.map(\.reward)
        let maxWeight = 1 / decisions.map(\.probability).min()!
        let bootstrap = request.interval == .bootstrap
        var policies: [PolicyResult] = []
        func result(_ name: String, _ source: PolicySource, _ arguments: String, weights: [Double]?) -> PolicyResult {
            PolicyResult(
                name: name, source: source, arguments: arguments,
                summary: estimate(rewards, weights, maxWeight: maxWeight, bootstrap: bootstrap)!,
                timeseries: windows(of: decisions.count, request.windows).map { range in
                    WindowEstimate(start: decisions[range.first!].timestamp, end: decisions[range.last!].timestamp,
                                   estimate: estimate(Array(rewards[range]), weights.map { Array($0[range]) }, maxWeight: maxWeight,
                                                     bootstrap: bootstrap)!)
                }
            )
        }
        policies.append(result("Online", .online, "", weights: nil))
        policies.append(result("Baseline", .baseline, "", weights: decisions.map { $0.action == 1 ? 1 / $0.probability : 0 }))
        policies.append(result("Random", .random, "", weights: decisions.map { 1 / (Double(max($0.offered, 1)) * $0.probability) }))
        var searched: [PolicyResult] = []
        if !candidates.isEmpty || !grid.isEmpty {
            let path = request.workDirectory + "/" + eventsFile
            func weights(_ tokens: [String], policy: String) throws(EvaluationError) -> [Double] {
                if request.isCancelled() { throw .cancelled }
                let pmfs = try progressivePMFs(tokens, policy: policy, input: path, events: decisions.count, request: request)
                return zip(decisions, pmfs).map { decision, pmf in
                    decision.action - 1 < pmf.count ? pmf[decision.action - 1] / decision.probability : 0
                }
            }
            for (index, tokens) in candidates.enumerated() {
                let policy = request.policies[index]
                progress("policy \(index + 1)/\(candidates.count): vw \(policy) over \(decisions.count) events")
                policies.append(result("Policy \(index + 1)", .custom, policy, weights: try weights(tokens, policy: policy)))
            }
            for (index, policy) in grid.enumerated() {
                progress("grid \(index + 1)/\(grid.count): vw \(policy) over \(decisions.count) events")
                let tokens = try checkedArguments(policy)
                searched.append(result("Grid \(index + 1)", .offlineExperimentation, policy, weights: try weights(tokens, policy: policy)))
            }
        }
        if var best = PolicyGrid.winner(searched, interval: request.interval) {
            best.name = PolicyGrid.optimalName
            policies.append(best)
        }
        return EvaluationResult(
            model: request.model, events: decisions.count, skipped: events.skipped.count, skippedReasons: Array(events.skipped.prefix(20)),
            firstTimestamp: decisions.first?.timestamp, lastTimestamp: decisions.last?.timestamp, policies: policies,
            interval: request.interval, grid: searched
        )
    }

    /// The logging policy (no weights: the plain mean of the rewards) or a reweighted estimate.
    /// `maxWeight` bounds the weights for the empirical-Bernstein interval (the logging policy's are all 1).
    /// `bootstrap`: the percentile-bootstrap interval too (B resamples each: only when it is the one shown).
    private static func estimate(_ rewards: [Double], _ weights: [Double]?, maxWeight: Double, bootstrap: Bool) -> OffPolicyEstimate? {
        if let weights {
            OffPolicyEstimate(rewards: rewards, weights: weights, maxWeight: maxWeight, bootstrap: bootstrap)
        } else {
            OffPolicyEstimate(loggedRewards: rewards, bootstrap: bootstrap)
        }
    }

    /// `count` events cut into at most `windows` consecutive ranges of equal size (± 1).
    static func windows(of count: Int, _ windows: Int) -> [Range<Int>] {
        let parts = max(1, min(windows, count))
        return (0..<parts).map { k in (k * count / parts)..<((k + 1) * count / parts) }.filter { !$0.isEmpty }
    }

    /// A candidate's tokens, when the allowlist accepts them and they make vw print action probabilities.
    static func checkedArguments(_ policy: String) throws(EvaluationError) -> [String] {
        let tokens = VWOptions.split(policy)
        let options: [VWOption]
        do { options = try VWOptions.check(tokens) } catch { throw .invalidPolicy(policy: policy, reason: error.reason) }
        // The input format and the data, model and prediction files are the evaluator's; the allowlist refuses most.
        if let owned = options.first(where: { ["dsjson", "json", "data", "predictions", "initial_regressor", "testonly"].contains($0.name) }) {
            throw .invalidPolicy(policy: policy, reason: "option --\(owned.name) is set by the evaluator")
        }
        guard options.contains(where: { $0.name.hasPrefix("cb_explore") }) else {
            throw .invalidPolicy(policy: policy, reason: "a policy must explore (--cb_explore_adf ...): only then does vw print the action probabilities IPS needs")
        }
        return tokens
    }

    /// The checked joined decisions in the range, in join order (their lines for vw are in the work directory's
    /// ``eventsFile`` when asked for).
    struct Events {
        var decisions: [TrainingInput.Decision] = []
        var skipped: [String] = []
    }

    /// The file of the events' lines for vw, in the work directory.
    static let eventsFile = "events.dsjson"

    /// The request's work directory (created when missing).
    static func workDirectory(_ request: EvaluationRequest) throws(EvaluationError) -> StateDirectory {
        do { return try StateDirectory.root(request.workDirectory) } catch { throw .storage(error.message) }
    }

    /// Reads the checked joined decisions in the range; with `work`, also writes their lines to its ``eventsFile``
    /// as they are read (1 MiB at a time), so memory holds a few numbers per event, not the events.
    static func readEvents(_ request: EvaluationRequest, writingTo work: StateDirectory? = nil) throws(EvaluationError) -> Events {
        guard access(request.stateDirectory, F_OK) == 0 else { throw .storage("no state directory \(request.stateDirectory)") }
        let joined: StateDirectory
        do {
            joined = try StateDirectory.root(request.stateDirectory).directory(request.model, create: false).directory("joined", create: false)
        } catch {
            throw .modelNotFound(request.model)
        }
        // Any reward and any probability the joiner may have written: the model's own bounds were applied when it joined.
        var loop = LoopConfig()
        loop.rewardRange = -1e12...1e12
        let text = ExampleGrammar(family: .cbADF, keepsLabels: true)
        // ADF contexts (`_multi`) unless the first file with a decision only has single-line ones.
        var grammar: VWJSONGrammar?
        var events = Events()
        var output: Int32 = -1
        if let work {
            work.remove(eventsFile)
            do { output = try work.create(eventsFile) } catch { throw .storage(error.message) }
        }
        defer { if output >= 0 { close(output) } }
        var pending: [UInt8] = []
        func write(atLeast: Int) throws(EvaluationError) {
            guard output >= 0, pending.count >= atLeast, let work else { return }
            do { try LoopFiles.writeAll(output, pending, path: work.path + "/" + eventsFile) } catch { throw .storage(error.message) }
            pending.removeAll(keepingCapacity: true)
        }
        // One file at a time: what is held is the events kept, not the whole log parsed.
        for number in Joiner.joinedNumbers(joined.list()) {
            let lines: [ArraySlice<UInt8>]
            do { lines = (try joined.read("\(number).dsjson") ?? []).split(separator: 0x0A) } catch { throw .storage(error.message) }
            var input = TrainingInput(lines: lines, json: grammar ?? VWJSONGrammar(isADF: true), text: text, loop: loop)
            if grammar == nil {
                if input.decisions.isEmpty {
                    let single = TrainingInput(lines: lines, json: VWJSONGrammar(isADF: false), text: text, loop: loop)
                    if !single.decisions.isEmpty {
                        input = single
                        grammar = VWJSONGrammar(isADF: false)
                    }
                } else {
                    grammar = VWJSONGrammar(isADF: true)
                }
            }
            events.skipped += input.skipped.map { "joined/\(number).dsjson: " + $0 }
            for (decision, line) in zip(input.decisions, input.bytes.split(separator: 0x0A)) {
                if request.from != nil || request.to != nil {
                    guard let time = decision.timestamp.flatMap(EventLine.milliseconds(timestamp:)),
                          request.from.map({ time >= $0 }) ?? true, request.to.map({ time < $0 }) ?? true else { continue }
                }
                events.decisions.append(decision)
                if output >= 0 {
                    pending += line
                    pending.append(0x0A)
                    try write(atLeast: 1 << 20)
                }
            }
        }
        try write(atLeast: 1)
        return events
    }

    /// The PMF vw prints for each event before learning it.
    static func progressivePMFs(_ tokens: [String], policy: String, input: String, events: Int,
                                request: EvaluationRequest) throws(EvaluationError) -> [[Double]] {
        let arguments = request.vwCommand + ["--dsjson", "-d", input, "-p", "/dev/stdout", "--quiet"] + tokens
        let result = VWProcess.runToEnd(arguments: arguments, memoryLimit: request.memoryLimit, writableDirectory: nil,
                                        deadline: .after(request.timeout), isCancelled: request.isCancelled)
        if request.isCancelled() { throw .cancelled }
        guard result.exitStatus == 0 else {
            throw .vwFailed(policy: policy, reason: result.errorText.isEmpty ? "exit status \(result.exitStatus)" : result.errorText)
        }
        let pmfs = Learner.pmfs(result.output)
        guard pmfs.count == events else {
            throw .vwFailed(policy: policy, reason: "it printed \(pmfs.count) action distributions for \(events) events")
        }
        if let bad = Learner.firstNonDistribution(pmfs) {
            throw .vwFailed(policy: policy, reason: "its output for event \(bad.index) is not a probability distribution (sum \(bad.sum))")
        }
        return pmfs
    }
}

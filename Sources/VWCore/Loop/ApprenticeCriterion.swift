/// Apprentice mode's switch to online (SPEC §9, issue 21): evaluated by the internal trainer at each published
/// update of an apprentice model, on that update's joined decisions (the window).
///
/// Only the decisions logged as the baseline (probability 1) count: what apprentice mode served. Their logged rewards
/// give the baseline's average. The learned policy is its greedy action (the highest probability of vw's progressive
/// prediction, made before learning that decision; the first on a tie, as vw's greedy pick). Its reward is known only
/// where that action is the baseline's; elsewhere it is taken as the loop's `default_reward` (what the loop assumes
/// of an event without a reward), so the estimate never credits the learned policy with a reward nobody saw:
///
///     learned = mean(greedy == logged ? reward : default_reward)      imitation = mean(greedy == logged)
///
/// The criterion is met when at least `min_events` such decisions were seen and
/// `learned − baseline ≥ (threshold − 1) · |baseline|` (with a positive baseline: `learned ≥ threshold × baseline`;
/// `apprentice_threshold` 1.0 by default: as good as the baseline). With rewards above `default_reward`, a policy
/// meets it by agreeing with the baseline wherever the baseline was rewarded; it may differ where the baseline
/// earned no more than the default (where another action could only do as well, or better).
public enum ApprenticeCriterion {
    public struct Evaluation: Sendable, Equatable {
        /// Baseline decisions in the window, and the averages over them.
        public var events: Int
        public var baselineReward: Double
        public var learnedReward: Double
        /// The fraction of them where the learned policy's greedy action is the baseline's.
        public var imitation: Double
        public var threshold: Double
        public var met: Bool
    }

    /// nil without any baseline decision or without one prediction per decision.
    static func evaluate(_ decisions: [TrainingInput.Decision], pmfs: [[Double]], defaultReward: Double, threshold: Double,
                         minEvents: Int) -> Evaluation? {
        guard pmfs.count == decisions.count else { return nil }
        var events = 0, agreed = 0
        var baseline = 0.0, learned = 0.0
        for (decision, pmf) in zip(decisions, pmfs) where decision.probability == 1 && !pmf.isEmpty {
            var greedy = 0
            for (index, p) in pmf.enumerated() where p > pmf[greedy] { greedy = index }
            events += 1
            baseline += decision.reward
            if greedy == decision.action - 1 {
                agreed += 1
                learned += decision.reward
            } else {
                learned += defaultReward
            }
        }
        guard events > 0 else { return nil }
        let n = Double(events)
        let average = (baseline: baseline / n, learned: learned / n)
        let met = events >= minEvents && average.learned - average.baseline >= (threshold - 1) * abs(average.baseline) - 1e-12
        return Evaluation(events: events, baselineReward: average.baseline, learnedReward: average.learned,
                          imitation: Double(agreed) / n, threshold: threshold, met: met)
    }
}

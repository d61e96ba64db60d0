/// The search for better learning settings (`vwfcgi evaluate --optimize`, Personalizer's `enablePolicyOptimization`):
/// a fixed grid of 16 candidates around a base policy, each evaluated progressively like any candidate (SPEC §10).
///
/// The grid: `--cb_type` ips | mtr × `-l` 0.001 | 0.01 | 0.1 | 0.5 × the base's interactions alone | with `-q ::`
/// (every namespace pair). The base keeps its other options (exploration, namespaces); its own `--cb_type` and learning
/// rate are replaced. The winner is the candidate with the highest lower bound of its 95% IPS interval (the method the
/// evaluation shows): the settings whose worst plausible value is best, not the luckiest point estimate.
public enum PolicyGrid {
    public static let cbTypes = ["ips", "mtr"]
    public static let learningRates = ["0.001", "0.01", "0.1", "0.5"]
    /// The name the winner carries among the evaluation's policies.
    public static let optimalName = "Optimized"
    /// The base when the model has no policy of its own (the CLI without --policy).
    public static let defaultBase = "--cb_explore_adf --epsilon 0.2"

    /// The grid's argument strings, in a fixed order (each passes `Evaluator.checkedArguments` when the base does).
    public static func candidates(around base: String) -> [String] {
        let kept = ((try? VWOptions.parse(VWOptions.split(base))) ?? [])
            .filter { !["cb_type", "learning_rate"].contains($0.name) }
        let tokens = kept.flatMap { ["--" + $0.name] + $0.values }.joined(separator: " ")
        let hasAllPairs = kept.contains { $0.name == "quadratic" && $0.values.contains("::") }
        var grid: [String] = []
        for cbType in cbTypes {
            for rate in learningRates {
                let policy = "\(tokens) --cb_type \(cbType) -l \(rate)"
                grid.append(policy)
                if !hasAllPairs { grid.append(policy + " -q ::") }
            }
        }
        return grid
    }

    /// The searched policy with the highest lower bound of its IPS interval (the first one on a tie); nil when none.
    public static func winner(_ searched: [PolicyResult], interval: IntervalMethod) -> PolicyResult? {
        var best: PolicyResult?
        for policy in searched where best.map({ policy.summary.ipsInterval(interval).lower > $0.summary.ipsInterval(interval).lower }) ?? true {
            best = policy
        }
        return best
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A 95% confidence interval.
public struct ConfidenceInterval: Sendable, Equatable {
    public var lower: Double
    public var upper: Double
}

/// Which IPS interval an evaluation shows (table, plot, metrics) and ranks a grid search by; JSON carries both.
public enum IntervalMethod: String, Sendable, CaseIterable {
    /// The normal approximation on the per-event terms (asymptotic).
    case normal
    /// Maurer & Pontil's empirical-Bernstein bound (holds for every n, wider).
    case bernstein
    /// The percentile bootstrap (B = 1000, a fixed seed; computed only when chosen).
    case bootstrap
}

/// What a policy would have earned on logged events, estimated from the logged rewards reweighted by
/// `w = π(logged action | context) / logged probability` (SPEC §10).
///
/// * IPS: `Σ w·r / n`. Its interval is the normal approximation on the per-event terms `w·r`:
///   `IPS ± 1.96 · s / √n`, with `s` their sample standard deviation.
/// * SNIPS: `Σ w·r / Σ w` (self-normalised: bounded by the rewards, lower variance, slightly biased).
///   Its interval is the delta method for a ratio of means: `SNIPS ± 1.96 · √(Σ (w·(r − SNIPS))² / (n(n−1))) / w̄`.
/// * Effective sample size: `(Σ w)² / Σ w²` (n when every weight is 1; small when few events carry the weight).
/// * IPS empirical-Bernstein interval (Maurer & Pontil 2009, Theorem 4, two-sided at δ = 0.05, so ln(4/δ) per side):
///   the terms `w·r` lie in a range of width `R = max(0, W·r_max) − min(0, W·r_min)`, with `W = 1 / p_min` the largest
///   weight any policy can give (`p_min` the smallest logged probability) and `r_min`, `r_max` the rewards logged;
///   `IPS ± (√(2 · V · ln(4/δ) / n) + 7 · R · ln(4/δ) / (3 (n − 1)))`, `V` the sample variance (n − 1) of the terms.
///   Wider than the normal approximation, but it holds for every n, not only asymptotically.
/// * IPS percentile bootstrap (only when asked: B = 1000 resamples of the n terms `w·r`, with replacement): resample
///   b's j-th index is `x mod n` for the SplitMix64 output x number `b·n + j + 1` from seed 22; the interval is the
///   sorted resample means at ranks 25 and 974 (0-based: ⌊0.025·B⌋ and ⌈0.975·B⌉ − 1). Memory: the B means.
public struct OffPolicyEstimate: Sendable, Equatable {
    public var events: Int
    public var ips: Double
    public var ipsInterval: ConfidenceInterval
    /// Nil when every weight is 0 (the policy never chose a logged action).
    public var snips: Double?
    public var snipsInterval: ConfidenceInterval?
    /// The IPS empirical-Bernstein interval; nil without `maxWeight` or with a single event.
    public var ipsBernsteinInterval: ConfidenceInterval?
    /// The IPS percentile-bootstrap interval; nil unless asked for.
    public var ipsBootstrapInterval: ConfidenceInterval?
    public var effectiveSampleSize: Double
    /// Σ w / n: 1 in expectation for any policy; far from 1 says the estimate is unreliable.
    public var meanWeight: Double

    /// The IPS interval of `method` (the normal one when the Bernstein one is undefined: a single event).
    public func ipsInterval(_ method: IntervalMethod) -> ConfidenceInterval {
        switch method {
        case .normal: ipsInterval
        case .bernstein: ipsBernsteinInterval ?? ipsInterval
        case .bootstrap: ipsBootstrapInterval ?? ipsInterval
        }
    }

    /// The 0.975 quantile of the standard normal distribution.
    public static let z = 1.959963984540054

    /// δ of the empirical-Bernstein interval (0.05 for 95%).
    public static let bernsteinDelta = 0.05
    /// The bootstrap's resamples and seed.
    public static let bootstrapResamples = 1000
    public static let bootstrapSeed: UInt64 = 22

    /// The estimate from each event's reward and weight (`rewards.count == weights.count`); nil without events.
    /// `maxWeight` (1 / the smallest logged probability) bounds the terms of the empirical-Bernstein interval.
    /// With `bootstrap`, the percentile-bootstrap interval too.
    public init?(rewards: [Double], weights: [Double], maxWeight: Double? = nil, bootstrap: Bool = false) {
        let n = rewards.count
        guard n > 0, weights.count == n else { return nil }
        var sumW = 0.0, sumW2 = 0.0, sumWR = 0.0
        for (r, w) in zip(rewards, weights) {
            sumW += w
            sumW2 += w * w
            sumWR += w * r
        }
        let count = Double(n)
        events = n
        ips = sumWR / count
        var squares = 0.0
        for (r, w) in zip(rewards, weights) {
            let d = w * r - ips
            squares += d * d
        }
        let ipsError = n > 1 ? (squares / (count - 1)).squareRoot() / count.squareRoot() : 0
        ipsInterval = ConfidenceInterval(lower: ips - Self.z * ipsError, upper: ips + Self.z * ipsError)
        ipsBootstrapInterval = bootstrap ? Self.bootstrapInterval(zip(rewards, weights).map { $0 * $1 }) : nil
        if let maxWeight, n > 1 {
            let range = max(0, maxWeight * rewards.max()!) - min(0, maxWeight * rewards.min()!)
            let log = Glibc.log(4 / Self.bernsteinDelta)
            let half = (2 * (squares / (count - 1)) * log / count).squareRoot() + 7 * range * log / (3 * (count - 1))
            ipsBernsteinInterval = ConfidenceInterval(lower: ips - half, upper: ips + half)
        } else {
            ipsBernsteinInterval = nil
        }
        meanWeight = sumW / count
        effectiveSampleSize = sumW2 > 0 ? sumW * sumW / sumW2 : 0
        if sumW > 0 {
            let ratio = sumWR / sumW
            var residuals = 0.0
            for (r, w) in zip(rewards, weights) {
                let d = w * (r - ratio)
                residuals += d * d
            }
            let error = n > 1 ? (residuals / (count * (count - 1))).squareRoot() / meanWeight : 0
            snips = ratio
            snipsInterval = ConfidenceInterval(lower: ratio - Self.z * error, upper: ratio + Self.z * error)
        } else {
            snips = nil
            snipsInterval = nil
        }
    }

    /// The logging policy's own estimate: every weight is 1, so `w·r` is `r` bit for bit and IPS and SNIPS are the
    /// plain mean of the logged rewards (summed in order, divided by n): exactly the logged average reward.
    public init?(loggedRewards rewards: [Double], bootstrap: Bool = false) {
        self.init(rewards: rewards, weights: [Double](repeating: 1, count: rewards.count), maxWeight: 1, bootstrap: bootstrap)
    }
}

extension OffPolicyEstimate {
    /// The percentile-bootstrap 95% interval of the mean of `terms` (see the type's documentation).
    static func bootstrapInterval(_ terms: [Double]) -> ConfidenceInterval {
        let n = terms.count, resamples = bootstrapResamples
        var random = SplitMix(seed: bootstrapSeed)
        var means = [Double](repeating: 0, count: resamples)
        for b in 0..<resamples {
            var sum = 0.0
            for _ in 0..<n { sum += terms[Int(random.next() % UInt64(n))] }
            means[b] = sum / Double(n)
        }
        means.sort()
        return ConfidenceInterval(lower: means[resamples * 25 / 1000], upper: means[(resamples * 975 + 999) / 1000 - 1])
    }
}

/// Draws one action from a probability mass function, deterministically per event id (SPEC §8.2).
///
/// The generator: the first 8 bytes of SHA-256(event id, UTF-8) as a little-endian seed for
/// SplitMix64; its first output's top 53 bits give `u` in [0, 1). The action is the first one of
/// the PMF, in VW's order, whose cumulative probability exceeds `u × total` (the total absorbs the
/// rounding of VW's printed probabilities). The same event id therefore always gets the same
/// action from the same PMF, on any replica, and over many event ids each action is drawn with
/// its probability.
public enum ActionSampler {
    /// One `action: probability` pair of the PMF, in VW's order.
    public struct Choice: Sendable, Equatable {
        public let action: Int
        public let probability: Double

        public init(action: Int, probability: Double) {
            self.action = action
            self.probability = probability
        }
    }

    /// The position in `pmf` of the action drawn for `eventID`; nil when the PMF is empty or sums to 0.
    public static func draw(from pmf: [Choice], eventID: String) -> Int? {
        let total = pmf.reduce(0.0) { $0 + max(0, $1.probability) }
        guard total > 0, total.isFinite else { return nil }
        let threshold = uniform(eventID) * total
        var cumulative = 0.0
        for (position, choice) in pmf.enumerated() {
            cumulative += max(0, choice.probability)
            if cumulative > threshold { return position }
        }
        // Rounding left `threshold` at the very top: the last action with any probability.
        return pmf.lastIndex { $0.probability > 0 }
    }

    /// `u` in [0, 1) for an event id.
    static func uniform(_ eventID: String) -> Double {
        var hash = SHA256()
        hash.update(Array(eventID.utf8))
        let digest = hash.finalize()
        var seed: UInt64 = 0
        for byte in digest[0..<8].reversed() { seed = seed << 8 | UInt64(byte) }
        // SplitMix64, one step.
        var generator = SplitMix(state: seed)
        return Double(generator.next() >> 11) * 0x1.0p-53
    }
}

/// What a model's vw options mean for the native scorer, or why it cannot reproduce them.
///
/// Only options whose effect on a `-t` prediction of a linear model is known are accepted; any
/// other option (a reduction, a feature transform, a hash seed...) keeps the model on vw.
struct NativeConfiguration: Sendable, Equatable {
    /// In VW's order (`vwOrder`); an ADF model's may hold `:` wildcards (sorted as the byte ':' is, as
    /// VW does when it reads them), expanded per example as VW's `generate_interactions` does.
    var interactions: [[UInt8]] = []
    var addsConstant = true
    var hashesAll = false
    /// `--hash_seed`: the seed of every namespace's hash.
    var hashSeed: UInt32 = 0
    var logisticLink = false
    /// `--ignore`/`--keep` (the namespaces VW drops from every example) and `--ignore_linear`
    /// (those without linear terms), by namespace index.
    var ignored = [Bool](repeating: false, count: 256)
    var ignoredLinear = [Bool](repeating: false, count: 256)
    /// `--oaa K` (0: a scalar model) and `--indexing 0`.
    var classes = 0
    var zeroBasedClasses = false
    /// `-b` when the options state it (it must agree with the file).
    var bits: Int?
    /// Floats per weight record of the online state: 1 + adaptive + normalized.
    var floatsPerRecord = 3
    /// `--cb_adf` / `--cb_explore_adf`: how a multiline example's actions are scored and printed (nil: single-line).
    var adf: NativeADF?

    init() {}

    /// Options that do not change what `-t` predicts for a linear model.
    static let ignored: Set<String> = [
        "quiet", "testonly", "predict_only_model", "random_seed", "id", "loss_function", "quantile_tau",
        "save_resume", "preserve_performance_counters",
    ]

    /// The interactions as VW 9 uses them (`parse_feature_tweaks`): sorted by length then bytes,
    /// duplicates (the same namespaces in any order) removed keeping the first, and each one sorted
    /// when it repeats a namespace next to another (`must_be_left_sorted`).
    static func vwOrder(_ written: [[UInt8]], wildcards: Bool = false) throws(NativeModelError) -> [[UInt8]] {
        for interaction in written {
            if !wildcards && interaction.contains(UInt8(ascii: ":")) { throw .unsupported("interaction wildcards (':')") }
            if interaction.contains(UInt8(ascii: "\\")) { throw .unsupported("escaped namespaces in interactions") }
            if interaction.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) { throw .unsupported("non-ASCII namespaces in interactions") }
            if interaction.count < 2 { throw .unsupported("an interaction of \(interaction.count) namespace") }
        }
        return sortedAndFiltered(written)
    }

    /// `sort_interactions_comparator` then `sort_and_filter_duplicate_interactions`: by length then
    /// bytes, duplicates (the same namespaces in any order) removed keeping the first, each one
    /// sorted when it repeats a namespace next to another (`must_be_left_sorted`).
    static func sortedAndFiltered(_ written: [[UInt8]]) -> [[UInt8]] {
        let ordered = written.sorted { a, b in a.count != b.count ? a.count < b.count : a.lexicographicallyPrecedes(b) }
        var seen = Set<[UInt8]>()
        var result: [[UInt8]] = []
        for interaction in ordered {
            let sorted = interaction.sorted()
            guard seen.insert(sorted).inserted else { continue }
            result.append(mustBeLeftSorted(sorted) ? sorted : interaction)
        }
        return result
    }

    /// `must_be_left_sorted`: a repeated namespace next to a different one ('aab', 'abb').
    static func mustBeLeftSorted(_ terms: [UInt8]) -> Bool {
        guard terms.count > 1 else { return true }
        var differentFound = false
        var pairFound = false
        for index in 0..<(terms.count - 1) {
            if terms[index] == terms[index + 1] {
                if differentFound { return true }
                pairFound = true
            } else {
                if pairFound { return true }
                differentFound = true
            }
        }
        return false
    }
}

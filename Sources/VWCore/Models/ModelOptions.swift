/// What a model's vw options (stored in its file, plus `vw_args` from `<name>.json`) mean for serving.
///
/// Built only from options that passed `VWOptions.check`, so every reduction it describes is one
/// whose output vwfcgi frames.
public struct ModelOptions: Sendable, Equatable {
    /// The label grammar and line shape of the model's examples.
    public let family: ExampleFamily
    /// Whether vw prints a blank line after each answer: for multiline models, and for `--cb N` /
    /// `--cb_explore N` models, whose single-line examples VW 9 runs through `--cb_adf`.
    public let answersEndWithBlankLine: Bool
    /// How to read what vw prints.
    public let predictionKind: PredictionKind
    /// Whether vw needs the labels of a multiline example to predict: `--csoaa_ldf` and `--wap_ldf`
    /// skip unlabeled examples (they print nothing), unless they only serve a contextual-bandit
    /// reduction (`--cb_adf` stores `--csoaa_ldf multiline`).
    public let keepsMultilineLabels: Bool
    /// The namespace tuples of `-q`/`--quadratic`, `--cubic` and `--interactions`, as written
    /// (`ab` → `[0x61, 0x62]`; `:` is VW's any-namespace wildcard). Those of `vw_args` replace the
    /// stored ones, as in VW.
    public let interactions: [[UInt8]]
    /// The values of `--experimental_full_name_interactions` (`user|item`), as written.
    public let fullNameInteractions: [String]
    /// The values of `--lrq` and `--lrqfa` (low-rank interactions, `ab2`), as written.
    public let lowRankInteractions: [String]
    /// The values of `--ngram` and `--skips` (`2`, `a2`), as written.
    public let ngrams: [String]
    public let skips: [String]
    /// The feature table's bits: those stored in the model file's header, else `-b` / `--bit_precision`
    /// from the options, else nil (vw's default, 18).
    public let bits: Int?
    /// Every option, `vw_args` first then those stored in the file (the order vw reads them).
    public let options: [VWOption]

    /// Derives the serving properties from options already checked.
    ///
    /// - Parameters:
    ///   - stored: options stored in the model file.
    ///   - extra: options from `vw_args`, which vw reads first.
    ///   - storedBits: the bits field of the model file's header.
    public init(stored: [VWOption], extra: [VWOption], storedBits: Int? = nil) {
        let options = extra + stored
        let names = Set(options.map(\.name))
        let family = Self.family(names)
        self.family = family
        self.options = options
        keepsMultilineLabels = family == .csoaaLDF
        answersEndWithBlankLine = family.isMultiline
            || (family == .contextualBandit && names.contains("cb_adf") && !names.contains("cb_force_legacy"))
        predictionKind = Self.predictionKind(names, family: family)
        let interactionNames: Set<String> = ["quadratic", "cubic", "interactions"]
        // vw drops the stored interactions when the command line gives any (`check_interaction_settings_collision`).
        let interactionSource = extra.contains { interactionNames.contains($0.name) } ? extra : options
        interactions = interactionSource.filter { interactionNames.contains($0.name) }
            .flatMap(\.values).map { Array($0.utf8) }
        fullNameInteractions = options.filter { $0.name == "experimental_full_name_interactions" }.flatMap(\.values)
        lowRankInteractions = options.filter { $0.name == "lrq" || $0.name == "lrqfa" }.flatMap(\.values)
        ngrams = options.filter { $0.name == "ngram" }.flatMap(\.values)
        skips = options.filter { $0.name == "skips" }.flatMap(\.values)
        bits = storedBits ?? options.first { $0.name == "bit_precision" }?.values.first.flatMap { Int($0) }
    }

    /// Checks the options of a model file's header and the `vw_args` (see `check(stored:extra:)`),
    /// taking the bits from the header.
    public static func check(header: ModelHeader, extra: [String]) throws(LoadError) -> ModelOptions {
        let (stored, extra) = try checked(stored: header.options, extra: extra)
        return ModelOptions(stored: stored, extra: extra, storedBits: header.bits)
    }

    /// Checks the options stored in a model file (its header's tokens) and the `vw_args`, and
    /// derives what they mean for serving.
    public static func check(stored: [String], extra: [String]) throws(LoadError) -> ModelOptions {
        let (stored, extra) = try checked(stored: stored, extra: extra)
        return ModelOptions(stored: stored, extra: extra)
    }

    /// The stored and the extra options, each checked against the allowlist.
    static func checked(stored: [String], extra: [String]) throws(LoadError) -> (stored: [VWOption], extra: [VWOption]) {
        let storedOptions: [VWOption]
        do {
            storedOptions = try VWOptions.check(VWOptions.headerCommandLine(stored))
        } catch {
            switch error {
            case .notAllowed(let option, let reason):
                throw .unreadable("the model file stores vw option \(option), which is not allowed (\(reason))")
            case .unknownOption(let token):
                throw .unreadable("the model file stores unknown vw option \(token)")
            case .malformed(let why):
                throw .unreadable("the vw options stored in the model file are not accepted: \(why)")
            }
        }
        let extraOptions: [VWOption]
        do {
            extraOptions = try VWOptions.check(extra)
        } catch {
            throw .invalidConfig("vw_args: \(error.reason)")
        }
        return (storedOptions, extraOptions)
    }

    /// The example family of a reduction stack, the outermost reduction first.
    static func family(_ names: Set<String>) -> ExampleFamily {
        // Each stack stores the reductions beneath it: ccb and slates store cb_explore_adf, cb_adf
        // and csoaa_ldf; `--cb N` and cbify store cb_adf (or csoaa with --cb_force_legacy).
        if names.contains("slates") { return .slates }
        if names.contains("ccb_explore_adf") { return .ccb }
        if names.contains("cbify") { return names.contains("cbify_cs") ? .costSensitive : .multiclass }
        if names.contains("cb") || names.contains("cb_explore") { return .contextualBandit }
        if names.contains("cb_adf") || names.contains("cb_explore_adf") { return .cbADF }
        if names.contains("csoaa_ldf") || names.contains("wap_ldf") { return .csoaaLDF }
        if names.contains("multilabel_oaa") || names.contains("plt") { return .multilabel }
        if names.contains("csoaa") { return .costSensitive }
        if !names.isDisjoint(with: ["oaa", "ect", "log_multi", "recall_tree"]) { return .multiclass }
        return .simple
    }

    /// How to read what vw prints for a reduction stack.
    static func predictionKind(_ names: Set<String>, family: ExampleFamily) -> PredictionKind {
        switch family {
        case .slates, .ccb: return .actionProbabilities
        case .contextualBandit, .cbADF:
            // cbify prints the chosen action although an explore reduction runs beneath.
            if names.contains("cb_explore") || names.contains("cb_explore_adf") { return .actionProbabilities }
            // `--rank_all` makes cb_adf print every action with its score instead of the chosen one.
            return names.contains("rank_all") ? .actionScores : .plain
        case .csoaaLDF:
            return names.contains("csoaa_rank") ? .actionScores : .plain
        case .simple, .multiclass, .multilabel, .costSensitive:
            return .plain
        }
    }
}

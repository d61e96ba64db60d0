// Over 400 lines on purpose: VW's option table (the allowlist) and its one parser; the table is data, read top to
// bottom.
import Glibc

/// How many values an option takes on VW's command line.
public enum VWOptionArity: Sendable, Equatable {
    /// A switch: `--noconstant`.
    case flag
    /// Exactly one value: `--oaa 3`, `--oaa=3`, `-b18`.
    case value
    /// One value or more, up to the next token that looks like an option: `-q ab cd`.
    case list
}

/// One option as vw reads it: its long name without dashes and the values it took, in order.
public struct VWOption: Sendable, Equatable {
    /// VW's long name, e.g. `bit_precision` for `-b`.
    public let name: String
    public let values: [String]

    public init(name: String, values: [String] = []) {
        self.name = name
        self.values = values
    }
}

/// Why a list of vw options cannot be served.
public enum VWOptionsError: Error, Equatable, Sendable {
    /// An option name VW 9 does not know (or one vwfcgi does not know), as written.
    case unknownOption(String)
    /// A known option that is not on the allowlist: `--daemon`, "opens a network port".
    case notAllowed(option: String, reason: String)
    /// Tokens VW would read in a way vwfcgi does not accept (a stray value, a missing value, ...).
    case malformed(String)

    /// A short human-readable reason.
    public var reason: String {
        switch self {
        case .unknownOption(let token): "unknown vw option \(token)"
        case .notAllowed(let option, let reason): "option \(option) is not allowed (\(reason))"
        case .malformed(let why): why
        }
    }
}

/// VW's option grammar and the allowlist of options that are safe at prediction time.
///
/// VW 9 (`vowpalwabbit/config/src/options_cli.cc`) reads a command line as: `--name` or
/// `--name=value` (exact long names, no abbreviations), `-x` or `-xVALUE` (one-letter names); a
/// switch takes no value, a scalar option takes the next token whatever it looks like, a list
/// option takes the next token and every following token that does not look like an option
/// (`-5` is a number, not an option). Anything else is positional: vw reads it as a data file.
///
/// The options stored in a model file are split on any whitespace (`std::istream >>`), grouped by
/// the preceding `--name` (`parse_model_command_line_legacy`: a short `-x` there is a *value*),
/// and appended to the command line as `--name value` pairs, which are then read as above.
///
/// This parser is stricter than VW where VW is ambiguous: a value that looks like an option
/// (VW parses the command line several times while reductions register their options, so
/// such a token may be read as a value in one pass and as an option in another), a positional
/// token, `--`, a control character, or a short option followed by a long option's name
/// (VW's `was_supplied` also matches `-daemon` as "daemon") are refused.
public enum VWOptions {
    /// What vwfcgi knows about an option: its arity and, when it is refused, why.
    public struct Spec: Sendable, Equatable {
        public let arity: VWOptionArity
        /// Nil when the option is allowed; otherwise a reason such as "opens a network port".
        public let refusal: String?
    }

    /// Options of one verdict, by arity.
    struct OptionGroup {
        let refusal: String?
        var flags: [String] = []
        var values: [String] = []
        var lists: [String] = []
    }

    /// The one-letter forms VW 9 knows, with their long names.
    public static let shortNames: [Character: String] = [
        "a": "audit", "b": "bit_precision", "C": "constant", "c": "cache", "d": "data", "f": "final_regressor",
        "h": "help", "i": "initial_regressor", "k": "kill_cache", "l": "learning_rate", "P": "progress",
        "p": "predictions", "q": "quadratic", "r": "raw_predictions", "t": "testonly",
    ]

    /// Every option VW 9.11 prints in `vw --help`, each allowed (`refusal: nil`) or refused with a reason.
    ///
    /// An option is allowed only when it changes nothing but the computation: it does not read or
    /// write a file, open a socket, change what vw prints for an example beyond what vwfcgi frames,
    /// or stop vw early.
    static let groups: [OptionGroup] = [
        OptionGroup(
            refusal: nil,
            flags: [
                "adaptive", "adax", "all_slots_loss", "baseline", "baseline_challenger_cb", "batch_sz_no_doubling",
                "bfgs", "binary", "cb_adf", "cb_dro", "cb_explore_adf", "cb_force_legacy", "cb_sample", "cbify_cs",
                "ccb_explore_adf", "ccb_no_slot_index", "check_enabled", "coin", "compete", "conjugate_gradient",
                "csoaa_rank", "dont_output_best_constant", "dropout", "elim", "first_only", "flip_loss_sign",
                "freegrad", "ftrl", "global_only", "graph_feedback", "greedify", "hessian_on", "inpass", "invariant",
                "ksvm", "large_action_space", "las_hint_explicit_simd", "leave_duplicate_interactions", "lrqdropout",
                "meanfield", "multitask", "no_bias_regularization", "no_progress", "noconstant", "node_only", "noop",
                // Only shapes what `-f` saves (vwfcgi never passes `-f`); VW 9 needs it to read a BFGS model.
                "predict_only_model",
                "normal_weights", "normalized", "nounif", "OjaNewton", "para_active", "per_model_save_load",
                "permutations", "pistol", "plt_force_load_legacy_model", "pool_greedy", "probabilities", "project",
                "quiet", "random_weights", "randomized_routing", "rank_all", "regcb", "regcbopt", "restart",
                "scores", "sgd", "slates", "softmax", "sort_features", "sparse_weights", "squarecb", "stage_poly",
                "svrg", "synthcover", "testonly", "truncated_normal_weights", "two_pass_svd", "unweighted_marginals",
                "update_before_learn",
            ],
            values: [
                "action_cache_slack", "affix", "alg", "alpha", "alpha_inverse", "autolink", "bag", "bandwidth",
                "batch_sz", "bern_hyper", "bit_precision", "block_size", "boosting", "bootstrap", "bs_type", "cb",
                "cb_c_alpha", "cb_c_tau", "cb_dro_alpha", "cb_dro_tau", "cb_dro_wmax", "cb_explore", "cb_max_cost",
                "cb_min_cost", "cb_to_cbadf", "cb_type", "cbify", "clip_p", "constant", "cover", "csoaa",
                "csoaa_ldf", "decay", "decay_learning_rate", "degree", "ect", "epoch_size", "epsilon", "error",
                "example_queue_limit", "expectile_q", "fepsilon", "first", "flipschitz_const", "ftrl_alpha",
                "ftrl_beta", "gamma", "gamma_exponent", "gamma_scale", "hash", "hash_seed", "indexing",
                "initial_denominator", "initial_numerator", "initial_t", "initial_weight", "interact", "kary_tree",
                "kernel", "l1", "l1_state", "l2", "l2_state", "lambda", "ldf_override", "learning_rate",
                "learning_rate_cnt", "link", "log_multi", "logistic_max", "logistic_min", "loss0", "loss1",
                "loss_function", "lr_multiplier", "lrqfa", "marginal", "max_actions", "max_candidates", "max_depth",
                "max_prediction", "max_value", "mellowness", "mem", "min_prediction", "min_value", "multilabel_oaa",
                "named_labels", "new_mf", "nn", "normalize", "oaa", "oaa_subsample", "plt", "pool_size", "power_t",
                "psi", "quantile_tau", "radius", "random_init", "random_seed", "rank", "recall_tree", "reprocess",
                "ring_size", "rnd", "rnd_alpha", "rnd_invlambda", "sched_exponent", "sketch_size", "spanner_c",
                "sparse_l2", "stage_size", "subsample", "swap_resistance", "synthcoverpsi", "synthcoversize",
                "termination", "thread_pool_size", "threshold", "top_k", "wap_ldf",
            ],
            lists: [
                "classweight", "cubic", "experimental_full_name_interactions", "feature_limit", "ignore",
                "ignore_linear", "interactions", "keep", "lrq", "ngram", "quadratic", "redefine", "skips",
                "spelling",
            ]
        ),
        OptionGroup(
            refusal: "opens a network port",
            flags: [
                "daemon", "foreground", "no_daemon",
            ],
            values: [
                "num_children", "port",
            ]
        ),
        OptionGroup(
            refusal: "writes a file",
            flags: [
                "cache", "csv_trace", "dump_json_weights_include_extra_online_state_experimental",
                "dump_json_weights_include_feature_names_experimental", "hexfloat_weights", "kill_cache",
                "preserve_performance_counters", "save_per_pass", "save_resume",
            ],
            values: [
                "audit_regressor", "dump_json_weights_experimental", "epsilon_decay_audit", "extra_metrics",
                "final_regressor", "invert_hash", "output_feature_regularizer_binary",
                "output_feature_regularizer_text", "pid_file", "port_file", "predictions", "raw_predictions",
                "readable_model",
            ],
            lists: [
                "cache_file",
            ]
        ),
        OptionGroup(
            refusal: "connects to a server",
            values: [
                "node", "sendto", "span_server", "span_server_port", "total", "unique_id",
            ]
        ),
        OptionGroup(
            refusal: "reads a file",
            values: [
                "data", "feature_mask", "input_feature_regularizer",
            ],
            lists: [
                "dictionary", "dictionary_path", "initial_regressor",
            ]
        ),
        OptionGroup(
            refusal: "changes the input format vwfcgi writes",
            flags: [
                "compressed", "csv", "csv_no_file_header", "dsjson", "flatbuffer", "json", "no_stdin",
            ],
            values: [
                "csv_header", "csv_ns_value", "csv_separator",
            ]
        ),
        OptionGroup(
            // A model file's id field is read as ` --id <id>`, so what it holds is read as options too.
            refusal: "a model id is not used for serving",
            values: ["id"]
        ),
        OptionGroup(
            // Stored by models trained on JSON; they change only how JSON is hashed, and vw reads text here.
            refusal: nil,
            flags: ["chain_hash"],
            lists: ["ignore_features_dsjson_experimental"]
        ),
        OptionGroup(
            refusal: "stops vw before it serves",
            flags: [
                "dry_run", "help", "version",
            ],
            values: [
                "examples",
            ]
        ),
        OptionGroup(
            refusal: "stops vw on a malformed example",
            flags: [
                "strict_parse",
            ]
        ),
        OptionGroup(
            refusal: "changes what vw prints",
            flags: [
                "audit", "confidence", "confidence_after_training", "driver_output_off", "metrics", "no_predict",
                "print", "verbose_metrics",
            ],
            values: [
                "driver_output", "limit_output", "log_level", "log_output", "progress",
            ]
        ),
        OptionGroup(
            refusal: "only used for training",
            flags: [
                "cs_absolute_loss", "holdout_off",
            ],
            values: [
                "early_terminate", "holdout_after", "holdout_period", "initial_pass_length", "passes", "replay_b",
                "replay_b_count", "replay_c", "replay_c_count", "replay_m", "replay_m_count",
            ]
        ),
        OptionGroup(
            refusal: "active learning opens a port",
            flags: [
                "active", "simulation",
            ]
        ),
        OptionGroup(
            refusal: "active learning is not supported",
            flags: [
                "active_cover", "csa_debug", "direct", "oracular",
            ],
            values: [
                "beta_scale", "cost_max", "cost_min", "cs_active", "domination", "max_labels", "min_labels",
                "range_c",
            ]
        ),
        OptionGroup(
            refusal: "structured prediction output is not supported",
            flags: [
                "search_linear_ordering", "search_no_caching", "search_xv",
            ],
            values: [
                "search", "search_active_verify", "search_allowed_transitions", "search_alpha", "search_beta",
                "search_history_length", "search_interpolation", "search_metatask", "search_neighbor_features",
                "search_passes_per_policy", "search_perturb_oracle", "search_rollin", "search_rollout",
                "search_rollout_num_steps", "search_save_every_k_runs", "search_subsample_time", "search_task",
                "search_total_nb_policies", "search_trained_nb_policies",
            ]
        ),
        OptionGroup(
            refusal: "top-k output is not supported",
            values: [
                "top",
            ]
        ),
        OptionGroup(
            refusal: "continuous-action output is not supported",
            flags: [
                "cb_discrete", "cb_explore_pdf", "cbify_reg", "cbzo", "get_pmf", "sample_pdf",
            ],
            values: [
                "cats", "cats_pdf", "cats_tree", "loss_01_ratio", "loss_option", "loss_report", "pmf_to_pdf",
                "policy", "tree_bandwidth",
            ]
        ),
        OptionGroup(
            refusal: "policy evaluation is not supported",
            flags: [
                "eval", "exclude_eval", "explore_eval",
            ],
            values: [
                "learn", "multiplier", "multiworld_test", "target_rate",
            ]
        ),
        OptionGroup(
            refusal: "online model selection is not supported",
            flags: [
                "challenger_epsilon", "constant_epsilon", "debug_reversed_learn", "epsilon_decay",
                "fixed_significance_level", "reward_as_cost",
            ],
            values: [
                "automl", "automl_significance_level", "bonferroni_denominator", "default_lease",
                "epsilon_decay_significance_level", "initial_epsilon", "interaction_type", "min_champ_examples",
                "min_scope", "model_count", "opt_func", "oracle_type", "priority_challengers", "priority_type",
                "shift_model_bounds", "tol_x",
            ]
        ),
        OptionGroup(
            refusal: "its output is not supported by vwfcgi",
            flags: [
                "cbify_ldf", "emt", "experimental_igl", "interaction_update", "learn_at_leaf", "oas", "online",
                "sim_bandit", "warm_cb_cs", "warm_start_update",
            ],
            values: [
                "choices_lambda", "corrupt_prob_warm_start", "corrupt_type_warm_start", "dream_at_update",
                "dream_repeats", "emt_initial", "emt_leaf", "emt_router", "emt_scorer", "emt_tree", "interaction",
                "lambda_scheme", "lda", "lda_alpha", "lda_D", "lda_epsilon", "lda_rho", "leaf_example_multiplier", "math-mode",
                "max_number_of_labels", "memory_tree", "minibatch", "ot", "overwrite_label", "top_K", "warm_cb",
                "warm_start",
            ]
        ),
    ]

    /// Every known option by long name.
    public static let specs: [String: Spec] = {
        var specs: [String: Spec] = [:]
        for group in groups {
            for name in group.flags { specs[name] = Spec(arity: .flag, refusal: group.refusal) }
            for name in group.values { specs[name] = Spec(arity: .value, refusal: group.refusal) }
            for name in group.lists { specs[name] = Spec(arity: .list, refusal: group.refusal) }
        }
        return specs
    }()

    /// Names of the refused options, longest first (for the `-name` prefix check).
    static let refusedNames: [String] = specs.filter { $0.value.refusal != nil }.map(\.key)
        .sorted { $0.utf8.count > $1.utf8.count }

    // MARK: Tokens

    /// Splits an options string the way `std::istream >> std::string` does: on space, TAB,
    /// newline, vertical tab, form feed and carriage return.
    public static func split(_ text: String) -> [String] {
        text.utf8.split(whereSeparator: isSpace).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether a byte is C `isspace` in the "C" locale.
    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }

    /// Whether VW reads a token as a number (`strtof` consumes it whole), so not as a short option.
    static func isNumber(_ token: String) -> Bool {
        guard !token.isEmpty else { return false }
        return token.withCString { start in
            var end: UnsafeMutablePointer<CChar>?
            _ = strtof(start, &end)
            return end.map { $0.pointee == 0 } ?? false
        }
    }

    static func isLongOptionLike(_ token: String) -> Bool { token.hasPrefix("--") && token.utf8.count > 2 }

    static func isShortOptionLike(_ token: String) -> Bool {
        token.hasPrefix("-") && token.utf8.count > 1 && !token.hasPrefix("--") && !isNumber(token)
    }

    /// Whether VW would stop a list option's values at this token (`is_option_like`).
    static func isOptionLike(_ token: String) -> Bool {
        isLongOptionLike(token) || isShortOptionLike(token) || token == "--"
    }

    /// The command line VW appends for the option tokens stored in a model file.
    ///
    /// Each `--name` starts a group; every following token up to the next `--name` is one of its
    /// values, short options included. Groups of the same name are merged. Each value becomes
    /// `--name value`, a group without values `--name`.
    public static func headerCommandLine(_ tokens: [String]) throws(VWOptionsError) -> [String] {
        var order: [String] = []
        var values: [String: [String]] = [:]
        var current: String?
        for token in tokens {
            if isLongOptionLike(token) {
                if values[token] == nil {
                    order.append(token)
                    values[token] = []
                }
                current = token
            } else if let current {
                values[current, default: []].append(token)
            } else {
                throw .malformed("\(token) before any option")
            }
        }
        var commandLine: [String] = []
        for option in order {
            let optionValues = values[option] ?? []
            if optionValues.isEmpty { commandLine.append(option) }
            for value in optionValues { commandLine += [option, value] }
        }
        return commandLine
    }

    /// Reads command-line tokens as VW does, every name resolved to its long form. Does not judge
    /// whether the options are allowed (see `check`), only that VW knows them and reads them unambiguously.
    public static func parse(_ tokens: [String]) throws(VWOptionsError) -> [VWOption] {
        try read(tokens, refusing: false)
    }

    /// Parses the tokens and refuses the first option that is not allowed.
    public static func check(_ tokens: [String]) throws(VWOptionsError) -> [VWOption] {
        try read(tokens, refusing: true)
    }

    /// Reads the tokens; with `refusing`, a refused option is reported as soon as its name is read.
    static func read(_ tokens: [String], refusing: Bool) throws(VWOptionsError) -> [VWOption] {
        var options: [VWOption] = []
        var index = 0
        for token in tokens {
            if token.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0x20 }) {
                throw .malformed("option token \(visible(token)) contains whitespace or a control character")
            }
            // VW's `was_supplied` also counts any token starting with "-name" as option `name`.
            if refusing, token.hasPrefix("-"), !token.hasPrefix("--"),
               let name = refusedNames.first(where: { token.dropFirst().hasPrefix($0) }) {
                throw .notAllowed(option: "--" + name, reason: specs[name]!.refusal! + ", written as \(token)")
            }
            // Any token that names a refused option is reported as such, wherever it stands.
            if refusing, let name = optionName(token), let refusal = specs[name]?.refusal {
                throw .notAllowed(option: "--" + name, reason: refusal)
            }
        }
        while index < tokens.count {
            let token = tokens[index]
            index += 1
            let name: String
            let written: String
            var values: [String] = []
            if isLongOptionLike(token) {
                let body = token.dropFirst(2)
                if let equals = body.firstIndex(of: "=") {
                    name = String(body[..<equals])
                    let value = String(body[body.index(after: equals)...])
                    guard !value.isEmpty else { throw .malformed("no value after = in \(token)") }
                    values.append(value)
                } else {
                    name = String(body)
                }
                written = "--" + name
                guard !name.isEmpty, specs[name] != nil else { throw .unknownOption(written) }
            } else if isShortOptionLike(token) {
                let letter = token.dropFirst().first!
                written = "-" + String(letter)
                guard let long = shortNames[letter] else { throw .unknownOption(written) }
                name = long
                let attached = token.dropFirst(2)
                if !attached.isEmpty { values.append(String(attached)) }
            } else if token == "--" {
                throw .malformed("-- (vw would read what follows as data files)")
            } else {
                throw .malformed("unexpected value \(token) (vw would read it as a data file)")
            }
            let spec = specs[name]!
            if refusing, let refusal = spec.refusal { throw .notAllowed(option: "--" + name, reason: refusal) }
            switch spec.arity {
            case .flag:
                guard values.isEmpty else { throw .malformed("option \(written) takes no value, found \(values[0])") }
            case .value, .list:
                if values.isEmpty {
                    guard index < tokens.count else { throw .malformed("option \(written) needs a value") }
                    guard !isOptionLike(tokens[index]) else {
                        throw .malformed("option \(written) needs a value, found \(tokens[index])")
                    }
                    values.append(tokens[index])
                    index += 1
                }
                if spec.arity == .list {
                    while index < tokens.count, !isOptionLike(tokens[index]) {
                        values.append(tokens[index])
                        index += 1
                    }
                }
            }
            if let value = values.first(where: { isOptionLike($0) }) {
                throw .malformed("option \(written) has a value that looks like an option: \(value)")
            }
            if written.utf8.count == 2, !shortValueIsValid(name: name, values: values) {
                throw .malformed("option \(written) needs a number, found \(values.first ?? "")")
            }
            options.append(VWOption(name: name, values: values))
        }
        return options
    }

    /// The long name a token stands for when it looks like an option (`--name`, `--name=value`, `-x...`).
    static func optionName(_ token: String) -> String? {
        if isLongOptionLike(token) { return String(token.dropFirst(2).prefix { $0 != "=" }) }
        if isShortOptionLike(token) { return shortNames[token.dropFirst().first!] }
        return nil
    }

    /// Whether the value of a numeric short option is a number (`-bandwidth` is not `-b andwidth`).
    static func shortValueIsValid(name: String, values: [String]) -> Bool {
        switch name {
        case "bit_precision": values.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy { $0 &- 0x30 < 10 } }
        case "learning_rate", "constant": values.allSatisfy(isNumber)
        default: true
        }
    }

    /// The token with control characters shown as `\u{..}`.
    static func visible(_ token: String) -> String {
        var out = ""
        for scalar in token.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension NativeConfiguration {
    /// Reads the options vw loads the model with (stored in the file, then `vw_args`).
    init(options: ModelOptions) throws(NativeModelError) {
        // Named first, whatever the options' order: the explorer is why such a model stays on vw.
        let explorers: Set<String> = [
            "softmax", "bag", "cover", "squarecb", "rnd", "regcb", "regcbopt", "synthcover", "first", "graph_feedback",
            "large_action_space", "cb_sample",
        ]
        if let explorer = options.options.first(where: { explorers.contains($0.name) }) {
            throw .unsupported("--\(explorer.name) (of cb_explore_adf's explorers only epsilon-greedy is reproduced)")
        }
        var updateRules: Set<String> = []
        var values: [String: [String]] = [:]
        var keeps: [UInt8]?
        var adf = NativeADF()
        var adfOptions: [String] = []
        var linearOnly: [String] = []
        for option in options.options where !["quadratic", "cubic", "interactions"].contains(option.name) {
            // The same option twice with different values (file and vw_args): which one vw takes is not ours to guess.
            if let earlier = values[option.name], earlier != option.values {
                throw .unsupported("--\(option.name) given twice with different values")
            }
            values[option.name] = option.values
        }
        for option in options.options {
            switch option.name {
            case "quadratic", "cubic", "interactions":
                break  // ModelOptions already chose the stored or the vw_args interactions.
            case "cb_adf", "cb_explore_adf", "epsilon", "cb_type", "csoaa_ldf", "csoaa_rank", "rank_all", "learning_rate", "power_t":
                try adf.read(option)
                adfOptions.append(option.name)
            case "noconstant":
                addsConstant = false
            case "hash":
                hashesAll = try Self.choice(option, ["strings": false, "all": true])
            case "hash_seed":
                guard let value = option.values.first, let seed = UInt32(value) else { throw .unsupported("--hash_seed \(option.values)") }
                hashSeed = seed
            case "link":
                linearOnly.append(option.name)
                logisticLink = try Self.choice(option, ["identity": false, "logistic": true])
            case "bit_precision":
                guard let value = option.values.first, let bits = Int(value) else { throw .unsupported("-b \(option.values)") }
                if let earlier = self.bits, earlier != bits { throw .unsupported("two different -b") }
                self.bits = bits
            case "oaa":
                guard let value = option.values.first, let k = Int(value), (1...1024).contains(k) else {
                    throw .unsupported("--oaa \(option.values)")
                }
                classes = k
                linearOnly.append(option.name)
            case "indexing":
                linearOnly.append(option.name)
                guard let value = option.values.first, value == "0" || value == "1" else { throw .unsupported("--indexing \(option.values)") }
                zeroBasedClasses = value == "0"
            case "ignore", "ignore_linear", "keep":
                linearOnly.append(option.name)
                // `parse_feature_tweaks`: every byte of every value names a namespace.
                let bytes = option.values.flatMap { Array($0.utf8) }
                guard !bytes.contains(UInt8(ascii: "\\")) else { throw .unsupported("escaped namespaces in --\(option.name)") }
                if option.name == "keep" { keeps = (keeps ?? []) + bytes }
                for byte in bytes where option.name != "keep" {
                    if option.name == "ignore" { ignored[Int(byte)] = true } else { ignoredLinear[Int(byte)] = true }
                }
            case "sgd", "adaptive", "normalized", "invariant":
                updateRules.insert(option.name)
            case "loss_function":
                guard let loss = option.values.first, ["squared", "logistic", "quantile", "hinge"].contains(loss) else {
                    throw .unsupported("--loss_function \(option.values.first ?? "")")
                }
                linearOnly.append(option.name)
            default:
                if !Self.ignored.contains(option.name) { throw .unsupported("--\(option.name)") }
            }
        }
        if let keeps {
            // `--keep`: every namespace is ignored but those named (after any `--ignore`).
            for index in 0..<256 { ignored[index] = !keeps.contains(UInt8(index)) }
        }
        if !updateRules.isEmpty {
            // `gd_setup`: naming any update rule turns off the defaults (adaptive, normalized, invariant).
            floatsPerRecord = 1 + (updateRules.contains("adaptive") ? 1 : 0) + (updateRules.contains("normalized") ? 1 : 0)
        }
        guard options.fullNameInteractions.isEmpty, options.lowRankInteractions.isEmpty,
              options.ngrams.isEmpty, options.skips.isEmpty
        else { throw .unsupported("full-name, low-rank or n-gram features") }
        if adfOptions.contains("cb_adf") || adfOptions.contains("cb_explore_adf") {
            // Only what the ADF differential test covers: no link, loss, class or namespace-dropping option.
            if let option = linearOnly.first { throw .unsupported("--\(option) with --cb_adf") }
            try adf.check(options: Set(adfOptions))
            self.adf = adf
            interactions = try Self.vwOrder(options.interactions, wildcards: true)
        } else {
            if let option = adfOptions.first { throw .unsupported("--\(option)") }
            interactions = try Self.vwOrder(options.interactions)
        }
    }

    /// The meaning of a two-way option's value (`--hash strings|all`, `--link identity|logistic`).
    private static func choice(_ option: VWOption, _ choices: [String: Bool]) throws(NativeModelError) -> Bool {
        guard let value = option.values.first, let chosen = choices[value] else {
            throw .unsupported("--\(option.name) \(option.values.first ?? "")")
        }
        return chosen
    }
}

extension NativeScorer {
    /// Builds the scorer of a model: its options (stored and `vw_args`) and its file's bytes.
    public static func load(options: ModelOptions, file bytes: [UInt8]) throws(NativeModelError) -> NativeScorer {
        try load(configuration: NativeConfiguration(options: options), file: bytes)
    }

    /// Builds the scorer from a configuration already read from the options, and the file's bytes.
    static func load(configuration: NativeConfiguration, file bytes: [UInt8]) throws(NativeModelError) -> NativeScorer {
        let file = try NativeModelFile.parse(
            bytes, floatsPerRecord: configuration.floatsPerRecord, reductionBytes: configuration.adf == nil ? 0 : 16
        )
        if let stated = configuration.bits, stated != file.bits {
            throw .unsupported("-b \(stated) in the options but \(file.bits) in the file")
        }
        return NativeScorer(file: file, configuration: configuration)
    }
}

import Foundation
import Testing
import VWCore

@Suite struct VWOptionsTests {
    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/families/\(name).vw").path
    }

    /// The checked options of a model header string, as stored in a model file.
    static func stored(_ text: String) throws(LoadError) -> ModelOptions {
        try ModelOptions.check(stored: VWOptions.split(text), extra: [])
    }

    /// The reason a header string is refused, or nil when it is accepted.
    static func storedRefusal(_ text: String) -> String? {
        do {
            _ = try stored(text)
            return nil
        } catch {
            return error.description
        }
    }

    /// The reason `vw_args` are refused by `<name>.json`, or nil when they are accepted.
    static func configRefusal(_ args: [String]) -> String? {
        let json = "{\"vw_args\": [" + args.map { "\"\($0)\"" }.joined(separator: ", ") + "]}"
        do {
            _ = try ModelConfig.parse(Array(json.utf8))
            return nil
        } catch {
            return error.description
        }
    }

    // MARK: Tokens

    @Test func headerStringsSplitOnAnyWhitespace() {
        #expect(VWOptions.split(" --oaa 3") == ["--oaa", "3"])
        #expect(VWOptions.split("--oaa\t3\n--daemon\r--port\u{0B}26542\u{0C}--quiet  ") ==
                ["--oaa", "3", "--daemon", "--port", "26542", "--quiet"])
        #expect(VWOptions.split("") == [])
    }

    @Test func headerTokensAreGroupedAsVWDoes() throws {
        // A short option in a header is a value of the option before it; vw re-reads it as an option.
        #expect(try VWOptions.headerCommandLine(["--quiet", "-f", "/tmp/x"]) == ["--quiet", "-f", "--quiet", "/tmp/x"])
        #expect(try VWOptions.headerCommandLine(["--interactions", "ab", "--oaa", "3", "--interactions", "cd"])
                == ["--interactions", "ab", "--interactions", "cd", "--oaa", "3"])
        #expect(throws: VWOptionsError.malformed("3 before any option")) { try VWOptions.headerCommandLine(["3", "--oaa"]) }
    }

    @Test func longShortEqualsAndAttachedValues() throws {
        #expect(try VWOptions.parse(["--oaa=3", "-b18", "-b", "20", "--link", "logistic", "-q", "ab", "cd", "--cubic=abc", "-l", "-0.5", "-t"]) == [
            VWOption(name: "oaa", values: ["3"]), VWOption(name: "bit_precision", values: ["18"]),
            VWOption(name: "bit_precision", values: ["20"]), VWOption(name: "link", values: ["logistic"]),
            VWOption(name: "quadratic", values: ["ab", "cd"]), VWOption(name: "cubic", values: ["abc"]),
            VWOption(name: "learning_rate", values: ["-0.5"]), VWOption(name: "testonly"),
        ])
        #expect(try VWOptions.parse(["-qab", "--noconstant"]) == [VWOption(name: "quadratic", values: ["ab"]), VWOption(name: "noconstant")])
    }

    @Test func ambiguousTokensAreRefused() {
        #expect(throws: VWOptionsError.malformed("option --link needs a value, found --daemon")) { try VWOptions.parse(["--link", "--daemon"]) }
        #expect(throws: VWOptionsError.malformed("option --oaa needs a value")) { try VWOptions.parse(["--oaa"]) }
        #expect(throws: VWOptionsError.malformed("option --noconstant takes no value, found 1")) { try VWOptions.parse(["--noconstant=1"]) }
        #expect(throws: VWOptionsError.malformed("option -t takes no value, found 5")) { try VWOptions.parse(["-t5"]) }
        #expect(throws: VWOptionsError.malformed("unexpected value /etc/passwd (vw would read it as a data file)")) {
            try VWOptions.parse(["--noconstant", "/etc/passwd"])
        }
        #expect(throws: VWOptionsError.malformed("-- (vw would read what follows as data files)")) { try VWOptions.parse(["--", "x"]) }
        #expect(throws: VWOptionsError.malformed("no value after = in --link=")) { try VWOptions.parse(["--link="]) }
        #expect(throws: VWOptionsError.malformed("option -b needs a number, found andwidth")) { try VWOptions.parse(["-bandwidth"]) }
        #expect(throws: VWOptionsError.malformed("option --link has a value that looks like an option: --daemon")) {
            try VWOptions.parse(["--link=--daemon"])
        }
        #expect(throws: VWOptionsError.self) { try VWOptions.parse(["--link logistic"]) }
        #expect(throws: VWOptionsError.self) { try VWOptions.parse(["--oaa", "3\n"]) }
    }

    @Test func unknownAndAbbreviatedOptionsAreRefused() {
        // VW 9 matches long names exactly: `--bit_prec` is an unrecognised option, not `--bit_precision`.
        #expect(throws: VWOptionsError.unknownOption("--foo")) { try VWOptions.parse(["--foo"]) }
        #expect(throws: VWOptionsError.unknownOption("--bit_prec")) { try VWOptions.parse(["--bit_prec", "18"]) }
        #expect(throws: VWOptionsError.unknownOption("-x")) { try VWOptions.parse(["-x"]) }
        #expect(Self.storedRefusal("--oaa 3 --foo") == "cannot read model: the model file stores unknown vw option --foo")
        #expect(Self.configRefusal(["--foo"]) == "invalid config: vw_args: unknown vw option --foo")
    }

    // MARK: Allowlist

    @Test(arguments: [
        ("--daemon", "opens a network port"), ("--port 26542", "opens a network port"),
        ("--num_children 2", "opens a network port"), ("--foreground", "opens a network port"),
        ("--port_file /tmp/p", "writes a file"), ("--pid_file /tmp/p", "writes a file"),
        ("-f /tmp/m", "writes a file"), ("--final_regressor=/tmp/m", "writes a file"),
        ("--readable_model /tmp/r", "writes a file"), ("--invert_hash /tmp/r", "writes a file"),
        ("--save_per_pass", "writes a file"), ("--output_feature_regularizer_binary /tmp/r", "writes a file"),
        ("--output_feature_regularizer_text /tmp/r", "writes a file"), ("-p /tmp/p", "writes a file"),
        ("-r /tmp/r", "writes a file"), ("-c", "writes a file"), ("--cache_file /tmp/c", "writes a file"),
        ("-k", "writes a file"), ("--dump_json_weights_experimental /tmp/j", "writes a file"),
        ("--epsilon_decay_audit /tmp/a", "writes a file"), ("--audit_regressor /tmp/a", "writes a file"),
        ("--extra_metrics /tmp/m", "writes a file"), ("--save_resume", "writes a file"),
        ("--preserve_performance_counters", "writes a file"),
        ("-d /etc/hostname", "reads a file"), ("-i /tmp/m", "reads a file"),
        ("--input_feature_regularizer /etc/hostname", "reads a file"), ("--feature_mask /tmp/m", "reads a file"),
        ("--dictionary a:/etc/hostname", "reads a file"), ("--dictionary_path /etc", "reads a file"),
        ("--span_server localhost", "connects to a server"), ("--sendto localhost", "connects to a server"),
        ("-a", "changes what vw prints"), ("--audit", "changes what vw prints"), ("--print", "changes what vw prints"),
        ("--log_output stdout", "changes what vw prints"), ("--progress 1", "changes what vw prints"),
        ("--dsjson", "changes the input format vwfcgi writes"), ("--json", "changes the input format vwfcgi writes"),
        ("--flatbuffer", "changes the input format vwfcgi writes"),
        ("--passes 3", "only used for training"), ("--holdout_off", "only used for training"),
        ("--examples 3", "stops vw before it serves"), ("--version", "stops vw before it serves"),
        ("--help", "stops vw before it serves"), ("-h", "stops vw before it serves"),
        ("--dry_run", "stops vw before it serves"), ("--strict_parse", "stops vw on a malformed example"),
        ("--active", "active learning opens a port"), ("--active --simulation", "active learning opens a port"),
        ("--search 3", "structured prediction output is not supported"),
        ("--search_task sequence", "structured prediction output is not supported"),
        ("--top 2", "top-k output is not supported"),
        ("--cats 4", "continuous-action output is not supported"),
        ("--lda 2", "its output is not supported by vwfcgi"), ("--id x", "a model id is not used for serving"),
    ])
    func attackOptionsAreRefusedWithTheirReason(options: String, reason: String) {
        let name = VWOptions.split(options)[0]
        let long = name.hasPrefix("--") ? String(name.prefix { $0 != "=" }) : "--" + VWOptions.shortNames[name.dropFirst().first!]!
        let header = Self.storedRefusal("--oaa 3 " + options)
        if name.hasPrefix("--") {
            #expect(header == "cannot read model: the model file stores vw option \(long), which is not allowed (\(reason))")
        } else {
            // In a header a short option is a value of the option before it, which vw re-reads as an option.
            #expect(header?.contains("not allowed") == true, "\(header ?? "accepted")")
        }
        let config = Self.configRefusal(VWOptions.split(options))
        #expect(config == "invalid config: vw_args: option \(long) is not allowed (\(reason))")
    }

    @Test func optionsHiddenByWhitespaceOrMissingLeadingSpaceAreRefused() {
        for text in ["--oaa 3\t--daemon", "--oaa 3\n--daemon", "--daemon", "--oaa\r3\u{0C}--port\t26542", "--oaa 3 --quiet -f /tmp/x"] {
            #expect(Self.storedRefusal(text)?.contains("not allowed") == true, "\(text)")
        }
    }

    @Test func shortOptionsSpellingARefusedName() {
        // VW's `was_supplied("daemon")` is also true for a token starting with "-daemon".
        #expect(throws: VWOptionsError.notAllowed(option: "--daemon", reason: "opens a network port, written as -daemon")) {
            try VWOptions.check(["-daemon"])
        }
        #expect(throws: VWOptionsError.notAllowed(option: "--top", reason: "top-k output is not supported, written as -top")) {
            try VWOptions.check(["-top"])
        }
    }

    @Test func predictionOptionsAreAllowed() throws {
        for text in [
            "--oaa 3 --probabilities", "--ect 4", "--csoaa 3", "--csoaa_ldf mc", "--wap_ldf m", "--multilabel_oaa 3",
            "--cb 3 --cb_type dr", "--cb_explore 3 --epsilon 0.1", "--cb_explore_adf --bag 3", "--cb_explore_adf --cover 3 --psi 0.1",
            "--cb_explore_adf --squarecb --gamma_scale 10", "--cb_explore_adf --rnd 2", "--cb_explore_adf --regcb",
            "--cb_explore_adf --synthcover", "--cb_explore_adf --first 2", "--cb_explore_adf --softmax --lambda 2",
            "--ccb_explore_adf", "--slates", "--link logistic --loss_function logistic", "--quantile_tau 0.3 --loss_function quantile",
            "--nn 2 --inpass", "--lrq ab2", "--lrqfa ab2", "--bootstrap 3", "--boosting 3", "--ksvm --kernel rbf --bandwidth 2",
            "--bfgs", "--conjugate_gradient", "--ngram 2 --skips 1 --affix +2a --spelling a", "--hash all --hash_seed 3",
            "--noconstant --constant 1", "--ignore a --ignore_linear b --keep c --redefine a:=b", "--binary",
            "--min_prediction -1 --max_prediction 1", "--sort_features", "--noop", "--random_seed 3",
            "--normalized --adaptive --invariant", "--sgd", "--l1 0.1 --l2 0.1", "--learning_rate 0.5 --power_t 0.5",
            "--initial_t 1 --decay_learning_rate 1", "--cb_adf --rank_all", "--cb_adf --cb_dro",
            "--cb_min_cost 0 --cb_max_cost 1 --cb 2", "--ftrl", "--pistol", "--coin", "--freegrad", "--marginal a",
            "--csoaa_ldf m --csoaa_rank", "--scores --oaa 3", "--chain_hash --ignore_features_dsjson_experimental a|b",
            "--named_labels a,b,c --oaa 3", "--plt 10 --top_k 2", "--log_multi 3", "--recall_tree 3",
        ] {
            #expect(Self.storedRefusal(text) == nil, "\(text)")
            #expect(Self.configRefusal(VWOptions.split(text)) == nil, "\(text)")
        }
    }

    @Test func everyOptionVWKnowsIsClassified() throws {
        let vw = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../bin/vw").standardized.path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: vw)
        process.arguments = ["--help"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let help = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var names = Set<String>()
        for line in help.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " }
            guard line.hasPrefix("    -"), line.count - trimmed.count <= 6 else { continue }
            let words = trimmed.split(separator: " ")
            guard let long = words.first(where: { $0.hasPrefix("--") }) else { continue }
            names.insert(String(long.dropFirst(2).prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }))
        }
        #expect(names.count > 400)
        #expect(names.subtracting(VWOptions.specs.keys).sorted() == [])
        #expect(Set(VWOptions.specs.keys).subtracting(names).sorted() == [])
    }

    // MARK: What the options mean

    @Test(arguments: [
        ("simple", ExampleFamily.simple, false, PredictionKind.plain, false),
        ("logistic", .simple, false, .plain, false),
        ("nn", .simple, false, .plain, false),
        ("oaa", .multiclass, false, .plain, false),
        ("ect", .multiclass, false, .plain, false),
        ("multilabel", .multilabel, false, .plain, false),
        ("csoaa", .costSensitive, false, .plain, false),
        ("cb", .contextualBandit, true, .plain, false),
        ("cb_explore", .contextualBandit, true, .actionProbabilities, false),
        ("cb_legacy", .contextualBandit, false, .plain, false),
        ("cb_adf", .cbADF, true, .plain, false),
        ("cb_adf_rank_all", .cbADF, true, .actionScores, false),
        ("cb_explore_adf", .cbADF, true, .actionProbabilities, false),
        ("csoaa_ldf", .csoaaLDF, true, .plain, true),
        ("csoaa_ldf_rank", .csoaaLDF, true, .actionScores, true),
        ("wap_ldf", .csoaaLDF, true, .plain, true),
        ("ccb", .ccb, true, .actionProbabilities, false),
        ("slates", .slates, true, .actionProbabilities, false),
        ("cbify", .multiclass, false, .plain, false),
    ])
    func familyOfEachTrainedModel(name: String, family: ExampleFamily, blankLine: Bool, kind: PredictionKind, keepsLabels: Bool) throws {
        let header = try ModelHeader.read(path: Self.fixture(name))
        let options = try ModelOptions.check(stored: header.options, extra: [])
        #expect(options.family == family)
        #expect(options.answersEndWithBlankLine == blankLine)
        #expect(options.predictionKind == kind)
        #expect(options.keepsMultilineLabels == keepsLabels)
    }

    @Test func interactionsAndBits() throws {
        let header = try ModelHeader.read(path: Self.fixture("nn"))
        let stored = try ModelOptions.check(stored: header.options, extra: [])
        #expect(stored.interactions == [Array("abc".utf8), Array("a::".utf8), Array("ab".utf8)])
        #expect(stored.bits == nil)
        // Interactions given in vw_args replace the stored ones, as in VW.
        let overridden = try ModelOptions.check(stored: header.options, extra: ["-q", "xy", "-b", "18", "--ngram", "2"])
        #expect(overridden.interactions == [Array("xy".utf8)])
        #expect(overridden.bits == 18)
        #expect(overridden.ngrams == ["2"])
        #expect(try Self.stored("--interactions ab cd --ngram a2 --skips 1").interactions == [Array("ab".utf8), Array("cd".utf8)])
        #expect(try Self.stored("--experimental_full_name_interactions user|item").fullNameInteractions == ["user|item"])
        #expect(try Self.stored("--lrq ab2 --lrqfa cd3").lowRankInteractions == ["ab2", "cd3"])
    }

    @Test func storedNgramsAndSkipsComeFromTheirHeaderFields() throws {
        // VW 9 keeps `--ngram` and `--skips` in binary header fields and adds them to the options when it loads.
        let header = try ModelHeader.read(path: Self.fixture("ngram"))
        #expect(header.options == ["--ngram", "2", "--skips", "1"])
        #expect(header.bits == 5)
        let options = try ModelOptions.check(header: header, extra: [])
        #expect(options.bits == 5)
        #expect(options.ngrams == ["2"])
        #expect(options.skips == ["1"])
        #expect(options.family == .simple)
    }

    @Test func headerOptionsWithoutLeadingSpaceOrWithTabsAreRead() throws {
        // A VW 9 header: version, model id, 'm', min/max label, bits, lda, ngrams, skips, options.
        func u32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
        func header(_ options: String, id: [UInt8] = [], version: String = "9.11.9", terminated: Bool = true) -> [UInt8] {
            let text = Array(options.utf8) + (terminated ? [0] : [])
            return u32(version.utf8.count + 1) + Array(version.utf8) + [0] + u32(id.count) + id
                + Array("m".utf8) + [UInt8](repeating: 0, count: 8)
                + u32(18) + u32(0) + u32(0) + u32(0) + u32(text.count) + text
        }
        // The model id is added as `--id <id>`, and so read as options too.
        #expect(try ModelHeader.parse(header("--oaa 3", id: Array("x\t--daemon\0".utf8))).options
                == ["--id", "x", "--daemon", "--oaa", "3"])
        #expect(try ModelHeader.parse(header("--oaa 3", id: [0])).options == ["--oaa", "3"])
        #expect(throws: ModelHeaderError.malformed("options string without a NUL")) {
            try ModelHeader.parse(header("--oaa 3", terminated: false))
        }
        #expect(throws: ModelHeaderError.unsupportedVersion("8.0.2")) { try ModelHeader.parse(header("--oaa 3", version: "8.0.2")) }
        #expect(try ModelHeader.parse(header("--oaa 3", version: "8.0.3")).options == ["--oaa", "3"])
        #expect(try ModelHeader.parse(header("--oaa 3", version: "10")).options == ["--oaa", "3"])
        #expect(try ModelHeader.parse(header("--oaa 3\t--daemon\n--port 9")).options == ["--oaa", "3", "--daemon", "--port", "9"])
        #expect(try ModelHeader.parse(header("\t--readable_model\t/tmp/r")).options == ["--readable_model", "/tmp/r"])
        #expect(try ModelHeader.parse(header(" --oaa 3")).options == ["--oaa", "3"])
        #expect(try ModelHeader.parse(header(" --oaa 3")).bits == 18)
        // Options pushed beyond the bytes read to find them are not taken for "no options".
        let far = header(" --oaa 3" + String(repeating: " ", count: 70_000) + "--daemon")
        #expect(throws: ModelHeaderError.optionsTooLong(bytes: 70_017)) {
            try ModelHeader.parse(Array(far.prefix(ModelHeader.maxHeaderBytes)))
        }
        // VW reads the stored string as a C string: what follows a NUL is not applied.
        #expect(try ModelHeader.parse(header(" --oaa 3\0--daemon")).options == ["--oaa", "3"])
    }
}

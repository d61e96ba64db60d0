import Foundation
import Testing
import VWCore

/// Random command lines and model headers mixing allowed options, refused ones and tricky
/// spellings: whatever `VWOptions` accepts is loaded by the real VW (through the `vowpalwabbit`
/// package of `.venv`), and every option VW then reports as supplied must be one the allowlist
/// allows, with no file written in its working directory.
@Suite struct VWOptionsDifferentialTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    /// Pieces of command lines: each a few tokens.
    static let pieces: [[String]] = [
        ["--link", "logistic"], ["--link=identity"], ["-q", "ab"], ["-qab"], ["--interactions", "abc", "de"],
        ["--noconstant"], ["-l", "0.5"], ["-l0.5"], ["--power_t", "0.5"], ["--min_prediction", "-1"],
        ["--random_seed", "3"], ["--hash_seed", "2"], ["--sort_features"], ["--cubic", "abc"], ["-t"],
        ["--daemon"], ["-daemon"], ["--port", "0"], ["-f", "written.vw"], ["-fwritten.vw"], ["--"], ["x"], ["-5"],
        ["--link"], ["--quiet"], ["-tq"], ["--readable_model", "readable.txt"], ["-bandwidth"], ["-top"],
        ["--ngram", "2"], ["-p"], ["--invert_hash=inverted.txt"], ["-"], ["--b"], ["-b", "4"], ["-b4"], ["=x"],
        ["--=x"], ["-C", "-0.5"], ["-C-0.5"], ["--l1", "1e-9"], ["-l1"], ["--ignore", "z"], ["--keep", "a", "b"],
        ["--redefine", "a:=b"], ["--testonly"], ["--dump_json_weights_experimental", "dump.json"],
        ["--pid_file", "pid"], ["--examples", "1"], ["--help"], ["-h"], ["--version"], ["-a"], ["--audit"],
        ["--print"], ["-portable"], ["-qport"], ["-l-1"], ["--quadratic=ab"], ["-q", "a:"], ["-q", "::"],
        ["--decay_learning_rate", "1"], ["--initial_t", "1"], ["--feature_mask", "written.vw"],
    ]

    /// Load a model with `args`; or craft `craft` from the source model with `header` and `modelID`
    /// (without loading it); or load the model at `model`.
    struct Case: Codable {
        var args: [String]?
        var header: String?
        var modelID: String?
        var craft: String?
        var model: String?
    }

    struct Outcome: Codable {
        let ok: Bool
        let arguments: String?
        let error: String?
        let written: [String]
    }

    static let python = """
    import json, os, sys, tempfile
    sys.path.insert(0, os.path.join(sys.argv[1], "Tests", "e2e"))
    from pathlib import Path
    import vowpalwabbit
    from test_model_options import craft_model
    source = Path(sys.argv[2])
    for line in sys.stdin:
        case = json.loads(line)
        work = tempfile.mkdtemp(prefix="vwopt-diff-")
        os.chdir(work)
        out = {"ok": False, "arguments": None, "error": None, "written": []}
        try:
            if case.get("craft") is not None:
                model_id = case["modelID"].encode() if case.get("modelID") is not None else None
                craft_model(source, case["header"], Path(case["craft"]), replace=True, model_id=model_id)
                print(json.dumps(out), flush=True)
                continue
            model = Path(case["model"]) if case.get("model") else source
            ws = vowpalwabbit.Workspace(arg_list=["-i", str(model), "-t", "--quiet"] + (case.get("args") or []))
            out["arguments"] = ws.get_arguments()
            ws.finish()
            out["ok"] = True
        except Exception as error:
            out["error"] = str(error)[:300]
        out["written"] = sorted(os.listdir(work))
        print(json.dumps(out), flush=True)
    """

    /// Runs VW on each case in one Python process.
    static func runVW(_ cases: [Case]) throws -> [Outcome] {
        let process = Process()
        process.executableURL = root.appendingPathComponent(".venv/bin/python")
        process.arguments = ["-c", python, root.path, root.appendingPathComponent("Tests/VWCoreTests/Fixtures/families/oaa.vw").path]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let encoder = JSONEncoder()
        var text = Data()
        for item in cases {
            text += try encoder.encode(item) + Data("\n".utf8)
        }
        input.fileHandleForWriting.write(text)
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return try data.split(separator: UInt8(ascii: "\n")).map { try JSONDecoder().decode(Outcome.self, from: Data($0)) }
    }

    /// Option names vw reports as supplied that the server itself passes or the model file stores.
    static let serverNames: Set<String> = ["initial_regressor", "testonly", "quiet", "no_stdin", "bit_precision", "oaa"]

    @Test func whatTheAllowlistAcceptsVWReadsAsAllowedOptionsOnly() throws {
        var generator = SplitMix(state: 11)
        let crafted = FileManager.default.temporaryDirectory.appendingPathComponent("vwopt-diff-\(UUID())")
        try FileManager.default.createDirectory(at: crafted, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: crafted) }
        var cases: [Case] = []
        var crafts: [Case] = []
        var refused = 0
        for round in 0..<1500 {
            let count = Int.random(in: 1...4, using: &generator)
            var tokens: [String] = []
            for _ in 0..<count { tokens += Self.pieces.randomElement(using: &generator)! }
            if round % 2 == 0 {
                if (try? ModelConfig.parse(Array(try JSONEncoder().encode(["vw_args": tokens])))) != nil {
                    cases.append(Case(args: tokens))
                } else {
                    refused += 1
                }
            } else {
                // Options in the stored string, or in the model id (which VW reads as `--id <id>`).
                let separators = [" ", "\t", "\n", "\r", "  ", ""]
                var text = ""
                for token in tokens { text += separators.randomElement(using: &generator)! + token }
                let path = crafted.appendingPathComponent("\(round).vw").path
                switch round % 3 {
                case 0: crafts.append(Case(header: "--oaa 3" + text, modelID: "x" + text + "\0", craft: path))
                case 1: crafts.append(Case(header: "--oaa 3", modelID: "\0" + text, craft: path))
                default: crafts.append(Case(header: "--oaa 3" + text, craft: path))
                }
            }
        }
        _ = try Self.runVW(crafts)
        for item in crafts {
            let path = item.craft!
            if let header = try? ModelHeader.read(path: path), (try? ModelOptions.check(header: header, extra: [])) != nil {
                cases.append(Case(header: item.header, modelID: item.modelID, model: path))
            } else {
                refused += 1
            }
        }
        #expect(cases.count > 100)
        #expect(refused > 100)
        let outcomes = try Self.runVW(cases)
        try #require(outcomes.count == cases.count)
        var loaded = 0
        for (item, outcome) in zip(cases, outcomes) {
            let label = item.args.map { "vw_args \($0)" } ?? "header \(item.header ?? "") id \(item.modelID ?? "")"
            #expect(outcome.written == [], "\(label) wrote \(outcome.written)")
            guard outcome.ok, let arguments = outcome.arguments else { continue }
            loaded += 1
            let names = arguments.split(separator: " ").filter { $0.hasPrefix("--") }.map { String($0.dropFirst(2)) }
            for name in names where !Self.serverNames.contains(name) {
                #expect(VWOptions.specs[name] != nil && VWOptions.specs[name]?.refusal == nil,
                        "\(label): vw reports option --\(name) (\(VWOptions.specs[name]?.refusal ?? "unknown"))")
            }
        }
        #expect(loaded > 50)
    }
}

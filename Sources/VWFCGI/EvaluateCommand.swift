#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import VWCore

/// `vwfcgi evaluate --state DIR --model NAME --policy ARGS...`: offline evaluation of candidate policies on a
/// model's joined events (SPEC §10). Reads the state directory only; each candidate runs in a sandboxed vw.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Estimate what candidate policies would have earned on a model's logged events (IPS and SNIPS, 95% intervals)."
    )

    @Option(help: "State directory holding <model>/joined/<n>.dsjson (the server's --state-dir, or a copy).")
    var state: String

    @Option(help: "The model whose joined events are evaluated.")
    var model: String

    @Option(help: "First event time included: a date (2026-12-01) or an RFC 3339 UTC time (2026-12-01T10:00:00Z).")
    var from: String?

    @Option(help: "End of the range (excluded), as --from.")
    var to: String?

    @Option(parsing: .unconditionalSingleValue, help: "A candidate policy: vw arguments with --cb_explore_adf (repeat for several), e.g. \"--cb_explore_adf --epsilon 0.1 -q UA\".")
    var policy: [String] = []

    @Option(help: "Windows of the time series (equal numbers of events).")
    var windows: Int = 10

    @Flag(help: "Also search a grid of 16 learning settings (--cb_type ips|mtr, -l 0.001|0.01|0.1|0.5, with and without -q ::) around the first --policy (else \"--cb_explore_adf --epsilon 0.2\") and report the one with the highest lower bound of its IPS interval as Optimized.")
    var optimize = false

    @Option(help: "The IPS interval shown, plotted, exported and ranked by: normal (normal approximation), bernstein (empirical Bernstein, Maurer & Pontil) or bootstrap (percentile, B = 1000, seed 22). JSON carries the normal and Bernstein ones always.")
    var interval: String = "normal"

    @Option(help: "Write a PNG of each policy's IPS estimate and 95% interval per window to this file.")
    var plot: String?

    @Option(help: "Write the evaluation in Prometheus text format to this file (e.g. node-exporter's textfile directory, name ending .prom).")
    var metricsFile: String?

    @Flag(help: "Instead of estimates: the feature importances (the largest learned weights, named by VW's --invert_hash) of --model-file and of each --policy trained on the events.")
    var features = false

    @Option(help: "With --features: a model file to read the weights of (e.g. the serving <name>.vw).")
    var modelFile: String?

    @Option(help: "With --features: how many features to list per model.")
    var top: Int = 20

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Option(help: "The vw command (default: $VWFCGI_VW_COMMAND, else `vw` on PATH); split on spaces.")
    var vwCommand: String?

    @Option(help: "Largest address space of each vw process, in bytes or with a suffix (512M, 4G); 0 for no limit.")
    var vwMemoryLimit: String = "4G"

    func validate() throws {
        if windows < 1 { throw ValidationError("--windows must be at least 1") }
        if features && modelFile == nil && policy.isEmpty { throw ValidationError("--features needs --model-file or --policy") }
        if !features && modelFile != nil { throw ValidationError("--model-file goes with --features") }
        if top < 1 { throw ValidationError("--top must be at least 1") }
        if IntervalMethod(rawValue: interval) == nil { throw ValidationError("--interval must be normal, bernstein or bootstrap") }
        if features && (optimize || plot != nil || metricsFile != nil) {
            throw ValidationError("--optimize, --plot and --metrics-file go with an evaluation, not --features")
        }
        guard SandboxPolicy.parseBytes(vwMemoryLimit) != nil else {
            throw ValidationError("--vw-memory-limit must be a byte count such as 536870912, 512M or 4G")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let work = try Serve.makeStagingDirectory()
        defer {
            unlink(work + "/events.dsjson")
            rmdir(work + "/out")
            rmdir(work)
        }
        let command = EngineOptions.vwCommand(vwCommand)
        var request = EvaluationRequest(stateDirectory: state, model: model, policies: policy, vwCommand: command, workDirectory: work)
        request.windows = windows
        request.interval = IntervalMethod(rawValue: interval) ?? .normal
        if optimize { request.optimizationBase = policy.first ?? PolicyGrid.defaultBase }
        request.memoryLimit = SandboxPolicy.parseBytes(vwMemoryLimit) ?? SandboxPolicy.defaultMemoryLimit
        Sandbox.configure(SandboxPolicy(memoryLimit: request.memoryLimit))
        if features {
            try Self.printFeatures(request, from: from, to: to, modelFile: modelFile, top: top, json: json)
            return
        }
        let started = ContinuousClock.now
        let result: EvaluationResult
        switch Self.evaluate(request, from: from, to: to, progress: isatty(2) != 0) {
        case .success(let evaluated): result = evaluated
        case .failure(let error):
            Self.printError("vwfcgi evaluate: " + error.reason)
            throw ExitCode(1)
        }
        do throws(EventLogError) {
            if let plot { try Self.writeFile(plot, EvaluationPlot.png(result)) }
            if let metricsFile {
                try Self.writeFile(metricsFile, Array(result.prometheusText(finished: Double(EventLine.nowMilliseconds()) / 1000).utf8))
            }
        } catch {
            Self.printError("vwfcgi evaluate: " + error.message)
            throw ExitCode(1)
        }
        if json {
            print(String(decoding: result.json().dropLast(), as: UTF8.self))
        } else {
            print(EvaluationTable(result).text, terminator: "")
            print("(\(ContinuousClock.now - started))")
        }
    }

    static func evaluate(_ request: EvaluationRequest, from: String?, to: String?, progress: Bool) -> Result<EvaluationResult, EvaluationError> {
        var request = request
        do throws(EvaluationError) {
            request.from = try from.map(time)
            request.to = try to.map(time)
            return .success(try Evaluator.run(request) { message in
                if progress { printError("… " + message) }
            })
        } catch {
            return .failure(error)
        }
    }

    /// `--features`: the importances of the model file, then of each policy; one JSON object per line with `--json`.
    static func printFeatures(_ request: EvaluationRequest, from: String?, to: String?, modelFile: String?, top: Int, json: Bool) throws {
        var request = request
        do throws(EvaluationError) {
            request.from = try from.map(time)
            request.to = try to.map(time)
            var results: [FeatureImportanceResult] = []
            if let modelFile { results.append(try FeatureImportance.compute(request, modelFile: modelFile, top: top)) }
            for policy in request.policies { results.append(try FeatureImportance.compute(request, policy: policy, top: top)) }
            for result in results {
                if json { print(String(decoding: result.json(), as: UTF8.self)) } else { print(result.text) }
            }
        } catch {
            printError("vwfcgi evaluate: " + error.reason)
            throw ExitCode(1)
        }
    }

    /// Replaces `path` at once (temporary file, fsync, rename: a textfile collector never reads half a file). Only a
    /// regular file or a new name: a rename over `/dev/stdout` (a symlink) or a device would replace it, not write to it.
    static func writeFile(_ path: String, _ bytes: [UInt8]) throws(EventLogError) {
        var status = stat()
        if lstat(path, &status) == 0, status.st_mode & S_IFMT != S_IFREG {
            throw EventLogError("\(path) exists and is not a regular file (a symlink, a device, a directory): give a file name")
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        try StateDirectory.root(directory).writeAtomically(bytes, to: name)
    }

    static func time(_ text: String) throws(EvaluationError) -> Int64 {
        guard let milliseconds = EventLine.milliseconds(timestamp: text) else { throw .invalidTime(text) }
        return milliseconds
    }

    static func printError(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}

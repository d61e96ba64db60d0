#if canImport(Glibc)
import Glibc
#endif

/// One learned weight and the feature (or interaction) it belongs to, as VW names it: `Namespace^feature`, with
/// `*` between the terms of an interaction, `Constant` for the bias.
public struct FeatureWeight: Sendable, Equatable {
    public let name: String
    public let weight: Double

    /// The namespaces of the feature's terms (`User*Action` for `User^idu1*Action^ta0`).
    public var namespace: String {
        name.split(separator: "*", omittingEmptySubsequences: false)
            .map { term in term.firstIndex(of: "^").map { String(term[..<$0]) } ?? String(term) }
            .joined(separator: "*")
    }
}

/// A namespace's (or interaction's) share of a model: how many named weights and their total magnitude.
public struct NamespaceWeight: Sendable, Equatable {
    public let namespace: String
    public let features: Int
    public let totalAbsoluteWeight: Double
}

/// What `vwfcgi evaluate --features` and the Personalizer's feature importances report for one model.
public struct FeatureImportanceResult: Sendable {
    /// `model file <path>` or the candidate policy's arguments.
    public let subject: String
    /// Events the names were read from.
    public let events: Int
    /// Every named weight, largest magnitude first (`top` of them, see ``FeatureImportance/compute``).
    public let features: [FeatureWeight]
    /// Per namespace, largest total magnitude first.
    public let namespaces: [NamespaceWeight]
}

/// Feature importance from VW's own `--invert_hash` (issue 22 item 3): vw sees the model and the joined events in a
/// sandbox (read-only but for a private work directory), names every weight the events touch, and writes them; the
/// weights are ranked by magnitude. The model's weights come from VW, never recomputed here.
public enum FeatureImportance {
    /// For an existing model file (`vw -i FILE -t`: its weights unchanged), or, with `policy`, for a candidate trained
    /// on the events (`vw <policy>`: its weights after learning them, in join order).
    public static func compute(
        _ request: EvaluationRequest, modelFile: String? = nil, policy: String? = nil, top: Int = 20
    ) throws(EvaluationError) -> FeatureImportanceResult {
        let work = try Evaluator.workDirectory(request)
        let events = try Evaluator.readEvents(request, writingTo: work)
        guard !events.decisions.isEmpty else { throw .noEvents("no joined decision in the range to read feature names from") }
        var arguments = request.vwCommand + ["--dsjson", "-d", work.path + "/" + Evaluator.eventsFile, "--quiet",
                                             "--invert_hash", request.workDirectory + "/out/readable.txt"]
        let subject: String
        if let policy {
            arguments += try Evaluator.checkedArguments(policy)
            subject = policy
        } else if let modelFile {
            arguments += ["-i", modelFile, "-t"]
            subject = "model file \(modelFile)"
        } else {
            throw .invalidPolicy(policy: "", reason: "give a model file or a policy")
        }
        let out: StateDirectory
        do throws(EventLogError) {
            out = try work.directory("out")
            out.remove("readable.txt")
        } catch {
            throw .storage(error.message)
        }
        defer { out.remove("readable.txt") }
        let run = VWProcess.runToEnd(arguments: arguments, memoryLimit: request.memoryLimit,
                                     writableDirectory: WritableDirectory(out, maxFileBytes: 1 << 30), deadline: .after(request.timeout))
        guard run.exitStatus == 0 else {
            throw .vwFailed(policy: subject, reason: run.errorText.isEmpty ? "exit status \(run.exitStatus)" : run.errorText)
        }
        let text: [UInt8]
        do throws(EventLogError) {
            guard let bytes = try out.read("readable.txt") else { throw EventLogError("vw wrote no readable model") }
            text = bytes
        } catch {
            throw .vwFailed(policy: subject, reason: error.message)
        }
        return rank(parse(text), subject: subject, events: events.decisions.count, top: top)
    }

    /// The named weights of an `--invert_hash` file: the lines `name:hash:weight[ adaptive normaliser]` after the header
    /// (the name may hold `:` itself, so the last two fields are taken from the right).
    static func parse(_ text: [UInt8]) -> [FeatureWeight] {
        var weights: [FeatureWeight] = []
        for line in text.split(separator: 0x0A) {
            let fields = line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            guard fields.count >= 3, !fields[0].isEmpty,
                  fields[fields.count - 2].allSatisfy({ $0 >= 48 && $0 <= 57 }), !fields[fields.count - 2].isEmpty,
                  // The weight, then (when vw learned: no -t) its optimiser state `adaptive normaliser`, space-separated.
                  let text = fields[fields.count - 1].split(separator: UInt8(ascii: " ")).first,
                  let weight = Double(String(decoding: text, as: UTF8.self)), weight.isFinite else { continue }
            let name = String(decoding: line[line.startIndex..<(fields[fields.count - 2].startIndex - 1)], as: UTF8.self)
            weights.append(FeatureWeight(name: name, weight: weight))
        }
        return weights
    }

    static func rank(_ weights: [FeatureWeight], subject: String, events: Int, top: Int) -> FeatureImportanceResult {
        var byNamespace: [String: (count: Int, total: Double)] = [:]
        for weight in weights {
            byNamespace[weight.namespace, default: (0, 0)].count += 1
            byNamespace[weight.namespace, default: (0, 0)].total += abs(weight.weight)
        }
        let features = weights.sorted { (abs($0.weight), $1.name) > (abs($1.weight), $0.name) }
        let namespaces = byNamespace.map { NamespaceWeight(namespace: $0.key, features: $0.value.count, totalAbsoluteWeight: $0.value.total) }
            .sorted { ($0.totalAbsoluteWeight, $1.namespace) > ($1.totalAbsoluteWeight, $0.namespace) }
        return FeatureImportanceResult(subject: subject, events: events, features: Array(features.prefix(max(0, top))), namespaces: namespaces)
    }
}

extension FeatureImportanceResult {
    /// `{"subject", "events", "features": [{"name", "weight"}], "namespaces": [{"namespace", "features", "total_abs_weight"}]}`.
    public func json() -> [UInt8] {
        var writer = JSONWriter(capacity: 256 + features.count * 64)
        writer.beginObject()
        writer.key("subject"); writer.string(subject)
        writer.key("events"); writer.int(events)
        writer.key("features")
        writer.beginArray()
        for feature in features {
            writer.beginObject()
            writer.key("name"); writer.string(feature.name)
            writer.key("weight"); writer.double(feature.weight)
            writer.endObject()
        }
        writer.endArray()
        writer.key("namespaces")
        writer.beginArray()
        for namespace in namespaces {
            writer.beginObject()
            writer.key("namespace"); writer.string(namespace.namespace)
            writer.key("features"); writer.int(namespace.features)
            writer.key("total_abs_weight"); writer.double(namespace.totalAbsoluteWeight)
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    /// A table for a terminal.
    public var text: String {
        var lines = ["Feature importance of \(subject) (\(events) events; VW --invert_hash)", "", "  weight        feature"]
        for feature in features { lines.append("  " + pad(String(feature.weight), 12) + "  " + feature.name) }
        lines += ["", "  total |w|     features  namespace"]
        for namespace in namespaces {
            lines.append("  " + pad(String(namespace.totalAbsoluteWeight), 12) + "  " + pad(String(namespace.features), 8) + "  "
                         + namespace.namespace)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}

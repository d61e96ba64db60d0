// Over 400 lines on purpose: one job lifecycle (Personalizer evaluations and feature importances: the registry of
// running jobs, the request, the document written before and after, the engine's entry points) whose ordering
// rules (the Running document on disk before the 200, the result before the run stops counting, a DELETE wholly
// before or after) are easier to check in one place.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// What an evaluation route answers: a document, or why not (the HTTP layer maps these to 200/204, 404 and 409).
public enum EvaluationAnswer: Sendable {
    case document([UInt8])
    case notFound(String)
    case conflict(String)
}

/// SPEC §10 over HTTP: Personalizer's evaluations (`PUT/GET/DELETE …/evaluations/{id}`, `GET …/evaluations`).
///
/// Each one is run by `Evaluator` (the sandboxed vw of `vwfcgi evaluate`) on its own thread, one at a time per model,
/// and kept as the document `GET` answers in `<state>/<model>/evaluations/<id>.json`: written `Running` when created,
/// replaced by `Succeeded` (with its results) or `Failed` (with the reason) when it ends. A `Running` document no
/// thread of this process runs was cut off by a restart: it reads as `Failed`. `DELETE` of a running evaluation
/// removes its document at once; its vw runs to its end and the result is dropped.
final class PersonalizerEvaluations: Sendable {
    static let shared = PersonalizerEvaluations()
    /// Feature importances run beside evaluations, one at a time per model too.
    static let featureImportances = PersonalizerEvaluations()

    /// The evaluation running per model: its id and a token no other run shares.
    private let running = Mutex<[String: (id: String, token: Int)]>([:])
    /// The last evaluation that succeeded per model (since the start) and when it finished, for `/metrics`.
    private let lastSucceeded = Mutex<[String: (result: EvaluationResult, finished: Double)]>([:])

    /// Keeps `result` as the model's last succeeded evaluation.
    func recordSucceeded(_ result: EvaluationResult, finished: Double) {
        lastSucceeded.withLock { $0[result.model] = (result, finished) }
    }

    /// Each model's last succeeded evaluation, by model name.
    func succeeded() -> [(result: EvaluationResult, finished: Double)] {
        lastSucceeded.withLock { table in table.keys.sorted().map { table[$0]! } }
    }
    private let nextToken = Atomic<Int>(1)

    /// A run's registration; false when the model runs another one.
    func register(model: String, id: String) -> Int? {
        let token = nextToken.add(1, ordering: .relaxed).newValue
        return running.withLock { table in
            if table[model] != nil { return nil }
            table[model] = (id, token)
            return token
        }
    }

    /// The id of the evaluation the model is running, if any.
    func runningID(model: String) -> String? { running.withLock { $0[model]?.id } }

    /// Ends a run; true when it still owned its registration (it was not deleted meanwhile). `whileOwned` runs first,
    /// under the lock, only then: a result written there is on disk before the run stops counting as running, and a
    /// `DELETE` (`cancel`) comes wholly before it (nothing written) or wholly after it (the result removed).
    func finish(model: String, token: Int, whileOwned: () -> Void = {}) -> Bool {
        running.withLock { table in
            guard table[model]?.token == token else { return false }
            whileOwned()
            table[model] = nil
            return true
        }
    }

    /// Forgets the run of `id` (deleted while running).
    func cancel(model: String, id: String) {
        running.withLock { table in if table[model]?.id == id { table[model] = nil } }
    }
}

/// A kind of Personalizer job: where its documents are kept (`<state>/<model>/<directory>/<id>.json`), what it is
/// called in errors, the members its list shows, and its registry of running jobs.
struct PersonalizerJobKind: Sendable {
    /// The documents of one kind a model keeps: beyond, a new job is a 409 until one is deleted.
    static let maxDocuments = 100

    let directory: String
    let noun: String
    let listed: [String]
    let runs: PersonalizerEvaluations

    static let evaluations = PersonalizerJobKind(
        directory: "evaluations", noun: "evaluation",
        listed: ["id", "name", "startTime", "endTime", "creationTime", "evaluationType", "status", "description"],
        runs: .shared
    )
    static let featureImportances = PersonalizerJobKind(
        directory: "featureImportances", noun: "feature importance",
        listed: ["id", "name", "startTime", "endTime", "creationTime", "status", "description"],
        runs: .featureImportances
    )
}

/// A Personalizer evaluation request (`PUT …/evaluations/{id}`): `{"name", "startTime", "endTime", "policies":
/// [{"name", "arguments"}], "enablePolicyOptimization"}`.
struct PersonalizerEvaluationRequest {
    let name: String
    let startTime: String
    let endTime: String
    let from: Int64
    let to: Int64
    let policies: [(name: String, arguments: String)]
    /// `enablePolicyOptimization`: search `PolicyGrid` around the model's policy too.
    let optimize: Bool

    init(_ value: JSONValue) throws(LoopRequestError) {
        guard case .object(let members) = value else { throw LoopRequestError("the evaluation must be a JSON object") }
        let known = ["name", "startTime", "endTime", "policies", "enablePolicyOptimization", "description"]
        for (key, _) in members where !known.contains(key) {
            throw LoopRequestError("unknown member \"\(key)\" of the evaluation (known: \(known.joined(separator: ", ")))")
        }
        func member(_ key: String) -> JSONValue? { members.last { $0.key == key }?.value }
        guard case .string(let name)? = member("name"), !name.isEmpty, name.utf8.count <= 256 else {
            throw LoopRequestError("the evaluation needs a \"name\" string of 1 to 256 bytes")
        }
        func time(_ key: String) throws(LoopRequestError) -> (String, Int64) {
            guard case .string(let text)? = member(key) else {
                throw LoopRequestError("the evaluation needs \"\(key)\", a UTC time such as \"2026-12-01T10:00:00Z\"")
            }
            // Python's isoformat() writes UTC as +00:00.
            let normalized = text.hasSuffix("+00:00") ? String(text.dropLast(6)) + "Z" : text
            guard let milliseconds = EventLine.milliseconds(timestamp: normalized) else {
                throw LoopRequestError("\"\(key)\" \(text) is not a date (2026-12-01) or a UTC time (2026-12-01T10:00:00Z)")
            }
            return (text, milliseconds)
        }
        (startTime, from) = try time("startTime")
        (endTime, to) = try time("endTime")
        guard from < to else { throw LoopRequestError("the range is empty: \"startTime\" \(startTime) is not before \"endTime\" \(endTime)") }
        switch member("enablePolicyOptimization") {
        case nil, .null?, .bool(false)?: optimize = false
        case .bool(true)?: optimize = true
        case let other?: throw LoopRequestError("\"enablePolicyOptimization\" must be a boolean, not \(other.kindName)")
        }
        var policies: [(String, String)] = []
        switch member("policies") {
        case nil, .null?: break
        case .array(let items)?:
            guard items.count <= 8 else { throw LoopRequestError("at most 8 policies per evaluation, not \(items.count)") }
            for (index, item) in items.enumerated() {
                guard case .object(let fields) = item, case .string(let policyName)? = fields.last(where: { $0.key == "name" })?.value,
                      case .string(let arguments)? = fields.last(where: { $0.key == "arguments" })?.value else {
                    throw LoopRequestError("policies[\(index)] must be {\"name\": string, \"arguments\": string}")
                }
                do throws(EvaluationError) {
                    _ = try Evaluator.checkedArguments(arguments)
                } catch {
                    throw LoopRequestError("policies[\(index)] (\(policyName)): \(error.reason)")
                }
                policies.append((policyName, arguments))
            }
        case let other?:
            throw LoopRequestError("\"policies\" must be an array of {\"name\", \"arguments\"}, not \(other.kindName)")
        }
        self.name = name
        self.policies = policies
    }
}

extension EvaluationResult {
    /// The `content` of Personalizer's evaluation document: `{"startTime", "endTime", "value": [{"name", "arguments",
    /// "policySource", "slotId", "summary", "timeseries"}]}`. `expectedReward` is the IPS estimate (for `Online`, the
    /// logged average reward exactly) and `confidenceInterval` its 95% interval; SNIPS, the event count and the
    /// effective sample size are added beside them.
    func personalizerContent(policyNames: [String], into writer: inout JSONWriter) {
        func optional(_ text: String?) { if let text { writer.string(text) } else { writer.raw("null".utf8) } }
        func interval(_ value: ConfidenceInterval?) {
            guard let value else { return writer.raw("null".utf8) }
            writer.beginArray(); writer.double(value.lower); writer.double(value.upper); writer.endArray()
        }
        writer.beginObject()
        writer.key("startTime"); optional(firstTimestamp)
        writer.key("endTime"); optional(lastTimestamp)
        writer.key("events"); writer.int(events)
        writer.key("skippedEvents"); writer.int(skipped)
        writer.key("value")
        writer.beginArray()
        var custom = 0
        for policy in policies {
            writer.beginObject()
            var name = policy.name
            if policy.source == .custom {
                if custom < policyNames.count { name = policyNames[custom] }
                custom += 1
            }
            writer.key("name"); writer.string(name)
            writer.key("arguments"); writer.string(policy.arguments)
            writer.key("policySource"); writer.string(policy.source.rawValue)
            writer.key("slotId"); writer.string("")
            writer.key("summary")
            writer.beginObject()
            writer.key("expectedReward"); writer.double(policy.summary.ips)
            writer.key("confidenceInterval"); interval(policy.summary.ipsInterval)
            writer.key("bernsteinConfidenceInterval"); interval(policy.summary.ipsBernsteinInterval)
            writer.key("snips")
            if let snips = policy.summary.snips { writer.double(snips) } else { writer.raw("null".utf8) }
            writer.key("snipsConfidenceInterval"); interval(policy.summary.snipsInterval)
            writer.key("events"); writer.int(policy.summary.events)
            writer.key("effectiveSampleSize"); writer.double(policy.summary.effectiveSampleSize)
            writer.endObject()
            writer.key("timeseries")
            writer.beginObject()
            writer.key("data")
            writer.beginArray()
            for window in policy.timeseries {
                writer.beginObject()
                writer.key("timeStamp"); optional(window.end)
                writer.key("expectedReward"); writer.double(window.estimate.ips)
                writer.key("confidenceInterval"); interval(window.estimate.ipsInterval)
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
    }
}

/// The evaluation routes (SPEC §10 over §9).
extension Engine {
    /// `PUT …/evaluations/{id}`: checks the request, writes the `Running` document and starts the run.
    public func createPersonalizerEvaluation(model name: String, id: String, body: [UInt8]) throws(PredictError) -> EvaluationAnswer {
        let directory = try evaluationDirectory(model: name, id: id)
        let request: PersonalizerEvaluationRequest
        do throws(LoopRequestError) {
            let document: JSONValue
            do {
                document = try JSONParser.parse(body, maxDepth: maxJSONDepth)
            } catch {
                throw LoopRequestError(error.message)
            }
            request = try PersonalizerEvaluationRequest(document)
        } catch {
            throw .invalidRequest(error.message)
        }
        let created = EventLine.timestamp(milliseconds: EventLine.nowMilliseconds())
        let header = EvaluationHeader(id: id, request: request, creationTime: created)
        var evaluation = EvaluationRequest(stateDirectory: loops.stateDirectory, model: name, policies: request.policies.map(\.arguments),
                                           vwCommand: store.settings.vwCommand, workDirectory: "")
        evaluation.from = request.from
        evaluation.to = request.to
        if request.optimize {
            let base = try searchBase(model: name)
            evaluation.optimizationBase = base
        }
        let job = evaluation
        return try startPersonalizerJob(.evaluations, model: name, id: id, directory: directory,
                                        running: header.document(status: "Running")) { work in
            var run = job
            run.workDirectory = work.path
            run.isCancelled = { PersonalizerJobKind.evaluations.runs.runningID(model: name) != id }
            do throws(EvaluationError) {
                let result = try Evaluator.run(run)
                if !run.isCancelled() {
                    PersonalizerJobKind.evaluations.runs.recordSucceeded(result, finished: Double(EventLine.nowMilliseconds()) / 1000)
                }
                return header.document(status: "Succeeded", result: result)
            } catch {
                return header.document(status: "Failed", description: error.reason)
            }
        }
    }

    /// The policy `enablePolicyOptimization` searches around: the model's policy (`GET …/configurations/policy`) when
    /// it explores, else `PolicyGrid.defaultBase`.
    private func searchBase(model name: String) throws(PredictError) -> String {
        let policy = try? JSONParser.parse(personalizerPolicy(model: name), maxDepth: 8)
        if let arguments = PersonalizerSettings.member("arguments", of: policy)?.stringValue,
           let first = PolicyGrid.candidates(around: arguments).first,
           (try? Evaluator.checkedArguments(first)) != nil {
            return arguments
        }
        return PolicyGrid.defaultBase
    }

    /// Each model's last evaluation that succeeded since the start, in Prometheus' text format (`GET /metrics`);
    /// empty without one.
    public func evaluationMetrics() -> String {
        let evaluations = PersonalizerJobKind.evaluations.runs.succeeded()
        return evaluations.isEmpty ? "" : EvaluationResult.prometheusText(evaluations)
    }

    /// `GET …/evaluations/{id}`.
    public func personalizerEvaluation(model name: String, id: String) throws(PredictError) -> EvaluationAnswer {
        try personalizerJob(.evaluations, model: name, id: id)
    }

    /// `DELETE …/evaluations/{id}`.
    public func deletePersonalizerEvaluation(model name: String, id: String) throws(PredictError) -> EvaluationAnswer {
        try deletePersonalizerJob(.evaluations, model: name, id: id)
    }

    /// `GET …/evaluations`: `{"value": [<each document without its content>]}`, oldest first.
    public func personalizerEvaluations(model name: String) throws(PredictError) -> [UInt8] {
        try personalizerJobs(.evaluations, model: name)
    }

    /// Starts a job of `kind`: 409 when its id is in use or the model runs another; otherwise the `Running` document
    /// (`running`) is on disk before the answer, `body` runs on its own thread in a private work directory (removed
    /// afterwards with what it holds, one level of subdirectories included) and, unless the job was deleted meanwhile,
    /// what it returns replaces the document.
    func startPersonalizerJob(
        _ kind: PersonalizerJobKind, model name: String, id: String, directory: StateDirectory, running: [UInt8],
        _ body: @escaping @Sendable (_ work: StateDirectory) -> [UInt8]
    ) throws(PredictError) -> EvaluationAnswer {
        let file = id + ".json"
        if ((try? directory.read(file, maxBytes: 64 << 20)) ?? nil) != nil {
            return .conflict("\(kind.noun) \(id) exists; delete it first or choose another id")
        }
        // The documents a client can make are capped per model and kind (each up to ~100 KB): a disk no one can fill.
        let kept = directory.list().filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.count
        if kept >= PersonalizerJobKind.maxDocuments {
            return .conflict("model \(name) keeps \(kept) \(kind.noun) documents, the most it keeps (\(PersonalizerJobKind.maxDocuments)); delete one first")
        }
        guard let token = kind.runs.register(model: name, id: id) else {
            return .conflict("model \(name) is running \(kind.noun) \(kind.runs.runningID(model: name) ?? "?"); one runs at a time per model")
        }
        let work: StateDirectory
        do throws(EventLogError) {
            try directory.writeAtomically(running, to: file)
            work = try directory.directory("work-\(token)")
        } catch {
            _ = kind.runs.finish(model: name, token: token)
            throw .eventLogFailed(error.message)
        }
        let logger = store.logger
        DetachedThread.start(name: kind.directory.prefix(15).description) {
            let bytes = body(work)
            for entry in work.list() {
                if let sub = try? work.directory(entry, create: false) {
                    for inner in sub.list() { sub.remove(inner) }
                    work.remove(entry, directory: true)
                } else {
                    work.remove(entry)
                }
            }
            directory.remove("work-\(token)", directory: true)
            _ = kind.runs.finish(model: name, token: token) {
                do throws(EventLogError) {
                    try directory.writeAtomically(bytes, to: file)
                } catch {
                    logger.error("cannot write the job's result", metadata: ["model": "\(name)", "id": "\(id)", "error": "\(error.message)"])
                }
            }
        }
        return .document([])
    }

    /// A job's document. A `Running` one that no thread of this process runs was cut off by a restart: `Failed`.
    /// (Read again once the run is seen not running: a run writes its result before it stops counting as running.)
    func personalizerJob(_ kind: PersonalizerJobKind, model name: String, id: String) throws(PredictError) -> EvaluationAnswer {
        let directory = try jobDirectory(kind, model: name, id: id)
        func read() -> (bytes: [UInt8], members: PersonalizerSettings.Members)? {
            guard let bytes = (try? directory.read(id + ".json", maxBytes: 64 << 20)) ?? nil,
                  case .object(let members)? = try? JSONParser.parse(bytes, maxDepth: 16) else { return nil }
            return (bytes, members)
        }
        func running(_ members: PersonalizerSettings.Members) -> Bool {
            members.first(where: { $0.key == "status" })?.value == .string("Running")
        }
        guard var document = read() else { return .notFound("no \(kind.noun) \(id) for model \(name)") }
        if running(document.members), kind.runs.runningID(model: name) != id {
            guard let again = read() else { return .notFound("no \(kind.noun) \(id) for model \(name)") }
            document = again
        }
        if running(document.members), kind.runs.runningID(model: name) != id {
            var members = document.members
            PersonalizerSettings.set(&members, "status", .string("Failed"))
            PersonalizerSettings.set(&members, "description", .string("interrupted: the server stopped while it ran"))
            return .document(JSONValue.object(members).jsonBytes)
        }
        return .document(document.bytes)
    }

    /// Removes a job's document (a running job's result is dropped when it ends).
    func deletePersonalizerJob(_ kind: PersonalizerJobKind, model name: String, id: String) throws(PredictError) -> EvaluationAnswer {
        let directory = try jobDirectory(kind, model: name, id: id)
        guard ((try? directory.read(id + ".json", maxBytes: 64 << 20)) ?? nil) != nil else {
            return .notFound("no \(kind.noun) \(id) for model \(name)")
        }
        kind.runs.cancel(model: name, id: id)
        directory.remove(id + ".json")
        return .document([])
    }

    /// `{"value": [<each document, its listed members only>], "nextLink": null}`, oldest first.
    func personalizerJobs(_ kind: PersonalizerJobKind, model name: String) throws(PredictError) -> [UInt8] {
        let directory = try jobDirectory(kind, model: name)
        var items: [(created: String, value: JSONValue)] = []
        for entry in directory.entries() where entry.regular && entry.name.hasSuffix(".json") && !entry.name.hasPrefix(".") {
            let id = String(entry.name.dropLast(".json".count))
            guard case .document(let bytes)? = try? personalizerJob(kind, model: name, id: id),
                  case .object(let members)? = try? JSONParser.parse(bytes, maxDepth: 16) else { continue }
            let summary = members.filter { kind.listed.contains($0.key) }
            items.append((summary.first { $0.key == "creationTime" }?.value.stringValue ?? "", .object(summary)))
        }
        items.sort { $0.created < $1.created }
        return JSONValue.object([("value", .array(items.map(\.value))), ("nextLink", .null)]).jsonBytes
    }

    /// `POST …/configurations/applyFromEvaluation` `{"evaluationId", "policyName"}`: a policy a succeeded evaluation
    /// trained becomes the model's policy (as `PUT …/configurations/policy`; the serving model is not replaced).
    public func applyPersonalizerEvaluation(model name: String, body: [UInt8]) throws(PredictError) -> EvaluationAnswer {
        let document: JSONValue
        do {
            document = try JSONParser.parse(body, maxDepth: maxJSONDepth)
        } catch {
            throw .malformedBody(error.message)
        }
        guard case .object(let members) = document, members.allSatisfy({ ["evaluationId", "policyName"].contains($0.key) }),
              case .string(let id)? = PersonalizerSettings.member("evaluationId", of: members),
              case .string(let policyName)? = PersonalizerSettings.member("policyName", of: members) else {
            throw .invalidRequest("the body must be {\"evaluationId\": string, \"policyName\": string}")
        }
        let answer = try personalizerEvaluation(model: name, id: id)
        guard case .document(let bytes) = answer, let evaluation = try? JSONParser.parse(bytes, maxDepth: 16) else { return answer }
        let status = PersonalizerSettings.member("status", of: evaluation)?.stringValue ?? "?"
        guard status == "Succeeded" else { throw .invalidRequest("evaluation \(id) is \(status), not Succeeded") }
        guard case .array(let policies)? = PersonalizerSettings.member("value", of: PersonalizerSettings.member("content", of: evaluation)),
              let policy = policies.first(where: { PersonalizerSettings.member("name", of: $0)?.stringValue == policyName }) else {
            return .notFound("evaluation \(id) has no policy named \(policyName)")
        }
        guard let arguments = PersonalizerSettings.member("arguments", of: policy)?.stringValue, !arguments.isEmpty else {
            let source = PersonalizerSettings.member("policySource", of: policy)?.stringValue ?? "?"
            throw .invalidRequest("\(policyName) is the \(source) policy of the evaluation, not learning settings: apply one of the policies it was given")
        }
        _ = try updatePersonalizerPolicy(model: name, body: JSONValue.object([("name", .string(policyName)), ("arguments", .string(arguments))]).jsonBytes)
        return .document([])
    }

    /// Whether `id` can name an evaluation (and its file): `[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}`.
    public static func isEvaluationID(_ id: String) -> Bool {
        EventID(id) != nil && id.first.map { $0.isLetter || $0.isNumber } == true
    }

    private func evaluationDirectory(model name: String, id: String? = nil) throws(PredictError) -> StateDirectory {
        try jobDirectory(.evaluations, model: name, id: id)
    }

    /// `<state>/<model>/<kind's directory>`, once the id can name a file and the model exists.
    func jobDirectory(_ kind: PersonalizerJobKind, model name: String, id: String? = nil) throws(PredictError) -> StateDirectory {
        if let id, !Self.isEvaluationID(id) { throw .invalidRequest("the \(kind.noun) id must match [A-Za-z0-9][A-Za-z0-9_.:-]{0,127}") }
        guard store.status(of: name) != nil else { throw .modelNotFound(name) }
        do throws(EventLogError) {
            return try StateDirectory.root(loops.stateDirectory).directory(name + "/" + kind.directory)
        } catch {
            throw .eventLogFailed(error.message)
        }
    }
}

/// The members of an evaluation document fixed when it is created.
struct EvaluationHeader: Sendable {
    let id: String
    let name: String
    let startTime: String
    let endTime: String
    let creationTime: String
    let policies: [(name: String, arguments: String)]

    init(id: String, request: PersonalizerEvaluationRequest, creationTime: String) {
        self.id = id
        name = request.name
        startTime = request.startTime
        endTime = request.endTime
        self.creationTime = creationTime
        policies = request.policies
    }

    func document(status: String, description: String? = nil, result: EvaluationResult? = nil) -> [UInt8] {
        var writer = JSONWriter(capacity: 1024)
        writer.beginObject()
        writer.key("id"); writer.string(id)
        writer.key("name"); writer.string(name)
        writer.key("startTime"); writer.string(startTime)
        writer.key("endTime"); writer.string(endTime)
        writer.key("creationTime"); writer.string(creationTime)
        writer.key("evaluationType"); writer.string("Manual")
        writer.key("status"); writer.string(status)
        if let description { writer.key("description"); writer.string(description) }
        writer.key("policies")
        writer.beginArray()
        for policy in policies {
            writer.beginObject()
            writer.key("name"); writer.string(policy.name)
            writer.key("arguments"); writer.string(policy.arguments)
            writer.endObject()
        }
        writer.endArray()
        if let optimal = result?.optimalPolicy { writer.key("optimalPolicy"); writer.string(optimal.arguments) }
        if let result {
            writer.key("content")
            result.personalizerContent(policyNames: policies.map(\.name), into: &writer)
        }
        writer.endObject()
        return writer.bytes
    }
}

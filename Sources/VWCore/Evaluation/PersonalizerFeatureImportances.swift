#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Personalizer's feature importances (`PUT/GET/DELETE …/featureImportances/{id}`, `GET …/featureImportances`,
/// SPEC §9–§10): the serving model's named weights over the joined events of a time range, ranked by magnitude
/// (``FeatureImportance``: VW's own `--invert_hash`, in the sandbox). Run and kept like an evaluation, one at a time
/// per model, in `<state>/<model>/featureImportances/<id>.json`: `Running`, then `Succeeded` with `featureScores`
/// (`featureName`, `namespace`, `score` = the weight's magnitude, largest first, at most 1,000) or `Failed`.
extension Engine {
    /// `PUT …/featureImportances/{id}` `{"name", "startTime", "endTime", "description"?}`.
    public func createPersonalizerFeatureImportance(model name: String, id: String, body: [UInt8]) throws(PredictError) -> EvaluationAnswer {
        let kind = PersonalizerJobKind.featureImportances
        let directory = try jobDirectory(kind, model: name, id: id)
        let request: PersonalizerEvaluationRequest
        do throws(LoopRequestError) {
            let document: JSONValue
            do {
                document = try JSONParser.parse(body, maxDepth: maxJSONDepth)
            } catch {
                throw LoopRequestError(error.message)
            }
            if case .object(let members) = document, members.contains(where: { $0.key == "policies" || $0.key == "enablePolicyOptimization" }) {
                throw LoopRequestError("a feature importance takes {\"name\", \"startTime\", \"endTime\", \"description\"}: it reads the serving model")
            }
            request = try PersonalizerEvaluationRequest(document)
        } catch {
            throw .invalidRequest("feature importance: " + error.message)
        }
        guard store.serving(name) != nil else { throw .modelNotReady(name) }
        let file = id + ".json"
        if ((try? directory.read(file, maxBytes: 64 << 20)) ?? nil) != nil {
            return .conflict("feature importance \(id) exists; delete it first or choose another id")
        }
        guard let token = kind.runs.register(model: name, id: id) else {
            return .conflict("model \(name) is computing feature importance \(kind.runs.runningID(model: name) ?? "?"); one runs at a time per model")
        }
        let header = (id: id, name: request.name, startTime: request.startTime, endTime: request.endTime,
                      creationTime: EventLine.timestamp(milliseconds: EventLine.nowMilliseconds()))
        @Sendable func document(_ status: String, description: String? = nil, result: FeatureImportanceResult? = nil) -> [UInt8] {
            var writer = JSONWriter(capacity: 512 + (result?.features.count ?? 0) * 80)
            writer.beginObject()
            writer.key("id"); writer.string(header.id)
            writer.key("name"); writer.string(header.name)
            writer.key("startTime"); writer.string(header.startTime)
            writer.key("endTime"); writer.string(header.endTime)
            writer.key("creationTime"); writer.string(header.creationTime)
            writer.key("status"); writer.string(status)
            if let description { writer.key("description"); writer.string(description) }
            if let result {
                writer.key("featureScores")
                writer.beginArray()
                for feature in result.features {
                    writer.beginObject()
                    writer.key("featureName"); writer.string(feature.name)
                    writer.key("namespace"); writer.string(feature.namespace)
                    writer.key("score"); writer.double(abs(feature.weight))
                    writer.endObject()
                }
                writer.endArray()
            }
            writer.endObject()
            return writer.bytes
        }
        let work = "work-\(token)"
        do throws(EventLogError) {
            try directory.writeAtomically(document("Running"), to: file)
            _ = try directory.directory(work)
        } catch {
            _ = kind.runs.finish(model: name, token: token)
            throw .eventLogFailed(error.message)
        }
        var job = EvaluationRequest(stateDirectory: loops.stateDirectory, model: name, policies: [],
                                    vwCommand: store.settings.vwCommand, workDirectory: directory.path + "/" + work)
        job.from = request.from
        job.to = request.to
        let evaluation = job
        let logger = store.logger
        let store = store
        DetachedThread.start(name: "features") {
            let outcome: Result<FeatureImportanceResult, EvaluationError>
            // The job reads its own copy of the version serving when it starts (a version's private copy goes when
            // it retires: a reload meanwhile, e.g. a policy edit, is retried with the new one).
            let workDirectory = try? directory.directory(work, create: false)
            var copied = false
            for _ in 0..<3 where !copied {
                if let workDirectory, let modelFile = store.serving(name)?.stagedPath {
                    copied = ModelDirectory.copyDurably(modelFile, into: workDirectory, as: "model.vw") != nil
                }
            }
            if let workDirectory, copied {
                do throws(EvaluationError) {
                    outcome = .success(try FeatureImportance.compute(evaluation, modelFile: workDirectory.path + "/model.vw", top: 1000))
                } catch {
                    outcome = .failure(error)
                }
            } else {
                outcome = .failure(.storage("cannot copy the serving model (it was replaced meanwhile): create it again"))
            }
            if let workDirectory = try? directory.directory(work, create: false) {
                if let out = try? workDirectory.directory("out", create: false) { for entry in out.list() { out.remove(entry) } }
                workDirectory.remove("out", directory: true)
                for entry in workDirectory.list() { workDirectory.remove(entry) }
            }
            directory.remove(work, directory: true)
            guard kind.runs.finish(model: name, token: token) else { return }
            let bytes: [UInt8]
            switch outcome {
            case .success(let result): bytes = document("Succeeded", result: result)
            case .failure(let error): bytes = document("Failed", description: error.reason)
            }
            do throws(EventLogError) {
                try directory.writeAtomically(bytes, to: file)
            } catch {
                logger.error("cannot write the feature importance", metadata: ["model": "\(name)", "id": "\(id)", "error": "\(error.message)"])
            }
        }
        return .document([])
    }

    /// `GET …/featureImportances/{id}`.
    public func personalizerFeatureImportance(model name: String, id: String) throws(PredictError) -> EvaluationAnswer {
        try personalizerJob(.featureImportances, model: name, id: id)
    }

    /// `DELETE …/featureImportances/{id}`.
    public func deletePersonalizerFeatureImportance(model name: String, id: String) throws(PredictError) -> EvaluationAnswer {
        try deletePersonalizerJob(.featureImportances, model: name, id: id)
    }

    /// `GET …/featureImportances`.
    public func personalizerFeatureImportances(model name: String) throws(PredictError) -> [UInt8] {
        try personalizerJobs(.featureImportances, model: name)
    }
}

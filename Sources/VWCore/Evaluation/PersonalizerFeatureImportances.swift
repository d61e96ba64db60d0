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
        var job = EvaluationRequest(stateDirectory: loops.stateDirectory, model: name, policies: [],
                                    vwCommand: store.settings.vwCommand, workDirectory: "")
        job.from = request.from
        job.to = request.to
        let evaluation = job
        let store = store
        return try startPersonalizerJob(kind, model: name, id: id, directory: directory, running: document("Running")) { work in
            // The job reads its own copy of the version serving when it starts (a version's private copy goes when
            // it retires: a reload meanwhile, e.g. a policy edit, is retried with the new one).
            var copied = false
            for _ in 0..<3 where !copied {
                if let modelFile = store.serving(name)?.stagedPath {
                    copied = ModelDirectory.copyDurably(modelFile, into: work, as: "model.vw") != nil
                }
            }
            guard copied else { return document("Failed", description: "cannot copy the serving model (it was replaced meanwhile): create it again") }
            var run = evaluation
            run.workDirectory = work.path
            do throws(EvaluationError) {
                return document("Succeeded", result: try FeatureImportance.compute(run, modelFile: work.path + "/model.vw", top: 1000))
            } catch {
                return document("Failed", description: error.reason)
            }
        }
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

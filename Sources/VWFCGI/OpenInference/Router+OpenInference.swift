import VWCore

/// The Open Inference Protocol (KServe V2) REST routes: the same engine entry point, limits and
/// error mapping as V1, with the protocol's documents around them.
extension Router {
    func openInference(
        _ route: OpenInferenceRoute, _ request: HTTPRequest, _ outcome: inout RequestMetrics.Outcome,
        _ cache: inout ModelStore.ReaderCache
    ) -> HTTPResponse {
        switch route {
        case .server:
            return only(["GET", "HEAD"], request) { .json(OpenInferenceDocument.server()) }
        case .live:
            return only(["GET", "HEAD"], request) { .json(OpenInferenceDocument.flag("live", true)) }
        case .ready:
            return only(["GET", "HEAD"], request) {
                let ready = engine.readiness().isReady
                let body = OpenInferenceDocument.flag("ready", ready)
                return ready ? .json(body) : .json(body, status: 503, headers: [("Retry-After", "1")])
            }
        case .model(let name, let version):
            return only(["GET", "HEAD"], request) {
                guard engine.hasModel(name, cache: &cache) else { return notFound(name, &outcome) }
                outcome.model = name
                let serving = (try? engine.servingModel(name, cache: &cache)).map { model in
                    (version: model.version, datatype: TensorDatatype.of(kind: model.predictionKind, family: model.family))
                }
                if let version, version != serving?.version { return versionNotFound(name, version, serving: serving?.version) }
                return .json(OpenInferenceDocument.model(name: name, serving: serving))
            }
        case .modelReady(let name, let version):
            return only(["GET", "HEAD"], request) {
                // 200 ready, 404 unknown model or version, 503 known without a serving version.
                let serving: String
                do throws(PredictError) {
                    serving = try engine.servingModel(name, cache: &cache).version
                } catch {
                    if engine.hasModel(name, cache: &cache) { outcome.model = name }
                    return failure(error, &outcome)
                }
                outcome.model = name
                if let version, version != serving { return versionNotFound(name, version, serving: serving) }
                return .json(OpenInferenceDocument.flag("ready", true, name: name))
            }
        case .infer(let name, let version):
            return only(["POST"], request) { infer(model: name, version: version, request, &outcome, &cache) }
        }
    }

    /// `POST /v2/models/<name>[/versions/<v>]/infer`: the `examples` tensor through `Engine.predict`.
    private func infer(
        model name: String, version: String?, _ request: HTTPRequest, _ outcome: inout RequestMetrics.Outcome,
        _ cache: inout ModelStore.ReaderCache
    ) -> HTTPResponse {
        guard engine.hasModel(name, cache: &cache) else { return notFound(name, &outcome) }
        outcome.model = name
        guard case .success(.json) = BodyFormat.of(contentType: request.contentType) else {
            outcome.errorReason = "unsupported_media_type"
            return .error(415, "unsupported Content-Type \(request.contentType ?? ""): the Open Inference Protocol takes application/json "
                + "(the binary tensor extension is not supported)")
        }
        let deadline = Deadline.after(engine.requestTimeout)
        let result: PredictResult
        let decoded: InferRequest
        do throws(PredictError) {
            if let version {
                let serving = try engine.servingModel(name, cache: &cache).version
                if version != serving { return versionNotFound(name, version, serving: serving) }
            }
            decoded = try InferRequest.decode(request.body, maxDepth: engine.maxJSONDepth)
            result = try engine.predict(model: name, input: .examples(decoded.examples), deadline: deadline, cache: &cache)
        } catch {
            return failure(error, &outcome)
        }
        // A reload between the check and the prediction: the answer is not the version asked for.
        if let version, version != result.version { return versionNotFound(name, version, serving: result.version) }
        outcome.examples = result.count
        return .json(OpenInferenceDocument.inference(result, id: decoded.id), headers: [("X-Model-Version", result.version)])
    }

    private func versionNotFound(_ name: String, _ version: String, serving: String?) -> HTTPResponse {
        let serves = serving.map { "serves version '\($0)'" } ?? "has no serving version"
        return .error(404, "model '\(name)' has no version '\(version)' (it \(serves); older versions are not kept)")
    }
}

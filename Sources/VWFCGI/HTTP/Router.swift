import VWCore

/// Maps SPEC §5's routes to handlers, and engine errors to HTTP statuses in one place.
struct Router: Sendable {
    let engine: Engine
    let metrics: RequestMetrics
    /// `--api-key-file`: the keys some routes need; nil lets every request through.
    var apiKeys: APIKeys? = nil
    /// `--personalizer-model`: the model the Personalizer API serves at the server root (SPEC §9).
    var personalizerModel = "personalizer"

    /// The Personalizer routes' way to the store (SPEC §9); the other routes ask the engine.
    var store: ModelStore { engine.store }

    /// What a request thread keeps between requests: its copies of the serving table and metric handles.
    struct ThreadContext {
        var models = ModelStore.ReaderCache()
        var metrics = RequestMetrics.HandleCache()
    }

    /// Answers one request on a thread that may wait for vw, and records it in the metrics.
    func handle(_ request: HTTPRequest, context: inout ThreadContext) -> HTTPResponse {
        answer(request, context: &context) ?? .error(500, "the request was not answered (a context that may not wait for vw)")
    }

    /// Answers one request and records it in the metrics; nil, with nothing recorded, when `context` may not wait
    /// for vw and the answer needs it (a thread that may wait then answers the request).
    func answer(_ request: HTTPRequest, context: inout ThreadContext) -> HTTPResponse? {
        let start = ContinuousClock.now
        // Parsed once: the V2 route is both the metrics label and what `dispatch` serves.
        let v2Route = OpenInferenceRoute(path: request.path)
        let personalizerRoute = PersonalizerRoute(path: request.path, defaultModel: personalizerModel)
        var outcome = RequestMetrics.Outcome(route: v2Route?.label ?? personalizerRoute?.label ?? Self.route(of: request.path))
        var response: HTTPResponse
        if let rejection = request.rejection {
            response = rejection
            outcome.errorReason = rejection.status == 503 ? "shutting_down" : nil
        } else if let denied = unauthorized(request) {
            response = denied
        } else if let personalizerRoute {
            response = personalizer(personalizerRoute, request, &outcome, &context.models)
        } else {
            response = dispatch(request, v2Route, &outcome, &context.models)
        }
        if outcome.needsWorker { return nil }
        if personalizerRoute != nil { response = Self.personalizerError(response) }
        if outcome.errorReason == nil && response.status >= 400 {
            outcome.errorReason = Self.reason(status: response.status)
        }
        metrics.record(outcome, status: response.status, duration: ContinuousClock.now - start, cache: &context.metrics)
        return response
    }

    private func dispatch(
        _ request: HTTPRequest, _ v2Route: OpenInferenceRoute?, _ outcome: inout RequestMetrics.Outcome,
        _ cache: inout ModelStore.ReaderCache
    ) -> HTTPResponse {
        let path = request.path
        switch path {
        case "/healthz", "/":
            // `/` too: KServe's V1 client checks liveness there.
            return only(["GET", "HEAD"], request) { .json(healthz()) }
        case "/readyz":
            return only(["GET", "HEAD"], request) { readyz() }
        case "/metrics":
            return only(["GET", "HEAD"], request) {
                HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.exposition(engine.modelStatuses) + Array(engine.evaluationMetrics().utf8))
            }
        case "/v1/models", "/v1/models/":
            return only(["GET", "HEAD"], request) { .json(StatusDocument.list(engine.modelStatuses, engines: { engine.engineStatus($0) })) }
        default:
            if let v2Route { return openInference(v2Route, request, &outcome, &cache) }
        }
        // Every `/v1/models/<name>…` path is cut by `model(in:verb:)` and `isModelStatus(_:)`, as the pollers' check cuts it.
        guard path.utf8.starts(with: "/v1/models/".utf8) else { return .error(404, "no route for \(path)") }
        for verb in [":predict", ":rank", ":reward", ":activate", ":learn"] {
            guard let name = Self.model(in: path, verb: verb) else { continue }
            let response = only(["POST"], request) {
                verb == ":predict" ? predict(model: name, request, &outcome, &cache) : loopRequest(verb, model: name, request, &outcome, &cache)
            }
            // The metrics' model label, for a model the store has: an answer found it; a failure asks.
            if response.status < 400 || engine.hasModel(name, cache: &cache) { outcome.model = name }
            return response
        }
        for verb in ["rollback", "rotate"] {
            guard let name = Self.model(in: path, verb: "/loop:" + verb) else { continue }
            guard Self.isPlainName(name) else { return .error(404, "no route for \(path)") }
            return only(["POST"], request) {
                do throws(PredictError) {
                    if verb == "rollback" { try engine.rollback(model: name) } else { try engine.rotate(model: name) }
                    outcome.model = name
                    let done = verb == "rollback" ? "scheduled" : "done"
                    return HTTPResponse(status: 202, contentType: "application/json",
                                        body: Array(#"{"\#(verb)":"\#(done)","model":"\#(name)"}"#.utf8))
                } catch {
                    return failure(error, &outcome)
                }
            }
        }
        if let name = Self.model(in: path, verb: "/loop") {
            guard Self.isPlainName(name) else { return .error(404, "no route for \(path)") }
            return only(["GET", "HEAD"], request) {
                guard let status = engine.loopStatus(model: name) else { return notFound(name, &outcome) }
                outcome.model = name
                return .json(StatusDocument.loop(status))
            }
        }
        guard Self.isModelStatus(path), let name = Self.model(in: path, verb: "") else { return .error(404, "no route for \(path)") }
        return only(["GET", "HEAD"], request) {
            guard let status = engine.modelStatus(name) else { return notFound(name, &outcome) }
            outcome.model = name
            return .json(StatusDocument.model(status, engine: engine.engineStatus(name)))
        }
    }

    /// The 401 for a request to a route the API keys guard that presents none of them, else nil.
    func unauthorized(_ request: HTTPRequest) -> HTTPResponse? {
        guard let apiKeys, apiKeys.guards(request.path), !apiKeys.accepts(request) else { return nil }
        return APIKeys.unauthorized(presented: request.authorization != nil || request.subscriptionKey != nil)
    }

    func notFound(_ name: String, _ outcome: inout RequestMetrics.Outcome) -> HTTPResponse {
        failure(.modelNotFound(name), &outcome)
    }

    /// The reply to an engine error, its reason kept for the metrics: one mapping for V1 and V2.
    func failure(_ error: PredictError, _ outcome: inout RequestMetrics.Outcome) -> HTTPResponse {
        outcome.errorReason = error.metricReason
        outcome.needsWorker = error == .needsWorker
        return Self.response(for: error)
    }

    /// The `route` label of a path.
    static func route(of path: String) -> String {
        switch path {
        case "/healthz": "healthz"
        case "/": "root"
        case "/readyz": "readyz"
        case "/metrics": "metrics"
        case "/v1/models", "/v1/models/": "models"
        default:
            // Every request asks, so on the path's bytes (the routes are ASCII).
            if path.utf8.starts(with: "/v2".utf8), let route = OpenInferenceRoute(path: path) {
                route.label
            } else if !path.utf8.starts(with: "/v1/models/".utf8) {
                "other"
            } else {
                Self.modelRouteLabels.first { path.utf8Suffix($0.suffix) }?.label ?? "model"
            }
        }
    }

    /// The labels of `/v1/models/...` paths, by their ending.
    private static let modelRouteLabels: [(suffix: String, label: String)] = [
        (":predict", "predict"), (":rank", "rank"), (":reward", "reward"), (":activate", "activate"), (":learn", "learn"),
        ("/loop", "loop"), ("/loop:rollback", "rollback"), ("/loop:rotate", "rotate"),
    ]

    /// The `vwfcgi_errors_total{reason}` of an error answered outside the engine.
    static func reason(status: Int) -> String {
        switch status {
        case 401: "unauthorized"
        case 404: "not_found"
        case 405: "method_not_allowed"
        case 413: "body_too_large"
        case 415: "unsupported_media_type"
        case 503: "unavailable"
        default: "http_\(status)"
        }
    }

    func only(_ methods: [String], _ request: HTTPRequest, _ body: () -> HTTPResponse) -> HTTPResponse {
        guard methods.contains(request.method) else {
            return .error(405, "method \(request.method) not allowed on \(request.path)", headers: [("Allow", methods.joined(separator: ", "))])
        }
        return body()
    }

    func healthz() -> JSONWriter {
        var writer = JSONWriter(capacity: 32)
        writer.beginObject()
        writer.key("status"); writer.string("alive")
        writer.endObject()
        return writer
    }

    private func readyz() -> HTTPResponse {
        let readiness = engine.readiness()
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("status"); writer.string(readiness.isReady ? "ready" : "not ready")
        if let reason = readiness.reason {
            writer.key("error"); writer.string(reason)
        }
        for (key, names) in [("ready", readiness.ready), ("not_ready", readiness.notReady)] {
            writer.key(key)
            writer.beginArray()
            for name in names { writer.string(name) }
            writer.endArray()
        }
        writer.endObject()
        return readiness.isReady ? .json(writer) : .json(writer, status: 503, headers: [("Retry-After", "1")])
    }

    // MARK: Predict

    /// Maps the HTTP request to the engine's input, and its result or error back to a reply.
    private func predict(
        model name: String, _ request: HTTPRequest, _ outcome: inout RequestMetrics.Outcome, _ cache: inout ModelStore.ReaderCache
    ) -> HTTPResponse {
        let deadline = Deadline.after(engine.requestTimeout)
        let format: BodyFormat
        switch BodyFormat.of(contentType: request.contentType) {
        case .success(let f): format = f
        case .failure(let unsupported):
            outcome.errorReason = "unsupported_media_type"
            return .error(415, unsupported.message)
        }
        let result: PredictResult
        do throws(PredictError) {
            let input: PredictInput = format == .text ? .text(request.body) : .json(request.body)
            result = try engine.predict(model: name, input: input, deadline: deadline, cache: &cache)
        } catch {
            return failure(error, &outcome)
        }
        outcome.examples = result.count
        let headers = [("X-Model-Version", result.version)]
        switch format {
        case .text:
            return HTTPResponse(status: 200, contentType: "text/plain; charset=utf-8", headers: headers, body: result.text)
        case .json:
            return .json(predictionDocument(result), headers: headers)
        }
    }

    /// `:rank` (200 with the decision), `:reward`, `:activate` and `:learn` (202 once on disk).
    private func loopRequest(
        _ verb: String, model name: String, _ request: HTTPRequest, _ outcome: inout RequestMetrics.Outcome,
        _ cache: inout ModelStore.ReaderCache
    ) -> HTTPResponse {
        let format: BodyFormat
        switch BodyFormat.of(contentType: request.contentType) {
        case .failure(let unsupported):
            outcome.errorReason = "unsupported_media_type"
            return .error(415, unsupported.message)
        case .success(let found):
            format = found
        }
        do throws(PredictError) {
            switch verb {
            case ":learn":
                let accepted = try engine.learn(model: name, body: request.body, isJSON: format == .json, cache: &cache)
                outcome.examples = accepted
                return .json(Self.accepted(accepted), status: 202)
            case ":rank":
                let result = try engine.rank(model: name, body: request.body, deadline: .after(engine.requestTimeout), cache: &cache)
                outcome.examples = 1
                return .json(rankDocument(result), headers: [("X-Model-Version", result.version)])
            case ":reward":
                return .json(Self.accepted(try engine.reward(model: name, body: request.body, cache: &cache)), status: 202)
            default:
                try engine.activate(model: name, body: request.body, cache: &cache)
                return .json(Self.accepted(1), status: 202)
            }
        } catch {
            return failure(error, &outcome)
        }
    }

    /// `{"accepted": n}`: n events are on disk.
    private static func accepted(_ count: Int) -> JSONWriter {
        var writer = JSONWriter(capacity: 32)
        writer.beginObject()
        writer.key("accepted"); writer.int(count)
        writer.endObject()
        return writer
    }

    private func rankDocument(_ result: RankResult) -> JSONWriter {
        var writer = JSONWriter(capacity: 128 + result.ranking.count * 40)
        writer.beginObject()
        writer.key("model"); writer.string(result.model)
        writer.key("version"); writer.string(result.version)
        writer.key("event_id"); writer.string(result.eventID)
        writer.key("action"); writer.int(result.action)
        writer.key("probability"); writer.raw(result.probability.utf8)
        writer.key("ranking"); writer.prediction(.actions(result.ranking, probabilities: true))
        writer.endObject()
        return writer
    }

    private func predictionDocument(_ result: PredictResult) -> JSONWriter {
        var writer = JSONWriter(capacity: 64 + result.text.count * 2)
        writer.beginObject()
        writer.key("model"); writer.string(result.model)
        writer.key("version"); writer.string(result.version)
        writer.key("predictions")
        writer.beginArray()
        result.forEachPrediction(parser: PredictionParser(kind: result.predictionKind)) { prediction in
            writer.prediction(prediction)
        }
        writer.endArray()
        writer.endObject()
        return writer
    }

    /// The HTTP status of each engine error.
    static func response(for error: PredictError) -> HTTPResponse {
        switch error {
        case .modelNotFound: .error(404, error.message)
        case .modelNotReady, .overloaded: .error(503, error.message, headers: [("Retry-After", "1")])
        case .invalidExample, .malformedBody: .error(400, error.message)
        case .tooManyInstances, .tooExpensive: .error(413, error.message)
        case .timedOut: .error(504, error.message)
        case .shardFailed: .error(503, error.message, headers: [("Retry-After", "1")])
        case .invalidRequest: .error(400, error.message)
        case .eventLogFailed, .needsWorker: .error(503, error.message, headers: [("Retry-After", "1")])
        }
    }
}

/// The media types a predict request may use.
enum BodyFormat: Equatable {
    case json, text

    /// A missing Content-Type is read as JSON; text/plain must be UTF-8.
    struct Unsupported: Error {
        let message: String
    }

    static func of(contentType: String?) -> Result<BodyFormat, Unsupported> {
        guard let contentType, !contentType.isEmpty else { return .success(.json) }
        // The two headers nearly every request carries, answered without splitting and lowercasing them.
        if contentType == "application/json" { return .success(.json) }
        if contentType == "text/plain" { return .success(.text) }
        let parts = contentType.split(separator: ";").map { $0.trimmingSpaces().lowercased() }
        switch parts.first ?? "" {
        case "application/json":
            return .success(.json)
        case "text/plain":
            for parameter in parts.dropFirst() where parameter.hasPrefix("charset=") {
                let charset = parameter.dropFirst("charset=".count).trimmingCharacters(in: "\"")
                guard charset == "utf-8" || charset == "utf8" || charset == "us-ascii" else {
                    return .failure(Unsupported(message: "text/plain must be UTF-8, not \(charset)"))
                }
            }
            return .success(.text)
        case "application/x-www-form-urlencoded":
            return .failure(Unsupported(message: "unsupported Content-Type \(contentType) (curl -d sends it by default): "
                + "add -H 'Content-Type: application/json' or text/plain"))
        default:
            return .failure(Unsupported(message: "unsupported Content-Type \(contentType): use application/json or text/plain"))
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> Substring {
        trimmingCharacters(where: { $0 == " " || $0 == "\t" })
    }

    func trimmingCharacters(in character: Character) -> Substring {
        trimmingCharacters(where: { $0 == character })
    }

    private func trimmingCharacters(where predicate: (Character) -> Bool) -> Substring {
        var s = Substring(self)
        while let first = s.first, predicate(first) { s.removeFirst() }
        while let last = s.last, predicate(last) { s.removeLast() }
        return s
    }
}

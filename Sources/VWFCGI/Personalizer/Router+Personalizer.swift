import VWCore

/// SPEC §9: the Personalizer REST API mapped onto `Engine.rank`, `Engine.reward` and `Engine.activate`, answered with
/// the statuses the stock SDKs expect (rank 201, reward and activate 204) and errors in their shape.
extension Router {
    func personalizer(
        _ route: PersonalizerRoute, _ request: HTTPRequest, _ outcome: inout RequestMetrics.Outcome, _ cache: inout ModelStore.ReaderCache
    ) -> HTTPResponse {
        if store.contains(route.model, cache: &cache) { outcome.model = route.model }
        switch route.operation {
        case .unknown:
            return .error(404, "no Personalizer route for \(request.path)")
        case .notImplemented(let operation):
            return .error(501, "the Personalizer operation \(operation) is not served by this version of vwfcgi (SPEC §9)"
                + (Self.notServedReasons.first { operation.hasPrefix($0.key) }.map { ": " + $0.value } ?? ""))
        case .logs:
            return only(["DELETE"], request) {
                do throws(PredictError) {
                    try engine.deletePersonalizerLogs(model: route.model)
                    return HTTPResponse(status: 204, body: [])
                } catch {
                    return failure(error, &outcome)
                }
            }
        case .evaluations:
            return only(["GET"], request) {
                do throws(PredictError) {
                    return HTTPResponse(status: 200, body: try engine.personalizerEvaluations(model: route.model))
                } catch {
                    return failure(error, &outcome)
                }
            }
        case .applyFromEvaluation:
            return only(["POST"], request) {
                do throws(PredictError) {
                    switch try engine.applyPersonalizerEvaluation(model: route.model, body: request.body) {
                    case .document: return HTTPResponse(status: 204, body: [])
                    case .notFound(let why): return .error(404, why)
                    case .conflict(let why): return .error(409, why)
                    }
                } catch {
                    return failure(error, &outcome)
                }
            }
        case .evaluation(let id):
            return personalizerJob(request, &outcome,
                                   create: { () throws(PredictError) in try engine.createPersonalizerEvaluation(model: route.model, id: id, body: request.body) },
                                   delete: { () throws(PredictError) in try engine.deletePersonalizerEvaluation(model: route.model, id: id) },
                                   read: { () throws(PredictError) in try engine.personalizerEvaluation(model: route.model, id: id) })
        case .featureImportances:
            return only(["GET"], request) {
                do throws(PredictError) {
                    return HTTPResponse(status: 200, body: try engine.personalizerFeatureImportances(model: route.model))
                } catch {
                    return failure(error, &outcome)
                }
            }
        case .featureImportance(let id):
            return personalizerJob(request, &outcome,
                                   create: { () throws(PredictError) in try engine.createPersonalizerFeatureImportance(model: route.model, id: id, body: request.body) },
                                   delete: { () throws(PredictError) in try engine.deletePersonalizerFeatureImportance(model: route.model, id: id) },
                                   read: { () throws(PredictError) in try engine.personalizerFeatureImportance(model: route.model, id: id) })
        case .rank:
            return only(["POST"], request) { personalizerRank(model: route.model, request, &outcome, &cache) }
        case .multiSlotRank:
            return only(["POST"], request) { personalizerMultiSlotRank(model: route.model, request, &outcome, &cache) }
        case .model:
            return only(["GET", "PUT", "DELETE"], request) {
                do throws(PredictError) {
                    if request.method == "DELETE" {
                        try engine.resetPersonalizerModel(model: route.model)
                        return HTTPResponse(status: 204, body: [])
                    }
                    if request.method == "PUT" {
                        try engine.importPersonalizerModel(model: route.model, bytes: request.body)
                        return HTTPResponse(status: 204, body: [])
                    }
                    let export = try engine.personalizerModelExport(model: route.model)
                    return HTTPResponse(status: 200, contentType: "application/octet-stream", headers: [("X-Model-Version", export.version)],
                                        body: export.bytes)
                } catch {
                    return failure(error, &outcome)
                }
            }
        case .modelProperties, .logProperties:
            return only(["GET"], request) {
                do throws(PredictError) {
                    let answer = route.operation == .logProperties
                        ? try engine.personalizerLogProperties(model: route.model) : try engine.personalizerModelProperties(model: route.model)
                    return HTTPResponse(status: 200, body: answer)
                } catch {
                    return failure(error, &outcome)
                }
            }
        case .serviceConfiguration, .policy:
            let isPolicy = route.operation == .policy
            return only(isPolicy ? ["GET", "PUT", "DELETE"] : ["GET", "PUT"], request) {
                do throws(PredictError) {
                    let answer: [UInt8]
                    switch (isPolicy, request.method) {
                    case (false, "GET"): answer = try engine.personalizerServiceConfiguration(model: route.model)
                    case (false, _): answer = try engine.updatePersonalizerServiceConfiguration(model: route.model, body: request.body)
                    case (true, "GET"): answer = try engine.personalizerPolicy(model: route.model)
                    case (true, "PUT"): answer = try engine.updatePersonalizerPolicy(model: route.model, body: request.body)
                    default: answer = try engine.updatePersonalizerPolicy(model: route.model, body: nil)
                    }
                    return HTTPResponse(status: 200, body: answer)
                } catch {
                    return failure(error, &outcome)
                }
            }
        case .reward(let eventID), .activate(let eventID), .multiSlotReward(let eventID), .multiSlotActivate(let eventID):
            return only(["POST"], request) {
                do throws(PredictError) {
                    guard let id = EventID(eventID) else {
                        throw .invalidRequest("the event id must match [A-Za-z0-9_.:-]{1,128}")
                    }
                    let depth = engine.maxJSONDepth
                    switch route.operation {
                    case .reward:
                        let reward = try Self.decoded { () throws(LoopRequestError) in try PersonalizerReward.decode(request.body, eventID: id, maxDepth: depth) }
                        _ = try engine.reward(model: route.model, rewards: [reward], cache: &cache)
                    case .multiSlotReward:
                        let rewards = try Self.decoded { () throws(LoopRequestError) in
                            try PersonalizerMultiSlotReward.decode(request.body, eventID: id, maxDepth: depth)
                        }
                        try engine.rewardMultiSlot(model: route.model, rewards: rewards, cache: &cache)
                    default:
                        try engine.activate(model: route.model, eventID: id, cache: &cache)
                    }
                    return HTTPResponse(status: 204, body: [])
                } catch {
                    return failure(error, &outcome)
                }
            }
        }
    }

    private func personalizerRank(
        model name: String, _ request: HTTPRequest, _ outcome: inout RequestMetrics.Outcome, _ cache: inout ModelStore.ReaderCache
    ) -> HTTPResponse {
        do throws(PredictError) {
            let depth = engine.maxJSONDepth
            let rankRequest = try Self.decoded { () throws(LoopRequestError) in try PersonalizerRankRequest(request.body, maxDepth: depth) }
            let result = try engine.rank(model: name, request: rankRequest.rank, deadline: .after(store.settings.requestTimeout), cache: &cache)
            outcome.examples = 1
            let (ranking, rewardActionID) = rankRequest.ranking(of: result)
            var writer = JSONWriter(capacity: 96 + ranking.count * 48)
            writer.beginObject()
            writer.key("ranking")
            writer.beginArray()
            for action in ranking {
                writer.beginObject()
                writer.key("id"); writer.string(action.id)
                writer.key("probability"); writer.raw(action.probability.utf8)
                writer.endObject()
            }
            writer.endArray()
            writer.key("eventId"); writer.string(result.eventID)
            writer.key("rewardActionId"); writer.string(rewardActionID)
            writer.endObject()
            return .json(writer, status: 201, headers: [("X-Model-Version", result.version)])
        } catch {
            return failure(error, &outcome)
        }
    }

    private func personalizerMultiSlotRank(
        model name: String, _ request: HTTPRequest, _ outcome: inout RequestMetrics.Outcome, _ cache: inout ModelStore.ReaderCache
    ) -> HTTPResponse {
        do throws(PredictError) {
            let depth = engine.maxJSONDepth
            let rankRequest = try Self.decoded { () throws(LoopRequestError) in try PersonalizerMultiSlotRankRequest(request.body, maxDepth: depth) }
            let result = try engine.rankMultiSlot(model: name, request: rankRequest, deadline: .after(store.settings.requestTimeout), cache: &cache)
            outcome.examples = 1
            var writer = JSONWriter(capacity: 64 + result.slots.count * 64)
            writer.beginObject()
            writer.key("slots")
            writer.beginArray()
            for slot in result.slots {
                writer.beginObject()
                writer.key("id"); writer.string(slot.id)
                writer.key("rewardActionId"); writer.string(slot.actionID)
                writer.endObject()
            }
            writer.endArray()
            writer.key("eventId"); writer.string(result.eventID)
            writer.endObject()
            return .json(writer, status: 201, headers: [("X-Model-Version", result.version)])
        } catch {
            return failure(error, &outcome)
        }
    }

    /// `PUT`/`GET`/`DELETE …/evaluations/{id}` and `…/featureImportances/{id}`: the SDK expects 200 for a created job
    /// (no body) or a read one, 204 for a deleted one; 404 and 409 as the engine says.
    private func personalizerJob(
        _ request: HTTPRequest, _ outcome: inout RequestMetrics.Outcome,
        create: () throws(PredictError) -> EvaluationAnswer, delete: () throws(PredictError) -> EvaluationAnswer,
        read: () throws(PredictError) -> EvaluationAnswer
    ) -> HTTPResponse {
        only(["GET", "PUT", "DELETE"], request) {
            do throws(PredictError) {
                let answer = try request.method == "PUT" ? create() : request.method == "DELETE" ? delete() : read()
                switch answer {
                case .document(let bytes):
                    return request.method == "DELETE" ? HTTPResponse(status: 204, body: []) : HTTPResponse(status: 200, body: bytes)
                case .notFound(let why): return .error(404, why)
                case .conflict(let why): return .error(409, why)
                }
            } catch {
                return failure(error, &outcome)
            }
        }
    }

    /// A request body decoded; its problem is a 400.
    private static func decoded<T>(_ decode: () throws(LoopRequestError) -> T) throws(PredictError) -> T {
        do throws(LoopRequestError) {
            return try decode()
        } catch {
            throw .invalidRequest(error.message)
        }
    }

    /// An error reply `{"error": "message"}` rewritten as the SDKs parse it: `{"error": {"code", "message"}}`.
    static func personalizerError(_ response: HTTPResponse) -> HTTPResponse {
        guard response.status >= 400,
              case .object(let members)? = try? JSONParser.parse(response.body, maxDepth: 4),
              let message = members.first(where: { $0.key == "error" }),
              case .string(let text) = message.value
        else { return response }
        var writer = JSONWriter(capacity: text.utf8.count + 64)
        writer.beginObject()
        writer.key("error")
        writer.beginObject()
        writer.key("code"); writer.string(personalizerCode(response.status))
        writer.key("message"); writer.string(text)
        writer.endObject()
        writer.endObject()
        var reshaped = response
        reshaped.body = writer.bytes
        return reshaped
    }

    /// The error code Personalizer used for a status.
    static func personalizerCode(_ status: Int) -> String {
        personalizerCodes[status] ?? "InternalServerError"
    }

    /// Why an operation is not served, by the start of its path.
    static let notServedReasons: [String: String] = [:]

    private static let personalizerCodes = [
        400: "BadArgument", 401: "PermissionDenied", 404: "ResourceNotFound", 405: "MethodNotAllowed", 409: "Conflict", 413: "BadArgument",
        415: "BadArgument", 501: "NotImplemented", 503: "ServiceUnavailable", 504: "Timeout",
    ]
}

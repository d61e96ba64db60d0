/// A prediction request's body, as the client sent it.
public enum PredictInput: Sendable {
    /// `text/plain`: VW text, one example per line (multiline examples separated by a blank line).
    case text([UInt8])
    /// `application/json`: `{"instances": [...]}`.
    case json([UInt8])
}

/// What vw answered for one request.
public struct PredictResult: Sendable {
    public let model: String
    /// The serving version that answered.
    public let version: String
    public let predictionKind: PredictionKind
    /// Exactly what vw printed, with each client's own tag: the `text/plain` reply.
    public let text: [UInt8]
    /// Where each example's answer lies in `text`.
    let answers: [Range<Int>]
    /// The client's tag of each example, which VW prints at the end of its first answer line.
    let tags: [String]

    /// The number of examples answered.
    public var count: Int { answers.count }

    /// Calls `body` with each example's prediction, in order, as VW printed it without its tag.
    public func forEachPrediction(parser: PredictionParser, _ body: (Prediction) -> Void) {
        // One string for the whole answer; each example's answer is a view of it, reached from the
        // previous one's end.
        let whole = String(decoding: text, as: UTF8.self)
        let utf8 = whole.utf8
        var cursor = utf8.startIndex
        var offset = 0
        for (range, tag) in zip(answers, tags) {
            let start = utf8.index(cursor, offsetBy: range.lowerBound - offset)
            let end = utf8.index(start, offsetBy: range.count)
            body(parser.parse(answer: whole[start..<end], tag: tag))
            cursor = end
            offset = range.upperBound
        }
    }
}

/// The one entry point to prediction: decodes and checks a request's examples, writes them in
/// canonical form to the model's serving version, and returns the verified answers.
///
/// The HTTP layer maps requests to ``PredictInput`` and ``PredictResult`` or ``PredictError`` back
/// to replies; everything between — limits, the grammar, framing, dispatch, retry, timeouts —
/// happens here.
public struct Engine: Sendable {
    public let store: ModelStore
    /// The deepest JSON nesting accepted in a request body.
    public let maxJSONDepth: Int

    public init(store: ModelStore, maxJSONDepth: Int = 32) {
        self.store = store
        self.maxJSONDepth = maxJSONDepth
    }

    /// Answers `input` with model `name`'s serving version by `deadline`.
    public func predict(
        model name: String, input: PredictInput, deadline: Deadline, cache: inout ModelStore.ReaderCache
    ) throws(PredictError) -> PredictResult {
        try store.withServingVersion(of: name, cache: &cache) { version throws(PredictError) in
            let batch = try prepare(input, for: version)
            let answer = try version.pool.predict(batch, deadline: deadline)
            return PredictResult(
                model: name, version: version.version, predictionKind: version.predictionKind,
                text: answer.raw, answers: answer.answers, tags: batch.tags
            )
        }
    }

    /// Answers `input` without a reader cache (tests, tools).
    public func predict(model name: String, input: PredictInput, deadline: Deadline) throws(PredictError) -> PredictResult {
        var cache = ModelStore.ReaderCache()
        return try predict(model: name, input: input, deadline: deadline, cache: &cache)
    }

    /// The request's examples, checked and written in canonical form.
    func prepare(_ input: PredictInput, for version: ModelVersion) throws(PredictError) -> PreparedBatch {
        let examples: [[Substring]]
        let bodyBytes: Int
        switch input {
        case .json(let body):
            bodyBytes = body.count
            do {
                examples = try PredictRequestDecoder(multiline: version.multiline, maxInstances: version.maxBatch)
                    .decode(body, maxDepth: maxJSONDepth)
            } catch {
                switch error {
                case .malformed(let message): throw .malformedBody(message)
                case .tooManyInstances(let count, let limit): throw .tooManyInstances(count: count, limit: limit)
                case .invalidInstance(let invalid): throw .invalidExample(invalid)
                }
            }
        case .text(let body):
            bodyBytes = body.count
            do {
                examples = try TextBody.examples(in: body, multiline: version.multiline)
            } catch {
                throw .invalidExample(error)
            }
            if examples.count > version.maxBatch { throw .tooManyInstances(count: examples.count, limit: version.maxBatch) }
        }
        let budget = store.settings.maxInteractionFeatures
        var builder = ExampleBatchBuilder(
            framing: version.framing, limits: store.settings.limits, cost: version.interactionCost,
            reservingCapacity: bodyBytes + examples.count * 12
        )
        for (index, lines) in examples.enumerated() {
            do {
                try builder.append(lines: lines)
            } catch {
                throw .invalidExample(InvalidExample(index: index, problem: error))
            }
            if builder.features > budget { throw .tooExpensive(index: index, features: builder.features, limit: budget) }
        }
        return builder.finish()
    }
}

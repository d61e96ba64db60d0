import Logging

/// A prediction request's body, as the client sent it.
public enum PredictInput: Sendable {
    /// `text/plain`: VW text, one example per line (multiline examples separated by a blank line).
    case text([UInt8])
    /// `application/json`: `{"instances": [...]}` (or `{"inputs": [...]}`, as KServe V1 reads it).
    case json([UInt8])
    /// One example per string, as an Open Inference Protocol `BYTES` tensor holds them: VW text
    /// (a multiline example's lines joined by `\n`), or for a `vw_json` model one VW JSON object.
    case examples(any ExampleStrings)
}

/// What vw answered for one request.
public struct PredictResult: Sendable {
    public let model: String
    /// The serving version that answered.
    public let version: String
    public let predictionKind: PredictionKind
    /// The model's example family (tells a scalar from a class in a plain prediction).
    public let family: ExampleFamily
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
        // An untagged number is read from the bytes. Anything else goes through the parser: one string for the
        // whole answer, made on first need; each example's answer is a view of it, reached from the last one used.
        var whole: String?
        var cursor: String.Index?
        var offset = 0
        text.withUnsafeBufferPointer { bytes in
            for (range, tag) in zip(answers, tags) {
                if tag.isEmpty, let number = PredictionParser.number(UnsafeBufferPointer(rebasing: bytes[range])) {
                    body(number)
                    continue
                }
                if whole == nil { whole = String(decoding: text, as: UTF8.self) }
                let utf8 = whole!.utf8
                let start = utf8.index(cursor ?? utf8.startIndex, offsetBy: range.lowerBound - offset)
                let end = utf8.index(start, offsetBy: range.count)
                body(parser.parse(answer: whole![start..<end], tag: tag))
                cursor = end
                offset = range.upperBound
            }
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
    /// Every model's decision and reward log on this instance (SPEC §8).
    public let loops: LearningLoops

    public init(store: ModelStore, loops: LearningLoops, maxJSONDepth: Int = 32) {
        self.store = store
        self.loops = loops
        self.maxJSONDepth = maxJSONDepth
        // Settings in force = the serving version's .json, at every join step (SPEC §8.9).
        loops.follow { [store] name in ServingLoop(store.serving(name)) }
    }

    /// Answers `input` with model `name`'s serving version by `deadline`.
    public func predict(
        model name: String, input: PredictInput, deadline: Deadline, cache: inout ModelStore.ReaderCache
    ) throws(PredictError) -> PredictResult {
        let mayWait = cache.mayWaitForVW
        return try store.withServingVersion(of: name, cache: &cache) { version throws(PredictError) in
            let batch = try prepare(input, for: version)
            let answer = try send(batch, to: version, deadline: deadline, mayWait: mayWait)
            return PredictResult(
                model: name, version: version.version, predictionKind: version.predictionKind,
                family: version.options.family, text: answer.raw, answers: answer.answers, tags: batch.tags
            )
        }
    }

    /// What model `name` serves now, as the transport may show it (V2's model metadata and readiness).
    public func servingModel(_ name: String, cache: inout ModelStore.ReaderCache) throws(PredictError) -> ServingModel {
        try store.withServingVersion(of: name, cache: &cache) { version throws(PredictError) in
            ServingModel(version: version.version, predictionKind: version.predictionKind, family: version.options.family)
        }
    }

    /// Answers `input` without a reader cache (tests, tools).
    public func predict(model name: String, input: PredictInput, deadline: Deadline) throws(PredictError) -> PredictResult {
        var cache = ModelStore.ReaderCache()
        return try predict(model: name, input: input, deadline: deadline, cache: &cache)
    }

    /// The request's examples, checked and written in canonical form.
    func prepare(_ input: PredictInput, for version: ModelVersion) throws(PredictError) -> PreparedBatch {
        if let grammar = version.jsonGrammar { return try prepareJSON(input, grammar: grammar, for: version) }
        var decoded: [[Substring]] = []
        var strings: (any ExampleStrings)?
        let bodyBytes: Int
        switch input {
        case .json(let body):
            bodyBytes = body.count
            do {
                decoded = try PredictRequestDecoder(multiline: version.multiline, maxInstances: version.maxBatch)
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
                decoded = try TextBody.examples(in: body, multiline: version.multiline)
            } catch {
                throw .invalidExample(error)
            }
            try BatchPreparation.checkCount(decoded.count, for: version)
        case .examples(let given):
            try BatchPreparation.checkCount(given.count, for: version)
            bodyBytes = given.byteCount
            strings = given
        }
        var batch = BatchPreparation(for: version, settings: store.settings, reservingCapacity: bodyBytes + (strings?.count ?? decoded.count) * 12)
        if let strings {
            // One string at a time, its lines split as it is appended.
            var index = 0
            try strings.forEachExample { text throws(PredictError) in
                try batch.append(lines: PredictRequestDecoder.lines(ofText: text, multiline: version.multiline), index: index)
                index += 1
            }
        } else {
            for (index, lines) in decoded.enumerated() { try batch.append(lines: lines, index: index) }
        }
        return batch.finish()
    }

    /// The examples of a `vw_json` model: `{"instances": [<VW JSON object>, ...]}`, or in `text/plain`
    /// one VW JSON object per line (as `vw --json` reads them), each checked by the VW JSON grammar.
    private func prepareJSON(_ input: PredictInput, grammar: VWJSONGrammar, for version: ModelVersion) throws(PredictError) -> PreparedBatch {
        var objects: [JSONValue] = []
        var lines: [ArraySlice<UInt8>] = []
        let bodyBytes: Int
        switch input {
        case .examples(let strings):
            bodyBytes = strings.byteCount
            lines.reserveCapacity(strings.count)
            try strings.forEachExample { text throws(PredictError) in lines.append(Array(text.utf8)[...]) }
        case .json(let body):
            bodyBytes = body.count
            objects = try Self.instances(of: body, maxDepth: maxJSONDepth)
        case .text(let body):
            bodyBytes = body.count
            lines = body.split(separator: 0x0A, omittingEmptySubsequences: false)
            if lines.last?.isEmpty == true { lines.removeLast() }
        }
        let count = max(objects.count, lines.count)
        try BatchPreparation.checkCount(count, for: version)
        var batch = BatchPreparation(for: version, settings: store.settings, reservingCapacity: bodyBytes + count * 16)
        for index in 0..<count {
            try batch.append(json: { () throws(ExampleProblem) in
                index < objects.count ? try grammar.parse(objects[index]) : try grammar.parse(bytes: Array(lines[index]))
            }, index: index)
        }
        return batch.finish()
    }

    /// Sends a prepared batch to the version's vw pool (or its verified native scorer, SPEC §11): the one way to vw.
    ///
    /// Without `mayWait`, only the native scorer may answer, and only a request that is not a shadow check's turn:
    /// anything else throws ``PredictError/needsWorker`` before it reaches vw.
    func send(_ batch: PreparedBatch, to version: ModelVersion, deadline: Deadline, mayWait: Bool = true) throws(PredictError) -> ShardAnswer {
        if !mayWait {
            guard let answer = version.native.answerAlone(batch) else { throw .needsWorker }
            return answer
        }
        do {
            return try version.native.answer(batch, pool: version.pool, deadline: deadline)
        } catch {
            throw PredictError(error)
        }
    }

    /// The members of a request body that must be a JSON object (`holding` names what it should hold,
    /// for the 400 message).
    public static func bodyObject(_ body: [UInt8], maxDepth: Int, holding: String) throws(PredictError) -> [(key: String, value: JSONValue)] {
        let document: JSONValue
        do {
            document = try JSONParser.parse(body, maxDepth: maxDepth)
        } catch {
            throw .malformedBody(error.message)
        }
        guard case .object(let members) = document else {
            throw .malformedBody("the request body must be a JSON object with \(holding), not \(document.kindName)")
        }
        return members
    }

    /// The `instances` array of a JSON body, or its `inputs` array (KServe V1's synonym).
    static func instances(of body: [UInt8], maxDepth: Int) throws(PredictError) -> [JSONValue] {
        let members = try bodyObject(body, maxDepth: maxDepth, holding: "an \"instances\" array")
        let found = members.filter { PredictRequestDecoder.instancesKeys.contains($0.key) }
        guard found.count == 1, case .array(let items) = found[0].value else {
            throw .malformedBody(found.count > 1 ? "give \"instances\" (or its synonym \"inputs\") once" : "the request has no \"instances\" array")
        }
        return items
    }
}

/// A model's serving version, as the transport sees it.
public struct ServingModel: Sendable, Equatable {
    public let version: String
    public let predictionKind: PredictionKind
    /// The model's example family (tells a scalar from a class in a plain prediction).
    public let family: ExampleFamily
}

/// A request's examples checked one by one: the model's grammar, the answer framing and the per-request feature
/// budget, the same for every route that reaches vw (`:predict`, V2's `infer`, `:rank`) and for `:learn`, whose
/// labelled examples reach vw later, in the trainer (``appendLabelled(_:index:grammar:check:)``).
struct BatchPreparation {
    private var builder: ExampleBatchBuilder
    private let budget: Int
    /// The features of the `:learn` examples so far (they are not written into `builder`: no framing, labels kept).
    private var labelledFeatures = 0

    init(for version: ModelVersion, settings: EngineSettings, reservingCapacity: Int = 0) {
        builder = ExampleBatchBuilder(
            framing: version.framing, limits: settings.limits, cost: version.interactionCost, reservingCapacity: reservingCapacity
        )
        budget = settings.maxInteractionFeatures
    }

    /// Refuses a request of more examples than the version takes at once.
    static func checkCount(_ count: Int, for version: ModelVersion) throws(PredictError) {
        if count > version.maxBatch { throw .tooManyInstances(count: count, limit: version.maxBatch) }
    }

    /// Appends example `index`, given as its VW text lines.
    mutating func append(lines: [Substring], index: Int) throws(PredictError) {
        do {
            try builder.append(lines: lines)
        } catch {
            throw .invalidExample(InvalidExample(index: index, problem: error))
        }
        try checkBudget(index: index)
    }

    /// Appends example `index`, a VW JSON example that `parse` checks with the model's grammar; returns it.
    @discardableResult
    mutating func append(json parse: () throws(ExampleProblem) -> VWJSONExample, index: Int) throws(PredictError) -> VWJSONExample {
        let example: VWJSONExample
        do throws(ExampleProblem) {
            example = try parse()
        } catch {
            throw .invalidExample(InvalidExample(index: index, problem: error))
        }
        builder.append(json: example)
        try checkBudget(index: index)
        return example
    }

    /// The one context of a decision (`:rank`, a Personalizer rank), checked by `grammar`; its problem is named as the
    /// context's (it is not an instance of a list).
    mutating func append(context: JSONValue, grammar: VWJSONGrammar) throws(PredictError) -> VWJSONExample {
        do throws(PredictError) {
            return try append(json: { () throws(ExampleProblem) in try grammar.parse(context) }, index: 0)
        } catch {
            if case .invalidExample(let invalid) = error { throw .invalidRequest("context: \(invalid.problem.reason)") }
            throw error
        }
    }

    /// Example `index` of a `:learn` request, one line of VW text: parsed by `grammar` (labels kept, and required),
    /// refused when `check` names a problem with its canonical form (the loop's bounds), counted against the same
    /// feature budget; returned in canonical form (without its newline) for the event log.
    mutating func appendLabelled(
        _ text: Substring, index: Int, grammar: ExampleGrammar, check: (String) -> String?
    ) throws(PredictError) -> String {
        let canonical: String
        do throws(ExampleProblem) {
            guard !text.utf8.contains(0x0A) else { throw .invalidStructure("a :learn example is one line of VW text (it holds a newline)") }
            let example = try grammar.parse(lines: [text])
            guard example.hasLabel else { throw .invalidLabel("a :learn example needs a label") }
            canonical = String(example.canonicalText().dropLast())
            if let why = check(canonical) { throw .invalidLabel(why) }
            if let cost = builder.cost { labelledFeatures += cost.features(of: example.featureCounts, lines: example.lineCount) }
        } catch {
            throw .invalidExample(InvalidExample(index: index, problem: error))
        }
        if labelledFeatures > budget { throw .tooExpensive(index: index, features: labelledFeatures, limit: budget) }
        return canonical
    }

    private func checkBudget(index: Int) throws(PredictError) {
        if builder.features > budget { throw .tooExpensive(index: index, features: builder.features, limit: budget) }
    }

    func finish() -> PreparedBatch { builder.finish() }
}

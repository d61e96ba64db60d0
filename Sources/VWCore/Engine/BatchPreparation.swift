/// A request's examples checked one by one into the batch written to vw: the model's grammar, the
/// answer framing and the per-request feature budget, the same for every route that reaches vw
/// (`:predict`, V2's `infer`, `:rank`).
struct BatchPreparation {
    private var builder: ExampleBatchBuilder
    private let budget: Int

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

    private func checkBudget(index: Int) throws(PredictError) {
        if builder.features > budget { throw .tooExpensive(index: index, features: builder.features, limit: budget) }
    }

    func finish() -> PreparedBatch { builder.finish() }
}

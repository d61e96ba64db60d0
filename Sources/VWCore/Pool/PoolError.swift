/// Why a model version's vw pool did not answer a batch.
public enum PoolError: Error, Equatable, Sendable {
    /// The model's queue is full: retry later.
    case overloaded(model: String)
    /// vw did not answer by the deadline.
    case timedOut(model: String)
    /// vw failed twice while holding the batch.
    case shardFailed(String)

    public var message: String { PredictError(self).message }
}

extension PredictError {
    /// The one mapping of a pool's failure to the API's error.
    public init(_ error: PoolError) {
        switch error {
        case .overloaded(let model): self = .overloaded(model)
        case .timedOut(let model): self = .timedOut(model)
        case .shardFailed(let reason): self = .shardFailed(reason)
        }
    }
}

/// Why a prediction request was not answered; the HTTP layer maps each case to a status code.
public enum PredictError: Error, Equatable, Sendable {
    case modelNotFound(String)
    case modelNotReady(String)
    case invalidExample(InvalidExample)
    /// The body is not a valid request (e.g. malformed JSON).
    case malformedBody(String)
    case tooManyInstances(count: Int, limit: Int)
    /// The model's interactions would make vw compute more features than the per-request budget.
    case tooExpensive(index: Int, features: Int, limit: Int)
    /// The model's queue is full: retry later.
    case overloaded(String)
    /// vw did not answer within the request timeout.
    case timedOut(String)
    /// vw failed twice while holding the request.
    case shardFailed(String)
    /// A learning-loop request (rank, reward, activate) that is malformed or does not fit the model.
    case invalidRequest(String)
    /// The event log cannot be written (disk full, unwritable): decisions and rewards are refused.
    case eventLogFailed(String)
    /// The answer needs vw and the thread asking may not wait for it (``ModelStore/ReaderCache/mayWaitForVW``):
    /// the transport hands the request to a thread that may wait. Never a client's answer.
    case needsWorker

    public var message: String {
        switch self {
        case .modelNotFound(let name): "model '\(name)' not found"
        case .modelNotReady(let name): "model '\(name)' has no serving version"
        case .invalidExample(let invalid): invalid.message
        case .malformedBody(let why): why
        case .tooManyInstances(let count, let limit): "\(count) instances, more than the limit of \(limit)"
        case .tooExpensive(let index, let features, let limit):
            "instance \(index): with the model's feature interactions the request needs \(features == .max ? "more than \(limit)" : "\(features)") "
                + "feature computations, more than the limit of \(limit) per request (--max-interaction-features)"
        case .overloaded(let name): "model '\(name)' is overloaded, retry later"
        case .timedOut(let name): "model '\(name)': vw did not answer in time"
        case .shardFailed(let reason): "vw failed: \(reason)"
        case .invalidRequest(let why): why
        case .eventLogFailed(let why): "cannot log the event, nothing was recorded: \(why)"
        case .needsWorker: "the answer needs vw, and this thread may not wait for it"
        }
    }
}

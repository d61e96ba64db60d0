/// Why an evaluation cannot run.
public enum EvaluationError: Error, Equatable {
    /// No `<state>/<model>/joined/` directory.
    case modelNotFound(String)
    /// No joined decision in the range.
    case noEvents(String)
    /// A candidate's arguments are refused by the option allowlist, or do not make vw print action probabilities.
    case invalidPolicy(policy: String, reason: String)
    /// A candidate's vw failed or printed something else than one PMF per event.
    case vwFailed(policy: String, reason: String)
    /// The state or work directory cannot be read or written.
    case storage(String)
    /// A `--from`/`--to` that is not a date or RFC 3339 time.
    case invalidTime(String)
    /// The evaluation was deleted while it ran (checked before each candidate's vw starts).
    case cancelled

    public var reason: String {
        switch self {
        case .modelNotFound(let model): "no joined events for model \(model) (no <state>/\(model)/joined/)"
        case .noEvents(let why): "no events to evaluate: \(why)"
        case .invalidPolicy(let policy, let reason): "policy \"\(policy)\": \(reason)"
        case .vwFailed(let policy, let reason): "policy \"\(policy)\": vw failed: \(reason)"
        case .storage(let why): why
        case .cancelled: "cancelled"
        case .invalidTime(let text): "\(text) is not a date (2026-12-01) or an RFC 3339 UTC time (2026-12-01T10:00:00Z)"
        }
    }
}

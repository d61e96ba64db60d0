/// How the lines VW prints for a model are to be read.
public enum PredictionKind: Sendable, Equatable {
    /// A number (scalar) or an integer (multiclass, `--cb_adf`'s chosen action); anything else is text.
    case plain
    /// `action:probability,...` as printed by the exploration reductions (`--cb_explore_adf`, ...).
    case actionProbabilities
    /// `action:score,...` as printed by ranking reductions.
    case actionScores
}

/// One `action:value` pair of an action list, the value kept as VW printed it.
public struct ActionValue: Equatable, Sendable {
    public let action: Int
    public let value: String

    public init(action: Int, value: String) {
        self.action = action
        self.value = value
    }
}

/// One example's prediction, as VW printed it, without its tag.
public enum Prediction: Equatable, Sendable {
    /// A scalar, kept as VW's text (already a valid JSON number).
    case number(String)
    case integer(Int)
    /// `action:value` pairs in VW's order; `probabilities` tells which name the value has.
    case actions([ActionValue], probabilities: Bool)
    case text(String)
    /// Several lines for one example (e.g. `--ccb_explore_adf` prints one line per slot).
    case lines([Prediction])
}

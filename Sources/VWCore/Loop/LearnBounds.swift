/// The bounds a `:learn` example must keep (SPEC §8.9): one labelled line can otherwise move a regression model
/// for good (`1 1e30 |a x:1e30` makes every later prediction the same constant).
///
/// Checked on the canonical text the grammar wrote (`[label words] ['tag ]|ns[:v] f[:v] ...`): every number is
/// finite, labels, costs and initial values within `maxAbsLabel`, importance weights within `[0, maxImportance]`,
/// feature and namespace values within `maxAbsFeatureValue`.
struct LearnBounds {
    let maxAbsLabel: Double
    let maxImportance: Double
    let maxAbsFeatureValue: Double

    init(_ loop: LoopConfig) {
        maxAbsLabel = loop.maxAbsLabel
        maxImportance = loop.maxImportance
        maxAbsFeatureValue = loop.maxAbsFeatureValue
    }

    /// Why `line` breaks the bounds, nil when it keeps them.
    func problem(in line: String, family: ExampleFamily) -> String? {
        let utf8 = line.utf8
        let bar = utf8.firstIndex(of: UInt8(ascii: "|")) ?? utf8.endIndex
        let words = line[..<bar].split(separator: " ").filter { !$0.hasPrefix("'") }
        func number(_ text: Substring) -> Double? { Double(text) }
        func label(_ text: Substring, _ what: String) -> String? {
            guard let value = number(text) else { return nil }  // not a number: a class name the grammar accepted
            guard value.isFinite, abs(value) <= maxAbsLabel else {
                return "\(what) \(text) is outside ±\(maxAbsLabel) (the loop's max_abs_label)"
            }
            return nil
        }
        func importance(_ text: Substring) -> String? {
            guard let value = number(text) else { return nil }
            guard value.isFinite, value >= 0, value <= maxImportance else {
                return "importance weight \(text) is outside [0, \(maxImportance)] (the loop's max_importance)"
            }
            return nil
        }
        switch family {
        case .simple:
            if words.count > 0, let why = label(words[0], "label") { return why }
            if words.count > 1, let why = importance(words[1]) { return why }
            if words.count > 2, let why = label(words[2], "initial value") { return why }
        case .multiclass:
            if words.count > 1, let why = importance(words[1]) { return why }
        default:
            // `class:cost`, `action:cost:probability`: every number after the first part.
            for word in words {
                for part in word.split(separator: ":", omittingEmptySubsequences: false).dropFirst() where !part.isEmpty {
                    if let why = label(part, "cost") { return why }
                }
            }
        }
        guard bar < utf8.endIndex else { return nil }
        for segment in line[bar...].split(separator: "|") {
            for token in segment.split(separator: " ") {
                guard let colon = token.firstIndex(of: ":") else { continue }
                let text = token[token.index(after: colon)...]
                guard let value = number(text) else { continue }
                guard value.isFinite, abs(value) <= maxAbsFeatureValue else {
                    return "feature value \(text) (\(token.prefix(64))) is outside ±\(maxAbsFeatureValue) (the loop's max_abs_feature_value)"
                }
            }
        }
        return nil
    }
}

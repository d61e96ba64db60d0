import VWCore

extension JSONWriter {
    /// Appends one prediction as the reply's `P`: a number, an integer, an action list, a string or a list of those.
    mutating func prediction(_ p: Prediction) {
        switch p {
        case .number(let text):
            numberOrString(text)
        case .integer(let n):
            int(n)
        case .actions(let pairs, let probabilities):
            beginArray()
            for pair in pairs {
                beginObject()
                key("action"); int(pair.action)
                key(probabilities ? "probability" : "score"); numberOrString(pair.value)
                endObject()
            }
            endArray()
        case .text(let text):
            string(text)
        case .lines(let lines):
            beginArray()
            for line in lines { prediction(line) }
            endArray()
        }
    }

    /// Writes VW's number text verbatim, or as a string if it is not a JSON number (`nan`, `inf`), so the reply stays valid JSON.
    private mutating func numberOrString(_ text: String) {
        if JSONParser.isNumber(text) { raw(text.utf8) } else { string(text) }
    }
}

import VWCore

extension JSONWriter {
    /// Appends one prediction as the reply's `P`: a number, an integer, an action list, a string or a list of those.
    mutating func prediction(_ p: Prediction) {
        switch p {
        case .number(let text):
            numberOrString(text)
        case .integer(let n):
            integer(n)
        case .actions(let pairs, let probabilities):
            bytes.append(UInt8(ascii: "["))
            for (k, pair) in pairs.enumerated() {
                if k > 0 { bytes.append(UInt8(ascii: ",")) }
                raw("{\"action\":")
                integer(pair.action)
                raw(probabilities ? ",\"probability\":" : ",\"score\":")
                numberOrString(pair.value)
                bytes.append(UInt8(ascii: "}"))
            }
            bytes.append(UInt8(ascii: "]"))
        case .text(let text):
            string(text)
        case .lines(let lines):
            bytes.append(UInt8(ascii: "["))
            for (k, line) in lines.enumerated() {
                if k > 0 { bytes.append(UInt8(ascii: ",")) }
                prediction(line)
            }
            bytes.append(UInt8(ascii: "]"))
        }
    }

    /// Writes VW's number text verbatim, or as a string if it is not a JSON number (`nan`, `inf`), so the reply stays valid JSON.
    private mutating func numberOrString(_ text: String) {
        if JSONParser.isNumber(text) { raw(text) } else { string(text) }
    }
}

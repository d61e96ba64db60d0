// libFuzzer target: PredictionParser (+ the JSON reply writer) on arbitrary VW output.
//
// Input: byte 0 picks the prediction kind; the rest is `answer` NUL `tag` (the tag optional),
// decoded as the server decodes vw's output (lossy UTF-8). Checks:
//
// * the reply's `P` written by JSONWriter.prediction is valid JSON, whatever vw printed;
// * a multi-line answer gives one prediction per line, a one-line answer is never `.lines`;
// * numbers and integers are what the line says, and PredictionParser's JSON-number test
//   agrees with JSONParser's;
// * the tag is only ever removed from the first line, as " <tag>" at its end or, failing that, as
//   its second word followed by a space (`--bootstrap` prints `pred tag bag1 bag2`).
@testable import VWCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let kinds: [PredictionKind] = [.plain, .actionProbabilities, .actionScores]
    let kind = kinds[Int(bytes[0]) % kinds.count]
    let rest = bytes[1...]
    let split = rest.firstIndex(of: 0)
    let answer = String(decoding: rest[..<(split ?? rest.endIndex)], as: UTF8.self)
    let tag = split.map { String(decoding: rest[rest.index(after: $0)...], as: UTF8.self) } ?? ""

    // Two number checkers that must agree.
    check(PredictionParser.isJSONNumber(answer.utf8) == JSONParser.isNumber(answer),
          "isJSONNumber and JSONParser.isNumber disagree on \(Array(answer.utf8))")

    let prediction = PredictionParser(kind: kind).parse(answer: Substring(answer), tag: tag)
    var writer = JSONWriter()
    writer.prediction(prediction)
    do {
        _ = try JSONParser.parse(writer.bytes, maxDepth: 8)
    } catch {
        fatalError("invariant broken: reply is not JSON (\(error.message)): \(String(decoding: writer.bytes, as: UTF8.self))")
    }

    // vw's lines end at every "\n" byte ("\r\n" is one Character, but two lines' worth of bytes).
    let lines = answer.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).map { Substring($0) }
    if lines.count > 1 {
        guard case .lines(let parts) = prediction else { fatalError("invariant broken: a multi-line answer is not .lines") }
        check(parts.count == lines.count, "\(parts.count) predictions for \(lines.count) lines")
        for (k, (part, line)) in zip(parts, lines).enumerated() { checkLine(part, line, tag: k == 0 ? tag : "") }
    } else {
        if case .lines = prediction { fatalError("invariant broken: a one-line answer gave .lines") }
        checkLine(prediction, Substring(answer), tag: tag)
    }
    return 0
}

func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}

/// `line` without " <tag>" at its end when the tag is there (and not the whole line), else without
/// its second word when that word is the tag and another word follows; stated on byte arrays.
func stripped(_ line: Substring, tag: String) -> Substring {
    guard !tag.isEmpty else { return line }
    let bytes = Array(line.utf8), suffix = Array((" " + tag).utf8)
    if bytes.count > tag.utf8.count, bytes.reversed().starts(with: suffix.reversed()) {
        return Substring(String(decoding: bytes[..<(bytes.count - suffix.count)], as: UTF8.self))
    }
    guard let space = bytes.firstIndex(of: 0x20) else { return line }
    let word = Array((" " + tag + " ").utf8)
    guard bytes[space...].starts(with: word) else { return line }
    return Substring(String(decoding: Array(bytes[..<space]) + bytes[(space + word.count - 1)...], as: UTF8.self))
}

func checkLine(_ prediction: Prediction, _ line: Substring, tag: String) {
    let text = stripped(line, tag: tag)
    switch prediction {
    case .integer(let n):
        check(Int(text) == n, "integer \(n) from \(Array(text.utf8))")
    case .number(let s):
        check(s == text, "number \(s) is not the line \(text)")
        check(JSONParser.isNumber(s), "number \(s) is not a JSON number")
    case .text(let s):
        check(s == text, "text \(s) is not the line \(text)")
    case .actions(let pairs, let probabilities):
        _ = probabilities
        let items = text.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { Substring($0) }
        check(items.count == pairs.count, "\(pairs.count) pairs from \(items.count) items")
        for (pair, item) in zip(pairs, items) {
            check(item == Substring("\(pair.action):\(pair.value)") || item.hasSuffix(":" + pair.value), "pair \(pair) from \(item)")
            check(JSONParser.isNumber(pair.value), "value \(pair.value) is not a JSON number")
            check(pair.action >= 0, "negative action")
        }
    case .lines:
        fatalError("invariant broken: nested .lines")
    }
}

// libFuzzer target: the native scorer's model-file reader and scorer on arbitrary bytes.
//
// Input: byte 0 picks the configuration (floats per weight record, --hash all, --noconstant,
// the logistic link, a set of interactions), byte 1's top bits `--oaa K` (K 0...7, 0 a scalar
// model) and, with byte 0's top bit, a valid VW 9 header (bits from byte 1's low bits)
// is put in front of the data; bytes 2...3 split the rest into the model file and the VW text
// scored with it. Checks:
//
// * the reader never traps nor reads out of bounds (ASan), whatever the lengths and indices say;
// * an accepted file has 2^bits weights, bits within the limit;
// * the scorer never traps on any line, and when it answers, it prints one line per input line,
//   each a number (or inf/-inf/nan never: VW's NaN becomes 0) and the line's tag; an oaa model's
//   answer is a class from 0 (or 1) to K.
// * with byte 1's bit 3 (and no oaa), an ADF model (`--cb_explore_adf` epsilon-greedy, or `--cb_adf`
//   plain or `--rank_all`, mtr or dr; `:` wildcard interactions): the text is read as multiline
//   examples; when the scorer answers, every example gets one line and a blank line, the last one
//   (a fixed example with two tied actions) `a:p` for actions 0, 1, 2 once each, a PMF summing to
//   1, then its tag.
// * text starting with `{` is VW JSON (the model reads `vw --json`): the scorer never traps on the raw
//   lines, and on the lines the VW JSON grammar accepts (written in canonical form with a server tag
//   each, a fixed example last) it answers every example with one line (and a blank line for ADF)
//   ending in that example's tag, or declines the batch.
@testable import VWCore

private let interactionSets: [[[UInt8]]] = [[], [Array("ab".utf8)], [Array("aab".utf8), Array("ba".utf8)], [Array("abca".utf8)]]

/// A VW 9.11 header for a model with `bits`, no options, then `resume` = 0.
private func header(bits: UInt8) -> [UInt8] {
    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    var bytes = u32(7) + Array("9.11.9".utf8) + [0] + u32(1) + [0] + [UInt8(ascii: "m")]
    bytes += u32(Float(-1).bitPattern) + u32(Float(1).bitPattern) + u32(UInt32(bits)) + u32(0) + u32(0) + u32(0)
    bytes += u32(1) + [0] + u32(4) + u32(0xdead_beef)
    return bytes
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 4 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let selector = bytes[0]
    let split = min(size - 4, Int(bytes[2]) | Int(bytes[3]) << 8)
    var file = Array(bytes[4..<(4 + split)])
    let text = Array(bytes[(4 + split)...])
    let isADF = bytes[1] >> 5 == 0 && bytes[1] & 0x08 != 0
    if selector & 0x80 != 0 {
        // An ADF model's file holds cb_adf's 16 bytes of state between the header and gd's.
        file = header(bits: 1 + bytes[1] % 18) + [UInt8](repeating: 0, count: isADF ? 16 : 0) + [selector & 0x40 != 0 ? 1 : 0] + file
    }
    var configuration = NativeConfiguration()
    configuration.floatsPerRecord = 1 + Int(selector % 3)
    configuration.hashesAll = selector & 4 != 0
    configuration.addsConstant = selector & 8 == 0
    configuration.logisticLink = selector & 16 != 0
    configuration.interactions = interactionSets[Int(selector >> 5) & 3]
    configuration.classes = Int(bytes[1] >> 5)
    configuration.zeroBasedClasses = bytes[1] & 0x10 != 0
    if isADF {
        return fuzzADF(bytes: bytes, file: file, text: text, configuration: configuration)
    }
    guard let model = try? NativeModelFile.parse(file, floatsPerRecord: configuration.floatsPerRecord, maxBits: 18) else { return 0 }
    check(model.bits >= 1 && model.bits <= 18 && model.weights.count == 1 << model.bits, "weights of an accepted file")
    let scorer = NativeScorer(file: model, configuration: configuration)
    if text.first == UInt8(ascii: "{") { return fuzzJSON(scorer, text: text) }
    var payload = text.filter { $0 != 0x0A }.prefix(4096) + [0x0A]
    payload += Array("1 1 0.5 'tag |a x:2 y |b 3 |c:0.5 :1 z:red\n".utf8)
    guard let printed = scorer.predict(payload: Array(payload)) else { return 0 }
    let lines = printed.split(separator: 0x0A, omittingEmptySubsequences: false)
    check(lines.count == 3 && lines[2].isEmpty, "one answer line per example")
    for line in lines.dropLast() {
        let number = line.prefix { $0 != 0x20 }
        if configuration.classes > 0, let value = Int(String(decoding: number, as: UTF8.self)) {
            let low = configuration.zeroBasedClasses ? 0 : 1
            check(value >= low && value < low + configuration.classes, "a class of the model")
        }
        check(!number.isEmpty && number.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D || $0 == 0x69 || $0 == 0x6E || $0 == 0x66 },
              "an answer starts with a number")
    }
    return 0
}

private func check(_ condition: Bool, _ what: String) {
    if !condition { fatalError("invariant broken: \(what)") }
}

private let wildcardSets: [[[UInt8]]] = [[], [Array("::".utf8)], [Array("::s".utf8), Array("as".utf8)], [Array(":::".utf8)]]

/// The ADF half of the target (see the file's comment).
private func fuzzADF(bytes: [UInt8], file: [UInt8], text: [UInt8], configuration base: NativeConfiguration) -> CInt {
    var configuration = base
    configuration.logisticLink = false
    configuration.interactions = wildcardSets[Int(bytes[0] >> 5) & 3]
    let mode = bytes[1] & 3
    configuration.adf = NativeADF(
        explores: mode < 2, epsilon: Float(bytes[1] >> 4) / 15, doublyRobust: bytes[1] & 4 != 0, rankAll: mode == 2
    )
    guard let model = try? NativeModelFile.parse(file, floatsPerRecord: configuration.floatsPerRecord, reductionBytes: 16, maxBits: 18) else { return 0 }
    let scorer = NativeScorer(file: model, configuration: configuration)
    if text.first == UInt8(ascii: "{") { return fuzzJSON(scorer, text: text) }
    var payload = Array(text.prefix(4096))
    if !payload.isEmpty {
        if payload.last != 0x0A { payload.append(0x0A) }
        if payload.count < 2 || payload[payload.count - 2] != 0x0A { payload.append(0x0A) }
    }
    payload += Array("shared 'tag |s x:2 |a y\n|a z\n|a z\n|b 3\n\n".utf8)
    guard let printed = scorer.predict(payload: payload) else { return 0 }
    // Bytes, not a String: a tag may end in '\r', which a String would join with the newline.
    check(printed.count >= 2 && printed.suffix(2).elementsEqual([0x0A, 0x0A]), "an ADF answer ends with a blank line")
    var answers: [ArraySlice<UInt8>] = []
    var start = 0
    var index = 0
    while index < printed.count {
        if printed[index] == 0x0A {
            check(index + 1 < printed.count && printed[index + 1] == 0x0A && index > start, "one line per ADF example")
            answers.append(printed[start..<index])
            index += 2
            start = index
        } else {
            index += 1
        }
    }
    let last = String(decoding: answers.last!, as: UTF8.self)
    check(last.hasSuffix(" tag"), "the shared line's tag")
    let words = last.dropLast(4)
    if configuration.adf!.explores || configuration.adf!.rankAll {
        let pairs = words.split(separator: ",").map { $0.split(separator: ":") }
        check(pairs.count == 3 && Set(pairs.map { $0.first.map(String.init) ?? "" }) == ["0", "1", "2"], "each action once")
        if configuration.adf!.explores {
            let total = pairs.reduce(0.0) { $0 + (Double(String($1.last ?? "")) ?? -9) }
            check(abs(total - 1) < 1e-4, "a PMF")
        }
    } else {
        check(["0", "1", "2"].contains(String(words)), "the chosen action")
    }
    return 0
}

/// The VW JSON half of the target (see the file's comment).
private func fuzzJSON(_ base: NativeScorer, text: [UInt8]) -> CInt {
    var scorer = base
    scorer.readsJSON = true
    let adf = scorer.configuration.adf != nil
    let input = Array(text.prefix(4096))
    _ = scorer.predict(payload: input + [0x0A])
    let grammar = VWJSONGrammar(isADF: adf)
    var payload: [UInt8] = []
    var tags: [String] = []
    let fixed = adf ? #"{"s":{"x":2},"_multi":[{"a":{"z":1}},{"a":{"z":1}},{"b":[3]}]}"# : #"{"a":{"x":2,"y":"v w"},"b":[3,null],"_text":"z w","t":true}"#
    for line in input.split(separator: 0x0A) + [ArraySlice(Array(fixed.utf8))] {
        guard let example = try? grammar.parse(bytes: Array(line)) else { continue }
        tags.append("t\(tags.count)")
        example.write(serverTag: Array(tags[tags.count - 1].utf8), into: &payload)
    }
    guard let printed = scorer.predict(payload: payload) else { return 0 }
    // Bytes, not a String: one line per example, for ADF each followed by a blank line.
    let lines = printed.split(separator: 0x0A, omittingEmptySubsequences: false)
    let step = adf ? 2 : 1
    check(lines.count == step * tags.count + 1 && lines.last?.isEmpty == true, "one answer per JSON example")
    for (index, tag) in tags.enumerated() {
        let answer = lines[step * index]
        if adf { check(lines[step * index + 1].isEmpty, "a blank line after an ADF answer") }
        check(answer.count > tag.utf8.count + 1 && answer.suffix(tag.utf8.count + 1).elementsEqual((" " + tag).utf8),
              "a JSON answer line ends with its example's tag")
    }
    return 0
}

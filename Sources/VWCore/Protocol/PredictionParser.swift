/// Turns the text vw printed for one example into a ``Prediction``.
public struct PredictionParser: Sendable {
    public let kind: PredictionKind

    public init(kind: PredictionKind) {
        self.kind = kind
    }

    /// Parses one example's answer: the line(s) VW printed for it, without the final blank line of multiline answers and without trailing "\n"; strips `tag` (VW prints "<prediction> <tag>").
    ///
    /// VW prints the tag on the first line only, so only the first line loses it.
    public func parse(answer: Substring, tag: String) -> Prediction {
        guard answer.utf8.contains(0x0A) else {
            return parse(line: Self.strip(tag: tag, from: answer))
        }
        var predictions: [Prediction] = []
        var isFirst = true
        // Split on bytes: "\r\n" is one Character, and vw's lines end at every "\n".
        for bytes in answer.utf8.split(separator: 0x0A, omittingEmptySubsequences: false) {
            let line = Substring(bytes)
            predictions.append(parse(line: isFirst ? Self.strip(tag: tag, from: line) : line))
            isFirst = false
        }
        return .lines(predictions)
    }

    /// Parses one line, its tag already removed.
    private func parse(line: Substring) -> Prediction {
        let bytes = line.utf8
        if let value = Self.integer(bytes) { return .integer(value) }
        if Self.isJSONNumber(bytes) { return .number(String(line)) }
        if let pairs = Self.actionList(line) {
            return .actions(pairs, probabilities: kind == .actionProbabilities)
        }
        return .text(String(line))
    }

    /// Removes `tag` where VW printed it: " " + `tag` at the end of `line`, or as its second word
    /// (`--bootstrap` prints `pred tag bag1 bag2`).
    private static func strip(tag: String, from line: Substring) -> Substring {
        guard !tag.isEmpty else { return line }
        let tagBytes = tag.utf8
        let lineBytes = line.utf8
        guard lineBytes.count > tagBytes.count else { return line }
        let tagStart = lineBytes.index(lineBytes.endIndex, offsetBy: -tagBytes.count)
        if lineBytes[tagStart...].elementsEqual(tagBytes) {
            let space = lineBytes.index(before: tagStart)
            if lineBytes[space] == 0x20 { return line[line.startIndex..<space] }
        }
        guard let firstSpace = lineBytes.firstIndex(of: 0x20) else { return line }
        let secondWord = lineBytes.index(after: firstSpace)
        guard let end = lineBytes.index(secondWord, offsetBy: tagBytes.count, limitedBy: lineBytes.endIndex),
              end != lineBytes.endIndex, lineBytes[end] == 0x20,
              lineBytes[secondWord..<end].elementsEqual(tagBytes) else { return line }
        return line[line.startIndex..<firstSpace] + line[end...]
    }

    /// What `parse(answer:tag:)` makes of an untagged answer that is an integer or a JSON number, read from its
    /// bytes; nil for anything else (several lines, an action list, text), which needs the parser.
    static func number(_ bytes: UnsafeBufferPointer<UInt8>) -> Prediction? {
        if let value = integer(bytes) { return .integer(value) }
        if isJSONNumber(bytes) { return .number(String(decoding: bytes, as: UTF8.self)) }
        return nil
    }

    /// The value of an optional '-' followed by decimal digits, when it fits an `Int`.
    private static func integer<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Int? {
        var index = bytes.startIndex
        guard index != bytes.endIndex else { return nil }
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { bytes.formIndex(after: &index) }
        guard index != bytes.endIndex else { return nil }
        var value = 0
        while index != bytes.endIndex {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = negative
                ? shifted.subtractingReportingOverflow(Int(digit))
                : shifted.addingReportingOverflow(Int(digit))
            guard !overflow1, !overflow2 else { return nil }
            value = next
            bytes.formIndex(after: &index)
        }
        return value
    }

    /// Whether the bytes are a number in JSON syntax (so they can be written to a JSON reply verbatim).
    static func isJSONNumber<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
        var index = bytes.startIndex
        func isDigit(_ i: Bytes.Index) -> Bool { i != bytes.endIndex && bytes[i] &- 0x30 < 10 }
        func peek(_ byte: UInt8) -> Bool { index != bytes.endIndex && bytes[index] == byte }
        if peek(UInt8(ascii: "-")) { bytes.formIndex(after: &index) }
        guard isDigit(index) else { return false }
        if peek(UInt8(ascii: "0")) {
            bytes.formIndex(after: &index)
        } else {
            while isDigit(index) { bytes.formIndex(after: &index) }
        }
        if peek(UInt8(ascii: ".")) {
            bytes.formIndex(after: &index)
            guard isDigit(index) else { return false }
            while isDigit(index) { bytes.formIndex(after: &index) }
        }
        if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
            bytes.formIndex(after: &index)
            if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { bytes.formIndex(after: &index) }
            guard isDigit(index) else { return false }
            while isDigit(index) { bytes.formIndex(after: &index) }
        }
        return index == bytes.endIndex
    }

    /// The pairs of an `action:value,action:value,...` list, or nil when the line is not one.
    private static func actionList(_ line: Substring) -> [ActionValue]? {
        guard line.utf8.contains(UInt8(ascii: ":")) else { return nil }
        var pairs: [ActionValue] = []
        for bytes in line.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let item = Substring(bytes)
            guard let colon = item.utf8.firstIndex(of: UInt8(ascii: ":")) else { return nil }
            let actionBytes = item.utf8[item.startIndex..<colon]
            guard !actionBytes.isEmpty, actionBytes.allSatisfy({ $0 &- 0x30 < 10 }),
                  let action = Int(item[item.startIndex..<colon]) else { return nil }
            let value = item[item.utf8.index(after: colon)...]
            guard isJSONNumber(value.utf8) else { return nil }
            pairs.append(ActionValue(action: action, value: String(value)))
        }
        return pairs
    }
}

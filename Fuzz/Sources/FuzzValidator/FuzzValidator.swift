// libFuzzer target: TextBody + ExampleValidator + ExampleBatchBuilder on arbitrary bytes.
//
// Input: byte 0 picks the mode (multiline or not, line and feature limits), the rest is a
// text/plain request body. Besides "never traps", it checks what the server relies on:
//
// * the validator accepts a line exactly when an independent re-statement of SPEC §5's
//   rules accepts it, and a rejection names a problem the line really has;
// * a batch payload is valid UTF-8, every line has a `|`, no line is blank inside a multiline
//   example, the number of "\n"-terminated lines is what was appended (plus one blank line per
//   multiline example), and no label word or tag starts with `save`;
// * single-line payload lines carry no label: only `'tag ` (the tag the batch reports) before
//   the features, which are the input line's features unchanged;
// * a rejected example leaves the batch exactly as it was.
import VWCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let mode = bytes[0]
    let multiline = mode & 1 == 1
    let lineLimits = [6, 40, 300, 1 << 20]
    let featureLimits = [0, 1, 3, 65_536]
    let limits = ExampleLimits(maxLineBytes: lineLimits[Int(mode >> 1) & 3], maxFeatures: featureLimits[Int(mode >> 3) & 3])
    let validator = ExampleValidator(limits: limits)
    let body = Array(bytes[1...])

    // The validator on its own, on the body as one (lossily decoded) line.
    let asLine = String(decoding: body, as: UTF8.self)
    checkLine(Substring(asLine), validator)

    // The text/plain path: body -> examples -> batch.
    let examples: [[Substring]]
    do {
        examples = try TextBody.examples(in: body, multiline: multiline)
    } catch {
        check(error.index >= 0, "negative instance index")
        return 0
    }
    checkExamples(examples, body: body, multiline: multiline)
    for example in examples { for line in example { checkLine(line, validator) } }

    var builder = ExampleBatchBuilder(framing: ExampleFraming(family: multiline ? .cbADF : .simple, blankLineAfterEach: multiline), validator: validator)
    var appendedLines = 0
    for example in examples {
        let before = builder
        do {
            try builder.append(lines: example)
            check(builder.count == before.count + 1, "count did not grow by one")
            appendedLines += multiline ? example.count + 1 : 1
        } catch {
            check(builder.count == before.count, "a rejected example changed the count")
            check(builder.finish().payload == before.finish().payload, "a rejected example changed the payload")
            if !multiline { check(error != .blankLineInMultilineExample, "blank-line error for a single-line model") }
        }
    }
    let batch = builder.finish()
    checkBatch(batch, lines: appendedLines, source: examples)
    return 0
}

/// Traps with a message libFuzzer shows with the crash.
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}

func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

/// The words of `text`, split on space and tab bytes (as VW does; a space followed by a
/// combining mark is one Character, but two words for VW).
func words(_ text: Substring) -> [[UInt8]] {
    Array(text.utf8).split(whereSeparator: isBlank).map(Array.init)
}

/// Byte-wise, as VW compares: "save" followed by a combining mark still starts with "save".
func startsWithSave(_ word: some Collection<UInt8>) -> Bool {
    let bytes = Array(word)
    return bytes.starts(with: "save".utf8) || bytes.starts(with: "'save".utf8)
}

/// Every problem SPEC §5 names that `line` has, stated independently of ExampleValidator.
func problems(of line: Substring, _ limits: ExampleLimits) -> [ExampleProblem] {
    let utf8 = Array(line.utf8)
    var found: [ExampleProblem] = []
    if utf8.count > limits.maxLineBytes { found.append(.lineTooLong(limit: limits.maxLineBytes)) }
    if utf8.isEmpty { found.append(.empty) }
    for b in utf8 where (b < 0x20 || b == 0x7F) && b != 0x09 {
        found.append(b == 0x0A || b == 0x0D ? .newlineInSingleLineExample : .controlCharacter(b))
    }
    if !utf8.isEmpty && utf8.allSatisfy({ isBlank($0) || ($0 < 0x20 || $0 == 0x7F) }) { found.append(.whitespaceOnly) }
    // Byte-wise: "|" followed by a combining mark is one Character but still VW's separator.
    if let bar = line.utf8.firstIndex(of: UInt8(ascii: "|")) {
        let featureCount = words(line[bar...]).filter { $0.first != UInt8(ascii: "|") }.count
        if featureCount > limits.maxFeatures { found.append(.tooManyFeatures(limit: limits.maxFeatures)) }
        if words(line[..<bar]).contains(where: startsWithSave) { found.append(.saveTag) }
    } else {
        found.append(.missingBar)
        if words(line).filter({ $0.first != UInt8(ascii: "|") }).count > limits.maxFeatures {
            found.append(.tooManyFeatures(limit: limits.maxFeatures))  // counted as features only after a bar; harmless either way
        }
    }
    return found
}

func checkLine(_ line: Substring, _ validator: ExampleValidator) {
    let known = problems(of: line, validator.limits)
    let shape: ExampleValidator.LineShape
    do {
        shape = try validator.shape(of: line)
    } catch {
        switch error {
        case .tooManyFeatures:
            // The real validator counts feature words only after the first bar.
            check(known.contains(error) || known.contains(.missingBar), "rejected \(Array(line.utf8)) for \(error), problems: \(known)")
        default:
            check(known.contains(error), "rejected \(Array(line.utf8)) for \(error), but its problems are \(known)")
        }
        return
    }
    let real = known.filter { if case .tooManyFeatures = $0, known.contains(.missingBar) { return false } else { return true } }
    check(real.isEmpty, "accepted \(Array(line.utf8)) although it has problems \(real)")
    check(shape.features.utf8.first == UInt8(ascii: "|"), "features do not start with '|'")
    check(shape.features.endIndex == line.endIndex, "features do not run to the end of the line")
    let label = line[line.startIndex..<shape.features.startIndex]
    check(!label.utf8.contains(UInt8(ascii: "|")), "label section contains '|'")
    check(!shape.tag.utf8.contains(where: isBlank), "tag contains whitespace")
    // VW's save command is a tag starting with "save" (a tag "'save" from the word "''save" is not one).
    check(!shape.tag.utf8.starts(with: "save".utf8), "tag starts with save")
    check(shape.tag.isEmpty || containsBytes(label, shape.tag), "tag is not in the label section")
    check(!shape.labelWords.contains(where: { startsWithSave($0.utf8) }), "a label word starts with save")
    // The label words are VW's: split on space and tab bytes, without the tag's word, which is
    // the last word when it ends at the `|` or starts with `'` (parse_example.cc), even if empty.
    var vwWords = words(label)
    if let last = vwWords.last, last.first == UInt8(ascii: "'") || !(label.utf8.last.map(isBlank) ?? true) {
        vwWords.removeLast()
    }
    check(shape.labelWords.map { Array($0.utf8) } == vwWords,
          "label words \(shape.labelWords.map { Array($0.utf8) }) are not VW's \(vwWords) in \(Array(line.utf8))")
}

func checkExamples(_ examples: [[Substring]], body: [UInt8], multiline: Bool) {
    for example in examples {
        check(!example.isEmpty, "an example without lines")
        for line in example {
            check(!line.utf8.contains(0x0A), "a line with a newline")
            if multiline { check(!line.utf8.allSatisfy(isBlank), "a blank line inside a multiline example") }
        }
    }
    if !multiline {
        for example in examples { check(example.count == 1, "a single-line example with \(example.count) lines") }
        let newlines = body.count(where: { $0 == 0x0A })
        let expected = body.isEmpty ? 0 : newlines + (body.last == 0x0A ? 0 : 1)
        check(examples.count == expected, "\(examples.count) examples for \(newlines) newlines")
    }
}

func checkBatch(_ batch: PreparedBatch, lines expectedLines: Int, source: [[Substring]]) {
    check(batch.tags.count == batch.count, "tags and count differ")
    check(String(validating: batch.payload, as: UTF8.self) != nil, "payload is not UTF-8")
    let payload = batch.payload
    guard !payload.isEmpty else {
        check(batch.count == 0 && expectedLines == 0, "empty payload for \(batch.count) examples")
        return
    }
    check(payload.last == 0x0A, "payload does not end with a newline")
    let lines = payload.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false)
    check(lines.count == expectedLines, "\(lines.count) lines in the payload, \(expectedLines) appended")
    let unlimited = ExampleValidator(limits: ExampleLimits(maxLineBytes: .max, maxFeatures: .max))
    var example = 0
    var position = 0
    for raw in lines {
        let line = Substring(String(decoding: raw, as: UTF8.self))
        if batch.multiline && raw.isEmpty {
            check(position > 0, "blank line at the start of a multiline example")
            example += 1
            position = 0
            continue
        }
        check(!raw.allSatisfy(isBlank), "blank line in the payload")
        check(raw.contains(UInt8(ascii: "|")), "line without '|' in the payload")
        let shape: ExampleValidator.LineShape
        do {
            shape = try unlimited.shape(of: line)
        } catch {
            fatalError("invariant broken: payload line \(Array(raw)) fails validation: \(error)")
        }
        if batch.multiline {
            check(shape.tag == serverTag(batch, example), "line's tag is not the example's server tag")
        } else {
            check(shape.labelWords.isEmpty, "a single-line payload line keeps label words \(shape.labelWords)")
            check(shape.tag == serverTag(batch, example), "payload tag \(shape.tag) is not the example's server tag")
            let prefix = line[line.startIndex..<shape.features.startIndex]
            check(prefix == "'" + shape.tag + " ", "unexpected text before the features: \(prefix)")
            example += 1
        }
        position += 1
    }
    check(example == batch.count, "\(example) examples in the payload, count says \(batch.count)")
    _ = source
}

/// The server tag the batch wrote for example `index`: the client's tag never reaches vw.
func serverTag(_ batch: PreparedBatch, _ index: Int) -> Substring {
    Substring(String(decoding: AnswerFrame.serverTag(batch.frame.serials[index]), as: UTF8.self))
}

func containsBytes(_ haystack: Substring, _ needle: Substring) -> Bool {
    let h = Array(haystack.utf8), n = Array(needle.utf8)
    guard n.count <= h.count else { return false }
    return (0...(h.count - n.count)).contains { h[$0..<($0 + n.count)].elementsEqual(n) }
}

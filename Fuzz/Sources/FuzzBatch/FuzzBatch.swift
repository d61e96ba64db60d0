// libFuzzer target: TextBody + ExampleBatchBuilder (the strict grammar, server tags, the answer
// frame) on arbitrary bytes, for every example family.
//
// Input: byte 0 picks the family and the line and feature limits; the rest is a text/plain
// request body. Besides "never traps", it checks what the server relies on:
//
// * TextBody splits the body into examples as SPEC §5 says (one per line, or per blank-line
//   separated group for multiline families);
// * a rejected example leaves the batch exactly as it was; an accepted one adds one example;
// * the payload is valid UTF-8 without a BOM or any control byte but "\n", has exactly the lines
//   the grammar announced (plus one blank line per multiline example), and every line carries
//   its example's server tag `'v<hex>` as its only tag: no byte of the client's tag reaches vw;
// * the frame has one line count and one serial per example, serials all different, and as many
//   client tags as the echo mode needs.
import VWCore

let families: [ExampleFamily] = [.simple, .multiclass, .multilabel, .costSensitive, .contextualBandit, .cbADF, .csoaaLDF, .ccb, .slates]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let mode = Int(bytes[0])
    let family = families[mode % families.count]
    let lineLimits = [40, 300, 1 << 20]
    let featureLimits = [1, 3, 65_536]
    let limits = ExampleLimits(maxLineBytes: lineLimits[(mode / 9) % 3], maxFeatures: featureLimits[(mode / 27) % 3])
    let body = Array(bytes[1...])

    let examples: [[Substring]]
    do {
        examples = try TextBody.examples(in: body, multiline: family.isMultiline)
    } catch {
        check(error.index >= 0, "negative instance index")
        return 0
    }
    checkExamples(examples, body: body, multiline: family.isMultiline)

    let framing = ExampleFraming(family: family, blankLineAfterEach: family.isMultiline)
    var builder = ExampleBatchBuilder(framing: framing, limits: limits)
    var expectedLines = 0
    var lineCounts: [Int] = []
    for example in examples {
        let before = builder
        do {
            try builder.append(lines: example)
            check(builder.count == before.count + 1, "count did not grow by one")
            let parsed = try ExampleGrammar(family: family, limits: limits).parse(lines: example)
            expectedLines += parsed.lineCount + (family.isMultiline ? 1 : 0)
            lineCounts.append(parsed.lineCount)
        } catch {
            check(builder.count == before.count, "a rejected example changed the count")
            check(builder.finish().payload == before.finish().payload, "a rejected example changed the payload")
        }
    }
    checkBatch(builder.finish(), lines: expectedLines, lineCounts: lineCounts, multiline: family.isMultiline)
    return 0
}

/// Traps with a message libFuzzer shows with the crash.
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}

func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

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

func checkBatch(_ batch: PreparedBatch, lines expectedLines: Int, lineCounts: [Int], multiline: Bool) {
    let frame = batch.frame
    check(frame.lineCounts.count == batch.count && frame.serials.count == batch.count && batch.tags.count == batch.count,
          "frame and batch disagree on the number of examples")
    check(Set(frame.serials).count == frame.serials.count, "two examples share a server tag")
    switch frame.echo {
    case .none: check(frame.clientTags.isEmpty, "client tags kept for answers without tags")
    case .firstLine: check(frame.clientTags.count == batch.count, "one client tag per example expected")
    case .everyLine: check(frame.clientTags.count == frame.lineCounts.reduce(0, +), "one client tag per answer line expected")
    }
    let payload = batch.payload
    check(String(validating: payload, as: UTF8.self) != nil, "payload is not UTF-8")
    check(!payload.contains(where: { $0 < 0x20 && $0 != 0x0A || $0 == 0x7F }), "control byte in the payload")
    check(!containsBytes(payload, [0xEF, 0xBB, 0xBF]), "BOM in the payload")
    guard !payload.isEmpty else {
        check(batch.count == 0 && expectedLines == 0, "empty payload for \(batch.count) examples")
        return
    }
    check(payload.last == 0x0A, "payload does not end with a newline")
    let lines = payload.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false)
    check(lines.count == expectedLines, "\(lines.count) lines in the payload, \(expectedLines) announced")
    var example = 0
    var position = 0
    for line in lines {
        if multiline && position == lineCounts[example] {
            check(line.isEmpty, "no blank line after a multiline example")
            example += 1
            position = 0
            continue
        }
        let tag = [UInt8(ascii: "'")] + AnswerFrame.serverTag(frame.serials[example]) + [0x20]
        let quotes = line.indices.filter { line[$0] == UInt8(ascii: "'") && ($0 == line.startIndex || line[$0 - 1] == 0x20) }
        let bar = line.firstIndex(of: UInt8(ascii: "|")) ?? line.endIndex
        check(quotes.filter { $0 < bar }.count == 1, "a payload line has \(quotes.count) tags before its first '|'")
        check(containsBytes(Array(line), tag), "a payload line does not carry its example's server tag")
        position += 1
        if !multiline {
            example += 1
            position = 0
        }
    }
    check(example == batch.count, "\(example) examples in the payload, count says \(batch.count)")
}

func containsBytes(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard needle.count <= haystack.count else { return false }
    return (0...(haystack.count - needle.count)).contains { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
}

// libFuzzer target: ExampleGrammar on arbitrary bytes, per family.
//
// Input: byte 0 picks the family (mod 9) and, in its high bits, the line and feature limits; the
// rest is split on "\n" into lines (a single-line family: one example per line; a multiline
// family: examples separated by blank lines). Besides "never traps", for every accepted example:
//
// * the canonical text is valid UTF-8 without a BOM, and without control bytes but its "\n"s;
// * it has exactly `lineCount` lines, none blank, plus the one blank line ending a multiline example;
// * every line has a `|`, and the tag VW reads on every line (its own rule, restated here) is the
//   server tag (written without a server tag, no tag at all), except on ccb and slates slot lines,
//   whose tag is a `seed=` (CanonicalSeed);
// * it parses again (without limits), to the same canonical text, answer line count and feature counts, and with
//   the server tag as client tag;
// * answerLines is 1 for single-line families and cbADF, ≥ 1 and ≤ lineCount otherwise.
import VWCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let families: [ExampleFamily] = [.simple, .multiclass, .multilabel, .costSensitive, .contextualBandit, .cbADF, .csoaaLDF, .ccb, .slates]
    let family = families[Int(bytes[0] & 0x0F) % families.count]
    let lineLimits = [1 << 20, 40, 300, 6]
    let featureLimits = [65_536, 3, 1, 0]
    let limits = ExampleLimits(maxLineBytes: lineLimits[Int(bytes[0] >> 4) & 3], maxFeatures: featureLimits[Int(bytes[0] >> 6) & 3])
    let grammar = ExampleGrammar(family: family, limits: limits)

    let body = String(decoding: bytes[1...], as: UTF8.self)
    let lines = body.split(separator: "\n", omittingEmptySubsequences: false)
    var examples: [[Substring]] = []
    if family.isMultiline {
        var current: [Substring] = []
        for line in lines {
            if line.isEmpty {
                if !current.isEmpty { examples.append(current); current = [] }
            } else {
                current.append(line)
            }
        }
        if !current.isEmpty { examples.append(current) }
    } else {
        examples = lines.map { [$0] }
    }
    for example in examples {
        guard let parsed = try? grammar.parse(lines: example) else { continue }
        checkAccepted(parsed, grammar: grammar, input: example)
    }
    return 0
}

/// Traps with a message libFuzzer shows with the crash.
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}

let serverTag = Array("s1".utf8)

func checkAccepted(_ parsed: ParsedExample, grammar: ExampleGrammar, input: [Substring]) {
    let family = grammar.family
    check(parsed.lineCount == input.count, "lineCount \(parsed.lineCount) for \(input.count) lines")
    if !family.isMultiline || family == .cbADF {
        check(parsed.answerLines == 1, "answerLines \(parsed.answerLines) for \(family)")
    } else {
        check(parsed.answerLines >= 1 && parsed.answerLines <= parsed.lineCount, "answerLines \(parsed.answerLines) of \(parsed.lineCount) lines")
    }

    for tag in [serverTag, []] {
        var payload: [UInt8] = []
        parsed.write(serverTag: tag, into: &payload)
        check(String(decoding: payload, as: UTF8.self).utf8.elementsEqual(payload), "canonical text is not valid UTF-8")
        for index in payload.indices {
            let byte = payload[index]
            check(byte >= 0x20 && byte != 0x7F || byte == 0x0A, "control byte \(byte) in canonical text")
            if byte == 0xEF && index + 2 < payload.count { check(!(payload[index + 1] == 0xBB && payload[index + 2] == 0xBF), "BOM in canonical text") }
        }
        check(payload.last == 0x0A, "canonical text does not end with a newline")
        var lines = payload.split(separator: 0x0A, omittingEmptySubsequences: false)
        lines.removeLast()  // after the final "\n"
        if family.isMultiline {
            check(lines.last?.isEmpty == true, "multiline example without its final blank line")
            lines.removeLast()
        }
        check(lines.count == parsed.lineCount, "\(lines.count) canonical lines for \(parsed.lineCount)")
        for line in lines {
            check(!line.isEmpty, "blank canonical line")
            guard let bar = line.firstIndex(of: 0x7C) else {
                check(false, "canonical line without '|'")
                return
            }
            check(!line.contains(0x09), "TAB in canonical line")
            let vw = Array(vwTag(label: line[..<bar]))
            if (family == .ccb && line.starts(with: "ccb slot".utf8)) || (family == .slates && line.starts(with: "slates slot".utf8)) {
                check(isSeedTag(vw), "slot line \(String(decoding: line, as: UTF8.self).debugDescription): VW's tag is not a seed")
            } else {
                check(vw == tag, "line \(String(decoding: line, as: UTF8.self).debugDescription): VW's tag is not the server's")
            }
        }

        // Parses again to the same thing (without limits: the server tag may lengthen a line).
        let again = lines.map { Substring(String(decoding: $0, as: UTF8.self)) }
        let reparsed: ParsedExample
        do {
            reparsed = try ExampleGrammar(family: family).parse(lines: again)
        } catch {
            check(false, "canonical text \(String(decoding: payload, as: UTF8.self).debugDescription) rejected: \(error.reason)")
            return
        }
        var second: [UInt8] = []
        reparsed.write(serverTag: tag, into: &second)
        check(second == payload, "canonical text changes when parsed again: \(String(decoding: payload, as: UTF8.self).debugDescription) -> \(String(decoding: second, as: UTF8.self).debugDescription)")
        check(reparsed.answerLines == parsed.answerLines, "answerLines changes when parsed again")
        check(reparsed.featureCounts == parsed.featureCounts, "feature counts change when parsed again")
        check(Array(reparsed.clientTag.utf8) == tag, "client tag of the canonical text is not the server tag")
    }
}

/// A ccb/slates slot's tag: `seed=` and 1 to 64 of `[A-Za-z0-9_.-]` (VW seeds the slot's draw with it).
func isSeedTag(_ tag: [UInt8]) -> Bool {
    let prefix = Array("seed=".utf8)
    guard tag.starts(with: prefix), (prefix.count + 1...prefix.count + 64).contains(tag.count) else { return false }
    return tag.dropFirst(prefix.count).allSatisfy { byte in
        (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == 0x5F || byte == 0x2E || byte == 0x2D
    }
}

/// VW's tag rule (parse_example_text.cc), restated: the label section is what precedes the first
/// `|`, after its first TAB if any; split on spaces; the last word is the tag when it ends at the
/// `|` or starts with `'` (which is then removed).
func vwTag(label: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    var label = label
    if let tab = label.firstIndex(of: 0x09) { label = label[(tab + 1)...] }
    let words = label.split(separator: 0x20)
    guard let last = words.last else { return [] }
    guard last.endIndex == label.endIndex || last.first == 0x27 else { return [] }
    return last.first == 0x27 ? last.dropFirst() : last
}

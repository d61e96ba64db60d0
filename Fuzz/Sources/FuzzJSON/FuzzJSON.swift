// libFuzzer target: JSONParser + PredictRequestDecoder (+ the batch builder behind them) on arbitrary bytes.
//
// Input: byte 0 picks the mode (multiline or not, maxDepth 1...8, maxInstances), the rest is a
// request body. Checks:
//
// * a parsed document written back with JSONWriter parses to the same value (escaping, numbers
//   and unicode survive a round trip); parsing never depends on maxDepth except by failing;
// * decode() never returns more instances than allowed;
// * a structured (object) instance decodes to lines the strict grammar accepts, with the user's
//   tag (or none) on the first line only, no label but `shared`, and exactly one `|` per
//   namespace;
// * whatever decode() returns goes through ExampleBatchBuilder without trapping, and the
//   payload has one "\n"-terminated line per appended line.
@testable import VWCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let mode = bytes[0]
    let multiline = mode & 1 == 1
    let maxDepth = 1 + Int(mode >> 1) & 7
    let maxInstances = [0, 1, 3, 10_000][Int(mode >> 4) & 3]
    let body = Array(bytes[1...])

    // The parser alone.
    let deep = try? JSONParser.parse(body, maxDepth: 64)
    if let deep {
        let written = write(deep)
        do {
            let again = try JSONParser.parse(written, maxDepth: 64)
            check(again == deep, "round trip changed the document: \(String(decoding: written, as: UTF8.self))")
        } catch {
            fatalError("invariant broken: JSONWriter output does not parse: \(error.message): \(String(decoding: written, as: UTF8.self))")
        }
    }
    if let shallow = try? JSONParser.parse(body, maxDepth: maxDepth) {
        check(shallow == deep, "a depth-limited parse gave another value")
        check(depth(of: shallow) <= maxDepth, "nesting deeper than maxDepth accepted")
    } else if let deep {
        check(depth(of: deep) > maxDepth, "a document within maxDepth was rejected")
    }

    // The decoder.
    let decoder = PredictRequestDecoder(multiline: multiline, maxInstances: maxInstances)
    let examples: [[Substring]]
    do {
        examples = try decoder.decode(body, maxDepth: maxDepth)
    } catch {
        if case .invalidInstance(let invalid) = error { check(invalid.index >= 0, "negative index") }
        return 0
    }
    check(examples.count <= maxInstances, "\(examples.count) instances over the limit \(maxInstances)")
    guard case .object(let members)? = deep, let instances = members.first(where: { $0.key == "instances" })?.value,
          case .array(let items) = instances else {
        fatalError("invariant broken: decode() accepted a body without an instances array")
    }
    check(items.count == examples.count, "\(examples.count) examples for \(items.count) instances")
    for (item, lines) in zip(items, examples) {
        check(!lines.isEmpty || multiline, "a single-line instance without a line")
        switch item {
        case .object(let fields): checkStructured(fields, lines: lines, multiline: multiline)
        case .string(let text) where !multiline: check(lines == [Substring(text)], "a string instance was changed")
        default: break
        }
    }

    var builder = ExampleBatchBuilder(
        framing: ExampleFraming(family: multiline ? .cbADF : .simple, blankLineAfterEach: multiline),
        limits: ExampleLimits(maxLineBytes: 200, maxFeatures: 20)
    )
    var appended = 0
    for lines in examples {
        do {
            try builder.append(lines: lines)
            appended += multiline ? lines.count + 1 : 1
        } catch {}
    }
    let batch = builder.finish()
    check(batch.payload.count(where: { $0 == 0x0A }) == appended, "payload lines differ from what was appended")
    check(String(validating: batch.payload, as: UTF8.self) != nil, "payload is not UTF-8")
    return 0
}

func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}

func depth(of value: JSONValue) -> Int {
    switch value {
    case .array(let items): 1 + (items.map(depth).max() ?? 0)
    case .object(let members): 1 + (members.map { depth(of: $0.value) }.max() ?? 0)
    default: 0
    }
}

/// The value as JSON text, through the server's own writer.
func write(_ value: JSONValue) -> [UInt8] {
    var writer = JSONWriter()
    func emit(_ value: JSONValue) {
        switch value {
        case .null: writer.null()
        case .bool(let b): writer.bool(b)
        case .number(let text): writer.raw(text.utf8)
        case .string(let s): writer.string(s)
        case .array(let items):
            writer.beginArray()
            for item in items { emit(item) }
            writer.endArray()
        case .object(let members):
            writer.beginObject()
            for member in members {
                writer.key(member.key)
                emit(member.value)
            }
            writer.endObject()
        }
    }
    emit(value)
    return writer.bytes
}

/// The namespaces object of a `features`/`shared`/action value (decode() succeeded, so it is one).
func namespaceCount(_ value: JSONValue?) -> Int {
    guard case .object(let spaces)? = value else { return 0 }
    return max(1, spaces.count)
}

func checkStructured(_ fields: [(key: String, value: JSONValue)], lines: [Substring], multiline: Bool) {
    let grammar = ExampleGrammar(family: multiline ? .cbADF : .simple, limits: ExampleLimits(maxLineBytes: .max, maxFeatures: .max))
    var tag = ""
    if case .string(let t)? = fields.first(where: { $0.key == "tag" })?.value { tag = t }
    let shared = fields.first(where: { $0.key == "shared" })?.value
    var expectedBars: [Int] = []
    if multiline {
        if shared != nil { expectedBars.append(namespaceCount(shared)) }
        if case .array(let actions)? = fields.first(where: { $0.key == "actions" })?.value {
            expectedBars += actions.map { namespaceCount($0) }
        }
    } else {
        expectedBars = [namespaceCount(fields.first(where: { $0.key == "features" })?.value)]
    }
    check(lines.count == expectedBars.count, "\(lines.count) lines for \(expectedBars.count) namespace objects")
    let parsed: ParsedExample
    do {
        parsed = try grammar.parse(lines: lines)
    } catch {
        fatalError("invariant broken: structured lines \(lines) are invalid: \(error)")
    }
    // Without a server tag, the canonical text shows what the label section holds: nothing but `shared`.
    let canonical = parsed.canonicalText().split(separator: "\n", omittingEmptySubsequences: true)
    for (k, line) in lines.enumerated() {
        check(String(parsed.clientTag(line: k)) == (k == 0 ? tag : ""), "line \(k) has tag \(parsed.clientTag(line: k)), the instance \(tag)")
        let label = canonical[k].utf8.prefix { $0 != UInt8(ascii: "|") }
        let allowed = (multiline && k == 0 && shared != nil) ? "shared " : ""
        check(String(decoding: label, as: UTF8.self) == allowed, "structured line \(line) has label \(label)")
        check(line.utf8.count(where: { $0 == UInt8(ascii: "|") }) == expectedBars[k], "line \(line) has a '|' the encoder did not place")
    }
}

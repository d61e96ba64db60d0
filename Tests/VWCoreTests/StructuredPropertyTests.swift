import Testing
@testable import VWCore

/// Property tests of structured JSON instances (issue 8): random namespaces, feature names, values
/// and tags from a wide alphabet (unicode, spaces, '|', ':', quotes, control characters, "save"
/// prefixes) go through PredictRequestDecoder and ExampleBatchBuilder, as the server sends them.
/// Each instance is either rejected (a 400) or becomes VW text in which
///
/// * the only `|` are the namespace separators the encoder placed, one per namespace;
/// * the tag is exactly the user's tag (on the first line only), and nothing else sits in the
///   label section (only `shared` on an ADF shared line): no label the user did not write;
/// * every feature token is the user's `name:value`, `name=value` or `name`, in order, and
///   `false`/`null` features are left out;
///
/// and it is rejected exactly when a name, value or tag has something VW text cannot carry.
/// A tiny seeded generator keeps every run the same (the seed is in each failure message).
@Suite struct StructuredPropertyTests {
    @Test func singleLineInstances() throws {
        var rng = SplitMix(seed: 0x5EED_0001)
        var accepted = 0
        for round in 0..<3000 {
            let instance = Instance.random(&rng, adf: false)
            if try check(instance, multiline: false, round: round) { accepted += 1 }
        }
        // The generator must exercise both outcomes.
        #expect(accepted > 300 && accepted < 2700, "accepted \(accepted) of 3000")
    }

    @Test func adfInstances() throws {
        var rng = SplitMix(seed: 0x5EED_0002)
        var accepted = 0
        for round in 0..<2000 {
            let instance = Instance.random(&rng, adf: true)
            if try check(instance, multiline: true, round: round) { accepted += 1 }
        }
        #expect(accepted > 200 && accepted < 1800, "accepted \(accepted) of 2000")
    }

    /// Instances built only from safe strings are always accepted, whatever the alphabet.
    @Test func safeInstancesAreAlwaysAccepted() throws {
        var rng = SplitMix(seed: 0x5EED_0003)
        for round in 0..<1000 {
            let instance = Instance.random(&rng, adf: round % 2 == 1, safeOnly: true)
            #expect(instance.forbidden == nil)
            let accepted = try check(instance, multiline: round % 2 == 1, round: round)
            #expect(accepted, "round \(round): \(instance.json)")
        }
    }

    /// Decodes and batches one instance; checks the outcome. Returns whether it was accepted.
    private func check(_ instance: Instance, multiline: Bool, round: Int) throws -> Bool {
        let body = Array(("{\"instances\": [" + instance.json + "]}").utf8)
        let decoder = PredictRequestDecoder(multiline: multiline, maxInstances: 10)
        var lines: [Substring]?
        var why = ""
        let examples: [[Substring]]
        do throws(PredictRequestError) {
            examples = try decoder.decode(body, maxDepth: 32)
        } catch {
            guard case .invalidInstance(let invalid) = error else {
                Issue.record("round \(round): not an instance-level rejection: \(error) for \(instance.json)")
                return false
            }
            examples = []
            why = "decode: \(invalid.message)"
        }
        if let example = examples.first {
            try #require(examples.count == 1)
            let framing = ExampleFraming(family: multiline ? .cbADF : .simple, blankLineAfterEach: multiline)
            var builder = ExampleBatchBuilder(framing: framing)
            do throws(ExampleProblem) {
                try builder.append(lines: example)
                lines = example
                let payload = withoutTags(String(decoding: builder.finish().payload, as: UTF8.self))
                // Structured lines carry no label, so the batch sends them as encoded, the client's tag
                // replaced by the server's (which frames the answer).
                let want = withoutTags(example.joined(separator: "\n") + (multiline ? "\n\n" : "\n"))
                #expect(payload == want, "round \(round): payload \(payload.debugDescription) != \(want.debugDescription)")
            } catch {
                why = "batch: \(error.reason)"
            }
        }
        guard let lines else {
            #expect(instance.forbidden != nil, "round \(round): rejected (\(why)) although every string is safe: \(instance.json)")
            return false
        }
        #expect(instance.forbidden == nil,
                "round \(round): accepted although \(instance.forbidden ?? "") in \(instance.json) -> \(lines)")
        let expected = instance.expectedLines(adf: multiline)
        #expect(lines.count == expected.count, "round \(round): \(lines.count) lines for \(expected.count)")
        for (line, want) in zip(lines, expected) {
            let got = VWLine(parsing: line)
            #expect(got == want, "round \(round): VW reads \(line.debugDescription) as \(got), the user sent \(want)")
        }
        return true
    }
}

/// Lines without the `'tag ` word before their first `|` (the encoder writes the client's, the batch a server tag).
private func withoutTags(_ text: String) -> String {
    // On bytes: a `|` followed by a combining mark is one Character.
    let lines = Array(text.utf8).split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> [UInt8] in
        guard let bar = line.firstIndex(of: UInt8(ascii: "|")) else { return Array(line) }
        let words = line[..<bar].split(separator: 0x20).filter { $0.first != UInt8(ascii: "'") }
        return words.flatMap { Array($0) + [0x20] } + line[bar...]
    }
    return String(decoding: Array(lines.joined(separator: [0x0A])), as: UTF8.self)
}

// MARK: - What VW reads from a line

/// A line as VW's text parser splits it: on `|` bytes into a label section and namespaces, each
/// namespace on space/tab bytes into its name (the text right after `|`) and feature tokens.
private struct VWLine: Equatable, CustomStringConvertible {
    var labelWords: [String]
    var namespaces: [Namespace]

    struct Namespace: Equatable {
        var name: String
        var tokens: [String]
    }

    init(labelWords: [String], namespaces: [Namespace]) {
        self.labelWords = labelWords
        self.namespaces = namespaces
    }

    init(parsing line: Substring) {
        let segments = Array(line.utf8).split(separator: UInt8(ascii: "|"), omittingEmptySubsequences: false)
        func words(_ bytes: ArraySlice<UInt8>) -> [String] {
            bytes.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 }).map { String(decoding: $0, as: UTF8.self) }
        }
        labelWords = words(segments[0])
        namespaces = segments.dropFirst().map { segment in
            // The namespace name starts right after the `|`; a blank there means the default namespace.
            let startsBlank = segment.first.map { $0 == 0x20 || $0 == 0x09 } ?? true
            var tokens = words(segment)
            let name = startsBlank ? "" : tokens.removeFirst()
            return Namespace(name: name, tokens: tokens)
        }
    }

    var description: String { "label \(labelWords) namespaces \(namespaces.map { "\($0.name): \($0.tokens)" })" }
}

// MARK: - Random instances


private enum Value {
    case number(String)
    case string(String)
    case bool(Bool)
    case null
}

private struct Instance {
    /// Namespace objects: `features` (single-line), or `shared` (optional) then the actions (ADF).
    var shared: [(String, [(String, Value)])]?
    var objects: [[(String, [(String, Value)])]]
    var tag: String?
    var adf: Bool

    /// Safe pieces: letters, digits, punctuation VW text has no use for, non-ASCII letters and
    /// symbols, combining marks, emoji.
    static let safe = ["a", "b", "Z", "x1", "_", "-", ".", "=", "'", "\"", "\\", "/", "é", "ü", "中", "ß", "😀", "\u{301}",
                       "\u{659}", "#", "[", "]", "^", "save", "0", "7", ",", "{", "}", "\u{200B}"]
    /// Pieces VW text cannot carry in a name, value or tag (whitespace of every kind, '|', ':',
    /// control characters).
    static let unsafe = [" ", "\t", "|", ":", "\n", "\r", "\u{0}", "\u{1}", "\u{7F}", "\u{85}", "\u{A0}", "\u{2028}",
                         "\u{3000}", "\u{1680}", "\u{9F}", "\u{000B}", "\u{000C}"]
    static let numbers = ["1", "-2.5", "0", "1e-3", "3.14159", "-0", "12345678901234567890", "1E+2", "0.000001", "-7e10"]

    static func text(_ rng: inout SplitMix, safeOnly: Bool, allowEmpty: Bool = true) -> String {
        var s = ""
        if rng.chance(10) { s = "save" }
        let length = rng.below(5) + (allowEmpty ? 0 : 1)
        for _ in 0..<length {
            s += (!safeOnly && rng.chance(7)) ? rng.pick(unsafe) : rng.pick(safe)
        }
        return s
    }

    static func namespaces(_ rng: inout SplitMix, safeOnly: Bool) -> [(String, [(String, Value)])] {
        (0..<rng.below(4)).map { _ in
            let features: [(String, Value)] = (0..<rng.below(4)).map { _ in
                let name = text(&rng, safeOnly: safeOnly, allowEmpty: !safeOnly)
                let value: Value
                switch rng.below(6) {
                case 0, 1: value = .number(rng.pick(numbers))
                case 2, 3: value = .string(text(&rng, safeOnly: safeOnly, allowEmpty: !safeOnly))
                case 4: value = .bool(rng.chance(60))
                default: value = .null
                }
                return (name, value)
            }
            return (text(&rng, safeOnly: safeOnly), features)
        }
    }

    static func random(_ rng: inout SplitMix, adf: Bool, safeOnly: Bool = false) -> Instance {
        var tag: String?
        if rng.chance(50) {
            var t = text(&rng, safeOnly: safeOnly, allowEmpty: !safeOnly)
            if safeOnly {
                // A safe tag has no quote and does not start with "save" (VW's save command).
                t = String(String.UnicodeScalarView(t.unicodeScalars.map { $0 == "'" ? "q" : $0 }))
                while t.utf8.starts(with: "save".utf8) { t.removeFirst() }
                if t.isEmpty { t = "t" }
            }
            tag = t
        }
        if adf {
            let shared = rng.chance(60) ? namespaces(&rng, safeOnly: safeOnly) : nil
            let actions = (0..<(1 + rng.below(3))).map { _ in namespaces(&rng, safeOnly: safeOnly) }
            return Instance(shared: shared, objects: actions, tag: tag, adf: true)
        }
        return Instance(shared: nil, objects: [namespaces(&rng, safeOnly: safeOnly)], tag: tag, adf: false)
    }

    // MARK: JSON text (escaped here, independently of the server's writer)

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            case _ where scalar.value > 0xFFFF:
                // As a surrogate pair, to exercise the parser's \u handling.
                let v = scalar.value - 0x10000
                out += "\\u" + String(0xD800 + (v >> 10), radix: 16) + "\\u" + String(0xDC00 + (v & 0x3FF), radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func json(_ spaces: [(String, [(String, Value)])]) -> String {
        "{" + spaces.map { ns, features in
            quote(ns) + ": {" + features.map { name, value in
                let v: String
                switch value {
                case .number(let n): v = n
                case .string(let s): v = quote(s)
                case .bool(let b): v = b ? "true" : "false"
                case .null: v = "null"
                }
                return quote(name) + ": " + v
            }.joined(separator: ", ") + "}"
        }.joined(separator: ", ") + "}"
    }

    var json: String {
        var members: [String] = []
        if let tag { members.append("\"tag\": " + Self.quote(tag)) }
        if let shared { members.append("\"shared\": " + Self.json(shared)) }
        if !adf {
            members.append("\"features\": " + Self.json(objects[0]))
        } else {
            members.append("\"actions\": [" + objects.map(Self.json).joined(separator: ", ") + "]")
        }
        return "{" + members.joined(separator: ", ") + "}"
    }

    // MARK: Oracle

    /// Why VW text cannot carry `s` (SPEC §5: whitespace, '|', ':'; and control characters), or nil.
    static func unsafeReason(_ s: String, allowEmpty: Bool) -> String? {
        if s.isEmpty { return allowEmpty ? nil : "an empty name" }
        for scalar in s.unicodeScalars {
            if scalar.properties.isWhitespace { return "whitespace" }
            if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) { return "a control character" }
            if scalar == "|" || scalar == ":" { return "'|' or ':'" }
        }
        return nil
    }

    /// Why this instance must be rejected, or nil when it must be accepted.
    var forbidden: String? {
        if let tag {
            if let why = Self.unsafeReason(tag, allowEmpty: false) { return "tag has \(why)" }
            if tag.contains("'") { return "tag has a quote" }
            if tag.utf8.starts(with: "save".utf8) { return "tag starts with save" }
        }
        for spaces in (shared.map { [$0] } ?? []) + objects {
            for (ns, features) in spaces {
                if let why = Self.unsafeReason(ns, allowEmpty: true) { return "namespace has \(why)" }
                for (name, value) in features {
                    if let why = Self.unsafeReason(name, allowEmpty: false) { return "feature name has \(why)" }
                    if case .string(let s) = value, let why = Self.unsafeReason(s, allowEmpty: false) { return "string value has \(why)" }
                }
            }
        }
        return nil
    }

    /// What VW must read: the user's namespaces and features, and the tag as the only label word.
    func expectedLines(adf: Bool) -> [VWLine] {
        func namespaces(_ spaces: [(String, [(String, Value)])]) -> [VWLine.Namespace] {
            if spaces.isEmpty { return [VWLine.Namespace(name: "", tokens: [])] }
            return spaces.map { ns, features in
                VWLine.Namespace(name: ns, tokens: features.compactMap { name, value in
                    switch value {
                    case .number(let n): name + ":" + n
                    case .string(let s): name + "=" + s
                    case .bool(true): name
                    case .bool(false), .null: nil
                    }
                })
            }
        }
        let tagWords = tag.map { ["'" + $0] } ?? []
        if !adf { return [VWLine(labelWords: tagWords, namespaces: namespaces(objects[0]))] }
        var lines: [VWLine] = []
        if let shared { lines.append(VWLine(labelWords: ["shared"] + tagWords, namespaces: namespaces(shared))) }
        for (k, action) in objects.enumerated() {
            lines.append(VWLine(labelWords: (k == 0 && shared == nil) ? tagWords : [], namespaces: namespaces(action)))
        }
        return lines
    }
}

/// The exact bytes to write to a vw process's stdin for one request, and what to expect back.
public struct PreparedBatch: Sendable {
    /// Every example terminated by "\n"; for multiline models every example followed by one extra blank line.
    public let payload: [UInt8]
    /// The number of examples, which is the number of answers vw will print.
    public let count: Int
    /// The tag VW prints with each example's answer ("" when none); for a multiline example, the tag of its first line.
    public let tags: [String]
    public let multiline: Bool

    public init(payload: [UInt8], count: Int, tags: [String], multiline: Bool) {
        self.payload = payload
        self.count = count
        self.tags = tags
        self.multiline = multiline
    }
}

/// Validates examples one by one and accumulates the payload.
public struct ExampleBatchBuilder: Sendable {
    public let multiline: Bool
    public let validator: ExampleValidator
    private var payload: [UInt8] = []
    private var tags: [String] = []

    /// Whether the labels of multiline examples are sent as written (`--csoaa_ldf`, which needs them).
    public let keepsMultilineLabels: Bool

    public init(multiline: Bool, validator: ExampleValidator, reservingCapacity: Int = 0, keepsMultilineLabels: Bool = false) {
        self.multiline = multiline
        self.keepsMultilineLabels = keepsMultilineLabels
        self.validator = validator
        payload.reserveCapacity(reservingCapacity)
    }

    /// The number of examples appended so far.
    public var count: Int { tags.count }

    /// Appends one example given as its lines (exactly one line for a single-line model; >= 1 line for a multiline model).
    ///
    /// Nothing is appended when the example is rejected.
    public mutating func append(lines: [Substring]) throws(ExampleProblem) {
        guard let first = lines.first else { throw .empty }
        if !multiline {
            guard lines.count == 1 else { throw .newlineInSingleLineExample }
            let shape = try validator.shape(of: first)
            appendWithoutLabel(shape, keepingShared: false)
            payload.append(0x0A)
            tags.append(shape.tag.isEmpty ? "" : String(shape.tag))
            return
        }
        // A blank line ends a multiline example in vw, so one inside would split it in two.
        var firstTag: Substring = ""
        var shapes: [ExampleValidator.LineShape] = []
        shapes.reserveCapacity(lines.count)
        for (position, line) in lines.enumerated() {
            let shape: ExampleValidator.LineShape
            do throws(ExampleProblem) {
                shape = try validator.shape(of: line)
            } catch {
                switch error {
                case .empty, .whitespaceOnly: throw .blankLineInMultilineExample
                default: throw error
                }
            }
            if keepsMultilineLabels { try Self.checkLabel(shape.labelWords) }
            if position == 0 { firstTag = shape.tag }
            shapes.append(shape)
        }
        for (line, shape) in zip(lines, shapes) {
            if keepsMultilineLabels || shape.labelWords.first == "ccb" || shape.labelWords.first == "slates" {
                // Labels vw predicts from (`--csoaa_ldf` costs, `ccb slot ...`): sent as written.
                append(line)
            } else {
                appendWithoutLabel(shape, keepingShared: true)
            }
            payload.append(0x0A)
        }
        payload.append(0x0A)
        tags.append(firstTag.isEmpty ? "" : String(firstTag))
    }

    /// Appends a line as `['shared ']['tag ]|features`: its label left out.
    ///
    /// A label does not change a test-mode prediction, but a malformed one makes some reductions
    /// stop reading (`--oaa` with label `x`, `--cb_adf` with `0:1:0.5:7`); the tag VW prints is kept.
    private mutating func appendWithoutLabel(_ shape: ExampleValidator.LineShape, keepingShared: Bool) {
        if keepingShared && shape.labelWords.first == "shared" { payload.append(contentsOf: "shared ".utf8) }
        if !shape.tag.isEmpty {
            payload.append(UInt8(ascii: "'"))
            append(shape.tag)
            payload.append(0x20)
        }
        append(shape.features)
    }

    /// Appends a line's bytes with one copy.
    private mutating func append(_ text: Substring) {
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { payload.append(contentsOf: $0) }
        if copied == nil { payload.append(contentsOf: text.utf8) }
    }

    /// Rejects label sections sent as written that would abort vw's label parser (two costs on one line).
    ///
    /// Lines of `ccb` and `slates` examples carry structural labels (`ccb slot ...`) and pass as written.
    static func checkLabel(_ words: [Substring]) throws(ExampleProblem) {
        guard let first = words.first, first != "ccb", first != "slates" else { return }
        let costs = first == "shared" ? words.count - 1 : words.count
        if costs > 1 {
            throw .invalidLabel("more than one label word (\(words.joined(separator: " "))) on a line of a multiline example")
        }
    }

    /// The batch built so far.
    public consuming func finish() -> PreparedBatch {
        PreparedBatch(payload: payload, count: tags.count, tags: tags, multiline: multiline)
    }
}

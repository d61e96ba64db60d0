import Synchronization

/// The exact bytes to write to a vw process's stdin for one request, and what vw must print back.
public struct PreparedBatch: Sendable {
    /// Every example terminated by "\n"; for multiline models every example followed by one extra blank line.
    /// Each line carries a server tag in place of the client's.
    public let payload: [UInt8]
    /// The shape of the answer vw must print, checked line by line.
    public let frame: AnswerFrame
    /// The client's tag of each example's first line ("" when none), as VW prints it in the answer.
    public let tags: [String]
    public let multiline: Bool

    /// The number of examples, which is the number of answers vw will print.
    public var count: Int { frame.lineCounts.count }

    public init(payload: [UInt8], frame: AnswerFrame, tags: [String], multiline: Bool) {
        self.payload = payload
        self.frame = frame
        self.tags = tags
        self.multiline = multiline
    }
}

/// Serial numbers of server tags, unique in the process.
enum ServerTagSerials {
    private static let next = Atomic<UInt64>(1)

    static func take(_ count: Int) -> UInt64 {
        next.wrappingAdd(UInt64(count), ordering: .relaxed).oldValue
    }
}

/// How a model's examples are written to vw and how its answers are framed.
public struct ExampleFraming: Sendable, Equatable {
    public var family: ExampleFamily
    /// Whether vw prints a blank line after each answer (multiline families, and `--cb N`, which VW runs as ADF).
    public var blankLineAfterEach: Bool
    /// Which answer lines carry the example's tag (learnt from the load probe).
    public var echo: TagEcho

    public init(family: ExampleFamily, blankLineAfterEach: Bool, echo: TagEcho? = nil) {
        self.family = family
        self.blankLineAfterEach = blankLineAfterEach
        self.echo = echo ?? Self.expectedEcho(of: family)
    }

    /// The lines VW ends with the tag, for each family.
    public static func expectedEcho(of family: ExampleFamily) -> TagEcho {
        switch family {
        case .csoaaLDF: .everyLine
        case .ccb, .slates: .none
        default: .firstLine
        }
    }

    public var isMultiline: Bool { family.isMultiline }
}

/// Validates examples one by one and accumulates the payload and the answer frame.
public struct ExampleBatchBuilder: Sendable {
    public let framing: ExampleFraming
    public let validator: ExampleValidator
    private var payload: [UInt8] = []
    private var tags: [String] = []
    private var clientTags: [String] = []
    private var lineCounts: [Int] = []
    private var serials: [UInt64] = []

    public init(framing: ExampleFraming, validator: ExampleValidator, reservingCapacity: Int = 0) {
        self.framing = framing
        self.validator = validator
        payload.reserveCapacity(reservingCapacity)
    }

    public var multiline: Bool { framing.isMultiline }

    /// The number of examples appended so far.
    public var count: Int { tags.count }

    /// Appends one example given as its lines (exactly one line for a single-line model; >= 1 line for a multiline model).
    ///
    /// Nothing is appended when the example is rejected.
    public mutating func append(lines: [Substring]) throws(ExampleProblem) {
        guard let first = lines.first else { throw .empty }
        let serial = ServerTagSerials.take(1)
        if !multiline {
            guard lines.count == 1 else { throw .newlineInSingleLineExample }
            let shape = try validator.shape(of: first)
            appendWithoutLabel(shape, keepingShared: false, serial: serial)
            payload.append(0x0A)
            record(serial: serial, lines: 1, tags: [shape.tag])
            return
        }
        // A blank line ends a multiline example in vw, so one inside would split it in two.
        var shapes: [ExampleValidator.LineShape] = []
        shapes.reserveCapacity(lines.count)
        for line in lines {
            let shape: ExampleValidator.LineShape
            do throws(ExampleProblem) {
                shape = try validator.shape(of: line)
            } catch {
                switch error {
                case .empty, .whitespaceOnly: throw .blankLineInMultilineExample
                default: throw error
                }
            }
            if framing.family == .csoaaLDF { try Self.checkLabel(shape.labelWords) }
            shapes.append(shape)
        }
        var answerLines = 0
        for shape in shapes {
            let structural = shape.labelWords.first == "ccb" || shape.labelWords.first == "slates"
            if framing.family == .csoaaLDF || structural {
                // Labels vw predicts from (`--csoaa_ldf` costs, `ccb slot ...`).
                for word in shape.labelWords {
                    append(word)
                    payload.append(0x20)
                }
                appendTag(serial)
                append(shape.features)
            } else {
                appendWithoutLabel(shape, keepingShared: true, serial: serial)
            }
            payload.append(0x0A)
            switch framing.family {
            case .csoaaLDF: answerLines += 1
            case .ccb, .slates: if shape.labelWords.dropFirst().first == "slot" { answerLines += 1 }
            default: answerLines = 1
            }
        }
        payload.append(0x0A)
        record(serial: serial, lines: answerLines, tags: shapes.map(\.tag))
    }

    private mutating func record(serial: UInt64, lines: Int, tags lineTags: [Substring]) {
        serials.append(serial)
        lineCounts.append(lines)
        let first = lineTags.first.map(String.init) ?? ""
        tags.append(first)
        switch framing.echo {
        case .none: break
        case .firstLine: clientTags.append(first)
        case .everyLine: clientTags.append(contentsOf: lineTags.map(String.init))
        }
    }

    /// Appends a line as `['shared ']'servertag |features`: its label left out.
    ///
    /// A label does not change a test-mode prediction, but a malformed one makes some reductions
    /// stop reading (`--oaa` with label `x`, `--cb_adf` with `0:1:0.5:7`).
    private mutating func appendWithoutLabel(_ shape: ExampleValidator.LineShape, keepingShared: Bool, serial: UInt64) {
        if keepingShared && shape.labelWords.first == "shared" { payload.append(contentsOf: "shared ".utf8) }
        appendTag(serial)
        append(shape.features)
    }

    /// Appends `'v<serial> `: the server tag that frames the answer.
    private mutating func appendTag(_ serial: UInt64) {
        payload.append(contentsOf: [UInt8(ascii: "'"), UInt8(ascii: "v")])
        AnswerFrame.appendHex(serial, to: &payload)
        payload.append(0x20)
    }

    /// Appends a line's bytes with one copy.
    private mutating func append(_ text: Substring) {
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { payload.append(contentsOf: $0) }
        if copied == nil { payload.append(contentsOf: text.utf8) }
    }

    /// Rejects label sections sent as written that would abort vw's label parser (two costs on one line).
    static func checkLabel(_ words: [Substring]) throws(ExampleProblem) {
        let costs = words.first == "shared" ? words.count - 1 : words.count
        if costs > 1 {
            throw .invalidLabel("more than one label word (\(words.joined(separator: " "))) on a line of a multiline example")
        }
    }

    /// The batch built so far.
    public consuming func finish() -> PreparedBatch {
        let frame = AnswerFrame(
            lineCounts: lineCounts, serials: serials, clientTags: clientTags,
            blankLineAfterEach: framing.blankLineAfterEach, echo: framing.echo
        )
        return PreparedBatch(payload: payload, frame: frame, tags: tags, multiline: multiline)
    }
}

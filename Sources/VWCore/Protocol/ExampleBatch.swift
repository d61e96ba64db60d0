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

/// An example checked by a strict grammar (VW text or VW JSON), ready to be written to vw.
public protocol CanonicalExample {
    var featureCounts: FeatureCounts { get }
    /// The lines it spans (for interaction budgets).
    var lineCount: Int { get }
    /// The answer lines vw prints for it (before a multiline answer's blank line).
    var answerLines: Int { get }
    /// Appends its canonical form with `serverTag` as its tag.
    func write(serverTag: [UInt8], into payload: inout [UInt8])
}

extension ParsedExample: CanonicalExample {}
extension VWJSONExample: CanonicalExample {}

/// Parses examples one by one with the strict grammar and accumulates their canonical form and the answer frame.
///
/// The client's bytes never reach vw: each example is written as the grammar re-serialises it,
/// with a server tag (unique in the process) in place of the client's tag on every line.
public struct ExampleBatchBuilder: Sendable {
    public let framing: ExampleFraming
    public let grammar: ExampleGrammar
    /// The interaction work of the examples, when budgeted.
    public let cost: InteractionCost?
    private var payload: [UInt8] = []
    private var tags: [String] = []
    private var clientTags: [String] = []
    private var lineCounts: [Int] = []
    private var serials: [UInt64] = []
    /// The features vw will compute for the examples so far (see `InteractionCost`).
    public private(set) var features = 0
    /// The current example's server tag, its storage reused.
    private var serverTag: [UInt8] = []

    public init(framing: ExampleFraming, limits: ExampleLimits = ExampleLimits(), cost: InteractionCost? = nil, reservingCapacity: Int = 0) {
        self.framing = framing
        self.grammar = ExampleGrammar(family: framing.family, limits: limits)
        self.cost = cost
        payload.reserveCapacity(reservingCapacity)
    }

    public var multiline: Bool { framing.isMultiline }

    /// The number of examples appended so far.
    public var count: Int { tags.count }

    /// Appends one example given as its lines (exactly one line for a single-line model; >= 1 line for a multiline model).
    ///
    /// Nothing is appended when the example is rejected.
    public mutating func append(lines: [Substring]) throws(ExampleProblem) {
        if !multiline && lines.count > 1 { throw .newlineInSingleLineExample }
        let example = try grammar.parse(lines: lines)
        appendCanonical(example)
        let first = String(example.clientTag)
        tags.append(first)
        switch framing.echo {
        case .none: break
        case .firstLine: clientTags.append(first)
        case .everyLine:
            for answer in 0..<example.answerLines { clientTags.append(String(example.clientTag(answer: answer))) }
        }
    }

    /// Appends one VW JSON example (checked by `VWJSONGrammar`), written with a server tag in its `_tag`.
    ///
    /// The client's `_tag` is not kept: replies of JSON models carry no tag.
    public mutating func append(json example: VWJSONExample) {
        appendCanonical(example)
        tags.append("")
        if framing.echo != .none { clientTags.append("") }
    }

    /// Counts an example's interaction cost, and writes it with a fresh server tag and its answer's shape.
    private mutating func appendCanonical(_ example: some CanonicalExample) {
        if let cost { features += cost.features(of: example.featureCounts, lines: example.lineCount) }
        let serial = ServerTagSerials.take(1)
        AnswerFrame.writeServerTag(serial, into: &serverTag)
        example.write(serverTag: serverTag, into: &payload)
        serials.append(serial)
        lineCounts.append(example.answerLines)
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

/// How many features vw computes for an example, from the model's interactions: the budget that
/// stops a request whose size is within every limit but whose interactions are quadratic
/// (`-q ab` with 30,000 features in each namespace is 900 million products).
///
/// Per example: every feature once, plus, for each interaction term, the product of the feature
/// counts of its namespaces (`:`, VW's wildcard, counts every feature). For a multiline example
/// the counts of all its lines are used for each line, an upper bound of ADF's shared-times-action
/// products.
public struct InteractionCost: Sendable, Equatable {
    /// Namespace tuples (`-q ab` → `[a, b]`).
    public let interactions: [[UInt8]]

    public init(interactions: [[UInt8]]) {
        self.interactions = interactions
    }

    /// The features vw computes for an example with `counts` over `lines` lines; saturates at `Int.max`.
    public func features(of counts: FeatureCounts, lines: Int) -> Int {
        var total = counts.total
        for term in interactions {
            var product = 1
            for namespace in term {
                let factor = namespace == UInt8(ascii: ":") ? counts.total : counts[namespace]
                let (next, overflow) = product.multipliedReportingOverflow(by: factor)
                product = overflow ? .max : next
            }
            let (sum, overflow) = total.addingReportingOverflow(product)
            total = overflow ? .max : sum
        }
        let (scaled, overflow) = total.multipliedReportingOverflow(by: max(1, lines))
        return overflow ? .max : scaled
    }
}

/// Why one instance of a request cannot be sent to vw.
///
/// Every case is caught before anything reaches vw: VW skips an empty line, scores a
/// whitespace-only one, reads a line without `|` as a label and cuts a line at NUL, and
/// each of those would shift answers between requests sharing a vw process.
public enum ExampleProblem: Error, Equatable, Sendable {
    case empty
    case whitespaceOnly
    case controlCharacter(UInt8)
    case missingBar
    case newlineInSingleLineExample
    case blankLineInMultilineExample
    case saveTag
    /// A ccb or slates slot tag `seed=…` (VW's per-slot sampling seed) whose value is not 1 to 64 of `[A-Za-z0-9_.-]`.
    case seedTag
    case lineTooLong(limit: Int)
    case tooManyFeatures(limit: Int)
    case notUTF8
    /// A label vw cannot parse without aborting.
    case invalidLabel(String)
    /// A structured (JSON object) instance that cannot be written as VW text safely.
    case invalidInstance(String)
    /// A UTF-8 byte order mark (EF BB BF): vw strips one at the start of a line, so bytes after it
    /// would be read differently from what a check of the line saw.
    case byteOrderMark
    /// The features (from the first `|` on) do not follow VW's documented grammar.
    case malformedFeatures(String)
    /// The lines of a multiline example do not form an example the model's reduction can read.
    case invalidStructure(String)

    /// A short human-readable reason, used in 400 replies.
    public var reason: String {
        switch self {
        case .empty: "empty example"
        case .whitespaceOnly: "whitespace-only example"
        case .controlCharacter(let byte): "control character 0x\(String(byte, radix: 16)) in example"
        case .missingBar: "line without '|' (VW would read it as a label)"
        case .newlineInSingleLineExample: "newline inside a single-line example"
        case .blankLineInMultilineExample: "blank line inside a multiline example"
        case .saveTag: "tag starting with 'save' (VW's model-save command)"
        case .seedTag: "a slot's seed tag is 'seed=' followed by 1 to 64 of [A-Za-z0-9_.-]"
        case .lineTooLong(let limit): "line longer than \(limit) bytes"
        case .tooManyFeatures(let limit): "more than \(limit) features on one line"
        case .notUTF8: "example is not valid UTF-8"
        case .invalidLabel(let why): why
        case .invalidInstance(let why): why
        case .byteOrderMark: "byte order mark (U+FEFF) in example"
        case .malformedFeatures(let why): why
        case .invalidStructure(let why): why
        }
    }
}

/// An invalid instance, with its position in the request.
public struct InvalidExample: Error, Equatable, Sendable {
    public let index: Int
    public let problem: ExampleProblem

    public init(index: Int, problem: ExampleProblem) {
        self.index = index
        self.problem = problem
    }

    public var message: String { "instance \(index): \(problem.reason)" }
}

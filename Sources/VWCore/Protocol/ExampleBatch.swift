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

    public init(multiline: Bool, validator: ExampleValidator, reservingCapacity: Int = 0) {
        self.multiline = multiline
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
            let tag = try validator.validate(line: first)
            payload.append(contentsOf: first.utf8)
            payload.append(0x0A)
            tags.append(tag.isEmpty ? "" : String(tag))
            return
        }
        // A blank line ends a multiline example in vw, so one inside would split it in two.
        var firstTag: Substring = ""
        for (position, line) in lines.enumerated() {
            let tag: Substring
            do throws(ExampleProblem) {
                tag = try validator.validate(line: line)
            } catch {
                switch error {
                case .empty, .whitespaceOnly: throw .blankLineInMultilineExample
                default: throw error
                }
            }
            if position == 0 { firstTag = tag }
        }
        for line in lines {
            payload.append(contentsOf: line.utf8)
            payload.append(0x0A)
        }
        payload.append(0x0A)
        tags.append(firstTag.isEmpty ? "" : String(firstTag))
    }

    /// The batch built so far.
    public consuming func finish() -> PreparedBatch {
        PreparedBatch(payload: payload, count: tags.count, tags: tags, multiline: multiline)
    }
}

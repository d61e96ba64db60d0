/// Limits applied to every VW text line before it reaches vw.
public struct ExampleLimits: Sendable {
    /// The longest accepted line, in bytes.
    public var maxLineBytes: Int
    /// The most feature tokens accepted on one line.
    public var maxFeatures: Int

    public init(maxLineBytes: Int = 1 << 20, maxFeatures: Int = 65_536) {
        self.maxLineBytes = maxLineBytes
        self.maxFeatures = maxFeatures
    }
}

/// Validates VW text lines before they reach vw.
///
/// Each rejected case would make vw skip, merge or misread a line, shifting the answers
/// of every request sharing the process, or (a `save` tag) make vw write a model file.
public struct ExampleValidator: Sendable {
    public let limits: ExampleLimits

    public init(limits: ExampleLimits = ExampleLimits()) {
        self.limits = limits
    }

    /// Checks one line (a single-line example, or one line of a multiline example) and returns the tag VW will print for it ("" when none).
    public func validate(line: Substring) throws(ExampleProblem) -> Substring {
        try shape(of: line).tag
    }

    /// What a valid line holds before its first `|`.
    public struct LineShape: Sendable {
        /// The tag VW will print ("" when none).
        public let tag: Substring
        /// The label words before the first `|`, the tag excluded.
        public let labelWords: [Substring]
        /// The line from its first `|` on: the features.
        public let features: Substring
    }

    /// Checks one line and splits it into label words, tag and features.
    public func shape(of line: Substring) throws(ExampleProblem) -> LineShape {
        let bytes = line.utf8
        let length = bytes.count
        if length > limits.maxLineBytes { throw .lineTooLong(limit: limits.maxLineBytes) }
        if length == 0 { throw .empty }

        let scan = bytes.withContiguousStorageIfAvailable { Self.scan($0) } ?? Array(bytes).withUnsafeBufferPointer { Self.scan($0) }
        if let problem = scan.problem { throw problem }
        if scan.onlyBlanks { throw .whitespaceOnly }
        if scan.features > limits.maxFeatures { throw .tooManyFeatures(limit: limits.maxFeatures) }
        guard let barOffset = scan.barOffset else { throw .missingBar }
        let bar = bytes.index(bytes.startIndex, offsetBy: barOffset)
        if scan.labelIsBlank {
            // The common case: no label, no tag.
            return LineShape(tag: line[bar..<bar], labelWords: [], features: line[bar...])
        }
        let label = line[line.startIndex..<bar]
        let tag = try Self.tag(inLabel: label)
        // Split on bytes, as vw does: a space followed by a combining mark is one Character
        // but two words for vw. The last word is the tag's when it ends at the `|` or starts with `'`.
        var words = label.utf8.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 }).map { Substring($0) }
        if let last = words.last, last.endIndex == label.endIndex || last.utf8.first == UInt8(ascii: "'") { words.removeLast() }
        return LineShape(tag: tag, labelWords: words, features: line[bar...])
    }

    private struct Scan {
        var problem: ExampleProblem?
        var barOffset: Int?
        var onlyBlanks = true
        var labelIsBlank = true
        var features = 0
    }

    /// One pass over a line's bytes: control characters, the first `|`, and the feature count.
    private static func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Scan {
        var result = Scan()
        var inWord = false
        for offset in 0..<bytes.count {
            let byte = bytes[offset]
            if byte < 0x20 || byte == 0x7F {
                if byte == 0x0A || byte == 0x0D { result.problem = .newlineInSingleLineExample; return result }
                if byte != 0x09 { result.problem = .controlCharacter(byte); return result }
                inWord = false
            } else if byte != 0x20 {
                result.onlyBlanks = false
                if byte == UInt8(ascii: "|"), result.barOffset == nil { result.barOffset = offset }
                if result.barOffset == nil { result.labelIsBlank = false }
                if !inWord {
                    inWord = true
                    // Words after the first `|` are features, except namespace markers.
                    if result.barOffset != nil && byte != UInt8(ascii: "|") { result.features += 1 }
                }
            } else {
                inWord = false
            }
        }
        return result
    }

    /// Applies VW's tag rule (parse_example.cc) to the label section, rejecting any word that VW could read as a `save` command.
    private static func tag(inLabel label: Substring) throws(ExampleProblem) -> Substring {
        let bytes = label.utf8
        var lastWordStart: Substring.UTF8View.Index? = nil
        var inWord = false
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let byte = bytes[index]
            if byte == 0x20 || byte == 0x09 {
                inWord = false
            } else if !inWord {
                inWord = true
                lastWordStart = index
                if startsWithSave(bytes, at: index) { throw .saveTag }
            }
            bytes.formIndex(after: &index)
        }
        // `inWord` here means the last word ends exactly at the `|`.
        guard let start = lastWordStart else { return label[label.endIndex...] }
        let quoted = bytes[start] == UInt8(ascii: "'")
        guard inWord || quoted else { return label[label.endIndex...] }
        var end = start
        while end != bytes.endIndex, bytes[end] != 0x20, bytes[end] != 0x09 { bytes.formIndex(after: &end) }
        let tagStart = quoted ? bytes.index(after: start) : start
        return label[tagStart..<end]
    }

    /// Whether the word at `index` starts with `save` or `'save`.
    private static func startsWithSave(_ bytes: Substring.UTF8View, at index: Substring.UTF8View.Index) -> Bool {
        var index = index
        if bytes[index] == UInt8(ascii: "'") { bytes.formIndex(after: &index) }
        for expected in "save".utf8 {
            guard index != bytes.endIndex, bytes[index] == expected else { return false }
            bytes.formIndex(after: &index)
        }
        return true
    }
}

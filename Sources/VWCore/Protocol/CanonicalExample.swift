/// How many features an example has per namespace index, for interaction budgets.
///
/// VW's namespace index is the first byte of the namespace's name (`' '` for the default
/// namespace); every feature token written counts, also those VW drops for a value of 0.
public struct FeatureCounts: Sendable, Equatable {
    private var counts = InlineArray<256, UInt32>(repeating: 0)
    /// Every feature token of the example.
    public private(set) var total = 0

    public init() {}

    /// The features in the namespaces whose index is `index`.
    public subscript(index: UInt8) -> Int { Int(counts[Int(index)]) }

    /// The namespace indices with at least one feature, in increasing order.
    public var indices: [UInt8] {
        var result: [UInt8] = []
        for index in 0..<256 where counts[index] != 0 { result.append(UInt8(index)) }
        return result
    }

    @inline(__always) mutating func add(_ count: Int, to index: UInt8) {
        counts[Int(index)] &+= UInt32(truncatingIfNeeded: count)
        total += count
    }

    public static func == (lhs: FeatureCounts, rhs: FeatureCounts) -> Bool {
        guard lhs.total == rhs.total else { return false }
        for index in 0..<256 where lhs.counts[index] != rhs.counts[index] { return false }
        return true
    }
}

/// The fixed words a line's label starts with in its canonical form.
enum LabelKeyword: UInt8, Sendable {
    case none
    case shared
    case ccbShared
    case ccbAction
    case ccbSlot
    case slatesShared
    case slatesAction
    case slatesSlot

    var text: StaticString {
        switch self {
        case .none: ""
        case .shared: "shared"
        case .ccbShared: "ccb shared"
        case .ccbAction: "ccb action"
        case .ccbSlot: "ccb slot"
        case .slatesShared: "slates shared"
        case .slatesAction: "slates action"
        case .slatesSlot: "slates slot"
        }
    }
}

/// Where, in a client's line, the parts written to vw are (offsets into its UTF-8 bytes).
struct LineLayout: Sendable {
    var keyword: LabelKeyword
    /// Label words kept after the keyword (validated tokens, written with single spaces).
    var label: Range<Int>
    /// The client's tag, without its quote.
    var tag: Range<Int>
    /// From the first `|` to the end of the line (a final CR excluded).
    var features: Range<Int>
    /// Whether the features are already tokens joined by single spaces, with a space before every `|` but the first.
    var featuresAreCanonical: Bool
}

/// One line of a parsed example: the client's line (its storage is kept; nothing is copied until written) and its layout.
struct CanonicalLine: Sendable {
    var source: Substring
    var layout: LineLayout
}

/// One client example accepted by ``ExampleGrammar``, in canonical form.
public struct ParsedExample: Sendable {
    /// The family the example was parsed for.
    public let family: ExampleFamily
    /// The tag VW would print for the client's example as sent (its first line's tag, "" when none): to restore in replies.
    public var clientTag: Substring { clientTag(line: 0) }
    /// How many answer lines vw prints for this example, before the blank line of multiline families:
    /// 1 for single-line families and cbADF, the number of non-`shared` lines for csoaaLDF, the number of slot lines for ccb and slates.
    public let answerLines: Int
    /// Feature tokens per namespace index, summed over the example's lines.
    public let featureCounts: FeatureCounts

    let first: CanonicalLine
    let rest: [CanonicalLine]

    init(family: ExampleFamily, answerLines: Int, featureCounts: FeatureCounts, first: CanonicalLine, rest: [CanonicalLine]) {
        self.family = family
        self.answerLines = answerLines
        self.featureCounts = featureCounts
        self.first = first
        self.rest = rest
    }

    /// Whether the first line writes a label (with `ExampleGrammar.keepsLabels`: whether the client gave one).
    public var hasLabel: Bool { first.layout.keyword != .none || !first.layout.label.isEmpty }

    /// The number of lines of the example (without the blank line ending a multiline example).
    public var lineCount: Int { 1 + rest.count }

    /// The tag of the client's line `index` as VW reads it ("" when none). csoaaLDF prints one answer
    /// line per non-`shared` line, each with its line's tag.
    public func clientTag(line index: Int) -> Substring {
        let line = index == 0 ? first : rest[index - 1]
        let utf8 = line.source.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: line.layout.tag.lowerBound)
        let end = utf8.index(start, offsetBy: line.layout.tag.count)
        return Substring(utf8[start..<end])
    }

    /// Whether vw prints a tag on this example's answer lines: every family but ccb and slates
    /// (checked against vw 9.11). On a single-line family and cbADF the tag is the first line's;
    /// on csoaaLDF every answer line carries the tag of its line.
    public var answersCarryTags: Bool {
        switch family {
        case .ccb, .slates: false
        case .simple, .multiclass, .multilabel, .costSensitive, .contextualBandit, .cbADF, .csoaaLDF: true
        }
    }

    /// The tag vw prints on answer line `index` (0 ..< answerLines) for the client's example as sent:
    /// the first line's tag (single-line families, cbADF), the tag of the `index`-th non-`shared`
    /// line (csoaaLDF), "" for ccb and slates, which print no tags.
    public func clientTag(answer index: Int) -> Substring {
        precondition(index >= 0 && index < answerLines, "answer line \(index) of \(answerLines)")
        switch family {
        case .ccb, .slates: return first.source[first.source.endIndex...]
        case .csoaaLDF: return clientTag(line: first.layout.keyword == .shared ? index + 1 : index)
        case .simple, .multiclass, .multilabel, .costSensitive, .contextualBandit, .cbADF: return clientTag(line: 0)
        }
    }

    /// Whether `tag` can be written as a server tag: 1 to 64 bytes of `[A-Za-z0-9_]`, not starting
    /// with `save` (vw saves its model when an example's tag starts with `save`).
    public static func isValidServerTag(_ tag: some Collection<UInt8>) -> Bool {
        guard !tag.isEmpty, tag.count <= 64 else { return false }
        for byte in tag {
            let letter = byte | 0x20
            guard (letter >= UInt8(ascii: "a") && letter <= UInt8(ascii: "z")) || VWTextSyntax.isDigit(byte) || byte == UInt8(ascii: "_") else { return false }
        }
        return !tag.starts(with: "save".utf8)
    }

    /// Appends the canonical lines to `payload`, each ending in "\n" (a multiline example also gets
    /// its final blank line), with `serverTag` as the tag of every line; the client's tag never reaches vw.
    ///
    /// An empty `serverTag` writes no tag at all. A non-empty one must pass ``isValidServerTag(_:)``.
    /// ccb and slates slot lines get a seed tag instead (``CanonicalSeed``): their answers carry no tag.
    public func write(serverTag: [UInt8], into payload: inout [UInt8]) {
        precondition(serverTag.isEmpty || Self.isValidServerTag(serverTag), "server tag must be [A-Za-z0-9_]{1,64} and not start with 'save'")
        if family == .ccb || family == .slates { return writeSeedingSlots(serverTag: serverTag, into: &payload) }
        Self.write(first, serverTag: serverTag, into: &payload)
        for index in rest.indices { Self.write(rest[index], serverTag: serverTag, into: &payload) }
        if family.isMultiline { payload.append(VWTextSyntax.newline) }
    }

    /// The canonical text of the example, as ``write(serverTag:into:)`` writes it.
    public func canonicalText(serverTag: String = "") -> String {
        var payload: [UInt8] = []
        write(serverTag: Array(serverTag.utf8), into: &payload)
        return String(decoding: payload, as: UTF8.self)
    }

    /// Writes a ccb or slates example with `seed=…` as the tag of every slot line, so that VW's
    /// sampler draws each slot's action from the example alone (see ``CanonicalSeed``).
    private func writeSeedingSlots(serverTag: [UInt8], into payload: inout [UInt8]) {
        let start = payload.count
        Self.write(first, serverTag: [], into: &payload)
        for index in rest.indices { Self.write(rest[index], serverTag: [], into: &payload) }
        payload.append(VWTextSyntax.newline)
        let digest = CanonicalSeed.digest(payload[start...])
        payload.removeSubrange(start...)
        var slot = 0
        var seed: [UInt8] = []
        func writeLine(_ line: borrowing CanonicalLine) {
            guard line.layout.keyword == .ccbSlot || line.layout.keyword == .slatesSlot else {
                return Self.write(line, serverTag: serverTag, into: &payload)
            }
            let tag = line.source.utf8.dropFirst(line.layout.tag.lowerBound).prefix(line.layout.tag.count)
            if CanonicalSeed.isSeedTag(tag) {
                seed.replaceSubrange(seed.indices, with: tag)
            } else {
                CanonicalSeed.write(digest: digest, slot: slot, into: &seed)
            }
            slot += 1
            Self.write(line, serverTag: seed, into: &payload)
        }
        writeLine(first)
        for index in rest.indices { writeLine(rest[index]) }
        payload.append(VWTextSyntax.newline)
    }

    private static func write(_ line: borrowing CanonicalLine, serverTag: [UInt8], into payload: inout [UInt8]) {
        let layout = line.layout
        let written: Void? = line.source.utf8.withContiguousStorageIfAvailable { bytes in
            write(layout, bytes: bytes, serverTag: serverTag, into: &payload)
        }
        if written == nil {
            let copy = Array(line.source.utf8)
            copy.withUnsafeBufferPointer { write(layout, bytes: $0, serverTag: serverTag, into: &payload) }
        }
    }

    private static func write(_ line: LineLayout, bytes: UnsafeBufferPointer<UInt8>, serverTag: [UInt8], into payload: inout [UInt8]) {
        var wroteLabel = false
        if line.keyword != .none {
            let text = line.keyword.text
            payload.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
            wroteLabel = true
        }
        if !line.label.isEmpty {
            // Label words, single-spaced (the label section holds no tab once parsed).
            var pendingSpace = wroteLabel
            var index = line.label.lowerBound
            while index < line.label.upperBound {
                let byte = bytes[index]
                if byte == VWTextSyntax.space {
                    pendingSpace = true
                } else {
                    if pendingSpace { payload.append(VWTextSyntax.space); pendingSpace = false }
                    payload.append(byte)
                }
                index += 1
            }
            wroteLabel = true
        }
        if wroteLabel { payload.append(VWTextSyntax.space) }
        if !serverTag.isEmpty {
            payload.append(VWTextSyntax.quote)
            payload.append(contentsOf: serverTag)
            payload.append(VWTextSyntax.space)
        }
        if line.featuresAreCanonical {
            payload.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[line.features]))
        } else {
            writeNormalized(UnsafeBufferPointer(rebasing: bytes[line.features]), into: &payload)
        }
        payload.append(VWTextSyntax.newline)
    }

    /// Writes features as tokens joined by single spaces, with a space before every `|` but the first.
    private static func writeNormalized(_ features: UnsafeBufferPointer<UInt8>, into payload: inout [UInt8]) {
        var pendingSpace = false
        for (offset, byte) in features.enumerated() {
            if VWTextSyntax.isSeparator(byte) {
                pendingSpace = true
                continue
            }
            if byte == VWTextSyntax.bar && offset > 0 { pendingSpace = true }
            if pendingSpace { payload.append(VWTextSyntax.space); pendingSpace = false }
            payload.append(byte)
        }
    }
}

/// Which answer lines vw ends with the example's tag.
public enum TagEcho: Sendable, Equatable {
    /// No line (`--ccb_explore_adf`, `--slates`): only the line counts are checked.
    case none
    /// The first line of each example's answer (scalars, multiclass, `--cb_adf`, `--cb_explore_adf`, ...).
    case firstLine
    /// Every line (`--csoaa_ldf`, `--wap_ldf`, which print one line per action with that line's tag).
    case everyLine
}

/// What vw must print for one request: the exact shape of every example's answer.
///
/// Every example is written to vw with a server-generated tag (`v` and a hex serial number,
/// unique in the process), so a line that carries another example's tag, or a missing or extra
/// line, is detected before anything is delivered.
public struct AnswerFrame: Sendable, Equatable {
    /// The number of answer lines of each example (before the blank line, when there is one).
    public var lineCounts: [Int]
    /// The serial number of each example's server tag.
    public var serials: [UInt64]
    /// The client's tags, restored in the reply: one per example, or one per line for `.everyLine`.
    public var clientTags: [String]
    /// Whether vw prints a blank line after each example's answer.
    public var blankLineAfterEach: Bool
    /// Which lines carry the tag.
    public var echo: TagEcho

    public init(lineCounts: [Int], serials: [UInt64], clientTags: [String], blankLineAfterEach: Bool, echo: TagEcho) {
        self.lineCounts = lineCounts
        self.serials = serials
        self.clientTags = clientTags
        self.blankLineAfterEach = blankLineAfterEach
        self.echo = echo
    }

    /// The server tag of a serial number, as written after `'`: `v` and lowercase hex.
    public static func serverTag(_ serial: UInt64) -> [UInt8] {
        var tag: [UInt8] = []
        writeServerTag(serial, into: &tag)
        return tag
    }

    /// Replaces `tag`'s bytes with the server tag of `serial`, reusing its storage.
    public static func writeServerTag(_ serial: UInt64, into tag: inout [UInt8]) {
        tag.removeAll(keepingCapacity: true)
        tag.append(UInt8(ascii: "v"))
        appendHex(serial, to: &tag)
    }

    /// Appends `serial` in lowercase hex without leading zeros.
    public static func appendHex(_ serial: UInt64, to bytes: inout [UInt8]) {
        let digits = max(1, (64 - serial.leadingZeroBitCount + 3) / 4)
        for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
            let nibble = UInt8((serial >> UInt64(shift)) & 0xF)
            bytes.append(nibble < 10 ? 0x30 + nibble : 0x57 + nibble)
        }
    }
}

/// Why what vw printed cannot be the answer to the request at the head of its pipeline.
public struct FramingViolation: Error, Equatable, Sendable, CustomStringConvertible {
    public let example: Int
    public let line: Int
    public let reason: String

    public var description: String { "answer of example \(example), line \(line): \(reason)" }
}

/// Turns the bytes vw prints into one request's answer, checking every line against its frame.
///
/// Bytes in, a finished answer out: `consume` takes bytes until the request's last expected line
/// (the rest belongs to the next request). A line that does not fit — a blank line where an
/// answer is due, an answer where the blank line is due, a missing or foreign tag — throws, and
/// the caller must not deliver anything vw printed after it: the process is out of step.
/// The answer holds vw's bytes with each server tag replaced by the client's own tag (or
/// removed when the client sent none), which is what vw prints for the client's example.
public struct AnswerFramer: Sendable {
    public let frame: AnswerFrame
    /// The answer text so far: vw's lines with the client's tags.
    public private(set) var raw: [UInt8] = []
    /// The range of each finished example's answer in `raw` (its lines without the final newline, and without the blank line).
    public private(set) var answers: [Range<Int>] = []
    /// The bytes of a line not yet ended by "\n".
    private var partial: [UInt8] = []
    private var lineInExample = 0
    private var tagIndex = 0
    private var exampleStart = 0
    private var expectedTag: [UInt8] = []

    public init(frame: AnswerFrame, capacity: Int = 0) {
        self.frame = frame
        raw.reserveCapacity(capacity)
        answers.reserveCapacity(frame.lineCounts.count)
        expectedTag.reserveCapacity(17)
        if let first = frame.serials.first { AnswerFrame.writeServerTag(first, into: &expectedTag) }
    }

    /// Whether every example has its answer.
    public var isComplete: Bool { answers.count == frame.lineCounts.count }

    /// Consumes bytes up to the end of this request's answer and returns how many it used.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(FramingViolation) -> Int {
        var offset = 0
        while offset < bytes.count && !isComplete {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            guard let newline = rest.firstIndex(of: 0x0A) else {
                partial.append(contentsOf: rest)
                return bytes.count
            }
            let used = newline - rest.startIndex
            offset += used + 1
            if partial.isEmpty {
                try accept(line: UnsafeRawBufferPointer(rebasing: rest[rest.startIndex..<newline]))
            } else {
                partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[rest.startIndex..<newline]))
                let line = partial
                partial.removeAll(keepingCapacity: true)
                var failure: FramingViolation?
                line.withUnsafeBytes { line in
                    do throws(FramingViolation) { try accept(line: line) } catch { failure = error }
                }
                if let failure { throw failure }
            }
        }
        return offset
    }

    private mutating func accept(line: UnsafeRawBufferPointer) throws(FramingViolation) {
        let example = answers.count
        let expectedLines = frame.lineCounts[example]
        if lineInExample == expectedLines {
            // Only the blank line that ends a multiline answer is due.
            guard line.isEmpty else { throw violation("a line where the blank line ending the answer is due") }
            let end = raw.count - 1
            raw.append(0x0A)
            finishExample(end: end)
            return
        }
        let tagged = frame.echo == .everyLine || (frame.echo == .firstLine && lineInExample == 0)
        if tagged {
            try appendRestoringTag(line)
        } else {
            if line.isEmpty && frame.blankLineAfterEach {
                throw violation("a blank line where answer line \(lineInExample + 1) of \(expectedLines) is due")
            }
            raw.append(contentsOf: line)
        }
        raw.append(0x0A)
        lineInExample += 1
        if lineInExample == expectedLines && !frame.blankLineAfterEach { finishExample(end: raw.count - 1) }
    }

    /// Appends `line` with the server tag replaced by the client's tag.
    ///
    /// The tag is a whole word: at the end of the line (`0.5 tag`, `1,2  tag` for multilabel) or
    /// after the prediction (`--bootstrap` prints `pred tag bag1 bag2`). VW writes ` tag` only when
    /// there is a tag, so without a client tag the word and its space are removed.
    private mutating func appendRestoringTag(_ line: UnsafeRawBufferPointer) throws(FramingViolation) {
        guard let start = Self.word(expectedTag, in: line) else {
            throw violation(line.isEmpty ? "a blank line where a tagged answer is due" : "the line does not carry this example's tag")
        }
        let separated = start > 0
        raw.append(contentsOf: UnsafeRawBufferPointer(rebasing: line[0..<(separated ? start - 1 : 0)]))
        let clientTag = frame.clientTags[tagIndex].utf8
        tagIndex += 1
        if !clientTag.isEmpty {
            if separated { raw.append(0x20) }
            raw.append(contentsOf: clientTag)
        }
        raw.append(contentsOf: UnsafeRawBufferPointer(rebasing: line[(start + expectedTag.count)...]))
    }

    /// Where `word` stands alone in `line` (after a space or at the start, before a space or at the end).
    private static func word(_ word: [UInt8], in line: UnsafeRawBufferPointer) -> Int? {
        guard line.count >= word.count else { return nil }
        var start = line.count - word.count
        // The end of the line is where VW writes the tag for every reduction but one: try it first.
        if line[start...].elementsEqual(word) && (start == 0 || line[start - 1] == 0x20) { return start }
        start = 0
        while start + word.count < line.count {
            if (start == 0 || line[start - 1] == 0x20) && line[start + word.count] == 0x20
                && line[start..<(start + word.count)].elementsEqual(word) {
                return start
            }
            start += 1
        }
        return nil
    }

    private mutating func finishExample(end: Int) {
        answers.append(exampleStart..<max(exampleStart, end))
        exampleStart = raw.count
        lineInExample = 0
        if !isComplete { AnswerFrame.writeServerTag(frame.serials[answers.count], into: &expectedTag) }
    }

    private func violation(_ reason: String) -> FramingViolation {
        FramingViolation(example: answers.count, line: lineInExample + 1, reason: reason)
    }
}

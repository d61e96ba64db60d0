// libFuzzer target: AnswerFramer on arbitrary vw output, checked against a reference reading.
//
// Input: byte 0 picks the echo mode and whether answers end with a blank line; bytes 1...4 give
// up to four examples' line counts (0–3); the rest is what "vw" printed, fed in chunks whose
// sizes come from the data. Checks:
//
// * the framer never traps, and never consumes more than it was given;
// * when it accepts, the consumed bytes are exactly the lines the frame asks for: every tagged
//   line carries its own example's server tag as a word, every blank line sits where a blank line is due,
//   and the request ends right after its last expected line;
// * the answer ranges lie inside the restored text, in order, one per example;
// * when the reference reading accepts the whole input, so does the framer.
@testable import VWCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 5 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let echoes: [TagEcho] = [.none, .firstLine, .everyLine]
    let echo = echoes[Int(bytes[0] & 3) % 3]
    let blank = bytes[0] & 4 != 0
    let counts = bytes[1...4].map { Int($0 % 4) }.filter { blank || $0 > 0 }
    guard !counts.isEmpty else { return 0 }
    let serials = (0..<counts.count).map { UInt64($0) * 7 + 1 }
    let tagCount = echo == .everyLine ? counts.reduce(0, +) : (echo == .firstLine ? counts.count : 0)
    let frame = AnswerFrame(lineCounts: counts, serials: serials, clientTags: (0..<tagCount).map { "c\($0)" },
                            blankLineAfterEach: blank, echo: echo)
    let output = Array(bytes[5...])

    var framer = AnswerFramer(frame: frame)
    var consumed = 0
    var accepted = true
    var chunk = 1 + Int(bytes[0] >> 3)
    while consumed < output.count && !framer.isComplete {
        let end = min(output.count, consumed + chunk)
        do {
            let used = try output[consumed..<end].withUnsafeBytes { piece throws(FramingViolation) in try framer.consume(piece) }
            check(used <= end - consumed, "consumed more than given")
            consumed += used
        } catch {
            accepted = false
            break
        }
        chunk = chunk * 3 % 17 + 1
    }
    let reference = referenceLength(of: output, frame: frame)
    if accepted && framer.isComplete {
        check(reference == consumed, "framer accepted \(consumed) bytes, the reference reading \(String(describing: reference))")
        check(framer.answers.count == counts.count, "answers \(framer.answers.count) for \(counts.count) examples")
        var previous = 0
        for range in framer.answers {
            check(range.lowerBound >= previous && range.upperBound <= framer.raw.count, "answer range out of order or bounds")
            previous = range.upperBound
        }
    } else if let reference {
        check(!accepted && reference > consumed || accepted, "framer refused bytes the reference reading accepts")
    }
    return 0
}

/// The length of the prefix of `output` that is a well-framed answer, by a plain reading: nil when there is none.
func referenceLength(of output: [UInt8], frame: AnswerFrame) -> Int? {
    var lines: [ArraySlice<UInt8>] = []
    var start = 0
    var needed = 0
    for count in frame.lineCounts { needed += count + (frame.blankLineAfterEach ? 1 : 0) }
    for (index, byte) in output.enumerated() where byte == 0x0A {
        lines.append(output[start..<index])
        start = index + 1
        if lines.count == needed { break }
    }
    guard lines.count == needed else { return nil }
    var cursor = 0
    for (example, count) in frame.lineCounts.enumerated() {
        let tag = AnswerFrame.serverTag(frame.serials[example])
        for position in 0..<count {
            let line = Array(lines[cursor])
            cursor += 1
            let tagged = frame.echo == .everyLine || (frame.echo == .firstLine && position == 0)
            if tagged {
                // The tag is a word of the line: at its end, or followed by more words (`--bootstrap`).
                let words = line.split(separator: 0x20, omittingEmptySubsequences: false)
                guard words.contains(where: { Array($0) == tag }) else { return nil }
            } else if line.isEmpty && frame.blankLineAfterEach {
                return nil
            }
        }
        if frame.blankLineAfterEach {
            guard lines[cursor].isEmpty else { return nil }
            cursor += 1
        }
    }
    return start
}

func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant broken: \(message())") }
}

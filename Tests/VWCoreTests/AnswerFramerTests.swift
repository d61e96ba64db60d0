import Testing
@testable import VWCore

/// Feeds `text` to a framer in chunks of `chunk` bytes; returns the answers or the violation.
private func frame(_ frame: AnswerFrame, _ text: String, chunk: Int = 1 << 20) -> Result<([String], String, Int), FramingViolation> {
    var framer = AnswerFramer(frame: frame)
    let bytes = Array(text.utf8)
    var offset = 0
    do {
        while offset < bytes.count && !framer.isComplete {
            let end = min(bytes.count, offset + chunk)
            offset += try bytes[offset..<end].withUnsafeBytes { piece throws(FramingViolation) in try framer.consume(piece) }
        }
    } catch {
        return .failure(error as! FramingViolation)
    }
    let raw = framer.raw
    return .success((framer.answers.map { String(decoding: raw[$0], as: UTF8.self) }, String(decoding: raw, as: UTF8.self), offset))
}

private func single(_ serials: [UInt64], tags: [String]? = nil, blank: Bool = false) -> AnswerFrame {
    AnswerFrame(lineCounts: serials.map { _ in 1 }, serials: serials, clientTags: tags ?? serials.map { _ in "" },
                blankLineAfterEach: blank, echo: .firstLine)
}

struct AnswerFramerTests {
    @Test func serverTagsAreHexSerials() {
        #expect(String(decoding: AnswerFrame.serverTag(0), as: UTF8.self) == "v0")
        #expect(String(decoding: AnswerFrame.serverTag(255), as: UTF8.self) == "vff")
        #expect(String(decoding: AnswerFrame.serverTag(UInt64.max), as: UTF8.self) == "vffffffffffffffff")
    }

    @Test func restoresTheClientTagsAndStopsAtTheRequestEnd() throws {
        let result = try frame(single([10, 11, 12], tags: ["t1", "", "'q"]), "0.5 va\n-1 vb\n2 vc\n0.7 vd\n", chunk: 3).get()
        #expect(result.0 == ["0.5 t1", "-1", "2 'q"])
        #expect(result.1 == "0.5 t1\n-1\n2 'q\n")
        #expect(result.2 == "0.5 va\n-1 vb\n2 vc\n".utf8.count)  // the next request's line is left alone
    }

    @Test func anotherExamplesTagIsAViolation() {
        #expect(throws: FramingViolation.self) { try frame(single([10, 11]), "0.5 vb\n0.1 va\n").get() }
        // A shifted stream: the first answer is missing.
        #expect(throws: FramingViolation.self) { try frame(single([10, 11]), "0.1 vb\n").get() }
        // A tag that merely ends with the expected one.
        #expect(throws: FramingViolation.self) { try frame(single([10]), "0.5 xva\n").get() }
    }

    @Test func multilineAnswersEndWithTheirBlankLine() throws {
        let ok = AnswerFrame(lineCounts: [1, 1], serials: [1, 2], clientTags: ["u", ""], blankLineAfterEach: true, echo: .firstLine)
        let result = try frame(ok, "1:0.9,0:0.1 v1\n\n0:1 v2\n\n").get()
        #expect(result.0 == ["1:0.9,0:0.1 u", "0:1"])
        #expect(result.1 == "1:0.9,0:0.1 u\n\n0:1\n\n")
        // An extra blank line (vw's answer to a shared-only example) and a missing one.
        #expect(throws: FramingViolation.self) { try frame(ok, "\n1:0.9 v1\n\n0:1 v2\n\n").get() }
        #expect(throws: FramingViolation.self) { try frame(ok, "1:0.9 v1\n0:1 v2\n\n").get() }
    }

    @Test func untaggedAnswersAreCheckedByLineCount() throws {
        // ccb: one line per slot, no tag.
        let ccb = AnswerFrame(lineCounts: [2, 1], serials: [1, 2], clientTags: [], blankLineAfterEach: true, echo: .none)
        let result = try frame(ccb, "1:0.9,0:0.1\n0:1\n\n0:1\n\n").get()
        #expect(result.0 == ["1:0.9,0:0.1\n0:1", "0:1"])
        // `ccb slot 5 |`-style extra blank line: seen where the second slot's line is due.
        #expect(throws: FramingViolation.self) { try frame(ccb, "1:0.9,0:0.1\n\n\n0:1\n\n").get() }
        // One line too many before the blank line.
        #expect(throws: FramingViolation.self) { try frame(ccb, "1:1\n0:1\n0:1\n\n").get() }
    }

    @Test func everyLineTaggedForLDF() throws {
        let ldf = AnswerFrame(lineCounts: [2], serials: [7], clientTags: ["a1", "a2"], blankLineAfterEach: true, echo: .everyLine)
        let result = try frame(ldf, "1 v7\n0 v7\n\n").get()
        #expect(result.1 == "1 a1\n0 a2\n\n")
        #expect(throws: FramingViolation.self) { try frame(ldf, "1 v7\n0\n\n").get() }
    }

    @Test func bootstrapPrintsTheTagAfterThePrediction() throws {
        // `--bootstrap` prints `pred tag bag1 bag2`, and `pred bag1 bag2` without a tag.
        let result = try frame(single([5, 6], tags: ["t1", ""]), "-0.3 v5 -0.36 -0.26\n0.1 v6 0.2 0.3\n").get()
        #expect(result.1 == "-0.3 t1 -0.36 -0.26\n0.1 0.2 0.3\n")
        #expect(throws: FramingViolation.self) { try frame(single([5]), "-0.3 v55 -0.36\n").get() }
    }

    @Test func emptyPredictionKeepsVWsSeparator() throws {
        // A multilabel answer with no label: vw prints " tag".
        let result = try frame(single([3], tags: ["t"]), " v3\n").get()
        #expect(result.1 == " t\n")
    }
}

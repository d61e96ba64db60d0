import Testing
import VWCore

@Suite struct ExampleBatchTests {
    @Test func singleLineBatchTerminatesEachExampleWithNewline() throws {
        var builder = ExampleBatchBuilder(multiline: false, validator: ExampleValidator())
        try builder.append(lines: ["1 |a x"])
        try builder.append(lines: ["t2|a y"])
        let batch = builder.finish()
        // Labels are dropped (they cannot change a test-mode prediction); tags are kept.
        #expect(String(decoding: batch.payload, as: UTF8.self) == "|a x\n't2 |a y\n")
        #expect(batch.count == 2)
        #expect(batch.tags == ["", "t2"])
        #expect(!batch.multiline)
    }

    @Test func singleLineLabelsAreDroppedAndTagsKeptAsVWReadsThem() throws {
        var builder = ExampleBatchBuilder(multiline: false, validator: ExampleValidator())
        try builder.append(lines: ["x 1 2 3 'tg |a x"])
        try builder.append(lines: ["-1 0.5 tagB|a x"])
        try builder.append(lines: ["''q|a x"])
        try builder.append(lines: ["1 notatag |a x"])
        let batch = builder.finish()
        #expect(String(decoding: batch.payload, as: UTF8.self) == "'tg |a x\n'tagB |a x\n''q |a x\n|a x\n")
        #expect(batch.tags == ["tg", "tagB", "'q", ""])
    }

    @Test func twoCostsOnALineSentAsWrittenAreRejected() {
        var builder = ExampleBatchBuilder(multiline: true, validator: ExampleValidator(), keepsMultilineLabels: true)
        #expect(throws: ExampleProblem.self) { try builder.append(lines: ["1:0 2:1 |a id0"]) }
        #expect(throws: ExampleProblem.self) { try builder.append(lines: ["shared 1 2 |u x", "|a id0"]) }
    }

    @Test func twoCostsOnABanditLineAreDroppedWithTheLabel() throws {
        var builder = ExampleBatchBuilder(multiline: true, validator: ExampleValidator())
        try builder.append(lines: ["shared |u x", "1 2 |a id0"])
        #expect(String(decoding: builder.finish().payload, as: UTF8.self) == "shared |u x\n|a id0\n\n")
    }

    @Test func multilineLabelsThatVWAcceptsPass() throws {
        var builder = ExampleBatchBuilder(multiline: true, validator: ExampleValidator())
        try builder.append(lines: ["shared 'tg |u x", "0:1.0:0.5 |a id0", "|a id1"])
        try builder.append(lines: ["ccb shared |u x", "ccb action |a id0", "ccb slot 0:0.5 0,1 |s x"])
        #expect(builder.finish().count == 2)
    }

    @Test func singleLineExampleMustBeOneLine() {
        var builder = ExampleBatchBuilder(multiline: false, validator: ExampleValidator())
        #expect(throws: ExampleProblem.newlineInSingleLineExample) { try builder.append(lines: ["|a x", "|a y"]) }
        #expect(throws: ExampleProblem.newlineInSingleLineExample) { try builder.append(lines: ["|a x\n|a y"]) }
        #expect(throws: ExampleProblem.empty) { try builder.append(lines: []) }
        #expect(throws: ExampleProblem.empty) { try builder.append(lines: [""]) }
        #expect(builder.finish().payload.isEmpty)
    }

    @Test func multilineBatchEndsEachExampleWithBlankLine() throws {
        var builder = ExampleBatchBuilder(multiline: true, validator: ExampleValidator(), reservingCapacity: 64)
        try builder.append(lines: ["shared tagS|u x:1", "|a id0", "|a id1"])
        try builder.append(lines: ["|a id0"])
        let batch = builder.finish()
        #expect(String(decoding: batch.payload, as: UTF8.self) == "shared 'tagS |u x:1\n|a id0\n|a id1\n\n|a id0\n\n")
        #expect(batch.count == 2)
        // VW prints the tag of an example's first line only (checked with vw 9.11.9 --cb_explore_adf).
        #expect(batch.tags == ["tagS", ""])
        #expect(batch.multiline)
    }

    @Test func tagOnALaterLineOfAMultilineExampleIsNotPrintedByVW() throws {
        var builder = ExampleBatchBuilder(multiline: true, validator: ExampleValidator())
        try builder.append(lines: ["shared |u x:1", "tagA|a id0"])
        #expect(builder.finish().tags == [""])
    }

    @Test func blankLineInsideMultilineExampleIsRejected() {
        var builder = ExampleBatchBuilder(multiline: true, validator: ExampleValidator())
        #expect(throws: ExampleProblem.blankLineInMultilineExample) { try builder.append(lines: ["shared |u x", "", "|a y"]) }
        #expect(throws: ExampleProblem.blankLineInMultilineExample) { try builder.append(lines: ["shared |u x", " \t"]) }
        #expect(throws: ExampleProblem.empty) { try builder.append(lines: []) }
    }

    @Test func rejectedMultilineExampleLeavesNothingInThePayload() throws {
        var builder = ExampleBatchBuilder(multiline: true, validator: ExampleValidator())
        try builder.append(lines: ["|a x"])
        #expect(throws: ExampleProblem.missingBar) { try builder.append(lines: ["shared |u x", "a y"]) }
        #expect(throws: ExampleProblem.saveTag) { try builder.append(lines: ["save|u x"]) }
        let batch = builder.finish()
        #expect(String(decoding: batch.payload, as: UTF8.self) == "|a x\n\n")
        #expect(batch.count == 1)
        #expect(batch.tags == [""])
    }
}

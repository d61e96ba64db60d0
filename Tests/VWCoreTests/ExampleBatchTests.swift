import Testing
import VWCore

@Suite struct ExampleBatchTests {
    @Test func singleLineBatchTerminatesEachExampleWithNewline() throws {
        var builder = ExampleBatchBuilder(multiline: false, validator: ExampleValidator())
        try builder.append(lines: ["1 |a x"])
        try builder.append(lines: ["t2|a y"])
        let batch = builder.finish()
        #expect(String(decoding: batch.payload, as: UTF8.self) == "1 |a x\nt2|a y\n")
        #expect(batch.count == 2)
        #expect(batch.tags == ["", "t2"])
        #expect(!batch.multiline)
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
        #expect(String(decoding: batch.payload, as: UTF8.self) == "shared tagS|u x:1\n|a id0\n|a id1\n\n|a id0\n\n")
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

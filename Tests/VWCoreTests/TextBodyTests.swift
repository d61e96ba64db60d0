import Testing
import VWCore

@Suite struct TextBodyTests {
    func examples(_ text: String, multiline: Bool) throws(InvalidExample) -> [[String]] {
        try TextBody.examples(in: Array(text.utf8), multiline: multiline).map { $0.map(String.init) }
    }

    @Test func singleLineBodyHasOneExamplePerLine() throws {
        #expect(try examples("1 |a x\n|b y", multiline: false) == [["1 |a x"], ["|b y"]])
        #expect(try examples("1 |a x\n|b y\n", multiline: false) == [["1 |a x"], ["|b y"]])
        #expect(try examples("1 |a x\r\n|b y\r\n", multiline: false) == [["1 |a x"], ["|b y"]])
    }

    @Test func emptyBodyHasNoExamples() throws {
        #expect(try examples("", multiline: false).isEmpty)
        #expect(try examples("", multiline: true).isEmpty)
        #expect(try examples("\n\n", multiline: true).isEmpty)
    }

    @Test func blankLineInSingleLineBodyNamesItsExampleIndex() {
        #expect(throws: InvalidExample(index: 1, problem: .empty)) { try examples("|a x\n\n|a y\n", multiline: false) }
        #expect(throws: InvalidExample(index: 1, problem: .empty)) { try examples("|a x\n\n", multiline: false) }
        #expect(throws: InvalidExample(index: 2, problem: .whitespaceOnly)) { try examples("|a x\n|a y\n \t\n", multiline: false) }
        #expect(throws: InvalidExample(index: 0, problem: .empty)) { try examples("\n", multiline: false) }
        #expect(throws: InvalidExample(index: 0, problem: .empty)) { try examples("\r\n|a x", multiline: false) }
    }

    @Test func linesAreNotValidatedHere() throws {
        #expect(try examples("no bar\n", multiline: false) == [["no bar"]])
    }

    @Test func nonUTF8BodyIsRejected() {
        #expect(throws: InvalidExample(index: 0, problem: .notUTF8)) {
            try TextBody.examples(in: [0x7C, 0x61, 0x20, 0xFF, 0x0A], multiline: false)
        }
    }

    @Test func multilineExamplesAreSeparatedByBlankLines() throws {
        let body = "shared |u x\n|a id0\n|a id1\n\n\n|a id0\r\n \r\nshared |u y\n|a z\n\n\n"
        #expect(try examples(body, multiline: true) == [
            ["shared |u x", "|a id0", "|a id1"],
            ["|a id0"],
            ["shared |u y", "|a z"],
        ])
        #expect(try examples("\nshared |u x\n|a y", multiline: true) == [["shared |u x", "|a y"]])
    }
}

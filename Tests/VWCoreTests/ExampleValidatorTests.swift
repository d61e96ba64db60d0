import Testing
import VWCore

@Suite struct ExampleValidatorTests {
    let validator = ExampleValidator()

    @Test(arguments: [
        ("1 |a x:1", ""),
        ("-1 2.0 |a x", ""),
        ("1 0.5 'tag|a x:1.5 y", "tag"),
        ("tagA|a x", "tagA"),
        ("|a:2 x", ""),
        (" |a x:1 |b y=red", ""),
        ("shared |u x:0.5", ""),
        ("0:1.0:0.5 |a id1", ""),
        ("|", ""),
        ("1 |é ü:1 名前", ""),
        ("1 'quoted |a x", "quoted"),
        ("1\ttg|a x", "tg"),
        ("1 tg\t|a x", ""),
        ("ccb shared tagC|u x", "tagC"),
        ("1 |a x|b saveme", ""),
        ("1 sav|a x", "sav"),
        ("1 asave|a x", "asave"),
    ])
    func validLinesPassAndYieldVWsTag(line: String, tag: String) throws {
        #expect(try validator.validate(line: Substring(line)) == Substring(tag))
    }

    @Test(arguments: [
        ("", ExampleProblem.empty),
        ("   ", .whitespaceOnly),
        (" \t ", .whitespaceOnly),
        ("1 a x", .missingBar),
        ("1 |a\u{0}x", .controlCharacter(0)),
        ("1 |a \u{1B}x", .controlCharacter(0x1B)),
        ("1 |a \u{7F}", .controlCharacter(0x7F)),
        ("1 |a x\n|a y", .newlineInSingleLineExample),
        ("1 |a x\r", .newlineInSingleLineExample),
        ("1 save|a x", .saveTag),
        ("1 'save_model.vw|a x", .saveTag),
        ("1 'save |a x", .saveTag),
        ("save 1 |a x", .saveTag),
        ("1 save_x 2 |a x", .saveTag),
        ("1 saver|a x", .saveTag),
    ])
    func invalidLinesAreRejected(line: String, problem: ExampleProblem) {
        #expect(throws: problem) { try validator.validate(line: Substring(line)) }
    }

    @Test func lineLongerThanTheLimitIsRejectedBeforeAnythingElse() throws {
        let small = ExampleValidator(limits: ExampleLimits(maxLineBytes: 8))
        #expect(throws: ExampleProblem.lineTooLong(limit: 8)) { try small.validate(line: "1 |a xyzw\u{0}") }
        #expect(try small.validate(line: "1 |a xyz") == "")
    }

    @Test func limitCountsBytesNotCharacters() {
        let small = ExampleValidator(limits: ExampleLimits(maxLineBytes: 5))
        #expect(throws: ExampleProblem.lineTooLong(limit: 5)) { try small.validate(line: "|a éé") }
    }

    @Test func returnedTagIsASliceOfTheLine() throws {
        let line: Substring = "  1 t1|a x"
        let tag = try validator.validate(line: line)
        #expect(tag == "t1")
        #expect(tag.startIndex >= line.startIndex && tag.endIndex <= line.endIndex)
    }

    @Test func featureCountLimit() throws {
        let validator = ExampleValidator(limits: ExampleLimits(maxFeatures: 3))
        _ = try validator.validate(line: "1 tag|a x y |b z")
        _ = try validator.validate(line: "|a x:1 y:2\t|b z |c")
        #expect(throws: ExampleProblem.tooManyFeatures(limit: 3)) { try validator.validate(line: "|a w x y z") }
        #expect(throws: ExampleProblem.tooManyFeatures(limit: 3)) { try validator.validate(line: "|a x |b y |c z |d q") }
    }
}

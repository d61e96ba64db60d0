import Testing
@testable import VWCore

/// The answers below are what vw 9.11.9 printed for the named reductions.
@Suite struct PredictionParserTests {
    let plain = PredictionParser(kind: .plain)
    let explore = PredictionParser(kind: .actionProbabilities)
    let ranking = PredictionParser(kind: .actionScores)

    @Test func scalarPredictionIsANumberKeptVerbatim() {
        #expect(plain.parse(answer: "0.240292", tag: "") == .number("0.240292"))
        #expect(plain.parse(answer: "-0.020533 mytag", tag: "mytag") == .number("-0.020533"))
        #expect(plain.parse(answer: "1e+06", tag: "") == .number("1e+06"))
        #expect(plain.parse(answer: "-1.5E-3", tag: "") == .number("-1.5E-3"))
    }

    @Test func bootstrapTagIsRemovedFromAfterThePrediction() {
        // --bootstrap 3 prints `pred tag bag1 bag2 bag3`.
        #expect(plain.parse(answer: "-0.329552 t1 -0.362796 -0.300348", tag: "t1") == .text("-0.329552 -0.362796 -0.300348"))
        #expect(plain.parse(answer: "-0.329552 -0.362796 -0.300348", tag: "") == .text("-0.329552 -0.362796 -0.300348"))
        // Not a word of its own: left alone.
        #expect(plain.parse(answer: "-0.3 t1x -0.36", tag: "t1") == .text("-0.3 t1x -0.36"))
    }

    @Test func integerPredictionIsAnInteger() {
        // --oaa 3, and --cb_adf's chosen action.
        #expect(plain.parse(answer: "1", tag: "") == .integer(1))
        #expect(plain.parse(answer: "2 tt", tag: "tt") == .integer(2))
        #expect(plain.parse(answer: "-7", tag: "") == .integer(-7))
        #expect(plain.parse(answer: "3094975744", tag: "") == .integer(3_094_975_744))
    }

    @Test func integerTooLargeForIntStaysANumber() {
        #expect(plain.parse(answer: "99999999999999999999", tag: "") == .number("99999999999999999999"))
    }

    @Test func numbersThatAreNotJSONAreText() {
        for text in ["nan", "-nan", "inf", "-inf", ".5", "5.", "+1", "1e", "0x10", ""] {
            #expect(plain.parse(answer: Substring(text), tag: "") == .text(text))
        }
    }

    @Test func exploreAnswerIsAListOfActionProbabilities() {
        let expected = Prediction.actions(
            [ActionValue(action: 1, value: "0.975"), ActionValue(action: 0, value: "0.025")], probabilities: true)
        #expect(explore.parse(answer: "1:0.975,0:0.025", tag: "") == expected)
        #expect(explore.parse(answer: "1:0.975,0:0.025 tagS", tag: "tagS") == expected)
    }

    @Test func rankingAnswerIsAListOfActionScores() {
        // --csoaa_ldf multiline --csoaa_rank
        #expect(ranking.parse(answer: "1:0.418593,2:0.689211 tg", tag: "tg") == .actions(
            [ActionValue(action: 1, value: "0.418593"), ActionValue(action: 2, value: "0.689211")], probabilities: false))
        #expect(plain.parse(answer: "0:1", tag: "") == .actions([ActionValue(action: 0, value: "1")], probabilities: false))
    }

    @Test func malformedActionListsAreText() {
        for text in ["1:nan,0:0.5", "1:0.5,", "a:0.5", "1:0.5 0:0.5", ":1", "1:"] {
            #expect(explore.parse(answer: Substring(text), tag: "") == .text(text))
        }
    }

    @Test func multilineAnswerIsOnePredictionPerLine() {
        // --ccb_explore_adf prints one line per slot.
        #expect(explore.parse(answer: "1:0.975,0:0.025\n0:1", tag: "") == .lines([
            .actions([ActionValue(action: 1, value: "0.975"), ActionValue(action: 0, value: "0.025")], probabilities: true),
            .actions([ActionValue(action: 0, value: "1")], probabilities: true),
        ]))
        // --csoaa_ldf multiline prints one line per action, the tag on the first.
        #expect(plain.parse(answer: "1 tg\n0", tag: "tg") == .lines([.integer(1), .integer(0)]))
    }

    @Test func tagIsStrippedOnlyWhenItEndsTheLineAfterASpace() {
        #expect(plain.parse(answer: "0.5 tag", tag: "ag") == .text("0.5 tag"))
        #expect(plain.parse(answer: "0.5", tag: "0.5") == .number("0.5"))
        #expect(plain.parse(answer: "1 1", tag: "1") == .integer(1))
        // Legacy --cb_explore prints space-separated probabilities with a trailing space.
        #expect(plain.parse(answer: "0.016667 0.016667 0.966667  tt", tag: "tt") == .text("0.016667 0.016667 0.966667 "))
    }
}

/// `PredictResult.forEachPrediction` reads untagged numbers from the bytes and sends the rest to the parser; both
/// ways must give what the parser gives for every answer, in order, whatever answers come before.
@Suite struct ForEachPredictionTests {
    @Test func theByteFastPathEqualsTheParserOnMixedAnswers() {
        let answers: [(String, String)] = [
            ("0.240292", ""), ("-0.020533 t", "t"), ("3", ""), ("-0", ""), ("0", ""), ("1e+06", ""),
            ("99999999999999999999", ""), ("nan", ""), ("inf", ""), ("-nan", ""), ("0:0.5,1:0.5", ""),
            ("1,2,3", ""), ("2 tag", "tag"), ("0.5\n1:0.2", ""), ("0.1 0.2", ""), ("", ""), ("é0.5", ""),
            ("01", ""), ("1.", ""), ("-", ""), ("4:0.25", "x"),
        ]
        var random = SplitMix(seed: 3)
        for kind in [PredictionKind.plain, .actionProbabilities, .actionScores] {
            let parser = PredictionParser(kind: kind)
            for _ in 0..<200 {
                let chosen = (0..<Int(1 + random.next() % 12)).map { _ in answers[Int(random.next() % UInt64(answers.count))] }
                var text: [UInt8] = []
                var ranges: [Range<Int>] = []
                for (answer, _) in chosen {
                    let start = text.count
                    text += Array(answer.utf8)
                    ranges.append(start..<text.count)
                    text.append(0x0A)
                }
                let result = PredictResult(model: "m", version: "v", predictionKind: kind, family: .simple,
                                           text: text, answers: ranges, tags: chosen.map(\.1))
                var got: [Prediction] = []
                result.forEachPrediction(parser: parser) { got.append($0) }
                #expect(got == chosen.map { parser.parse(answer: Substring($0.0), tag: $0.1) }, "\(chosen)")
            }
        }
    }
}

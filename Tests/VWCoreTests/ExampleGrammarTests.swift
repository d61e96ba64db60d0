import Testing
import VWCore

/// Parses `lines` for `family` and returns the canonical text with server tag `s1`.
private func canonical(_ family: ExampleFamily, _ lines: [Substring], tag: String = "s1") throws(ExampleProblem) -> String {
    try ExampleGrammar(family: family).parse(lines: lines).canonicalText(serverTag: tag)
}

private func problem(_ family: ExampleFamily, _ lines: [Substring], limits: ExampleLimits = ExampleLimits()) -> ExampleProblem? {
    do {
        _ = try ExampleGrammar(family: family, limits: limits).parse(lines: lines)
        return nil
    } catch {
        return error
    }
}

private func isInvalidLabel(_ problem: ExampleProblem?) -> Bool {
    if case .invalidLabel = problem { true } else { false }
}

private func isMalformedFeatures(_ problem: ExampleProblem?) -> Bool {
    if case .malformedFeatures = problem { true } else { false }
}

private func isInvalidStructure(_ problem: ExampleProblem?) -> Bool {
    if case .invalidStructure = problem { true } else { false }
}

@Suite struct ExampleGrammarTests {
    // MARK: Single-line families

    @Test func simpleLabelKeepsLabelImportanceAndInitialValue() throws {
        // VW's houses test: the initial value 0.5 is added to the prediction under -t.
        #expect(try canonical(.simple, ["0 1 0.5 'third_house | price:.53 sqft:.32 age:.87 1924"])
            == "0 1 0.5 's1 | price:.53 sqft:.32 age:.87 1924\n")
        #expect(try canonical(.simple, ["1  2\t|a x"]) == "'s1 |a x\n")  // VW ignores up to the TAB
        #expect(try canonical(.simple, ["-1 2e-3 |a x:1E+5"]) == "-1 2e-3 's1 |a x:1E+5\n")
        #expect(try canonical(.simple, ["|a x:1e-50 y:-.5 z:5. w:1.5e-92"]) == "'s1 |a x:1e-50 y:-.5 z:5. w:1.5e-92\n")
        #expect(try canonical(.simple, ["|a x"], tag: "") == "|a x\n")
        #expect(try canonical(.simple, ["1 |a x"], tag: "") == "1 |a x\n")
    }

    @Test func everyNumberVWReadsWholeAndFiniteIsAccepted() throws {
        // VW's affix_test.dat: `+1 | happier` (strtof reads the `+`); its fast path reads `.`, `-` and `e5` as 0 and `1e` as 1.
        #expect(try canonical(.simple, ["+1 | happier"]) == "+1 's1 | happier\n")
        #expect(try canonical(.simple, ["+.5e1 5. -0x1p-2 'h |a x:+1 y:1E+2 z:0x10 w:e5 v:1e38 u:1e-100 t:. s:1e"])
            == "+.5e1 5. -0x1p-2 's1 |a x:+1 y:1E+2 z:0x10 w:e5 v:1e38 u:1e-100 t:. s:1e\n")
        #expect(try canonical(.simple, ["|b:+2 x |c:.5 y"]) == "'s1 |b:+2 x |c:.5 y\n")
        // What strtof reads nothing from is a string value, as VW hashes it with the name.
        #expect(try canonical(.simple, ["|a x:+red y:-blue z:.x w:e5x"]) == "'s1 |a x:+red y:-blue z:.x w:e5x\n")
    }

    @Test func clientTagIsCapturedAsVWReadsIt() throws {
        let grammar = ExampleGrammar(family: .simple)
        #expect(try grammar.parse(lines: ["1 'abc |a x"]).clientTag == "abc")
        #expect(try grammar.parse(lines: ["1 abc|a x"]).clientTag == "abc")
        #expect(try grammar.parse(lines: ["1 |a x"]).clientTag == "")
        #expect(try grammar.parse(lines: ["''q|a x"]).clientTag == "'q")
        #expect(throws: ExampleProblem.saveTag) { try grammar.parse(lines: ["save_/tmp/x|a x"]) }
        #expect(throws: ExampleProblem.saveTag) { try grammar.parse(lines: ["1 'save |a x"]) }
        #expect(try grammar.parse(lines: ["tag\t|a x"]).clientTag == "")  // VW drops up to the TAB
        #expect(try grammar.parse(lines: ["1 'abc |a x"]).canonicalText(serverTag: "r7") == "1 'r7 |a x\n")
        // The client's tag never reaches vw.
        #expect(try grammar.parse(lines: ["sav_/tmp/x|a x"]).canonicalText(serverTag: "r7") == "'r7 |a x\n")
    }

    @Test func featuresAreJoinedWithSingleSpaces() throws {
        #expect(try canonical(.simple, ["|a  x\ty |b:2 z:-1.5|c"]) == "'s1 |a x y |b:2 z:-1.5 |c\n")
        #expect(try canonical(.simple, ["|a|b x "]) == "'s1 |a |b x\n")
        #expect(try canonical(.simple, ["| x y:0"]) == "'s1 | x y:0\n")
        #expect(try canonical(.simple, ["|a color:red :2 é:1"]) == "'s1 |a color:red :2 é:1\n")
        #expect(try canonical(.simple, ["|a x\r"]) == "'s1 |a x\n")
        #expect(try canonical(.simple, ["|"]) == "'s1 |\n")
    }

    @Test func featureCountsPerNamespaceIndex() throws {
        let parsed = try ExampleGrammar(family: .simple).parse(lines: ["|abc x y |b z | w |a:2 v"])
        #expect(parsed.featureCounts[UInt8(ascii: "a")] == 3)
        #expect(parsed.featureCounts[UInt8(ascii: "b")] == 1)
        #expect(parsed.featureCounts[UInt8(ascii: " ")] == 1)
        #expect(parsed.featureCounts.total == 5)
        #expect(parsed.featureCounts.indices == [0x20, 0x61, 0x62])
    }

    @Test func otherSingleLineLabelsAreDroppedOrKept() throws {
        #expect(try canonical(.multiclass, ["3 0.5 'q |a x"]) == "'s1 |a x\n")
        #expect(try canonical(.multilabel, ["1,2,3 |a x"]) == "'s1 |a x\n")
        #expect(try canonical(.contextualBandit, ["1:2:0.5 3 |a x"]) == "'s1 |a x\n")
        // --csoaa predicts only from the classes listed.
        #expect(try canonical(.costSensitive, ["2:  3:0.5 4 |a x"]) == "2: 3:0.5 4 's1 |a x\n")
    }

    @Test(arguments: [
        (ExampleFamily.simple, "x |a b"), (.simple, "1 2 3 4 |a b"), (.simple, "inf |a b"), (.simple, "nan |a b"),
        (.simple, "+inf |a b"), (.simple, "-nan |a b"), (.simple, "1e39 |a b"), (.simple, "1e100 |a b"), (.simple, "1..2 |a b"),
        (.simple, "1x |a b"), (.simple, "1e200 |a b"), (.simple, "0 1 infinity |a b"), (.simple, "1 2\t3\t|a b"),
        (.multiclass, "1 x |a b"), (.multiclass, "1 2 3 |a b"), (.multiclass, "'1 2 |a b"),
        (.multilabel, "1,x |a b"), (.multilabel, "1 2 |a b"), (.multilabel, "1,,2 |a b"),
        (.costSensitive, "1:x |a b"), (.costSensitive, ":1 |a b"), (.costSensitive, "shared |a b"), (.costSensitive, "1:2:3 |a b"),
        (.contextualBandit, "x:1:0.5 |a b"), (.contextualBandit, "1:1:0.5:7 |a b"), (.contextualBandit, "1:nan |a b"),
    ] as [(ExampleFamily, Substring)])
    func malformedLabelsAreRejected(family: ExampleFamily, line: Substring) {
        #expect(isInvalidLabel(problem(family, [line])), "\(line)")
    }

    @Test(arguments: [
        "|:a x", "|a x:", "|a x:1x", "|a x: 1", "|a x:inf", "|a x:nan", "|a x:NaN", "|a x:-inf", "|a x:1e999", "|a x:1e200",
        "|a:x y", "|a:1x y", "|a x:1.5.2", "|a x:0.000000000000000000000000000000001e-99", "|a x:e5|b y", "|a x:0e39", "|a x:red|b y", "|a x:a:b", "|a :red", "|a:inf x",
    ] as [Substring])
    func malformedFeaturesAreRejected(line: Substring) {
        #expect(isMalformedFeatures(problem(.simple, [line])), "\(line)")
    }

    @Test func bytesVWTreatsSpeciallyAreRejected() {
        #expect(problem(.simple, ["\u{FEFF}|a x"]) == .byteOrderMark)
        #expect(problem(.simple, ["|a x\u{FEFF}"]) == .byteOrderMark)
        #expect(problem(.csoaaLDF, ["\u{FEFF}save_/tmp/pwned|a x", "1:0 |a y"]) == .byteOrderMark)
        #expect(problem(.simple, ["|a x\u{0}y"]) == .controlCharacter(0))
        #expect(problem(.simple, ["1\u{1}|a x"]) == .controlCharacter(1))
        #expect(problem(.simple, ["|a \u{7F}"]) == .controlCharacter(0x7F))
        #expect(problem(.simple, ["|a x\ny"]) == .newlineInSingleLineExample)
        #expect(problem(.simple, ["|a x\ry"]) == .newlineInSingleLineExample)
        #expect(problem(.simple, ["a b c"]) == .missingBar)
        #expect(problem(.simple, [""]) == .empty)
        #expect(problem(.simple, ["  \t"]) == .whitespaceOnly)
        #expect(problem(.simple, ["|a x", "|a y"]) == .newlineInSingleLineExample)
        #expect(problem(.simple, []) == .empty)
        #expect(problem(.simple, ["|a x y z"], limits: ExampleLimits(maxFeatures: 2)) == .tooManyFeatures(limit: 2))
        #expect(problem(.simple, ["|a x y z"], limits: ExampleLimits(maxLineBytes: 4)) == .lineTooLong(limit: 4))
    }

    @Test func nonASCIINamesAreAccepted() throws {
        // A Swift string is valid UTF-8 (the body decoder refuses invalid bytes); every scalar but U+FEFF passes.
        #expect(try canonical(.simple, ["|ñ 日本:2 \u{1F600}"]) == "'s1 |ñ 日本:2 \u{1F600}\n")
    }

    // MARK: cb_adf

    @Test func cbADFKeepsSharedAndDropsActionLabels() throws {
        let parsed = try ExampleGrammar(family: .cbADF).parse(lines: ["shared 'u1 |s u1", "0:1:0.5 't|a x", "|a y"])
        #expect(parsed.canonicalText(serverTag: "s1") == "shared 's1 |s u1\n's1 |a x\n's1 |a y\n\n")
        #expect(parsed.answerLines == 1)
        #expect(parsed.clientTag == "u1")
        #expect(parsed.clientTag(answer: 0) == "u1")
        #expect(parsed.lineCount == 3)
        #expect(try canonical(.cbADF, ["|a x"]) == "'s1 |a x\n\n")
    }

    @Test func cbADFStructureIsChecked() {
        #expect(isInvalidStructure(problem(.cbADF, ["shared |s u1"])))  // vw --cb_adf: SIGSEGV
        #expect(isInvalidStructure(problem(.cbADF, ["|a x", "shared |s u1"])))
        #expect(isInvalidStructure(problem(.cbADF, ["shared |s u1", "shared |s u2", "|a x"])))
        #expect(problem(.cbADF, ["shared |s u1", "", "|a x"]) == .blankLineInMultilineExample)
        #expect(problem(.cbADF, ["shared |s u1", "  ", "|a x"]) == .blankLineInMultilineExample)
        #expect(isInvalidLabel(problem(.cbADF, ["0:1:0.5:7 |a x"])))
        #expect(isInvalidLabel(problem(.cbADF, ["shared 1 |s u", "|a x"])))
        #expect(isInvalidLabel(problem(.cbADF, ["1 2 |a x"])))
    }

    // MARK: csoaa_ldf

    @Test func csoaaLDFKeepsEveryLabel() throws {
        let parsed = try ExampleGrammar(family: .csoaaLDF).parse(lines: ["shared |s u", "1:0.5 'a|a x", "2 b|a y", "3: |a z"])
        #expect(parsed.canonicalText(serverTag: "s1") == "shared 's1 |s u\n1:0.5 's1 |a x\n2 's1 |a y\n3: 's1 |a z\n\n")
        #expect(parsed.answerLines == 3)
        #expect(parsed.clientTag(line: 1) == "a")
        #expect(parsed.clientTag(line: 2) == "b")
        #expect(parsed.clientTag(answer: 0) == "a")
        #expect(parsed.clientTag(answer: 1) == "b")
        #expect(parsed.clientTag(answer: 2) == "")
        #expect(parsed.answersCarryTags)
        let unshared = try ExampleGrammar(family: .csoaaLDF).parse(lines: ["1:0 'a|a x", "2 b|a y"])
        #expect(unshared.clientTag(answer: 0) == "a")
        #expect(unshared.clientTag(answer: 1) == "b")
    }

    @Test func csoaaLDFRejectsUnlabelledLinesAndSave() throws {
        #expect(isInvalidLabel(problem(.csoaaLDF, ["|a x", "2:0 |a y"])))  // vw: SIGSEGV
        #expect(isInvalidLabel(problem(.csoaaLDF, ["1:0 |a x", "|a y"])))
        #expect(isInvalidLabel(problem(.csoaaLDF, ["1:0 2:1 |a x"])))
        #expect(isInvalidLabel(problem(.csoaaLDF, ["1:x |a x"])))
        #expect(isInvalidStructure(problem(.csoaaLDF, ["shared |s u"])))
        #expect(isInvalidStructure(problem(.csoaaLDF, ["1:0 |a x", "shared |s u"])))
        // The attack: a BOM then a save tag; without the BOM the save tag is refused too (SPEC §5), and
        // any other client tag never reaches vw.
        #expect(problem(.csoaaLDF, ["\u{FEFF}save_/tmp/pwned|a x"]) == .byteOrderMark)
        #expect(problem(.csoaaLDF, ["1:0 save_/tmp/pwned|a x"]) == .saveTag)
        #expect(try canonical(.csoaaLDF, ["1:0 sav_/tmp/pwned|a x"]) == "1:0 's1 |a x\n\n")
    }

    // MARK: ccb

    @Test func ccbKeepsIncludedActionsAndDropsOutcomes() throws {
        let parsed = try ExampleGrammar(family: .ccb).parse(lines: [
            "ccb shared |s u", "ccb action |a x", "ccb action |a y", "ccb slot 0:1:0.5,1:0.5 1,0 |f s1", "ccb slot |f s2",
        ])
        #expect(parsed.canonicalText(serverTag: "s1")
            == "ccb shared 's1 |s u\nccb action 's1 |a x\nccb action 's1 |a y\n"
            + "ccb slot 1,0 'seed=51d753c1d3fe1475_0 |f s1\nccb slot 'seed=51d753c1d3fe1475_1 |f s2\n\n")
        #expect(parsed.answerLines == 2)
        #expect(!parsed.answersCarryTags)
        #expect(parsed.clientTag(answer: 1) == "")
    }

    /// VW's ccb sampler advances with every example unless a slot's tag is `seed=…`: every slot gets
    /// one, the client's or FNV-1a 64 of the untagged canonical text (`51d7…` above, computed by hand
    /// in Python), so an answer depends on the example alone.
    @Test func ccbSlotsAreSeededFromTheExampleOrTheClientsSeed() throws {
        let spaced = try canonical(.ccb, ["ccb shared  |s   u", "ccb action |a x", "ccb action 'mine |a y", "ccb slot 1,0 'other |f s1", "ccb slot |f s2"])
        #expect(spaced == (try canonical(.ccb, ["ccb shared |s u", "ccb action |a x", "ccb action |a y", "ccb slot 0:1:0.5 1,0 |f s1", "ccb slot |f s2"])))
        #expect(spaced.contains("'seed=51d753c1d3fe1475_0 |f s1") && !spaced.contains("mine") && !spaced.contains("other"))
        let other = try canonical(.ccb, ["ccb shared |s v", "ccb action |a x", "ccb action |a y", "ccb slot |f s1"])
        #expect(!other.contains("51d753c1d3fe1475") && other.contains("'seed=") && other.hasSuffix("_0 |f s1\n\n"))
        let seeded = try canonical(.ccb, ["ccb shared |s u", "ccb action |a x", "ccb action |a y", "ccb slot 'seed=event-7.1 |f s1", "ccb slot seed=E_2|f s2"])
        #expect(seeded.hasSuffix("ccb slot 'seed=event-7.1 |f s1\nccb slot 'seed=E_2 |f s2\n\n"))
        for bad: Substring in ["ccb slot 'seed=a:b |f s", "ccb slot 'seed=\(String(repeating: "x", count: 65)) |f s", "ccb slot seed=a/b|f s"] {
            #expect(problem(.ccb, ["ccb shared |s", "ccb action |a x", bad]) == .seedTag, "\(bad)")
        }
        // Only slot lines carry seeds: elsewhere `seed=` is an ordinary client tag, which never reaches vw.
        #expect(try canonical(.ccb, ["ccb shared 'seed=a:b |s", "ccb action |a x", "ccb slot |f s"]).hasPrefix("ccb shared 's1 |s\n"))
    }

    @Test(arguments: [
        ["ccb action |a x", "ccb slot |f s"],  // no shared: SIGSEGV
        ["ccb shared |s", "ccb slot |f s"],  // no action: abort
        ["ccb shared |s", "ccb action |a x"],  // no slot
        ["ccb shared |s", "ccb action |a x", "ccb slot |f s", "ccb slot |f t"],  // slots > actions: abort
        ["ccb shared |s", "ccb action |a x", "ccb slot 5 |f s"],  // extra blank line
        ["ccb shared |s", "ccb action |a x", "ccb action |a y", "ccb slot 1 |f s", "ccb slot 1 |f t"],  // empty answer line
        ["ccb shared |s", "ccb slot |f s", "ccb action |a x"],
        ["ccb shared |s", "ccb action |a x", "ccb slot |f s", "ccb action |a y"],
        ["ccb shared |s", "ccb shared |s", "ccb action |a x", "ccb slot |f s"],
    ] as [[Substring]])
    func ccbStructureIsChecked(lines: [Substring]) {
        #expect(isInvalidStructure(problem(.ccb, lines)), "\(lines)")
    }

    @Test(arguments: [
        "ccb |a x", "ccb foo |a x", "|a x", "ccb action 1 |a x", "ccb shared 1 |a x", "ccb slot 0:1 |a x",
        "ccb slot 0:1:0.5 0:1:0.5 |a x", "ccb slot 1 2 |a x", "ccb slot x |a x", "ccb slot 0:1:nan |a x",
    ] as [Substring])
    func ccbLabelsAreChecked(line: Substring) {
        #expect(isInvalidLabel(problem(.ccb, ["ccb shared |s", line])), "\(line)")
    }

    // MARK: slates

    @Test func slatesKeepsActionSlotsAndDropsCostsAndProbabilities() throws {
        let parsed = try ExampleGrammar(family: .slates).parse(lines: [
            "slates shared 0.8 |s u", "slates action 0 |a x", "slates action 1 |a y", "slates action 0 |a z",
            "slates slot 0:0.5 |f s1", "slates slot 1:0.6,0:0.4 |f s2",
        ])
        #expect(parsed.canonicalText(serverTag: "s1")
            == "slates shared 's1 |s u\nslates action 0 's1 |a x\nslates action 1 's1 |a y\nslates action 0 's1 |a z\n"
            + "slates slot 'seed=38832a3cf588b20c_0 |f s1\nslates slot 'seed=38832a3cf588b20c_1 |f s2\n\n")
        #expect(parsed.answerLines == 2)
    }

    @Test(arguments: [
        ["slates action 0 |a x", "slates slot |f s"],  // no shared: SIGSEGV
        ["slates shared |s", "slates slot |"],  // no action: abort
        ["slates shared |s", "slates action 5 |a x", "slates slot |f s"],  // slot id out of range: abort
        ["slates shared |s", "slates action 0 |a x", "slates slot |f s", "slates slot |f t"],  // slot without action: abort
        ["slates shared |s", "slates action 0 |a x"],
        ["slates shared |s", "slates slot |f s", "slates action 0 |a x"],
    ] as [[Substring]])
    func slatesStructureIsChecked(lines: [Substring]) {
        #expect(isInvalidStructure(problem(.slates, lines)), "\(lines)")
    }

    @Test(arguments: [
        "slates |a x", "slates action |a x", "slates action x |a x", "slates action 0 1 |a x", "slates shared x |s",
        "slates slot 0 |f", "slates slot 0:x |f", "slates slot 0:0.5 1 |f",
    ] as [Substring])
    func slatesLabelsAreChecked(line: Substring) {
        #expect(isInvalidLabel(problem(.slates, ["slates shared |s", line])), "\(line)")
    }

    // MARK: Server tags

    @Test func serverTagsAreValidated() {
        #expect(ParsedExample.isValidServerTag(Array("r12_Ab".utf8)))
        #expect(!ParsedExample.isValidServerTag(Array("save1".utf8)))
        #expect(!ParsedExample.isValidServerTag(Array("a b".utf8)))
        #expect(!ParsedExample.isValidServerTag(Array("a|b".utf8)))
        #expect(!ParsedExample.isValidServerTag([UInt8]()))
    }

    @Test func canonicalFormReparsesToItself() throws {
        let examples: [(ExampleFamily, [Substring])] = [
            (.simple, ["0 1 0.5 'h |a  x:1\ty|b"]),
            (.costSensitive, ["1:0.5   2: 'q|a x"]),
            (.cbADF, ["shared |s u", "0:1:0.5 |a x"]),
            (.csoaaLDF, ["1:0 |a x", "2 |a y"]),
            (.ccb, ["ccb shared |s", "ccb action |a x", "ccb action |a y", "ccb slot 1 |f s"]),
            (.slates, ["slates shared |s", "slates action 0 |a x", "slates slot |f s"]),
        ]
        for (family, lines) in examples {
            let grammar = ExampleGrammar(family: family)
            let text = try grammar.parse(lines: lines).canonicalText(serverTag: "s1")
            var split = text.split(separator: "\n", omittingEmptySubsequences: false)
            split.removeLast()  // after the final "\n"
            if family.isMultiline { split.removeLast() }
            let again = try grammar.parse(lines: split)
            #expect(again.canonicalText(serverTag: "s1") == text)
            #expect(again.clientTag == "s1")
        }
    }
}

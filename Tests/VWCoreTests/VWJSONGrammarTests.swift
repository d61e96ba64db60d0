import Testing
@testable import VWCore

/// VW JSON examples: what is accepted and its canonical line, and every rejection with its reason.

private let adf = VWJSONGrammar(isADF: true)
private let single = VWJSONGrammar(isADF: false)
private let ccb = VWJSONGrammar(isADF: true, isCCB: true)

private func canonical(_ grammar: VWJSONGrammar, _ text: String, tag: String = "") throws -> String {
    try grammar.parse(bytes: Array(text.utf8)).canonicalText(serverTag: tag)
}

private func problem(_ grammar: VWJSONGrammar, _ text: String) -> ExampleProblem? {
    do throws(ExampleProblem) {
        _ = try grammar.parse(bytes: Array(text.utf8))
        return nil
    } catch {
        return error
    }
}

@Suite struct VWJSONGrammarTests {
    @Test(arguments: [
        // Compact form, client tag and labels dropped, nulls dropped, escapes canonical.
        (#"{ "User" : { "id" : "alice", "age": 3.5e1 }, "_multi": [ {"Action": {"name": "a0"}}, {} ] }"#,
         #"{"User":{"id":"alice","age":3.5e1},"_multi":[{"Action":{"name":"a0"}},{}]}"#),
        (#"{"_tag":"client","_label_cost":-1,"_label_probability":0.5,"_labelIndex":0,"_LABELINDEX":1,"U":{"x":null,"b":true,"c":false},"_multi":[{"_label":{"Cost":1},"a":[1,null,2.5]}]}"#,
         #"{"U":{"b":true,"c":false},"_multi":[{"a":[1,2.5]}]}"#),
        (#"{"U":{"s":"a\u0020b\"c\\d\/e\u00e9"},"_text":"x  y\tz","_multi":[{"_text":"q"}]}"#,
         "{\"U\":{\"s\":\"a b\\\"c\\\\d/eé\"},\"_text\":\"x  y\\tz\",\"_multi\":[{\"_text\":\"q\"}]}"),
        (#"{"k":1,"k":2,"_multi":[{"N":{"deep":{"deeper":{"v":-0}}}}]}"#,
         #"{"k":1,"k":2,"_multi":[{"N":{"deep":{"deeper":{"v":-0}}}}]}"#),
        // Personalizer's form (SPEC §9): arrays of feature objects, an action's own `_tag` kept.
        (#"{"FromUrl":[{"User":{"id":"a"}},{"x":1,"n":null}],"_multi":[{"_tag":"news","j":[{"C":{"t":"n"}},{}]}]}"#,
         #"{"FromUrl":[{"User":{"id":"a"}},{"x":1}],"_multi":[{"_tag":"news","j":[{"C":{"t":"n"}},{}]}]}"#),
    ])
    func adfCanonical(input: String, expected: String) throws {
        #expect(try canonical(adf, input) == expected + "\n")
    }

    @Test func serverTagIsTheFirstMember() throws {
        let example = try adf.parse(bytes: Array(#"{"_tag":"x","U":{"a":1},"_multi":[{}]}"#.utf8))
        #expect(example.canonicalText(serverTag: "t_42") == #"{"_tag":"t_42","U":{"a":1},"_multi":[{}]}"# + "\n")
        #expect(example.actions == 1 && example.answerLines == 1 && example.endsWithBlankLine && example.answersCarryTags)
        let empty = try single.parse(bytes: Array("{}".utf8))
        #expect(empty.canonicalText(serverTag: "t") == #"{"_tag":"t"}"# + "\n")
        #expect(empty.canonicalText() == "{}\n")
        #expect(!empty.endsWithBlankLine)
    }

    @Test func singleLine() throws {
        #expect(try canonical(single, #"{"_label":1,"a":{"x":1,"y":"z"},"b":[0.5,1e-3]}"#) == #"{"a":{"x":1,"y":"z"},"b":[0.5,1e-3]}"# + "\n")
        #expect(try canonical(single, #"{"_label":"1 2"}"#) == "{}\n")
    }

    @Test func families() {
        #expect(VWJSONGrammar(family: .cbADF)?.isADF == true)
        #expect(VWJSONGrammar(family: .simple)?.isADF == false)
        #expect(VWJSONGrammar(family: .contextualBandit)?.isADF == false)
        #expect(VWJSONGrammar(family: .csoaaLDF) == nil && VWJSONGrammar(family: .slates) == nil)
        #expect(VWJSONGrammar(family: .ccb)?.isCCB == true && VWJSONGrammar(family: .ccb)?.isADF == true)
        #expect(VWJSONGrammar(family: .cbADF)?.isCCB == false)
    }

    @Test func ccbSlotsAreKeptWithTheirIdTagAndIncludedActions() throws {
        let example = try ccb.parse(bytes: Array(#"{"FromUrl":[{"U":{"t":"a"}}],"_multi":[{"_tag":"x","j":[{"C":1}]},{"_tag":"y"},{}],"_slots":[{"_id":"top","_tag":"seed=e_0","sj":[{"pos":"t"}]},{"_id":7,"_inc":[2,0],"_label_cost":1,"sj":[]}]}"#.utf8))
        // The untagged slot gets the seed derived from the object as written without it (CanonicalSeed).
        let unseeded = #"{"FromUrl":[{"U":{"t":"a"}}],"_multi":[{"_tag":"x","j":[{"C":1}]},{"_tag":"y"},{}],"_slots":[{"_id":"top","_tag":"seed=e_0","sj":[{"pos":"t"}]},{"_id":7,"_inc":[2,0],"sj":[]}]}"#
        let hex = String(CanonicalSeed.digest(Array(unseeded.utf8)), radix: 16)
        let seed = "seed=" + String(repeating: "0", count: 16 - hex.count) + hex + "_1"
        #expect(example.canonicalText() == unseeded.replacing(#"{"_id":7,"#, with: #"{"_tag":"\#(seed)","_id":7,"#) + "\n")
        #expect(example.actions == 3 && example.slots == 2 && example.answerLines == 2 && example.lineCount == 6)
        #expect(example.endsWithBlankLine && !example.answersCarryTags)
        #expect(example.includedActions == [nil, [0, 2]])
    }

    @Test(arguments: [
        (#"{"_multi":[{}]}"#, "needs \"_slots\""),
        (#"{"_slots":[{}],"_multi":[{}]}"#, "right after \"_multi\""),
        (#"{"_multi":[{}],"_slots":[]}"#, "is empty"),
        (#"{"_multi":[{}],"_slots":[1]}"#, "slot object"),
        (#"{"_multi":[{}],"_slots":[{}],"x":1}"#, "last member"),
        (#"{"_multi":[{}],"_slots":[{}],"_slots":[{}]}"#, "last member"),
        (#"{"_multi":[{}],"_slots":[{"_inc":[1]}]}"#, "action indices are 0..<1"),
        (#"{"_multi":[{},{}],"_slots":[{"_inc":[1,1]}]}"#, "twice"),
        (#"{"_multi":[{},{}],"_slots":[{"_inc":[]}]}"#, "non-empty"),
        (#"{"_multi":[{},{}],"_slots":[{"_inc":[-1]}]}"#, "action indices"),
        (#"{"_multi":[{},{}],"_slots":[{},{"_inc":[0]}]}"#, "slot k needs more than k actions"),
        (#"{"_multi":[{}],"_slots":[{},{}]}"#, "slot k needs more than k actions"),
        (#"{"_multi":[{}],"_slots":[{"_id":{"a":1}}]}"#, "\"_id\" is a string"),
        (#"{"_multi":[{}],"_slots":[{"_tag":"save_x"}]}"#, "seed of its draw"),
        (#"{"_multi":[{}],"_slots":[{"_tag":"seed="}]}"#, "seed of its draw"),
        (#"{"_multi":[{}],"_slots":[{"_tag":1}]}"#, "is a string"),
        (#"{"_multi":[{}],"_slots":[{"_a":[0],"_p":[1]}]}"#, "unsupported key"),
        (#"{"_multi":[{}],"_slots":[{"_multi":[{}]}]}"#, "top level"),
        (#"{"_multi":[{"_id":"a"}],"_slots":[{}]}"#, "unsupported key"),
    ])
    func ccbRejections(input: String, reason: String) {
        let found = problem(ccb, input)
        #expect(found?.reason.contains(reason) == true, "\(input): \(found?.reason ?? "accepted")")
    }

    @Test func slotsAreForCCBModelsOnly() {
        #expect(problem(adf, #"{"_multi":[{}],"_slots":[{}]}"#)?.reason.contains("ccb models") == true)
    }

    @Test func featureCounts() throws {
        let example = try adf.parse(bytes: Array(#"{"U":{"a":1,"b":"x","c":true,"d":false,"e":null},"v":[1,2,null],"_text":"p q","_multi":[{"A":{"n":"a"}},{"A":{"n":"b"},"B":{"m":1}}]}"#.utf8))
        #expect(example.featureCounts[UInt8(ascii: "U")] == 3)
        #expect(example.featureCounts[UInt8(ascii: "v")] == 2)
        #expect(example.featureCounts[UInt8(ascii: " ")] == 2)
        #expect(example.featureCounts[UInt8(ascii: "A")] == 2)
        #expect(example.featureCounts[UInt8(ascii: "B")] == 1)
        #expect(example.featureCounts.total == 10)
        #expect(example.actions == 2 && example.lineCount == 3)
        #expect(InteractionCost(interactions: [[UInt8(ascii: "U"), UInt8(ascii: "A")]]).features(of: example.featureCounts, lines: example.lineCount) == (10 + 3 * 2) * 3)
    }

    @Test func personalizerArraysOfObjectsCountInTheArraysNamespace() throws {
        // vw --audit: `FromUrl: [{"x": 1}]` is F^x, `j: [{"y": 2}]` is j^y, nested objects their own namespaces.
        let example = try adf.parse(bytes: Array(#"{"FromUrl":[{"User":{"id":"a"}},{"x":1}],"_multi":[{"_tag":"n","j":[{"C":{"t":"n"}},{"y":2}]}]}"#.utf8))
        #expect(example.featureCounts[UInt8(ascii: "U")] == 1 && example.featureCounts[UInt8(ascii: "F")] == 1)
        #expect(example.featureCounts[UInt8(ascii: "C")] == 1 && example.featureCounts[UInt8(ascii: "j")] == 1)
        #expect(example.featureCounts.total == 4 && example.actions == 1)
    }

    @Test(arguments: [
        // (grammar is ADF, input, expected problem)
        (true, "[1]", ExampleProblem.invalidInstance("a VW JSON example is an object, not an array")),
        (true, #"{"U":{"a":1}}"#, .invalidStructure("an ADF example needs \"_multi\" with at least one action object (vw prints nothing without it)")),
        (true, #"{"_multi":[]}"#, .invalidStructure("\"_multi\" is empty (vw prints nothing for it)")),
        (true, #"{"_multi":{}}"#, .invalidStructure("\"_multi\" is an array of action objects, not an object")),
        (true, #"{"_multi":[1]}"#, .invalidStructure("every element of \"_multi\" is an action object, not a number")),
        (true, #"{"_multi":[{}],"_multi":[{}]}"#, .invalidStructure("\"_multi\" appears twice (vw stops on a nested _multi)")),
        (true, #"{"_multi":[{"_multi":[{}]}]}"#, .invalidStructure("\"_multi\" belongs at the top level of the example, once")),
        (true, #"{"U":{"_multi":[{}]},"_multi":[{}]}"#, .invalidStructure("\"_multi\" belongs at the top level of the example, once")),
        (false, #"{"_multi":[{}]}"#, .invalidStructure("\"_multi\" is for ADF models only")),
        (true, #"{"_multi":[{}],"U":{"a":1}}"#, VWJSONGrammar.afterMulti),
        (true, #"{"_multi":[{}],"c":{"U":{"a":1}}}"#, VWJSONGrammar.afterMulti),
        (true, #"{"_multi":[{}],"x":null}"#, VWJSONGrammar.afterMulti),
        (true, #"{"_multi":[{}],"_text":"a"}"#, VWJSONGrammar.afterMulti),
        (true, #"{"_multi":[{}],"_tag":"t","_label_cost":1,"_labelIndex":0}"#, nil),
        (true, #"{"_comment":"x","_multi":[{}]}"#, .invalidInstance("unsupported key \"_comment\" (VW skips or reads specially keys starting with '_')")),
        (false, #"{"_slots":[]}"#, .invalidStructure("\"_slots\" is for ccb models (--ccb_explore_adf) only")),
        (false, #"{"_labelx":1}"#, .invalidInstance("unsupported key \"_labelx\" (VW skips or reads specially keys starting with '_')")),
        (false, #"{"_label":{"Label":1,"initial":0.5}}"#, .invalidLabel("a label's initial value changes the prediction; send it as a feature instead")),
        (false, #"{"_label_Initial":0.5}"#, .invalidLabel("a label's initial value changes the prediction; send it as a feature instead")),
        (false, #"{"_label":"1 1 0.5"}"#, .invalidLabel("a label's initial value changes the prediction; send it as a feature instead")),
        (false, #"{"_label":[1]}"#, .invalidLabel("\"_label\" is not an array")),
        (true, #"{"_multi":[{"_tag":"x"}]}"#, nil),
        (true, #"{"_multi":[{"_TAG":"x"}]}"#, .invalidInstance("\"_tag\" belongs at the top level of the example or of an action or slot (as \"_tag\")")),
        (true, #"{"_multi":[{"A":{"_tag":"x"}}]}"#, .invalidInstance("\"_tag\" belongs at the top level of the example or of an action or slot (as \"_tag\")")),
        (true, #"{"_multi":[{"_tag":1}]}"#, .invalidInstance("\"_tag\" is a string, not a number")),
        (true, #"{"_multi":[{"_tag":"save_x.vw"}]}"#, .saveTag),
        (false, #"{"_tag":1}"#, .invalidInstance("\"_tag\" is a string, not a number")),
        (false, #"{"_text":1}"#, .invalidInstance("\"_text\" is a string, not a number")),
        (false, #"{"a":1e39}"#, .invalidInstance("value of \"a\" is not a finite 32-bit float: 1e39")),
        (false, #"{"a":-1e400}"#, .invalidInstance("value of \"a\" is not a finite 32-bit float: -1e400")),
        (false, #"{"a":[1,1e309]}"#, .invalidInstance("value of \"a\" is not a finite 32-bit float: 1e309")),
        (false, #"{"a":"x\u0000y"}"#, .invalidInstance("control character 0x0 in value of \"a\"")),
        (false, #"{"a\nb":1}"#, .invalidInstance("control character 0xa in key")),
        (false, #"{"_text":"a\u007fb"}"#, .invalidInstance("control character 0x7f in \"_text\"")),
        (false, #"{"":1}"#, .invalidInstance("empty key")),
        (false, #"{" ns":{"a":1}}"#, .invalidInstance("namespace \" ns\" must start with a printable ASCII character")),
        (false, #"{"éns":{"a":1}}"#, .invalidInstance("namespace \"éns\" must start with a printable ASCII character")),
        (false, #"{"a":[[1]]}"#, .invalidInstance("array \"a\" holds an array; VW reads arrays of numbers only")),
        (false, #"{"a":["x"]}"#, .invalidInstance("array \"a\" holds a string; VW reads arrays of numbers only")),
        (false, #"{"a":[1,{"b":1}]}"#, .invalidInstance("array \"a\" holds an object; VW reads arrays of numbers only")),
        (false, #"{"a":[{"b":1},2]}"#, .invalidInstance("array \"a\" mixes objects with a number; VW reads arrays of numbers or of objects")),
        (false, #"{"a":[{"b":[[1]]}]}"#, .invalidInstance("array \"b\" holds an array; VW reads arrays of numbers only")),
        (false, #"{"a":[{"_x":1}]}"#, .invalidInstance("unsupported key \"_x\" (VW skips or reads specially keys starting with '_')")),
        (false, #"{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}"#, .invalidInstance("objects nested deeper than 8")),
        (false, #"{"a":1"#, .invalidInstance("invalid JSON at byte 6: unexpected end of input (expected ',' or '}')")),
        (false, #"{"a":1} x"#, .invalidInstance("invalid JSON at byte 8: unexpected character 'x' after the document")),
        (false, "{\"a\":\"\u{FF}\"}", nil),
    ] as [(Bool, String, ExampleProblem?)])
    func rejections(isADF: Bool, input: String, expected: ExampleProblem?) {
        let found = problem(isADF ? adf : single, input)
        if let expected { #expect(found == expected, "\(input)") } else { #expect(found == nil, "\(input)") }
    }

    @Test func invalidUTF8IsRefusedByTheParser() {
        let bytes: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        do throws(ExampleProblem) {
            _ = try single.parse(bytes: bytes)
            Issue.record("accepted invalid UTF-8")
        } catch {
            guard case .invalidInstance(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("invalid UTF-8"))
        }
    }

    @Test func limits() {
        let grammar = VWJSONGrammar(isADF: true, limits: ExampleLimits(maxLineBytes: 1 << 20, maxFeatures: 3))
        #expect(problem(grammar, #"{"U":{"a":1,"b":2},"_multi":[{"x":1,"y":2}]}"#) == .tooManyFeatures(limit: 3))
        #expect(problem(grammar, #"{"v":[1,2,3,4],"_multi":[{}]}"#) == .tooManyFeatures(limit: 3))
        #expect(problem(grammar, #"{"_text":"a b c d","_multi":[{}]}"#) == .tooManyFeatures(limit: 3))
        let short = VWJSONGrammar(isADF: false, limits: ExampleLimits(maxLineBytes: 20, maxFeatures: 100))
        #expect(problem(short, #"{"abcdefghij":"klmnopqrstuvwxyz"}"#) == .lineTooLong(limit: 20))
        #expect(problem(short, #"{"a":1}"#) == nil)
    }

    @Test func parsedValueAndBytesAgree() throws {
        let text = #"{"U":{"id":"bob"},"_multi":[{"A":{"n":"a"}}]}"#
        let value = try JSONParser.parse(Array(text.utf8))
        #expect(try adf.parse(value).canonicalText(serverTag: "s") == adf.parse(bytes: Array(text.utf8)).canonicalText(serverTag: "s"))
    }
}

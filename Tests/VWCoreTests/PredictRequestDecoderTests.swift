import Testing
@testable import VWCore

private let singleLine = PredictRequestDecoder(multiline: false, maxInstances: 100)
private let adf = PredictRequestDecoder(multiline: true, maxInstances: 100)

private func decode(_ decoder: PredictRequestDecoder, _ json: String) throws(PredictRequestError) -> [[String]] {
    try decoder.decode(Array(json.utf8)).map { $0.map(String.init) }
}

private func error(_ decoder: PredictRequestDecoder, _ json: String, maxDepth: Int = 32) -> PredictRequestError? {
    do {
        _ = try decoder.decode(Array(json.utf8), maxDepth: maxDepth)
        return nil
    } catch {
        return error
    }
}

private func invalid(_ index: Int, _ why: String) -> PredictRequestError {
    .invalidInstance(InvalidExample(index: index, problem: .invalidInstance(why)))
}

/// The instance-level reason of a decoding error, for checks that only care about the wording.
private func reason(_ e: PredictRequestError?) -> String? {
    guard case .invalidInstance(let example) = e else { return nil }
    return example.message
}

@Suite struct PredictRequestDecoderTests {
    // MARK: request shape

    @Test func emptyInstancesGiveNoExamples() throws {
        #expect(try decode(singleLine, #"{"instances": []}"#) == [])
        #expect(try decode(adf, #"{"instances": []}"#) == [])
    }

    @Test func ignoresUnknownTopLevelKeys() throws {
        #expect(try decode(singleLine, #"{"signature_name": "x", "instances": ["|a x:1"]}"#) == [["|a x:1"]])
    }

    @Test func invalidJSONIsMalformedWithTheParserMessage() {
        #expect(error(singleLine, #"{"instances" []}"#) == .malformed("invalid JSON at byte 13: expected ':'"))
        #expect(error(singleLine, "") == .malformed("invalid JSON at byte 0: unexpected end of input"))
    }

    @Test func bodyMustBeAnObjectWithAnInstancesArray() {
        #expect(error(singleLine, #"["|a x"]"#)
            == .malformed("the request body must be a JSON object with an \"instances\" array, not an array"))
        #expect(error(singleLine, #"{"signature_name": []}"#) == .malformed("the request has no \"instances\" array"))
        #expect(error(singleLine, #"{"instances": "|a x"}"#) == .malformed("\"instances\" must be an array, not a string"))
        #expect(error(singleLine, #"{"instances": [], "instances": []}"#) == .malformed("give \"instances\" (or its synonym \"inputs\") once"))
    }

    @Test func inputsIsASynonymOfInstancesAsInKServeV1() throws {
        #expect(try decode(singleLine, #"{"inputs": ["|a x:1", "|b y"]}"#) == [["|a x:1"], ["|b y"]])
        #expect(try decode(adf, #"{"inputs": ["shared |s a\n|x b"]}"#) == [["shared |s a", "|x b"]])
        #expect(error(singleLine, #"{"inputs": "|a x"}"#) == .malformed("\"inputs\" must be an array, not a string"))
        #expect(error(singleLine, #"{"instances": [], "inputs": []}"#) == .malformed("give \"instances\" (or its synonym \"inputs\") once"))
    }

    @Test func tooDeepIsMalformed() {
        let body = #"{"instances": [{"features": {"a": {"x": [[1]]}}}]}"#
        #expect(error(singleLine, body, maxDepth: 4) == .malformed("invalid JSON at byte 34: nesting deeper than 4"))
    }

    @Test func countsInstancesBeforeDecodingThem() {
        let decoder = PredictRequestDecoder(multiline: false, maxInstances: 2)
        #expect(error(decoder, #"{"instances": [1, 2, 3]}"#) == .tooManyInstances(count: 3, limit: 2))
        #expect(reason(error(decoder, #"{"instances": ["|a", 2]}"#)) == "instance 1: an instance must be a string, an array of lines or an object, not a number")
    }

    // MARK: string and array instances

    @Test func singleLineStringIsOneLineAsIs() throws {
        #expect(try decode(singleLine, #"{"instances": ["|a x:1", "'t1 |b y", "bad\nline", ""]}"#)
            == [["|a x:1"], ["'t1 |b y"], ["bad\nline"], [""]])
    }

    @Test func multilineStringIsSplitOnNewlines() throws {
        #expect(try decode(adf, #"{"instances": ["shared |s u:1\n|a x:1\n|a y", "|a\n|b\n", "|a\n\n|b"]}"#)
            == [["shared |s u:1", "|a x:1", "|a y"], ["|a", "|b"], ["|a", "", "|b"]])
    }

    @Test func arrayOfLinesIsOneMultilineExample() throws {
        #expect(try decode(adf, #"{"instances": [["shared |s u:1", "|a x:1"], ["|a"]]}"#)
            == [["shared |s u:1", "|a x:1"], ["|a"]])
    }

    @Test func arrayOfLinesNeedsAMultilineModel() {
        #expect(error(singleLine, #"{"instances": ["|a", ["|a x"]]}"#) == invalid(1, "an array of lines needs a multiline model"))
    }

    @Test func arrayOfLinesMustBeNonEmptyStringsWithoutNewlines() {
        #expect(error(adf, #"{"instances": [[]]}"#) == .invalidInstance(InvalidExample(index: 0, problem: .empty)))
        #expect(error(adf, #"{"instances": [["|a", 1]]}"#) == invalid(0, "line 1 is a number, not a string"))
        #expect(error(adf, #"{"instances": [["|a", "|b\n|c"]]}"#) == invalid(0, "line 1 contains a newline"))
    }

    // MARK: single-line objects (each expected line was checked with vw 9.11.9 --audit)

    @Test func featuresObjectBecomesOneVWLine() throws {
        let body = #"{"instances": [{"features": {"a": {"x": 1.5, "c": "red"}, "b": {"y": true}}, "tag": "t1"}]}"#
        #expect(try decode(singleLine, body) == [["'t1 |a x:1.5 c=red |b y"]])
    }

    @Test func numbersKeepTheClientsText() throws {
        let body = #"{"instances": [{"features": {"a": {"x": 1e2, "y": -1.5E-2, "z": 0}}}]}"#
        #expect(try decode(singleLine, body) == [["|a x:1e2 y:-1.5E-2 z:0"]])
    }

    @Test func emptyNamespaceNameIsTheDefaultNamespace() throws {
        #expect(try decode(singleLine, #"{"instances": [{"features": {"": {"f": 1}}}]}"#) == [["| f:1"]])
    }

    @Test func falseAndNullLeaveFeaturesOutButKeepTheNamespace() throws {
        let body = #"{"instances": [{"features": {"a": {"x": false, "y": null, "z": true}, "b": {"w": null}}}]}"#
        #expect(try decode(singleLine, body) == [["|a z |b"]])
    }

    @Test func noNamespacesGiveAnExampleWithOnlyTheConstant() throws {
        #expect(try decode(singleLine, #"{"instances": [{"features": {}, "tag": "t"}, {"features": {}}]}"#) == [["'t |"], ["|"]])
    }

    @Test func nonASCIINamesAndValuesPassThrough() throws {
        #expect(try decode(singleLine, #"{"instances": [{"features": {"a": {"é": 2, "c": "rouge€"}}}]}"#) == [["|a é:2 c=rouge€"]])
    }

    @Test func labelIsWrittenAsVWsLabelSection() throws {
        // VW's houses test: the initial value 0.5 is added to the prediction even under -t.
        let houses = #"{"instances": [{"label": "0 1 0.5", "features": {"": {"price": 0.53, "sqft": 0.32, "age": 0.87, "1924": true}}, "tag": "third_house"}]}"#
        #expect(try decode(singleLine, houses) == [["0 1 0.5 'third_house | price:0.53 sqft:0.32 age:0.87 1924"]])
        #expect(try decode(singleLine, #"{"instances": [{"label": -1, "features": {"a": {"x": 1}}}, {"label": "+1", "features": {}}]}"#)
            == [["-1 |a x:1"], ["+1 |"]])
        #expect(error(singleLine, #"{"instances": [{"label": "1 |b y", "features": {}}]}"#)
            == invalid(0, "invalid label \"1 |b y\": contains a control character, '|' or \"'\""))
        #expect(error(singleLine, #"{"instances": [{"label": "1 'x", "features": {}}]}"#)
            == invalid(0, "invalid label \"1 'x\": contains a control character, '|' or \"'\""))
        #expect(error(singleLine, #"{"instances": [{"label": " ", "features": {}}]}"#) == invalid(0, "\"label\" is empty"))
        #expect(error(singleLine, #"{"instances": [{"label": [0, 1], "features": {}}]}"#)
            == invalid(0, "\"label\" must be a number or a string of VW label words, not an array"))
        #expect(error(adf, #"{"instances": [{"label": "0:1:0.5", "actions": [{"a": {"x": 1}}]}]}"#)
            == invalid(0, "\"label\" is for single-line models (give a multiline example's labels as VW text lines)"))
    }

    @Test func unknownInstanceKeysAreIgnored() throws {
        #expect(try decode(singleLine, #"{"instances": [{"id": 7, "features": {"a": {"x": 1}}}]}"#) == [["|a x:1"]])
    }

    @Test func featuresMustBeAnObjectOfObjects() {
        #expect(error(singleLine, #"{"instances": [{"tag": "t"}]}"#) == invalid(0, "\"features\" is missing"))
        #expect(error(singleLine, #"{"instances": [{"features": [1]}]}"#)
            == invalid(0, "\"features\" must be an object of namespaces, not an array"))
        #expect(error(singleLine, #"{"instances": [{"features": {"a": 1}}]}"#)
            == invalid(0, "namespace \"a\" in \"features\" must be an object of features, not a number"))
        #expect(error(singleLine, #"{"instances": [{"features": {"a": {"x": [1]}}}]}"#)
            == invalid(0, "feature \"x\" in namespace \"a\" has an array value (expected a number, string, boolean or null)"))
        #expect(error(singleLine, #"{"instances": [{"features": {"a": {"x": {}}}}]}"#)
            == invalid(0, "feature \"x\" in namespace \"a\" has an object value (expected a number, string, boolean or null)"))
        #expect(error(singleLine, #"{"instances": [{"features": {}, "features": {}}]}"#) == invalid(0, "duplicate key \"features\""))
    }

    @Test func rejectsNamesThatVWWouldSplitOrReinterpret() {
        let cases: [(String, String)] = [
            (#"{"a b": {"x": 1}}"#, #"invalid namespace name "a b" in "features": contains whitespace"#),
            (#"{"a|b": {"x": 1}}"#, #"invalid namespace name "a|b" in "features": contains '|'"#),
            (#"{"a:2": {"x": 1}}"#, #"invalid namespace name "a:2" in "features": contains ':'"#),
            (#"{"a": {"": 1}}"#, #"invalid feature name "" in namespace "a": is empty"#),
            (#"{"a": {"x\ty": 1}}"#, "invalid feature name \"x\ty\" in namespace \"a\": contains whitespace"),
            (#"{"a": {"x\u00a0y": 1}}"#, "invalid feature name \"x\u{a0}y\" in namespace \"a\": contains whitespace"),
            (#"{"a": {"x\u2028": 1}}"#, "invalid feature name \"x\u{2028}\" in namespace \"a\": contains whitespace"),
            (#"{"a": {"x\u0000": 1}}"#, "invalid feature name \"x\u{0}\" in namespace \"a\": contains a control character"),
            (#"{"a": {"x\u0085": 1}}"#, "invalid feature name \"x\u{85}\" in namespace \"a\": contains whitespace"),
            (#"{"a": {"x\u0007": 1}}"#, "invalid feature name \"x\u{7}\" in namespace \"a\": contains a control character"),
            (#"{"a": {"x:1": 1}}"#, #"invalid feature name "x:1" in namespace "a": contains ':'"#),
            (#"{"a": {"c": "dark red"}}"#, #"invalid value "dark red" of feature "c" in namespace "a": contains whitespace"#),
            (#"{"a": {"c": "r|b"}}"#, #"invalid value "r|b" of feature "c" in namespace "a": contains '|'"#),
            (#"{"a": {"c": "r:1"}}"#, #"invalid value "r:1" of feature "c" in namespace "a": contains ':'"#),
            (#"{"a": {"c": ""}}"#, #"invalid value "" of feature "c" in namespace "a": is empty"#),
        ]
        for (features, why) in cases {
            #expect(error(singleLine, #"{"instances": [{"features": \#(features)}]}"#) == invalid(0, why), "\(features)")
        }
    }

    @Test func rejectsTagsVWWouldMisread() {
        func tagError(_ tag: String) -> PredictRequestError? {
            error(singleLine, #"{"instances": ["|a", {"features": {"a": {"x": 1}}, "tag": \#(tag)}]}"#)
        }
        #expect(tagError(#""""#) == invalid(1, #"invalid tag "": is empty"#))
        #expect(tagError(#""a b""#) == invalid(1, #"invalid tag "a b": contains whitespace"#))
        #expect(tagError(#""a|b""#) == invalid(1, #"invalid tag "a|b": contains '|'"#))
        #expect(tagError(#""a:b""#) == invalid(1, #"invalid tag "a:b": contains ':'"#))
        #expect(tagError(#""it's""#) == invalid(1, #"invalid tag "it's": contains "'""#))
        #expect(tagError(#""save_m""#) == .invalidInstance(InvalidExample(index: 1, problem: .saveTag)))
        #expect(tagError("7") == invalid(1, "\"tag\" must be a string, not a number"))
    }

    // MARK: ADF objects (each expected example was checked with vw 9.11.9 --cb_explore_adf --audit)

    @Test func adfObjectPutsTheTagOnTheSharedLine() throws {
        let body = #"{"instances": [{"shared": {"s": {"u": 1}}, "actions": [{"a": {"x": 1}}, {"a": {"y": true}}], "tag": "t1"}]}"#
        #expect(try decode(adf, body) == [["shared 't1 |s u:1", "|a x:1", "|a y"]])
    }

    @Test func adfObjectWithoutSharedPutsTheTagOnTheFirstAction() throws {
        let body = #"{"instances": [{"actions": [{"a": {"x": 1}}, {}], "tag": "t2"}]}"#
        #expect(try decode(adf, body) == [["'t2 |a x:1", "|"]])
    }

    @Test func adfObjectWithoutTag() throws {
        let body = #"{"instances": [{"shared": {}, "actions": [{"": {"f": 0.5}}, {"b": {"c": "red"}}]}]}"#
        #expect(try decode(adf, body) == [["shared |", "| f:0.5", "|b c=red"]])
    }

    @Test func adfObjectNeedsANonEmptyArrayOfActionObjects() {
        #expect(reason(error(adf, #"{"instances": [{"features": {"a": {"x": 1}}}]}"#))
            == #"instance 0: "actions" is missing (a multiline model needs {"shared": ..., "actions": [...]})"#)
        #expect(error(adf, #"{"instances": [{"actions": {}}]}"#) == invalid(0, "\"actions\" must be an array, not an object"))
        #expect(error(adf, #"{"instances": [{"actions": []}]}"#) == invalid(0, "\"actions\" is empty"))
        #expect(error(adf, #"{"instances": [{"actions": [{}, "|a"]}]}"#)
            == invalid(0, "action 1 must be an object of namespaces, not a string"))
        #expect(error(adf, #"{"instances": [{"shared": [], "actions": [{}]}]}"#)
            == invalid(0, "\"shared\" must be an object of namespaces, not an array"))
        #expect(error(adf, #"{"instances": [{"actions": [{"a b": {}}]}]}"#)
            == invalid(0, #"invalid namespace name "a b" in action 0: contains whitespace"#))
        #expect(error(adf, #"{"instances": [{"actions": [{}], "tag": "save"}]}"#)
            == .invalidInstance(InvalidExample(index: 0, problem: .saveTag)))
    }

    @Test func singleLineModelRejectsNonObjectNonStringInstances() {
        #expect(error(singleLine, #"{"instances": [null]}"#)
            == invalid(0, "an instance must be a string, an array of lines or an object, not null"))
        #expect(error(adf, #"{"instances": [true]}"#)
            == invalid(0, "an instance must be a string, an array of lines or an object, not a boolean"))
    }
}

struct PredictRequestMemoryTests {
    @Test func instancesPastTheLimitAreCheckedNotBuilt() {
        let decoder = PredictRequestDecoder(multiline: false, maxInstances: 10)
        let body = Array(("{\"instances\": [" + Array(repeating: "{\"features\":{}}", count: 200_000).joined(separator: ",") + "]}").utf8)
        var built = 0
        #expect(throws: PredictRequestError.tooManyInstances(count: 200_000, limit: 10)) {
            _ = try decoder.decode(body, maxDepth: 32, builtInstances: &built)
        }
        #expect(built == 10)
        // Still checked as JSON: a syntax error after the limit is a 400, as before.
        let broken = Array(("{\"instances\": [" + Array(repeating: "\"|a\"", count: 100).joined(separator: ",") + ",{]}").utf8)
        built = 0
        do {
            _ = try decoder.decode(broken, maxDepth: 32, builtInstances: &built)
            Issue.record("accepted")
        } catch {
            guard case .malformed = error else { Issue.record("a syntax error past the limit must be malformed: \(error)"); return }
        }
        #expect(built == 10)
    }

    @Test func nothingIsBuiltAfterTheFirstInvalidInstance() {
        let decoder = PredictRequestDecoder(multiline: false, maxInstances: 1_000_000)
        let body = Array(("{\"instances\": [\"|a\", 5, " + Array(repeating: "{\"features\": {}}", count: 50_000).joined(separator: ",") + "]}").utf8)
        var built = 0
        do {
            _ = try decoder.decode(body, maxDepth: 32, builtInstances: &built)
            Issue.record("accepted")
        } catch {
            guard case .invalidInstance(let invalid) = error else { Issue.record("\(error)"); return }
            #expect(invalid.index == 1)
        }
        #expect(built == 2)
    }

    @Test func oneInstanceHasAValueBudget() {
        let decoder = PredictRequestDecoder(multiline: false, maxInstances: 10, maxValuesPerInstance: 100)
        let features = (0..<200).map { "\"f\($0)\": 1" }.joined(separator: ",")
        let body = Array("{\"instances\": [\"|a\", {\"features\": {\"a\": {\(features)}}}]}".utf8)
        #expect(throws: PredictRequestError.invalidInstance(InvalidExample(
            index: 1, problem: .invalidInstance("more than 100 JSON values in one instance")))) {
            _ = try decoder.decode(body)
        }
        let fits = (0..<90).map { "\"f\($0)\": 1" }.joined(separator: ",")
        #expect((try? decoder.decode(Array("{\"instances\": [{\"features\": {\"a\": {\(fits)}}}]}".utf8)))?.count == 1)
    }

    @Test func otherMembersAreCheckedNotBuilt() {
        let decoder = PredictRequestDecoder(multiline: false, maxInstances: 10)
        let noise = "[" + Array(repeating: "{\"x\": [1, \"s\", null]}", count: 10_000).joined(separator: ",") + "]"
        let body = Array("{\"noise\": \(noise), \"instances\": [\"|a x:1\"]}".utf8)
        var built = 0
        #expect((try? decoder.decode(body, maxDepth: 32, builtInstances: &built)) == [["|a x:1"]])
        #expect(built == 1)
    }
}

import Testing
@testable import VWCore

/// SPEC §9: a Personalizer rank request mapped to VW JSON, and the service configuration's durations.
@Suite struct PersonalizerMappingTests {
    private func request(_ text: String) throws(LoopRequestError) -> PersonalizerRankRequest {
        try PersonalizerRankRequest(Array(text.utf8), maxDepth: 32)
    }

    @Test func rankRequestBecomesTheSDKsLocalInferenceContextWithoutExcludedActions() throws {
        let mapped = try request(#"{"contextFeatures":[{"User":{"id":"a"}},{"t":1}],"actions":[{"id":"x","features":[{"C":{"k":"x"}}]},{"id":"y","features":[]},{"id":"z"}],"excludedActions":["y"],"eventId":"e1","deferActivation":true}"#)
        #expect(mapped.actionIDs == ["x", "y", "z"] && mapped.offered == [0, 2])
        #expect(mapped.rank.eventID.text == "e1" && mapped.rank.deferred)
        #expect(mapped.rank.context.jsonText == #"{"FromUrl":[{"User":{"id":"a"}},{"t":1}],"_multi":[{"_tag":"x","j":[{"C":{"k":"x"}}]},{"_tag":"z","j":[]}]}"#)
        let example = try VWJSONGrammar(isADF: true).parse(mapped.rank.context)
        #expect(example.actions == 2)
        let result = RankResult(model: "m", version: "v", eventID: "e1", action: 1, probability: "0.9",
                                ranking: [ActionValue(action: 1, value: "0.9"), ActionValue(action: 0, value: "0.1")])
        let answer = mapped.ranking(of: result)
        #expect(answer.ranking.map(\.id) == ["z", "x", "y"] && answer.ranking.map(\.probability) == ["0.9", "0.1", "0"])
        #expect(answer.rewardActionID == "z")
    }

    @Test(arguments: [
        (#"{"actions":[]}"#, "\"actions\" must be a non-empty array of {\"id\", \"features\"}"),
        (#"{"actions":[{"id":"a"}],"excludedActions":["a"]}"#, "every action is excluded: nothing to rank"),
        (#"{"actions":[{"id":"a"}],"excludedActions":["b"]}"#, "excludedActions[0]: \"b\" is not an action id of the request"),
        (#"{"actions":[{"id":"a"},{"id":"a"}]}"#, "action id \"a\" is given twice"),
        (#"{"actions":[{"id":""}]}"#, "actions[0].id must have 1 to 256 bytes"),
        (#"{"actions":[{"id":1}]}"#, "actions[0].id must be a string"),
        (#"{"actions":[{"id":"a","features":{"x":1}}]}"#, "\"actions[0].features\" must be an array of feature objects, not an object"),
        (#"{"actions":[{"id":"a"}],"contextFeatures":[1]}"#, "contextFeatures[0] must be an object of features, not a number"),
        (#"{"actions":[{"id":"a"}],"eventId":"a b"}"#, "\"eventId\" must match [A-Za-z0-9_.:-]{1,128}"),
        (#"{"actions":[{"id":"a"}],"other":1}"#, "unknown member \"other\" (known: contextFeatures, actions, excludedActions, eventId, deferActivation)"),
    ])
    func badRankRequests(body: String, message: String) {
        #expect(throws: LoopRequestError(message)) { try request(body) }
    }

    @Test(arguments: [
        ("PT5S", 5000), ("PT10M", 600_000), ("P1DT12H", 129_600_000), ("PT0.5S", 500), ("P1W", 604_800_000),
        ("P0DT0H0M10S", 10_000), ("PT1H30M", 5_400_000),
    ] as [(String, Int64)])
    func isoDurations(text: String, milliseconds: Int64) {
        #expect(PersonalizerSettings.parseISODuration(text) == milliseconds)
    }

    @Test(arguments: ["", "P", "PT", "10s", "P1M", "P1Y", "PT5", "PT1S2M", "P1H", "T5S", "PTxS"])
    func malformedISODurations(text: String) {
        #expect(PersonalizerSettings.parseISODuration(text) == nil)
    }

    @Test func durationsWrittenBackCanonically() {
        #expect(PersonalizerSettings.isoDuration(milliseconds: 10_000) == "PT10S")
        #expect(PersonalizerSettings.isoDuration(milliseconds: 129_600_000) == "P1DT12H")
        #expect(PersonalizerSettings.isoDuration(milliseconds: 86_400_000) == "P1D")
        #expect(PersonalizerSettings.isoDuration(milliseconds: 500) == "PT0.5S")
        #expect(PersonalizerSettings.loopDuration(milliseconds: 120_000) == "2m")
        #expect(PersonalizerSettings.loopDuration(milliseconds: 1500) == "1500ms")
    }

    private func members(_ text: String) throws -> PersonalizerSettings.Members {
        guard case .object(let members) = try JSONParser.parse(Array(text.utf8)) else { throw LoopRequestError("not an object") }
        return members
    }

    @Test func explorationPercentageIsTheModelsEpsilonAndApprenticeItsLearningMode() throws {
        let config = try members(#"{"input":"vw_json","vw_args":["--epsilon","0.2","-q","::"],"loop":{"reward_wait":"1s"}}"#)
        let body = try JSONParser.parse(Array(#"{"explorationPercentage":0.35,"learningMode":"Apprentice"}"#.utf8))
        let updated = try PersonalizerSettings.applying(serviceConfiguration: body, to: config)
        #expect(PersonalizerSettings.member("vw_args", of: updated)?.jsonText == #"["-q","::","--epsilon","0.35"]"#)
        #expect(try ModelConfig.parse(JSONValue.object(updated).jsonBytes).loop?.learningMode == .apprentice)
        let answer = try PersonalizerSettings.serviceConfiguration(of: updated)
        #expect(PersonalizerSettings.member("explorationPercentage", of: answer)?.jsonText == "0.35")
        #expect(PersonalizerSettings.member("learningMode", of: answer)?.jsonText == #""Apprentice""#)
        // Without the member, vw_args stay as they are.
        let untouched = try PersonalizerSettings.applying(serviceConfiguration: try JSONParser.parse(Array(#"{"rewardWaitTime":"PT5S"}"#.utf8)), to: config)
        #expect(PersonalizerSettings.member("vw_args", of: untouched)?.jsonText == #"["--epsilon","0.2","-q","::"]"#)
    }

    @Test(arguments: [
        (#"{"name":"n","startTime":"2026-12-02","endTime":"2026-12-01"}"#, "the range is empty"),
        (#"{"name":"n","startTime":"yesterday","endTime":"2026-12-01"}"#, "\"startTime\" yesterday is not a date"),
        (#"{"name":"n","startTime":"2026-12-01","endTime":"2026-12-02","enablePolicyOptimization":"yes"}"#, "\"enablePolicyOptimization\" must be a boolean"),
        (#"{"name":"n","startTime":"2026-12-01","endTime":"2026-12-02","policies":[{"name":"p","arguments":"--cb_explore_adf --daemon"}]}"#, "--daemon"),
        (#"{"name":"n","startTime":"2026-12-01","endTime":"2026-12-02","policies":[{"name":"p","arguments":"--cb_adf"}]}"#, "must explore"),
        (#"{"startTime":"2026-12-01","endTime":"2026-12-02"}"#, "\"name\""),
        (#"{"name":"n","startTime":"2026-12-01","endTime":"2026-12-02","other":1}"#, "unknown member \"other\""),
    ])
    func badEvaluationRequests(body: String, words: String) throws {
        do {
            _ = try PersonalizerEvaluationRequest(try JSONParser.parse(Array(body.utf8)))
            Issue.record("accepted: \(body)")
        } catch let error as LoopRequestError {
            #expect(error.message.contains(words), "\(error.message)")
        }
    }

    @Test func evaluationRequestTimesAndPolicies() throws {
        let request = try PersonalizerEvaluationRequest(try JSONParser.parse(Array(
            #"{"name":"n","startTime":"2026-12-01T00:00:00+00:00","endTime":"2026-12-01T10:00:00Z","policies":[{"name":"p","arguments":"--cb_explore_adf --epsilon 0.1"}],"enablePolicyOptimization":false}"#.utf8)))
        #expect(request.from == 1_796_083_200_000 && request.to == request.from + 36_000_000)
        #expect(request.policies.map(\.name) == ["p"] && request.policies.map(\.arguments) == ["--cb_explore_adf --epsilon 0.1"])
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// `GET …/logs/properties`: the first line of each instance's oldest segment, the last complete line of its newest.
@Suite struct LogDateRangeTests {
    private func write(_ text: String, to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = Array(text.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    @Test func firstAndLastCompleteTimestampsAcrossInstances() {
        var template = Array("/tmp/logrange-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        #expect(LogDateRange.of(directory: directory) == LogDateRange())
        write(#"{"EventId":"a","Timestamp":"2026-01-02T00:00:00.000Z"}"# + "\n", to: directory + "/pod1-1.dsjson")
        write(#"{"EventId":"b","Timestamp":"2026-01-03T00:00:00.000Z"}"# + "\n" + #"{"EventId":"c","Timestamp":"2026-01-05T00:00:00.000Z"}"# + "\n"
              + #"{"EventId":"d","Timest"#, to: directory + "/pod1-2.dsjson")
        write(#"{"EventId":"e","Timestamp":"2026-01-01T00:00:00.000Z"}"# + "\n", to: directory + "/pod2-1.dsjson")
        write("not a segment\n", to: directory + "/notes.txt")
        #expect(LogDateRange.of(directory: directory) == LogDateRange(from: "2026-01-01T00:00:00.000Z", to: "2026-01-05T00:00:00.000Z"))
    }
}

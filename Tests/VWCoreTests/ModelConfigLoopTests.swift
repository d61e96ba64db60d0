import Testing
@testable import VWCore

private func config(_ json: String) throws(LoadError) -> ModelConfig {
    try ModelConfig.parse(Array(json.utf8))
}

struct ModelConfigLoopTests {
    @Test func inputAndLoopAreRead() throws {
        let parsed = try config(#"{"input": "vw_json", "loop": {"reward_wait": "500ms", "default_reward": -1, "update_interval": "2m", "min_events": 5, "trainer": "external"}}"#)
        #expect(parsed.input == .vwJSON)
        let loop = try #require(parsed.loop)
        #expect(loop.rewardWait == .milliseconds(500))
        #expect(loop.defaultReward == -1)
        #expect(loop.updateInterval == .seconds(120))
        #expect(loop.minEvents == 5)
        #expect(loop.externalTrainer)
        #expect(try config("{}").input == .vwText)
        #expect(try config("{}").loop == nil)
        #expect(try config(#"{"loop": {}}"#).loop == LoopConfig())
        // SPEC §9: Personalizer's LoggingOnly, and the stored Personalizer settings the engine does not read.
        #expect(try config(#"{"loop": {"learning_mode": "logging_only"}, "personalizer": {"policy": {}}}"#).loop?.learningMode == .loggingOnly)
        #expect(LoopConfig().learningMode == .online)
        #expect(LoopConfig().apprenticeThreshold == 1)
        #expect(try config(#"{"loop": {"apprentice_threshold": 0.9}}"#).loop?.apprenticeThreshold == 0.9)
        #expect(try config(#"{"loop": {"deferred_wait": "30d"}}"#).loop?.deferredWait == .seconds(30 * 86_400))
    }

    @Test func badLoopSettingsAreRefusedWithTheirReason() {
        for bad in [#"{"input": "csv"}"#, #"{"loop": {"reward_wait": "10"}}"#, #"{"loop": {"reward_wait": "-1s"}}"#,
                    #"{"loop": {"default_reward": "1"}}"#, #"{"loop": {"min_events": 0}}"#, #"{"loop": {"trainer": "x"}}"#,
                    #"{"loop": {"rewardwait": "1s"}}"#, #"{"loop": []}"#, #"{"loop": {"learning_mode": "Apprentice"}}"#,
                    #"{"personalizer": []}"#, #"{"loop": {"apprentice_threshold": 0}}"#, #"{"loop": {"apprentice_threshold": "1"}}"#,
                    #"{"loop": {"deferred_wait": "31d"}}"#, #"{"loop": {"orphan_wait": "721h"}}"#] {
            #expect(throws: LoadError.self, "\(bad)") { try config(bad) }
        }
    }
}

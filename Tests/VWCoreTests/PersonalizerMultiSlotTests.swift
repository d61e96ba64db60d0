import Testing
@testable import VWCore

/// SPEC §9: a Personalizer multislot rank request mapped to ccb VW JSON (seed tags, `_inc`), and the reward body.
@Suite struct PersonalizerMultiSlotTests {
    private func request(_ text: String) throws(LoopRequestError) -> PersonalizerMultiSlotRankRequest {
        try PersonalizerMultiSlotRankRequest(Array(text.utf8), maxDepth: 32)
    }

    @Test func multiSlotRequestBecomesAccbContextWithSeedTagsAndIncludedActions() throws {
        let mapped = try request(#"{"contextFeatures":[{"User":{"id":"a"}}],"actions":[{"id":"x","features":[{"C":1}]},{"id":"y"},{"id":"z"}],"slots":[{"id":"top","baselineAction":"z","features":[{"pos":"t"}]},{"id":"side","baselineAction":"x","excludedActions":["y"]}],"eventId":"e1","deferActivation":true}"#)
        #expect(mapped.actionIDs == ["x", "y", "z"] && mapped.slotIDs == ["top", "side"] && mapped.baselines == [2, 0])
        #expect(mapped.offered == [[0, 1, 2], [0, 2]] && mapped.eventID.text == "e1" && mapped.deferred)
        #expect(mapped.context.jsonText == #"{"FromUrl":[{"User":{"id":"a"}}],"_multi":[{"_tag":"x","j":[{"C":1}]},{"_tag":"y","j":[]},{"_tag":"z","j":[]}],"_slots":[{"_id":"top","_tag":"seed=e1_0","sj":[{"pos":"t"}]},{"_id":"side","_tag":"seed=e1_1","_inc":[0,2],"sj":[]}]}"#)
        let example = try VWJSONGrammar(family: .ccb)!.parse(mapped.context)
        #expect(example.actions == 3 && example.slots == 2 && example.includedActions == [nil, [0, 2]])
    }

    @Test(arguments: [
        (#"{"actions":[{"id":"a"}]}"#, "\"slots\" must be a non-empty array of {\"id\", \"baselineAction\", \"excludedActions\", \"features\"}"),
        (#"{"actions":[{"id":"a"}],"slots":[{"id":"s","baselineAction":"a"},{"id":"t","baselineAction":"a"}]}"#, "2 slots for 1 actions: each slot takes a different action"),
        (#"{"actions":[{"id":"a"},{"id":"b"}],"slots":[{"id":"s","baselineAction":"a"},{"id":"t","baselineAction":"a"}]}"#,
         "slots[1].baselineAction \"a\" is already the baseline of slot \"s\" (each slot needs its own)"),
        (#"{"actions":[{"id":"a"}],"slots":[{"id":"s","baselineAction":"b"}]}"#, "slots[0].baselineAction \"b\" is not an action id of the request"),
        (#"{"actions":[{"id":"a"}],"slots":[{"id":"s"}]}"#, "slots[0].baselineAction must be a string"),
        (#"{"actions":[{"id":"a"},{"id":"b"}],"slots":[{"id":"s","baselineAction":"a","excludedActions":["a"]}]}"#,
         "slots[0].baselineAction \"a\" is also one of the slot's excludedActions"),
        (#"{"actions":[{"id":"a"},{"id":"b"}],"slots":[{"id":"s","baselineAction":"a","excludedActions":["c"]}]}"#,
         "slots[0].excludedActions[0]: \"c\" is not an action id of the request"),
        (#"{"actions":[{"id":"a"},{"id":"b"}],"slots":[{"id":"s","baselineAction":"a"},{"id":"s","baselineAction":"b"}]}"#, "slot id \"s\" is given twice"),
        (#"{"actions":[{"id":"a"}],"slots":[{"id":"s","baselineAction":"a","rank":1}]}"#,
         "slots[0]: unknown member \"rank\" (known: id, baselineAction, excludedActions, features)"),
        (#"{"actions":[{"id":"a"}],"slots":[{"id":"s","baselineAction":"a"}],"excludedActions":[]}"#,
         "unknown member \"excludedActions\" (known: contextFeatures, actions, slots, eventId, deferActivation)"),
    ])
    func badMultiSlotRequests(body: String, message: String) {
        #expect(throws: LoopRequestError(message)) { try request(body) }
    }

    @Test func rewardsNameTheirSlots() throws {
        let id = try #require(EventID("e1"))
        let rewards = try PersonalizerMultiSlotReward.decode(Array(#"{"reward":[{"slotId":"top","value":1},{"slotId":"side","value":0.5}]}"#.utf8), eventID: id, maxDepth: 8)
        #expect(rewards == [SlotReward(eventID: id, slotID: "top", value: "1"), SlotReward(eventID: id, slotID: "side", value: "0.5")])
        for (body, message) in [
            (#"{"reward":[]}"#, "\"reward\" must be a non-empty array of {\"slotId\", \"value\"}"),
            (#"{"reward":[{"slotId":"top"}]}"#, "reward[0].value is missing"),
            (#"{"reward":[{"slotId":"top","value":"1"}]}"#, "reward[0].value must be a finite number, not a string"),
            (#"{"reward":[{"value":1}]}"#, "reward[0].slotId must be a string"),
            (#"{"value":1}"#, "unknown member \"value\" (known: reward)"),
        ] {
            #expect(throws: LoopRequestError(message)) { try PersonalizerMultiSlotReward.decode(Array(body.utf8), eventID: id, maxDepth: 8) }
        }
    }
}

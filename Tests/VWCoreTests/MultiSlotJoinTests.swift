import Testing
@testable import VWCore

/// Multislot (`--ccb_explore_adf`) decisions through the join: each slot's reward becomes that slot's cost, and the
/// trainer's checks accept exactly what the joiner writes.

private let ccbContext = #"{"FromUrl":[{"U":{"t":"a"}}],"_multi":[{"_tag":"x"},{"_tag":"y"},{"_tag":"z"}],"_slots":[{"_id":"top","_tag":"seed=e1_0","sj":[]},{"_id":"side","_tag":"seed=e1_1","_inc":[0,1],"sj":[]}]}"#

private func slotsDecision(_ id: String, deferred: Bool = false) -> [UInt8] {
    EventLine.slotsDecision(eventId: id, timestampMilliseconds: 1_764_530_483_000,
                            slots: [(id: "top", actions: [2, 0, 1], probabilities: [0.8, 0.1, 0.1]), (id: "side", actions: [1, 0], probabilities: [0.5, 0.5])],
                            context: Array(ccbContext.utf8), modelVersion: "v1", deferred: deferred)
}

private func slotReward(_ id: String, _ slot: String, _ value: Double) -> [UInt8] {
    EventLine.slotReward(eventId: id, slotId: slot, value: value, timestampMilliseconds: 1_764_530_484_000)
}

private func joinedText(_ joiner: Joiner) -> [String] {
    Joiner.joinedFiles(in: joiner.joinedDirectory).flatMap { number in
        readText(joiner.joinedDirectory + "/\(number).dsjson").split(separator: "\n").map(String.init)
    }
}

struct MultiSlotJoinTests {
    let settings = JoinSettings(rewardWait: .seconds(10), defaultReward: 0.25, orphanWait: .seconds(60), deferredWait: .seconds(100),
                                rewardRange: -1...1)

    @Test func eachSlotsRewardsBecomeItsCostAndAnUnrewardedSlotGetsTheDefault() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        // A reward before its decision waits for it; rewards are summed and clipped per slot; another event's slot
        // reward stays apart.
        try log.append(lines: [slotReward("e1", "top", 0.75), slotsDecision("e1"), slotReward("e1", "top", 0.5), slotReward("e2", "side", 1)])
        let first = try joiner.step(nowMilliseconds: 1000)
        #expect(first.decisionsRead == 1 && first.rewardsRead == 3 && first.joined.isEmpty)
        let step = try joiner.step(nowMilliseconds: 11_000)
        #expect(step.joined == ["e1"] && step.decisionsJoined == 1)
        #expect(joinedText(joiner) == [
            #"{"Timestamp":"2025-11-30T19:21:23.000Z","Version":"1","EventId":"e1","c":\#(ccbContext),"_outcomes":[{"_id":"top","_label_cost":-1.0,"_a":[2,0,1],"_p":[0.8,0.1,0.1],"_o":[{"v":0.75},{"v":0.5}]},{"_id":"side","_label_cost":-0.25,"_a":[1,0],"_p":[0.5,0.5],"_o":[]}],"VWState":{"m":"v1"}}"#,
        ])
        // The slot rewards were taken with the decision: only e2's wait (its slot reward, and its activation).
        #expect(joiner.orphanCount == 2)
        // The trainer's checks accept the joined line: one decision per slot.
        let lines = joinedText(joiner).map { Array($0.utf8)[...] }
        let input = TrainingInput(lines: lines, json: VWJSONGrammar(family: .ccb), text: ExampleGrammar(family: .ccb, keepsLabels: true),
                                  loop: LoopConfig())
        #expect(input.skipped.isEmpty, "\(input.skipped)")
        #expect(input.decisions.map(\.reward) == [1, 0.25] && input.decisions.map(\.action) == [3, 2] && input.decisions.map(\.line) == [0, 0])
    }

    @Test func aSlotRewardActivatesItsDeferredDecision() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        try log.append(lines: [slotsDecision("d1", deferred: true), slotsDecision("d2", deferred: true), slotReward("d1", "side", 1)])
        try joiner.step(nowMilliseconds: 0)
        #expect(try joiner.step(nowMilliseconds: 10_000).joined == ["d1"])
        #expect(try joiner.step(nowMilliseconds: 200_000).droppedDeferred == 1)
    }

    @Test(arguments: [
        (#""_a":[2,0,1]"#, #""_a":[5,0,1]"#, "past the context's 3 actions"),
        (#""_a":[1,0]"#, #""_a":[2,0]"#, "chose action 2"),
        (#""_label_cost":-1.0"#, #""_label_cost":-3.0"#, "within the reward range"),
        (#""_id":"top","_tag":"seed=e1_0""#, #""_id":"top","_tag":"mine""#, "\"_tag\""),
        (#""_o":[]"#, #""_o":[{"v":"x"}]"#, "finite reward"),
        (#""VWState""#, #""Extra":1,"VWState""#, "unknown member"),
    ])
    func theTrainerRefusesAnEditedJoinedLine(original: String, edited: String, reason: String) throws {
        let line = #"{"Timestamp":"2025-11-30T19:21:23.000Z","Version":"1","EventId":"e1","c":\#(ccbContext),"_outcomes":[{"_id":"top","_label_cost":-1.0,"_a":[2,0,1],"_p":[0.8,0.1,0.1],"_o":[]},{"_id":"side","_label_cost":-0.25,"_a":[1,0],"_p":[0.5,0.5],"_o":[]}],"VWState":{"m":"v1"}}"#
        let changed = line.replacing(original, with: edited)
        #expect(changed != line)
        let input = TrainingInput(lines: [Array(changed.utf8)[...]], json: VWJSONGrammar(family: .ccb),
                                  text: ExampleGrammar(family: .ccb, keepsLabels: true), loop: LoopConfig())
        #expect(input.decisions.isEmpty && input.skipped.count == 1)
        #expect(input.skipped.first?.contains(reason) == true, "\(input.skipped)")
    }

    @Test func slotRewardsSurviveARestart() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        var joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        try log.append(lines: [slotReward("e1", "side", 0.5), slotsDecision("e1")])
        try joiner.step(nowMilliseconds: 0)
        joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        #expect(joiner.pendingCount == 1 && joiner.orphanCount == 1)
        try log.append(lines: [slotReward("e1", "top", 1)])
        try joiner.step(nowMilliseconds: 1_000)
        joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        #expect(try joiner.step(nowMilliseconds: 11_000).joined == ["e1"])
        let line = try JSONParser.parse(Array(try #require(joinedText(joiner).first).utf8), maxDepth: 64)
        #expect(line[member: "_outcomes"]?.arrayValue?.map { $0[member: "_label_cost"] } == [.number("-1.0"), .number("-0.5")])
        #expect(joiner.pendingCount == 0 && joiner.orphanCount == 0)
    }
}

@Suite struct RecentSlotDecisionsTests {
    @Test func theOldestAreForgottenBeyondTheEntriesOrTheBytes() {
        let recent = RecentSlotDecisions(capacity: 3, maxBytes: 1 << 20)
        for index in 0..<5 { recent.remember(eventID: "e\(index)", slots: ["top", "side"]) }
        #expect(recent.slots(of: "e0") == nil && recent.slots(of: "e1") == nil && recent.slots(of: "e4") == ["top", "side"])
        recent.remember(eventID: "e4", slots: ["only"])
        #expect(recent.slots(of: "e4") == ["only"] && recent.slots(of: "e2") == ["top", "side"])
        let small = RecentSlotDecisions(capacity: 100, maxBytes: 1_000)
        let long = String(repeating: "s", count: 256)
        for index in 0..<10 { small.remember(eventID: "e\(index)", slots: [long]) }
        #expect(small.slots(of: "e9") == [long] && small.slots(of: "e0") == nil)
        // One entry larger than the bound is not kept.
        small.remember(eventID: "huge", slots: Array(repeating: long, count: 8))
        #expect(small.slots(of: "huge") == nil)
    }
}

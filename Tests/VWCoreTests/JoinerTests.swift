#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VWCore

/// A small contextual-bandit world: 3 actions, a user feature.
private func context(user: String) -> [UInt8] {
    Array(#"{"User":{"id":"\#(user)"},"_multi":[{"Action":{"t":"sports"}},{"Action":{"t":"news"}},{"Action":{"t":"music"}}]}"#.utf8)
}

private func decision(_ id: String, chosen: Int = 2, deferred: Bool = false, user: String = "alice") -> [UInt8] {
    let others = [1, 2, 3].filter { $0 != chosen }
    return EventLine.decision(eventId: id, timestampMilliseconds: 1_764_530_483_000, actions: [chosen] + others,
                              probabilities: [0.8, 0.1, 0.1], context: context(user: user), modelVersion: "v1", deferred: deferred)
}

private func reward(_ id: String, _ value: Double) -> [UInt8] {
    EventLine.reward(eventId: id, value: value, timestampMilliseconds: 1_764_530_484_000)
}

/// Every joined line, in join order (file number order, then line order).
private func joinedLines(_ joiner: Joiner) -> [JSONValue] {
    Joiner.joinedFiles(in: joiner.joinedDirectory).flatMap { number in
        readText(joiner.joinedDirectory + "/\(number).dsjson").split(separator: "\n").map { try! JSONParser.parse(Array($0.utf8), maxDepth: 64) }
    }
}

private func ids(_ lines: [JSONValue]) -> [String] { lines.map { $0[member: "EventId"]!.stringValue! } }

struct JoinerTests {
    let settings = JoinSettings(rewardWait: .seconds(10), defaultReward: 0.25, orphanWait: .seconds(60), deferredWait: .seconds(100))

    @Test func joinsAfterRewardWaitInVWsLearningFormat() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        try log.append(lines: [decision("e1"), decision("e2", chosen: 3)])
        try log.append(lines: [reward("e1", 1)])
        let first = try joiner.step(nowMilliseconds: 1000)
        #expect(first.joined.isEmpty && first.decisionsRead == 2 && first.rewardsRead == 1)
        #expect(joiner.pendingCount == 2)
        #expect(try joiner.step(nowMilliseconds: 10_999).joined.isEmpty)
        let step = try joiner.step(nowMilliseconds: 11_000)
        #expect(step.joined == ["e1", "e2"])
        #expect(step.file == "1.dsjson")
        #expect(joiner.pendingCount == 0 && joiner.joinedCount == 2)
        let text = readText(joiner.joinedDirectory + "/1.dsjson")
        let context = String(decoding: context(user: "alice"), as: UTF8.self)
        #expect(text == """
            {"_label_cost":-1.0,"_label_probability":0.8,"_label_Action":2,"_labelIndex":1,"o":[{"v":1.0}],"Timestamp":"2025-11-30T19:21:23.000Z","Version":"1","EventId":"e1","a":[2,1,3],"c":\(context),"p":[0.8,0.1,0.1],"VWState":{"m":"v1"}}
            {"_label_cost":-0.25,"_label_probability":0.8,"_label_Action":3,"_labelIndex":2,"o":[],"Timestamp":"2025-11-30T19:21:23.000Z","Version":"1","EventId":"e2","a":[3,1,2],"c":\(context),"p":[0.8,0.1,0.1],"VWState":{"m":"v1"}}

            """)
        // Nothing more to join: no new file.
        #expect(try joiner.step(nowMilliseconds: 50_000).file == nil)
    }

    @Test func severalRewardsAreSummedFirstAndLastKept() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        try log.append(lines: [decision("e1"), reward("e1", 1)])
        try joiner.step(nowMilliseconds: 0)
        try log.append(lines: [reward("e1", 2), reward("e1", 0.5)])
        try joiner.step(nowMilliseconds: 10_000)
        let line = try #require(joinedLines(joiner).first)
        #expect(line[member: "_label_cost"] == .number("-3.5"))
        #expect(line[member: "o"] == .array([.object([("v", .number("1.0"))]), .object([("v", .number("0.5"))])]))
    }

    @Test func deferredDecisionsJoinOnlyWhenActivated() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        try log.append(lines: [decision("never", deferred: true), decision("shown", deferred: true), decision("rewarded", deferred: true)])
        try joiner.step(nowMilliseconds: 0)
        try log.append(lines: [EventLine.activation(eventId: "shown", timestampMilliseconds: 0), reward("rewarded", 2)])
        #expect(try joiner.step(nowMilliseconds: 20_000).joined.isEmpty)  // activation read now: waits from here
        #expect(try joiner.step(nowMilliseconds: 30_000).joined == ["shown", "rewarded"])
        let lines = joinedLines(joiner)
        #expect(lines.map { $0[member: "_label_cost"]! } == [.number("-0.25"), .number("-2.0")])
        #expect(lines.allSatisfy { $0[member: "DeferredAction"] == nil })
        #expect(joiner.pendingCount == 1)
        let dropped = try joiner.step(nowMilliseconds: 100_000)
        #expect(dropped.droppedDeferred == 1 && dropped.joined.isEmpty && joiner.pendingCount == 0)
    }

    @Test func rewardBeforeItsDecisionInAnotherInstancesLog() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        // pod-a sorts first: its reward is read before pod-b's decision.
        let podA = try EventLog(stateDirectory: scratch.path, name: "m", instance: "pod-a")
        let podB = try EventLog(stateDirectory: scratch.path, name: "m", instance: "pod-b")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        try podA.append(lines: [reward("e9", 3), reward("lost", 1)])
        try joiner.step(nowMilliseconds: 0)
        #expect(joiner.orphanCount == 2)
        try podB.append(lines: [decision("e9")])
        try podA.append(lines: [reward("e9", 1)])
        try joiner.step(nowMilliseconds: 5_000)
        #expect(joiner.orphanCount == 1 && joiner.pendingCount == 1)
        #expect(try joiner.step(nowMilliseconds: 15_000).joined == ["e9"])
        #expect(joinedLines(joiner).first?[member: "_label_cost"] == .number("-4.0"))
        let step = try joiner.step(nowMilliseconds: 60_000)
        #expect(step.droppedOrphans == 1 && joiner.orphanCount == 0)
    }

    @Test func stateSurvivesARestart() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        var joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        try log.append(lines: [decision("e1"), reward("e1", 1), decision("d", deferred: true), reward("orphan", 5)])
        try joiner.step(nowMilliseconds: 0)
        joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        #expect(joiner.pendingCount == 2 && joiner.orphanCount == 1)
        try log.append(lines: [reward("e1", 2), decision("orphan")])
        try joiner.step(nowMilliseconds: 1_000)
        joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        #expect(try joiner.step(nowMilliseconds: 11_000).joined == ["e1", "orphan"])
        #expect(joinedLines(joiner).map { $0[member: "_label_cost"]! } == [.number("-3.0"), .number("-5.0")])
        #expect(joiner.pendingCount == 1)  // the deferred one
    }

    /// A step that cannot write its joined file changes nothing: the next one reads the same lines once.
    @Test func failedStepIsUndone() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        try log.append(lines: [decision("e1"), reward("e1", 1)])
        try joiner.step(nowMilliseconds: 0)
        try log.append(lines: [reward("e1", 2), decision("e2")])
        let blocker = joiner.joinedDirectory + "/.1.dsjson.tmp"
        mkdir(blocker, 0o755)  // the temporary file cannot be created
        #expect(throws: EventLogError.self) { try joiner.step(nowMilliseconds: 10_000) }
        #expect(joiner.pendingCount == 1 && joiner.joinedCount == 0)
        rmdir(blocker)
        #expect(try joiner.step(nowMilliseconds: 10_000).joined == ["e1"])
        #expect(try joiner.step(nowMilliseconds: 20_000).joined == ["e2"])
        #expect(joinedLines(joiner).map { $0[member: "_label_cost"]! } == [.number("-3.0"), .number("-0.25")])
    }

    /// A crash after the joined file landed but before the join state did: the old state comes back.
    @Test func crashBetweenJoinedFileAndStateJoinsEachEventOnce() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        var joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        try log.append(lines: [decision("e1"), decision("e2"), reward("e1", 1)])
        try joiner.step(nowMilliseconds: 0)
        try log.append(lines: [decision("e3"), reward("e2", 2)])
        let statePath = joiner.modelDirectory + "/join-state.json"
        let before = readText(statePath)
        #expect(try joiner.step(nowMilliseconds: 10_000).joined == ["e1", "e2"])
        // Lose the state write; also leave the temporary file of a step that died before its rename.
        try LoopFiles.writeAtomically(Array(before.utf8), to: statePath)
        appendRaw("", to: joiner.joinedDirectory + "/.2.dsjson.tmp")
        try log.append(lines: [reward("e2", 7), decision("e4"), reward("e3", 3)])  // e2's is late now
        joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        #expect(joiner.joinedCount == 2)
        #expect(!LoopFiles.list(joiner.joinedDirectory).contains(".2.dsjson.tmp"))
        // e3 and e4 are read again from the old offsets, now: both wait rewardWait from here.
        #expect(try joiner.step(nowMilliseconds: 10_000).joined.isEmpty)
        #expect(try joiner.step(nowMilliseconds: 20_000).joined == ["e3", "e4"])
        let lines = joinedLines(joiner)
        #expect(ids(lines) == ["e1", "e2", "e3", "e4"])
        #expect(lines.map { $0[member: "_label_cost"]! } == [.number("-1.0"), .number("-2.0"), .number("-3.0"), .number("-0.25")])
        #expect(Joiner.joinedFiles(in: joiner.joinedDirectory) == [1, 2])
    }

    /// Random appends from two instances, steps, and crashes at every point of a step: every decision joined once.
    @Test func randomCrashesJoinEveryEventExactlyOnce() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        var random = SplitMix(state: 12)
        let logs = [try EventLog(stateDirectory: scratch.path, name: "m", instance: "a"),
                    try EventLog(stateDirectory: scratch.path, name: "m", instance: "b")]
        var joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        let statePath = joiner.modelDirectory + "/join-state.json"
        var decided: [String] = []
        var now: Int64 = 0
        for round in 0..<60 {
            for _ in 0..<random.below(4) {
                let id = "r\(round)-\(decided.count)"
                decided.append(id)
                try random.pick(logs).append(lines: [decision(id, chosen: 1 + random.below(3))])
            }
            for _ in 0..<random.below(3) where !decided.isEmpty {
                try random.pick(logs).append(lines: [reward(random.pick(decided), Double(random.below(3)))])
            }
            now += Int64(random.below(6_000))
            let before = readText(statePath)
            switch random.below(4) {
            case 0:  // crash before the step: nothing happened
                joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
            case 1:  // crash after the joined file, before the state
                try joiner.step(nowMilliseconds: now)
                if !before.isEmpty { try LoopFiles.writeAtomically(Array(before.utf8), to: statePath) } else { unlink(statePath) }
                joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
            default:
                try joiner.step(nowMilliseconds: now)
            }
        }
        try joiner.step(nowMilliseconds: now + 10_000)  // reads the last round if a crash skipped its step
        try joiner.step(nowMilliseconds: now + 20_000)
        let joined = ids(joinedLines(joiner))
        #expect(joined.count == decided.count)
        #expect(Set(joined) == Set(decided))
        #expect(joiner.joinedCount == decided.count && joiner.pendingCount == 0)
    }

    @Test(.enabled(if: vwAvailable)) func realVWReadsEveryJoinedLine() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        var random = SplitMix(state: 7)
        var expected = 0
        for step in 0..<4 {
            for i in 0..<8 {
                let id = "s\(step)-\(i)"
                let deferred = i == 7
                try log.append(lines: [decision(id, chosen: 1 + random.below(3), deferred: deferred, user: random.pick(["alice", "bob", "carol"]))])
                if random.chance(60) || deferred { try log.append(lines: [reward(id, Double(random.below(2)))]) }
                expected += 1
            }
            try log.append(lines: [decision("never-\(step)", deferred: true)])
            try joiner.step(nowMilliseconds: Int64(step) * 10_000)
        }
        try joiner.step(nowMilliseconds: 100_000)
        #expect(joiner.joinedCount == expected)
        // The joined files in name order, as the trainer feeds them to vw (vw takes one -d).
        let all = scratch.path + "/all.dsjson"
        let files = Joiner.joinedFiles(in: joiner.joinedDirectory).map { "'\(joiner.joinedDirectory)/\($0).dsjson'" }
        #expect(files.count > 1)
        #expect(system("cat \(files.joined(separator: " ")) > '\(all)'") == 0)
        let predictions = scratch.path + "/predictions.txt"
        let status = system("'\(vwPath)' --dsjson --cb_explore_adf -d '\(all)' --quiet -p '\(predictions)' >/dev/null 2>&1")
        #expect(status == 0)
        let printed = readText(predictions).split(separator: "\n").filter { !$0.isEmpty }
        #expect(printed.count == expected)
        #expect(printed.allSatisfy { $0.split(separator: ",").count == 3 })
    }
}

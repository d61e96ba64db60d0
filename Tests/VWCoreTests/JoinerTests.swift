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
    let settings = JoinSettings(rewardWait: .seconds(10), defaultReward: 0.25, orphanWait: .seconds(60), deferredWait: .seconds(100),
                                rewardRange: -10...10)

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

    @Test func severalRewardsAreSummedAndAllListed() throws {
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
        #expect(line[member: "o"] == .array([.object([("v", .number("1.0"))]), .object([("v", .number("2.0"))]), .object([("v", .number("0.5"))])]))
    }

    /// Two rewards of 1e308 once summed to +inf and trapped the joiner at every start: each reward and the sum
    /// are clipped to the reward range; `earliest` takes the first.
    @Test func rewardsAreClippedToTheRangeAndAggregatedAsConfigured() throws {
        for (aggregation, want) in [(RewardAggregation.sum, "-1.0"), (.earliest, "-0.25")] {
            let scratch = ScratchDirectory()
            defer { scratch.remove() }
            let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
            let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: JoinSettings(
                rewardWait: .seconds(10), rewardRange: -1...1, aggregation: aggregation))
            try log.append(lines: [decision("e1"), reward("e1", 0.25), reward("e1", 1e308), reward("e1", 1e308)])
            appendRaw(#"{"EventId":"e1","v":1e999,"Timestamp":"x"}"# + "\n", to: scratch.path + "/m/log/a-1.dsjson")
            let first = try joiner.step(nowMilliseconds: 0)
            #expect(first.skipped.map(\.kind) == [.reward])
            try joiner.step(nowMilliseconds: 10_000)
            let line = try #require(joinedLines(joiner).first)
            #expect(line[member: "_label_cost"] == .number(want))
            #expect(line[member: "o"]?.arrayValue?.count == 3)
        }
    }

    /// An explorer (or a crafted segment) logging a tiny probability: clipped to min_probability for training, counted;
    /// a decision whose `p` is not a distribution, or whose chosen action has probability 0, is skipped.
    @Test func tinyProbabilitiesAreClippedAndInvalidPMFsSkipped() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        func logged(_ id: String, _ p: [Double]) -> [UInt8] {
            EventLine.decision(eventId: id, timestampMilliseconds: 0, actions: [1, 2, 3], probabilities: p,
                               context: context(user: "a"), modelVersion: "v")
        }
        try log.append(lines: [logged("tiny", [1e-300, 0.5, 0.5]), logged("sum", [0.5, 0.2, 0.1]), logged("zero", [0, 0.5, 0.5]),
                               logged("ok", [0.9, 0.05, 0.05])])
        let first = try joiner.step(nowMilliseconds: 0)
        #expect(first.skipped.map(\.kind) == [.decision, .decision])
        let step = try joiner.step(nowMilliseconds: 10_000)
        #expect(step.joined == ["tiny", "ok"] && step.clippedProbabilities == 1)
        #expect(joinedLines(joiner).map { $0[member: "_label_probability"]! } == [.number("0.0001"), .number("0.9")])
    }

    /// With a range that admits 1e308, two such rewards saturate (never +inf), and the join restores its own state.
    @Test func hugeRewardSumsSaturateAndTheStateRestores() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let wide = JoinSettings(rewardWait: .seconds(10), rewardRange: -1e308...1e308)
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        var joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: wide)
        try log.append(lines: [decision("e1"), reward("e1", 1e308), reward("e1", 1e308), reward("o", 1e308), reward("o", 1e308)])
        try joiner.step(nowMilliseconds: 0)
        joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: wide)
        #expect(joiner.restoreProblem == nil)
        #expect(try joiner.step(nowMilliseconds: 10_000).joined == ["e1"])
        #expect(joinedLines(joiner).first?[member: "_label_cost"] == .number("-1e+308"))
    }

    /// Beyond max_orphans / max_pending the oldest go, counted; memory stays bounded.
    @Test func capsDropTheOldestAndCountThem() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: JoinSettings(
            rewardWait: .seconds(10), maxPending: 3, maxOrphans: 3))
        try log.append(lines: (1...5).map { reward("o\($0)", 1) } + (1...4).map { decision("d\($0)") })
        let step = try joiner.step(nowMilliseconds: 0)
        #expect(step.droppedOrphansOverCap == 2 && joiner.orphanCount == 3)
        #expect(step.droppedPendingOverCap == 1 && joiner.pendingCount == 3)
        // The newest stay: o3..o5's rewards join their decisions when those come (o1's were dropped).
        try log.append(lines: [decision("o1"), decision("o5")])
        #expect(try joiner.step(nowMilliseconds: 1).droppedPendingOverCap == 2)
        #expect(try joiner.step(nowMilliseconds: 20_000).joined == ["d4", "o1", "o5"])
        let costs = joinedLines(joiner).map { $0[member: "_label_cost"]! }
        #expect(costs == [.number("0.0"), .number("0.0"), .number("-1.0")])
    }

    /// A join state that cannot be used is moved aside and reported; every event in the log is joined once.
    @Test func aCorruptStateIsMovedAsideAndNothingIsJoinedTwice() throws {
        for garbage in ["{}", "{\"v\":1,\"step\":1", String(repeating: "x", count: 10), #"{"v":1,"step":1,"next_file":1,"next_order":0,"joined":0,"offsets":{},"pending":[["00",0,0,"a-1.dsjson",0,1,0,null,0,0.0,0.0,[]]],"orphans":[],"removed":[]}"#] {
            let scratch = ScratchDirectory()
            defer { scratch.remove() }
            let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
            var joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
            try log.append(lines: [decision("e1"), decision("e2")])
            try joiner.step(nowMilliseconds: 0)
            #expect(try joiner.step(nowMilliseconds: 10_000).joined == ["e1", "e2"])
            try log.append(lines: [decision("e3")])
            try joiner.step(nowMilliseconds: 10_000)
            // The snapshot is garbage and the journal gone (or garbage too).
            let snapshot = scratch.path + "/m/join-state.json"
            unlink(snapshot)
            appendRaw(garbage + "\n", to: snapshot)
            unlink(scratch.path + "/m/join-journal.jsonl")
            appendRaw(garbage + "\n", to: scratch.path + "/m/join-journal.jsonl")
            joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
            #expect(joiner.restoreProblem != nil)
            #expect(LoopFiles.list(scratch.path + "/m").contains { $0.hasPrefix("join-state.json.corrupt-") })
            try joiner.step(nowMilliseconds: 30_000)
            #expect(try joiner.step(nowMilliseconds: 50_000).joined == ["e3"])
            #expect(ids(joinedLines(joiner)) == ["e1", "e2", "e3"])
        }
    }

    /// A FIFO or a directory named like a segment, and a symlink for `joined/`: refused, reported, never followed
    /// or blocked on.
    @Test func theStateDirectoryCannotBeTurnedAgainstTheHost() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        try log.append(lines: [decision("e1")])
        #expect(mkfifo(scratch.path + "/m/log/evil-1.dsjson", 0o644) == 0)
        #expect(mkdir(scratch.path + "/m/log/dir-1.dsjson", 0o755) == 0)
        let joiner = try Joiner(stateDirectory: scratch.path, name: "m", settings: settings)
        let step = try joiner.step(nowMilliseconds: 0)
        #expect(step.skipped.filter { $0.kind == .notRegular }.count == 2)
        #expect(try joiner.step(nowMilliseconds: 10_000).joined == ["e1"])
        // Reported once each, not every round.
        #expect(try joiner.step(nowMilliseconds: 10_001).skipped.isEmpty)
        // `joined` as a symlink to another directory: refused.
        let elsewhere = scratch.path + "/elsewhere"
        mkdir(elsewhere, 0o755)
        appendRaw("keep", to: elsewhere + "/precious")
        mkdir(scratch.path + "/n", 0o755)
        symlink(elsewhere, scratch.path + "/n/joined")
        #expect(throws: EventLogError.self) { try Joiner(stateDirectory: scratch.path, name: "n", settings: settings) }
        #expect(LoopFiles.list(elsewhere) == ["precious"])
    }

    /// An unterminated last line is read once, not again at every step, and a line over the limit is skipped.
    @Test func anUnterminatedTailIsNotReadAgainWhole() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        try log.append(lines: [decision("e1")])
        var reader = try LogReader(logDirectory: scratch.path + "/m/log")
        reader.maxLineBytes = 1000
        #expect(reader.readNew().records.count == 1)
        let segment = scratch.path + "/m/log/" + log.currentSegment.fileName
        appendRaw(String(repeating: "y", count: 600), to: segment)
        var before = reader.bytesRead
        #expect(reader.readNew().records.isEmpty)
        #expect(reader.bytesRead - before == 600)
        #expect(reader.readNew().records.isEmpty && reader.bytesRead - before == 600)  // nothing new: nothing read
        appendRaw(String(repeating: "y", count: 600), to: segment)  // now over the limit: skipped as it streams
        before = reader.bytesRead
        #expect(reader.readNew().records.isEmpty)
        #expect(reader.bytesRead - before == 600)
        appendRaw("\n", to: segment)
        let batch = reader.readNew()
        #expect(batch.skipped.map(\.kind) == [.tooLong])
        try log.append(lines: [decision("e2")])
        #expect(reader.readNew().records.map(\.eventId) == ["e2"])
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

    /// A step that cannot write its joined file keeps its due decisions (still counted as pending): the next one writes them once.
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
        #expect(joiner.pendingCount == 2 && joiner.joinedCount == 0)
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

/// `Joiner.forEachLine`, the snapshot's and the journal's reader: every complete line once, in order, across its
/// 4 MiB reads (lines longer than a read, a newline at a read's last byte), and the offset after the last one.
struct JoinerLineReaderTests {
    @Test func linesAcrossReadsComeWholeAndInOrder() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let chunk = 4 << 20
        let sizes = [3, chunk - 4, 0, 9 << 20, 17, chunk - 1, 2 * chunk + 5, 1]
        var file: [UInt8] = []
        for (i, size) in sizes.enumerated() {
            file += [UInt8](repeating: UInt8(ascii: "a") + UInt8(i), count: size)
            file.append(0x0A)
        }
        let complete = file.count
        file += Array("torn".utf8)  // a last record without its newline
        let path = scratch.path + "/lines"
        let fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(file.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == file.count)
        var got: [(count: Int, byte: UInt8?, uniform: Bool)] = []
        let end = try Joiner.forEachLine(fd, path: path) { line in
            got.append((line.count, line.first, line.allSatisfy { $0 == line.first }))
        }
        #expect(end == complete)
        #expect(got.map(\.count) == sizes)
        let uniform = got.allSatisfy { $0.uniform }
        let ordered = got.enumerated().allSatisfy { i, line in line.count == 0 || line.byte == UInt8(ascii: "a") + UInt8(i) }
        #expect(uniform)
        #expect(ordered)
    }
}

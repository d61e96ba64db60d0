#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VWCore

/// Retention's view of `joined/`: learned from the joiner's numbers without listing the directory at each pass,
/// listed again every `rescanSeconds`, and offered for deletion a bounded number at a time.
struct JoinedFileIndexTests {
    private static func write(_ directory: StateDirectory, _ number: Int, bytes: Int) {
        appendRaw(String(repeating: "x", count: bytes), to: directory.path + "/\(number).dsjson")
    }

    @Test func newFilesAreProbedByNumberAndTheDirectoryIsListedOnlyEveryRescan() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let joined = try StateDirectory.root(scratch.path).directory("m").directory("joined")
        for n in 1...5 { Self.write(joined, n, bytes: n) }
        var index = JoinedFileIndex()
        index.refresh(joined, upTo: 6, now: 1_000)
        #expect(index.bytes == 15)
        for n in 6...8 { Self.write(joined, n, bytes: 10) }
        index.refresh(joined, upTo: 9, now: 1_001)
        #expect(index.bytes == 45)
        // Between listings, what another process did is not seen: a file removed behind its back, one named out of order.
        unlink(joined.path + "/7.dsjson")
        Self.write(joined, 100, bytes: 1_000)
        index.refresh(joined, upTo: 9, now: 1_002)
        #expect(index.bytes == 45)
        index.refresh(joined, upTo: 9, now: 1_000 + JoinedFileIndex.rescanSeconds)
        #expect(index.bytes == 35 + 1_000)
        var numbers: [Int] = []
        index.forEach { numbers.append($0.number); return true }
        #expect(numbers == [1, 2, 3, 4, 5, 6, 8, 100])
        // A clock stepped back lists again.
        unlink(joined.path + "/100.dsjson")
        index.refresh(joined, upTo: 9, now: 900)
        #expect(index.bytes == 35)
    }

    @Test func removedFilesAreForgottenInAnyOrderAcrossCompactions() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let joined = try StateDirectory.root(scratch.path).directory("m").directory("joined")
        let count = 12_000
        var index = JoinedFileIndex()
        index.refresh(joined, upTo: nil, now: 0)
        for n in 1...count { Self.write(joined, n, bytes: 1) }
        index.refresh(joined, upTo: count + 1, now: 1)
        #expect(index.bytes == count)
        var random = SplitMix(seed: 2)
        var left = Set(1...count)
        // Mostly the oldest first (as retention deletes), some from the middle.
        for step in 0..<10_000 {
            let number = step % 4 == 0 ? Int.random(in: 1...count, using: &random) : left.min()!
            index.remove(number)
            left.remove(number)
        }
        index.remove(count + 5)  // never known: nothing happens
        #expect(index.bytes == left.count)
        var numbers: [Int] = []
        index.forEach { numbers.append($0.number); return true }
        #expect(numbers == left.sorted())
    }

    @Test func aPassOffersAtMostItsLimitOfJoinedFilesOldestFirst() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let model = try StateDirectory.root(scratch.path).directory("m")
        let joined = try model.directory("joined")
        for n in 1...10 { Self.write(joined, n, bytes: 100) }
        var index = JoinedFileIndex()
        // Past their retention (30 days by default): every one, up to the limit.
        let later = 40 * 86_400 + Int(time(nil))
        var usage = Retention.scan(model: model, joiner: nil, joined: &index, loop: LoopConfig(), learns: false, now: later, joinedLimit: 4)
        #expect(usage.bytes[.joined] == 1_000 && usage.moreDeletable && usage.deletable.allSatisfy(\.expired))
        #expect(usage.deletable.map(\.name) == ["1.dsjson", "2.dsjson", "3.dsjson", "4.dsjson"])
        for file in usage.deletable {
            file.directory.remove(file.name)
            index.remove(Int(file.name.dropLast(".dsjson".count))!)
        }
        usage = Retention.scan(model: model, joiner: nil, joined: &index, loop: LoopConfig(), learns: false, now: later, joinedLimit: 6)
        #expect(usage.bytes[.joined] == 600 && !usage.moreDeletable && usage.deletable.count == 6)
        // Within their retention, for the budget only: a 64th of the limit.
        let now = Int(time(nil))
        usage = Retention.scan(model: model, joiner: nil, joined: &index, loop: LoopConfig(), learns: false, now: now, joinedLimit: 128)
        #expect(usage.deletable.map(\.name) == ["5.dsjson", "6.dsjson"] && usage.moreDeletable && !usage.deletable[0].expired)
        // Only what the learner has learned is deletable, when it learns here.
        let learned = LearnState(base: "b", modelVersion: "b", position: 7, learnedEvents: 0, updates: 1)
        try model.writeAtomically(learned.serialized(), to: "learn-state.json")
        usage = Retention.scan(model: model, joiner: nil, joined: &index, loop: LoopConfig(), learns: true, now: later)
        #expect(usage.deletable.map(\.name) == ["5.dsjson", "6.dsjson", "7.dsjson"] && !usage.moreDeletable)
    }
}

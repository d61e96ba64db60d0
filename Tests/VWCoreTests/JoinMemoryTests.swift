import CSpawn
import Foundation
import Testing
@testable import VWCore

/// What the join's tables cost in memory (SPEC §8.9: the default caps, a million pending decisions and a million
/// orphans, within a few tens of MB each), measured as the bytes malloc has handed out (so what the allocator keeps
/// in its free lists does not blur it), and what a client cannot make them cost by sending more rewards per event.
///
/// The heap is the whole process's: the test runs alone, in its own `swift test` run (`make unit` does it with
/// VWFCGI_MEMORY_TESTS=1), never beside other suites.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["VWFCGI_MEMORY_TESTS"] == "1", "measures the process's heap: run alone"))
struct JoinMemoryTests {
    private static let n = 1_000_000

    private static func heap() -> Int { Int(cspawn_heap_bytes_in_use()) }

    private static func keys(_ n: Int, seed: UInt64) -> [EventKey] {
        var random = SplitMix(seed: seed)
        return (0..<n).map { _ in EventKey(value: random.next()) }
    }

    private static func tally(_ rewards: Int) -> RewardTally {
        var tally = RewardTally()
        for r in 0..<rewards { tally.add(Double(r) / 8, .sum) }
        return tally
    }

    private static func decision(_ i: Int, rewards: Int) -> PendingDecision {
        PendingDecision(order: i, seen: Int64(i / 1_000), segment: 1, offset: i * 700, length: 700, deferred: i % 10 == 0,
                        learn: false, activated: nil, rewards: tally(rewards))
    }

    /// About 49-55 bytes a pending decision (run to run) and 34 an orphan: they were 66 and 42 with 128-bit keys and
    /// the first reward aside. Two rewards for every pending decision, or 64 for every orphan, add at most the lists'
    /// budget (they added 98 and 595 bytes an event).
    @Test func aMillionOfEachTakeAFewTensOfMBWhateverTheRewardsPerEvent() {
        let keys = Self.keys(Self.n, seed: 7)
        let before = Self.heap()
        var pending = PendingTable()
        for (i, key) in keys.enumerated() { pending[key] = Self.decision(i, rewards: 1) }
        let afterPending = Self.heap()
        var orphans = OrphanTable()
        for (i, key) in keys.enumerated() { orphans[key] = OrphanEvent(seen: Int64(i / 1_000), activated: nil, rewards: Self.tally(1)) }
        let afterOrphans = Self.heap()
        for key in keys {
            var d = pending[key]!
            d.rewards.add(0.5, .sum)
            pending[key] = d
        }
        let afterTwoRewards = Self.heap()
        for key in keys {
            var e = orphans[key]!
            for _ in 0..<63 { e.rewards.add(0.25, .sum) }
            orphans[key] = e
        }
        let afterManyRewards = Self.heap()
        let perPending = Double(afterPending - before) / Double(Self.n), perOrphan = Double(afterOrphans - afterPending) / Double(Self.n)
        print("JoinMemoryTests: \(perPending) B a pending decision, \(perOrphan) B an orphan; two rewards each: +\(afterTwoRewards - afterOrphans) B, 64 rewards each: +\(afterManyRewards - afterTwoRewards) B")
        #expect(perPending < 60)
        #expect(perOrphan < 38)
        #expect(afterTwoRewards - afterOrphans < 8 << 20)
        #expect(afterManyRewards - afterTwoRewards < 8 << 20)
        // Every count and value stays exact.
        let d = pending[keys[12_345]], e = orphans[keys[54_321]]
        #expect(d?.rewards.count == 2 && d?.rewards.value == 0.5 && e?.rewards.count == 64 && e?.rewards.value == 63 * 0.25)
        withExtendedLifetime((pending, orphans)) {}
    }

    /// Decisions joined from the front while as many new ones arrive, twice over: dead entries are compacted away
    /// before they are a fifth of the table, so the table stays within a quarter of its size when full.
    @Test func churnKeepsThePendingTableWithinAQuarterOfItsSize() {
        let keys = Self.keys(Self.n * 3, seed: 11)
        let before = Self.heap()
        var pending = PendingTable()
        for i in 0..<Self.n { pending[keys[i]] = Self.decision(i, rewards: 1) }
        let full = Self.heap() - before
        var peak = full
        for i in Self.n..<keys.count {
            pending[keys[i]] = Self.decision(i, rewards: 1)
            if let (oldest, _) = pending.oldestPlain() { pending[oldest] = nil } else if let oldest = pending.oldest() { pending[oldest] = nil }
            if i % 10_000 == 0 { peak = max(peak, Self.heap() - before) }
        }
        print("JoinMemoryTests: churn peak \(peak) B, full \(full) B")
        #expect(pending.count == Self.n)
        #expect(Double(peak) < Double(full) * 1.3)
        withExtendedLifetime(pending) {}
    }
}

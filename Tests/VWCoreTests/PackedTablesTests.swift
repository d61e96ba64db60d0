import Testing
@testable import VWCore

/// `PendingTable` and `OrphanTable` against a dictionary doing the same thing the plain way: random inserts,
/// updates, removals (enough to compact many times), and the arrival-order scans the joiner relies on.
@Suite struct PackedTablesTests {
    private static func key(_ n: Int) -> EventKey { EventKey("event-\(n)") }

    private static func decision(order: Int, _ random: inout SplitMix) -> PendingDecision {
        var rewards = RewardTally()
        for _ in 0..<Int.random(in: 0...2, using: &random) {
            rewards.add(Double.random(in: -1...1, using: &random), Bool.random(using: &random) ? .sum : .earliest)
        }
        let deferred = Bool.random(using: &random)
        return stored(PendingDecision(
            order: order, seen: Int64(order * 10), segment: Int32.random(in: 0...3, using: &random), offset: Int.random(in: 0..<1 << 40, using: &random),
            length: Int32.random(in: 1...1 << 20, using: &random), deferred: deferred, learn: false,
            activated: deferred && Bool.random(using: &random) ? Int64(order * 10 + 5) : nil, rewards: rewards
        ))
    }

    /// `decision` as the table keeps it: one time, the activation's for an activated deferred decision (its reading
    /// time is not needed after it), the reading time otherwise (a plain decision's activation time is not needed).
    private static func stored(_ decision: PendingDecision) -> PendingDecision {
        var d = decision
        if let activated = d.activated {
            if d.deferred { d.seen = activated } else { d.activated = d.seen }
        }
        return d
    }

    /// The reference's oldest live decision of a kind, by order.
    private static func oldest(_ reference: [EventKey: PendingDecision], where include: (PendingDecision) -> Bool) -> EventKey? {
        reference.filter { include($0.value) }.min { $0.value.order < $1.value.order }?.key
    }

    @Test(arguments: [1, 2, 3])
    func pendingTableAgreesWithADictionary(seed: UInt64) {
        var random = SplitMix(seed: seed)
        var table = PendingTable()
        var reference: [EventKey: PendingDecision] = [:]
        var nextOrder = 0
        var live: [EventKey] = []  // in no order; removal swaps the last in
        var position: [EventKey: Int] = [:]
        func forget(_ key: EventKey) {
            guard let at = position.removeValue(forKey: key) else { return }
            let last = live.removeLast()
            if at < live.count { live[at] = last; position[last] = at }
        }
        for step in 0..<40_000 {
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<5:  // a new decision, in arrival order
                let key = Self.key(nextOrder)
                let d = Self.decision(order: nextOrder, &random)
                table[key] = d
                reference[key] = d
                position[key] = live.count
                live.append(key)
                nextOrder += 1
            case 5, 6:  // a reward or an activation: updated in place
                guard let key = live.randomElement(using: &random), var d = reference[key] else { continue }
                d.rewards.add(0.5, step % 2 == 0 ? .sum : .earliest)
                if d.activated == nil { d.activated = Int64(step) }
                d = Self.stored(d)
                table[key] = d
                reference[key] = d
            default:  // joined, dropped or expired: the oldest of a kind, or any
                let key: EventKey?
                switch step % 3 {
                case 0: key = table.oldestPlain()?.key
                case 1: key = table.oldestUnactivatedDeferred()?.key
                default: key = live.randomElement(using: &random)
                }
                guard let key else { continue }
                table[key] = nil
                reference[key] = nil
                forget(key)
            }
            if step % 997 == 0 || step > 39_900 {
                #expect(table.count == reference.count)
                #expect(table.oldestPlain()?.key == Self.oldest(reference) { !$0.deferred })
                #expect(table.oldestUnactivatedDeferred()?.key == Self.oldest(reference) { $0.deferred && $0.activated == nil })
                #expect(table.oldest() == Self.oldest(reference) { _ in true })
            }
        }
        var seen: [EventKey: PendingDecision] = [:]
        table.forEach { key, decision in seen[key] = decision }
        #expect(seen == reference)
        for (key, decision) in reference { #expect(table[key] == decision) }
        #expect(table[Self.key(nextOrder)] == nil)
    }

    /// A restore replays records whose keys come in any order: the scans still go by order.
    @Test func pendingTableSortsWhatARestoreInsertedOutOfOrder() {
        var random = SplitMix(seed: 9)
        var table = PendingTable()
        var orders = Array(0..<5_000)
        orders.shuffle(using: &random)
        for n in orders { table[Self.key(n)] = Self.decision(order: n, &random) }
        var previous = -1
        while let (key, decision) = table.oldestPlain() {
            #expect(decision.order > previous)
            previous = decision.order
            table[key] = nil
        }
        previous = -1
        while let key = table.oldest(), let decision = table[key] {
            #expect(decision.order > previous && decision.deferred)
            previous = decision.order
            table[key] = nil
        }
        #expect(table.isEmpty)
        // A decision replaced by a later one of the same key (joined, then decided again) moves to the end.
        var first = Self.decision(order: 1, &random)
        first.deferred = false
        var again = first
        again.order = 9_000
        table[Self.key(7)] = first
        table[Self.key(8)] = Self.decision(order: 5_000, &random)
        table[Self.key(7)] = again
        #expect(table.oldest() == Self.key(8))
        #expect(table[Self.key(7)]?.order == 9_000)
    }

    @Test func orphanTableAgreesWithADictionary() {
        var random = SplitMix(seed: 4)
        var table = OrphanTable()
        var reference: [EventKey: OrphanEvent] = [:]
        var arrival: [EventKey] = []
        for step in 0..<30_000 {
            let n = Int.random(in: 0..<6_000, using: &random)
            let key = Self.key(n)
            if Int.random(in: 0..<3, using: &random) == 0 {
                table.removeValue(forKey: key)
                reference[key] = nil
                arrival.removeAll { $0 == key }
            } else {
                var event = reference[key] ?? OrphanEvent(seen: Int64(step), activated: nil)
                event.rewards.add(Double(n % 7) / 7, step % 3 == 0 ? .earliest : .sum)
                if reference[key] == nil { arrival.append(key) }
                table[key] = event
                reference[key] = event
            }
            if step % 1_009 == 0 {
                #expect(table.count == reference.count)
                #expect(table.oldest?.key == arrival.first)
            }
        }
        for (key, event) in reference { #expect(table[key] == event) }
        #expect(Set(table.keys) == Set(reference.keys))
    }

    /// Times and orders are 32-bit offsets from a moving base: exact while the live values span less than 2^32 - 1,
    /// whichever way they move; beyond that the smallest read as younger (clipped), never anything else.
    @Test func offsetColumnIsExactWithinItsRangeAndClipsTheOldestBeyondIt() {
        let live: [UInt32] = []
        var column = Offset32Column()
        let values: [Int64?] = [1_700_000_000_000, nil, 1_700_000_000_000 - 5, 1_700_000_000_000 + 4_000_000_000, 3, 1 << 49]
        for value in values.prefix(4) { column.append(value, meta: live) }
        for (entry, value) in values.prefix(4).enumerated() { #expect(column[entry] == value) }
        column.set(1, to: 1_700_000_000_000 - 90_000_000, meta: live)  // a clock stepped back a day
        let dayBefore: Int64 = 1_700_000_000_000 - 90_000_000, later: Int64 = 1_700_000_000_000 + 4_000_000_000
        #expect(column[1] == dayBefore)
        #expect(column[3] == later)
        // Dead entries do not hold the base back.
        var meta = [UInt32](repeating: 0, count: 4)
        meta[0] = EventKeyIndex.dead; meta[1] = EventKeyIndex.dead; meta[2] = EventKeyIndex.dead
        column.set(0, to: nil, meta: meta)
        column.append(1_700_000_000_000 + 8_000_000_000, meta: meta)
        let muchLater: Int64 = 1_700_000_000_000 + 8_000_000_000
        #expect(column[3] == later)
        #expect(column[4] == muchLater)
        #expect(column[0] == nil)
        // A span beyond the range: the newest is exact, the older is clipped upwards.
        column.append(1 << 49, meta: meta + [0])
        #expect(column[5] == 1 << 49)
        let clipped = column[3] ?? 0
        #expect(clipped > later && clipped < 1 << 49)
        #expect(column[0] == nil)
    }

    /// A tally's list is kept aside only when its count and value do not say it (several rewards, or one -0), and
    /// for at most `ListedRewards.budget` rewards across the table: beyond, an entry lists none, and its count and
    /// value stay exact; a removed entry gives its share back.
    @Test func listedRewardsKeepEveryTallyExactlyWithinTheBudget() {
        var table = OrphanTable()
        var tallies: [RewardTally] = []
        for (rewards, aggregation) in [([], .sum), ([0.25], .sum), ([-0.0], .sum), ([0.5, -1], .sum), ([0.5, -1], .earliest),
                                       ([1, 1, 1], .sum), ([Double.leastNonzeroMagnitude], .earliest)] as [([Double], RewardAggregation)] {
            var tally = RewardTally()
            for r in rewards { tally.add(r, aggregation) }
            tallies.append(tally)
        }
        for (n, tally) in tallies.enumerated() { table[Self.key(n)] = OrphanEvent(seen: Int64(n), activated: nil, rewards: tally) }
        for (n, tally) in tallies.enumerated() {
            let stored = table[Self.key(n)]?.rewards
            #expect(stored == tally)
            #expect(stored?.value.bitPattern == tally.value.bitPattern && stored?.listed.map(\.bitPattern) == tally.listed.map(\.bitPattern))
        }
        #expect(tallies[4].value == 0.5 && tallies[5].value == 3 && tallies[5].listed == [1, 1, 1])
        // Fill the budget with lists of 4 (3 + 1 from the -0 and the lists above), then one more.
        var pending = PendingTable()
        let full = ListedRewards.budget / 4
        var random = SplitMix(seed: 3)
        func decision(_ n: Int, rewards: Int) -> PendingDecision {
            var d = Self.decision(order: n, &random)
            d.rewards = RewardTally()
            for r in 0..<rewards { d.rewards.add(Double(r), .sum) }
            return d
        }
        for n in 0..<full { pending[Self.key(n)] = decision(n, rewards: 4) }
        pending[Self.key(full)] = decision(full, rewards: 2)
        let over = pending[Self.key(full)]?.rewards
        #expect(over?.count == 2 && over?.value == 1 && over?.listed == [])
        #expect(pending[Self.key(0)]?.rewards.listed == [0, 1, 2, 3])
        // More rewards for an unlisted event are counted, never listed (the list would not start with the first).
        var more = pending[Self.key(full)]!
        more.rewards.add(5, .sum)
        pending[Self.key(full)] = more
        #expect(pending[Self.key(full)]?.rewards == { var t = RewardTally(); t.count = 3; t.value = 6; return t }())
        // One reward is its value: no list needed, whatever the budget.
        pending[Self.key(full + 1)] = decision(full + 1, rewards: 1)
        #expect(pending[Self.key(full + 1)]?.rewards.listed == [0])
        // A removed entry's list frees the budget.
        pending[Self.key(0)] = nil
        pending[Self.key(full + 2)] = decision(full + 2, rewards: 4)
        #expect(pending[Self.key(full + 2)]?.rewards.listed == [0, 1, 2, 3])
    }

    /// A version-1 record (128-bit keys, tallies of count, first, sum and the rest) still restores: the key is its
    /// first 64 bits, the value the sum, the list the first and the rest.
    @Test func aVersionOneRecordRestores() throws {
        let key = EventKey("e1")
        let long = key.hex + "0123456789abcdef"
        let line = """
            {"v":1,"step":3,"next_file":2,"next_order":5,"joined":1,"offsets":{"a-1.dsjson":300},\
            "pending":[["\(long)",4,1000,"a-1.dsjson",200,100,0,null,2,0.5,1.5,[1]]],\
            "orphans":[["\(EventKey("e2").hex)0000000000000000",900,900,1,-1,-1,[]]],"removed":[]}
            """
        var state = JoinState()
        try state.apply(Array(line.utf8))
        let decision = state.pending[key]
        #expect(decision?.order == 4 && decision?.offset == 200 && decision?.length == 100)
        #expect(decision?.rewards.value == 1.5 && decision?.rewards.listed == [0.5, 1] && decision?.rewards.count == 2)
        let orphan = state.orphans[EventKey("e2")]
        #expect(orphan?.rewards.value == -1 && orphan?.rewards.listed == [-1] && orphan?.activated == 900)
        // Written back as version 2.
        let record = String(decoding: state.record(offsets: [:], keys: [key]), as: UTF8.self)
        #expect(record.contains("\"v\":2") && record.contains("[\"\(key.hex)\",4,1000,\"a-1.dsjson\",200,100,0,null,2,1.5,[0.5,1.0]]"))
    }

    /// The snapshot is written as records of about a piece each (never held whole): applied in order onto an empty
    /// state, they restore it exactly.
    @Test func aSnapshotInPiecesRestoresTheTables() throws {
        var random = SplitMix(seed: 5)
        var state = JoinState()
        state.offsets = ["a-1.dsjson": 120, "a-2.dsjson": 7]
        for name in ["a-1.dsjson", "a-2.dsjson", "a-3.dsjson", "a-4.dsjson"] { _ = state.segment(name) }
        for n in 0..<3_000 {
            state.pending[Self.key(n)] = Self.decision(order: n, &random)
            state.nextOrder = n + 1
        }
        for n in 3_000..<5_000 {
            var event = OrphanEvent(seen: Int64(n), activated: n % 3 == 0 ? Int64(n) : nil)
            for _ in 0..<(n % 3) { event.rewards.add(Double(n % 5) / 4, .sum) }
            state.orphans[Self.key(n)] = event
        }
        state.step = 17
        var pieces: [[UInt8]] = []
        state.snapshot(piece: 4_096) { (piece: [UInt8]) in pieces.append(piece) }
        #expect(pieces.count > 10)
        var restored = JoinState()
        for piece in pieces {
            #expect(piece.count < 4_096 + 512 && piece.last == 0x0A && piece.dropLast().firstIndex(of: 0x0A) == nil)
            try restored.apply(piece.dropLast())
        }
        #expect(restored.pending.count == 3_000 && restored.orphans.count == 2_000)
        #expect(restored.step == 17 && restored.nextOrder == 3_000 && restored.offsets == state.offsets)
        let keys = state.pending.keys + state.orphans.keys
        #expect(restored.record(offsets: [:], keys: keys) == state.record(offsets: [:], keys: keys))
        // An empty state is one record.
        pieces = []
        JoinState().snapshot { (piece: [UInt8]) in pieces.append(piece) }
        #expect(pieces.count == 1)
    }
}

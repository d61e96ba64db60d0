/// Decisions waiting to be joined, by event key, in order of arrival, in about 60 bytes each (SPEC §8.9: one
/// million pending decisions, the default `max_pending`, take about 60 MB; a dictionary of keys and
/// ``PendingDecision`` values with the queues that found the due ones took about 220 bytes each).
///
/// Entries are parallel arrays in `order` (the join's arrival order), so the oldest is at the front and the due
/// decisions are found by two cursors, not queues: ``oldestPlain()`` (decisions that wait for their rewards) and
/// ``oldestUnactivatedDeferred()`` (deferred decisions that wait for an activation). An ``EventKeyIndex`` finds an
/// entry by its key (16 bytes and a slot). The rest is packed: the order and the two times as 32-bit offsets
/// (``Offset32Column``), the segment and offset in one word (24 and 40 bits: a larger value is stored clipped, so the
/// line read back is not the decision's and the join skips it, counted, by its event-id check), the length, the sum
/// of the rewards and a meta word. The first reward is the sum unless the entry got several rewards (or a -0): those
/// keep the first and the rest aside. A removed entry is marked dead; dead entries are compacted away once they are
/// as many as the live ones. Entries inserted out of order (a restore replays records whose keys come in any order)
/// are sorted before the next scan.
struct PendingTable: Sendable {
    private var index = EventKeyIndex()
    private var order = Offset32Column()
    private var seen = Offset32Column()
    /// Absent: not activated.
    private var activated = Offset32Column()
    /// The segment (high 24 bits) and the byte offset in it (low 40 bits).
    private var position: [UInt64] = []
    private var length: [Int32] = []
    private var sum: [Double] = []
    /// Bit 31: dead; bit 30: deferred; bit 29: `:learn`; bits 0-28: the number of rewards (saturating).
    private var meta: [UInt32] = []
    /// The first reward and the rewards after it, of entries whose first reward is not their sum, by entry number.
    private var aside: [Int: RewardsAside] = [:]
    /// Entries before `head` are dead; before `plainCursor` dead or deferred; before `deferredCursor` dead, plain or
    /// activated (an activation is never taken back, a decision never changes kind).
    private var head = 0
    private var plainCursor = 0
    private var deferredCursor = 0
    /// Whether the entries are in increasing `order`, and the order of the last inserted.
    private var sorted = true
    private var lastOrder: Int?
    private(set) var count = 0

    private static let dead = EventKeyIndex.dead
    private static let deferredBit: UInt32 = 1 << 30
    private static let learnBit: UInt32 = 1 << 29
    private static let countMask: UInt32 = (1 << 29) - 1

    var isEmpty: Bool { count == 0 }

    subscript(key: EventKey) -> PendingDecision? {
        get { index.locate(key).map { decision(at: $0.index) } }
        set {
            guard let newValue else {
                removeValue(forKey: key)
                return
            }
            if let entry = index.locate(key)?.index {
                if order[entry] == Int64(newValue.order) { return store(newValue, at: entry) }
                removeValue(forKey: key)
            }
            insert(key, newValue)
        }
    }

    /// Removes `key`'s decision.
    mutating func removeValue(forKey key: EventKey) {
        guard let (slot, entry) = index.locate(key) else { return }
        index.remove(slot: slot)
        meta[entry] |= Self.dead
        aside[entry] = nil
        count -= 1
        while head < meta.count, meta[head] & Self.dead != 0 { head += 1 }
        let deadEntries = meta.count - count
        if deadEntries >= 4096 && deadEntries > count { compact() }
    }

    /// The oldest decision (the first to go beyond `max_pending`).
    mutating func oldest() -> EventKey? {
        sortIfNeeded()
        return head < meta.count ? index.key(at: head) : nil
    }

    /// The oldest decision that waits for its rewards (not deferred).
    mutating func oldestPlain() -> (key: EventKey, decision: PendingDecision)? {
        sortIfNeeded()
        while plainCursor < meta.count, meta[plainCursor] & (Self.dead | Self.deferredBit) != 0 { plainCursor += 1 }
        return plainCursor < meta.count ? (index.key(at: plainCursor), decision(at: plainCursor)) : nil
    }

    /// The oldest deferred decision not activated yet.
    mutating func oldestUnactivatedDeferred() -> (key: EventKey, decision: PendingDecision)? {
        sortIfNeeded()
        while deferredCursor < meta.count,
              meta[deferredCursor] & (Self.dead | Self.deferredBit) != Self.deferredBit || activated.holds(deferredCursor) {
            deferredCursor += 1
        }
        return deferredCursor < meta.count ? (index.key(at: deferredCursor), decision(at: deferredCursor)) : nil
    }

    var keys: [EventKey] {
        var keys: [EventKey] = []
        keys.reserveCapacity(count)
        forEach { key, _ in keys.append(key) }
        return keys
    }

    func forEach<E: Error>(_ body: (EventKey, PendingDecision) throws(E) -> Void) throws(E) {
        for entry in head..<meta.count where meta[entry] & Self.dead == 0 { try body(index.key(at: entry), decision(at: entry)) }
    }

    // MARK: - Entries

    private static let offsetBits: UInt64 = 40

    private func decision(at entry: Int) -> PendingDecision {
        let m = meta[entry]
        return PendingDecision(
            order: Int(order[entry] ?? 0), seen: seen[entry] ?? 0, segment: Int32(position[entry] >> Self.offsetBits),
            offset: Int(position[entry] & (1 << Self.offsetBits - 1)), length: length[entry],
            deferred: m & Self.deferredBit != 0, learn: m & Self.learnBit != 0, activated: activated[entry],
            rewards: RewardsAside.tally(count: m & Self.countMask, sum: sum[entry], aside: aside[entry])
        )
    }

    private mutating func store(_ decision: PendingDecision, at entry: Int) {
        meta[entry] = UInt32(min(max(0, Int(decision.rewards.count)), Int(Self.countMask)))
            | (decision.deferred ? Self.deferredBit : 0) | (decision.learn ? Self.learnBit : 0)
        order.set(entry, to: Int64(decision.order), meta: meta)
        seen.set(entry, to: decision.seen, meta: meta)
        activated.set(entry, to: decision.activated, meta: meta)
        let segment = UInt64(min(max(0, Int(decision.segment)), 1 << (64 - Self.offsetBits) - 1))
        position[entry] = segment << Self.offsetBits | UInt64(min(max(0, decision.offset), 1 << Self.offsetBits - 1))
        length[entry] = decision.length
        sum[entry] = decision.rewards.sum
        aside[entry] = RewardsAside(decision.rewards)
    }

    private mutating func insert(_ key: EventKey, _ decision: PendingDecision) {
        if let lastOrder, decision.order <= lastOrder { sorted = false }
        lastOrder = decision.order
        let entry = index.append(key, live: count, meta: meta)
        meta.append(0)
        order.append(nil, meta: meta); seen.append(nil, meta: meta); activated.append(nil, meta: meta)
        position.append(0); length.append(0); sum.append(0)
        store(decision, at: entry)
        count += 1
    }

    /// Moves the live entries to the front (in order), keeping the cursors on the same entries.
    private mutating func compact() {
        index.compact(meta: meta, live: count)
        var write = 0
        var moved: [Int: RewardsAside] = [:]
        var plain = 0, deferred = 0
        for read in 0..<meta.count {
            if read == plainCursor { plain = write }
            if read == deferredCursor { deferred = write }
            guard meta[read] & Self.dead == 0 else { continue }
            order.copy(read, to: write); seen.copy(read, to: write); activated.copy(read, to: write)
            position[write] = position[read]; length[write] = length[read]; sum[write] = sum[read]; meta[write] = meta[read]
            if let extra = aside[read] { moved[write] = extra }
            write += 1
        }
        if plainCursor >= meta.count { plain = write }
        if deferredCursor >= meta.count { deferred = write }
        truncate(to: write)
        aside = moved
        head = 0
        plainCursor = plain
        deferredCursor = deferred
    }

    /// Rewrites the live entries in increasing `order` (after a restore).
    private mutating func sortIfNeeded() {
        guard !sorted else { return }
        var live: [(key: EventKey, decision: PendingDecision)] = []
        live.reserveCapacity(count)
        forEach { key, decision in live.append((key, decision)) }
        live.sort { $0.decision.order < $1.decision.order }
        truncate(to: 0)
        order.removeAll(); seen.removeAll(); activated.removeAll()
        aside = [:]
        count = 0
        head = 0
        plainCursor = 0
        deferredCursor = 0
        lastOrder = nil
        index.reset([])
        sorted = true
        for (key, decision) in live { insert(key, decision) }
    }

    private mutating func truncate(to entries: Int) {
        let removed = meta.count - entries
        order.removeLast(removed); seen.removeLast(removed); activated.removeLast(removed)
        position.removeLast(removed); length.removeLast(removed); sum.removeLast(removed); meta.removeLast(removed)
    }
}

/// The rewards of a packed table's entry beyond its sum: its first reward, when that is not the sum (the entry got
/// several, or one -0), and the rewards after the first. Most entries have none (no reward, or one).
struct RewardsAside: Sendable {
    var first: Double
    var more: [Double]

    /// Nil when `tally` is its count and sum alone.
    init?(_ tally: RewardTally) {
        guard tally.count > 1 || !tally.more.isEmpty || tally.first.bitPattern != (tally.count == 0 ? 0 : tally.sum.bitPattern)
        else { return nil }
        first = tally.first
        more = tally.more
    }

    static func tally(count: UInt32, sum: Double, aside: RewardsAside?) -> RewardTally {
        var tally = RewardTally()
        tally.count = Int32(count)
        tally.sum = sum
        tally.first = aside?.first ?? (count == 0 ? 0 : sum)
        tally.more = aside?.more ?? []
        return tally
    }
}

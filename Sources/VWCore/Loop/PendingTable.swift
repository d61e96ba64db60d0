/// Decisions waiting to be joined, by event key, in order of arrival, in about 90 bytes each (SPEC §8.9: one
/// million pending decisions, the default `max_pending`, take about 90 MB; a dictionary of keys and
/// ``PendingDecision`` values with the queues that found the due ones took about 220 bytes each).
///
/// Entries are parallel arrays in `order` (the join's arrival order), so the oldest is at the front and the due
/// decisions are found by two cursors, not queues: ``oldestPlain()`` (decisions that wait for their rewards) and
/// ``oldestUnactivatedDeferred()`` (deferred decisions that wait for an activation). An ``EventKeyIndex`` finds an
/// entry by its key. A removed entry is marked dead; dead entries are compacted away once they are as many as the live
/// ones. Entries inserted out of order (a restore replays records whose keys come in any order) are sorted before
/// the next scan.
struct PendingTable: Sendable {
    private var index = EventKeyIndex()
    private var order: [Int] = []
    private var seen: [Int64] = []
    private var offset: [Int] = []
    private var segment: [Int32] = []
    private var length: [Int32] = []
    /// `Int64.min`: not activated.
    private var activated: [Int64] = []
    private var first: [Double] = []
    private var sum: [Double] = []
    /// Bit 31: dead; bit 30: deferred; bit 29: `:learn`; bits 0-28: the number of rewards (saturating).
    private var meta: [UInt32] = []
    /// The rewards after the first of entries that got several, by entry number.
    private var more: [Int: [Double]] = [:]
    /// Entries before `head` are dead; before `plainCursor` dead or deferred; before `deferredCursor` dead, plain or
    /// activated (an activation is never taken back, a decision never changes kind).
    private var head = 0
    private var plainCursor = 0
    private var deferredCursor = 0
    /// Whether the entries are in increasing `order`.
    private var sorted = true
    private(set) var count = 0

    private static let dead = EventKeyIndex.dead
    private static let deferredBit: UInt32 = 1 << 30
    private static let learnBit: UInt32 = 1 << 29
    private static let countMask: UInt32 = (1 << 29) - 1
    private static let notActivated = Int64.min

    var isEmpty: Bool { count == 0 }

    subscript(key: EventKey) -> PendingDecision? {
        get { index.locate(key).map { decision(at: $0.index) } }
        set {
            guard let newValue else {
                removeValue(forKey: key)
                return
            }
            if let entry = index.locate(key)?.index {
                if order[entry] == newValue.order { return store(newValue, at: entry) }
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
        more[entry] = nil
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
              meta[deferredCursor] & (Self.dead | Self.deferredBit) != Self.deferredBit || activated[deferredCursor] != Self.notActivated {
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

    func forEach(_ body: (EventKey, PendingDecision) -> Void) {
        for entry in head..<meta.count where meta[entry] & Self.dead == 0 { body(index.key(at: entry), decision(at: entry)) }
    }

    // MARK: - Entries

    private func decision(at entry: Int) -> PendingDecision {
        let m = meta[entry]
        var tally = RewardTally()
        tally.count = Int32(m & Self.countMask)
        tally.first = first[entry]
        tally.sum = sum[entry]
        tally.more = more[entry] ?? []
        return PendingDecision(
            order: order[entry], seen: seen[entry], segment: segment[entry], offset: offset[entry], length: length[entry],
            deferred: m & Self.deferredBit != 0, learn: m & Self.learnBit != 0,
            activated: activated[entry] == Self.notActivated ? nil : activated[entry], rewards: tally
        )
    }

    private mutating func store(_ decision: PendingDecision, at entry: Int) {
        order[entry] = decision.order
        seen[entry] = decision.seen
        segment[entry] = decision.segment
        offset[entry] = decision.offset
        length[entry] = decision.length
        activated[entry] = decision.activated ?? Self.notActivated
        first[entry] = decision.rewards.first
        sum[entry] = decision.rewards.sum
        meta[entry] = UInt32(min(max(0, Int(decision.rewards.count)), Int(Self.countMask)))
            | (decision.deferred ? Self.deferredBit : 0) | (decision.learn ? Self.learnBit : 0)
        more[entry] = decision.rewards.more.isEmpty ? nil : decision.rewards.more
    }

    private mutating func insert(_ key: EventKey, _ decision: PendingDecision) {
        if let last = order.last, decision.order <= last { sorted = false }
        let entry = index.append(key, live: count, meta: meta)
        order.append(0); seen.append(0); segment.append(0); offset.append(0); length.append(0)
        activated.append(0); first.append(0); sum.append(0); meta.append(0)
        store(decision, at: entry)
        count += 1
    }

    /// Moves the live entries to the front (in order), keeping the cursors on the same entries.
    private mutating func compact() {
        index.compact(meta: meta, live: count)
        var write = 0
        var moved: [Int: [Double]] = [:]
        var plain = 0, deferred = 0
        for read in 0..<meta.count {
            if read == plainCursor { plain = write }
            if read == deferredCursor { deferred = write }
            guard meta[read] & Self.dead == 0 else { continue }
            order[write] = order[read]; seen[write] = seen[read]; segment[write] = segment[read]
            offset[write] = offset[read]; length[write] = length[read]; activated[write] = activated[read]
            first[write] = first[read]; sum[write] = sum[read]; meta[write] = meta[read]
            if let extra = more[read] { moved[write] = extra }
            write += 1
        }
        if plainCursor >= meta.count { plain = write }
        if deferredCursor >= meta.count { deferred = write }
        truncate(to: write)
        more = moved
        head = 0
        plainCursor = plain
        deferredCursor = deferred
    }

    /// Rewrites the live entries in increasing `order` (after a restore).
    private mutating func sortIfNeeded() {
        guard !sorted else { return }
        var live: [Int] = []
        live.reserveCapacity(count)
        for entry in 0..<meta.count where meta[entry] & Self.dead == 0 { live.append(entry) }
        live.sort { order[$0] < order[$1] }
        let decisions = live.map { (index.key(at: $0), decision(at: $0)) }
        truncate(to: 0)
        more = [:]
        count = 0
        head = 0
        plainCursor = 0
        deferredCursor = 0
        index.reset([])
        sorted = true
        for (key, decision) in decisions { insert(key, decision) }
    }

    private mutating func truncate(to entries: Int) {
        let removed = meta.count - entries
        order.removeLast(removed); seen.removeLast(removed); segment.removeLast(removed); offset.removeLast(removed)
        length.removeLast(removed); activated.removeLast(removed); first.removeLast(removed); sum.removeLast(removed)
        meta.removeLast(removed)
    }
}

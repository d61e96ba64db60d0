/// Rewards and activations waiting for their decision, in arrival order, in about 40 bytes each (SPEC §8.9: a flood of
/// rewards for unknown ids must cost a few MB per 100,000, not the 150 bytes a dictionary of keys and tallies takes).
/// Packed like ``PendingTable``: the time as a 32-bit offset, the sum of the rewards, a meta word, the first reward
/// and the rest aside only for the entries that got several.
///
/// Entries are parallel arrays in arrival order (so the oldest is at the front: the expiry and the cap take from
/// there); an ``EventKeyIndex`` finds an entry by its 128-bit key. A removed entry is marked dead; dead entries are
/// compacted away once they are as many as the live ones. The activation time of an orphan is not kept (only whether
/// it was activated: the join activates the decision when it comes), nor more than ``RewardTally/keep`` rewards.
struct OrphanTable: Sendable {
    private var index = EventKeyIndex()
    private var seen = Offset32Column()
    private var sum: [Double] = []
    /// Bit 31: dead; bit 30: activated; bits 0-29: the number of rewards (saturating).
    private var meta: [UInt32] = []
    /// The first reward and the rest of entries that got several (rare), by entry number.
    private var aside: [Int: RewardsAside] = [:]
    /// Entries before `head` are all dead.
    private var head = 0
    private(set) var count = 0

    private static let dead = EventKeyIndex.dead
    private static let activatedBit: UInt32 = 1 << 30
    private static let countMask: UInt32 = (1 << 30) - 1

    subscript(key: EventKey) -> OrphanEvent? {
        get { find(key).map(event(at:)) }
        set {
            if let newValue {
                if let index = find(key) { store(newValue, at: index) } else { insert(key, newValue) }
            } else {
                _ = removeValue(forKey: key)
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey key: EventKey) -> OrphanEvent? {
        guard let (slot, entry) = index.locate(key) else { return nil }
        let event = event(at: entry)
        index.remove(slot: slot)
        kill(entry)
        return event
    }

    /// The oldest live orphan.
    var oldest: (key: EventKey, event: OrphanEvent)? {
        var entry = head
        while entry < meta.count, meta[entry] & Self.dead != 0 { entry += 1 }
        guard entry < meta.count else { return nil }
        return (index.key(at: entry), event(at: entry))
    }

    var keys: [EventKey] {
        var keys: [EventKey] = []
        keys.reserveCapacity(count)
        for entry in head..<meta.count where meta[entry] & Self.dead == 0 { keys.append(index.key(at: entry)) }
        return keys
    }

    func forEach<E: Error>(_ body: (EventKey, OrphanEvent) throws(E) -> Void) throws(E) {
        for entry in head..<meta.count where meta[entry] & Self.dead == 0 { try body(index.key(at: entry), event(at: entry)) }
    }

    // MARK: - Entries

    private func event(at index: Int) -> OrphanEvent {
        let m = meta[index]
        let seen = seen[index] ?? 0
        return OrphanEvent(seen: seen, activated: m & Self.activatedBit != 0 ? seen : nil,
                           rewards: RewardsAside.tally(count: m & Self.countMask, sum: sum[index], aside: aside[index]))
    }

    private mutating func store(_ event: OrphanEvent, at index: Int) {
        meta[index] = UInt32(min(max(0, Int(event.rewards.count)), Int(Self.countMask))) | (event.activated != nil ? Self.activatedBit : 0)
        seen.set(index, to: event.seen, meta: meta)
        sum[index] = event.rewards.sum
        aside[index] = RewardsAside(event.rewards)
    }

    private mutating func insert(_ key: EventKey, _ event: OrphanEvent) {
        let entry = index.append(key, live: count, meta: meta)
        meta.append(0)
        seen.append(nil, meta: meta)
        sum.append(0)
        store(event, at: entry)
        count += 1
    }

    private mutating func kill(_ index: Int) {
        meta[index] |= Self.dead
        aside[index] = nil
        count -= 1
        while head < meta.count, meta[head] & Self.dead != 0 { head += 1 }
        let deadEntries = meta.count - count
        if deadEntries >= 4096 && deadEntries > count { compact() }
    }

    private func find(_ key: EventKey) -> Int? { index.locate(key)?.index }

    /// Moves the live entries to the front (in order) and rebuilds the table.
    private mutating func compact() {
        index.compact(meta: meta, live: count)
        var write = 0
        var moved: [Int: RewardsAside] = [:]
        for read in 0..<meta.count where meta[read] & Self.dead == 0 {
            seen.copy(read, to: write)
            sum[write] = sum[read]
            meta[write] = meta[read]
            if let extra = aside[read] { moved[write] = extra }
            write += 1
        }
        let removed = meta.count - write
        seen.removeLast(removed); sum.removeLast(removed); meta.removeLast(removed)
        aside = moved
        head = 0
    }
}

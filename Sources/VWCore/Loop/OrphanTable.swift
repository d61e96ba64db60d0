/// Rewards and activations waiting for their decision, in arrival order, in about 34 bytes each (SPEC §8.9: a flood of
/// rewards for unknown ids must cost a few MB per 100,000, not the 150 bytes a dictionary of keys and tallies took).
/// Packed like ``PendingTable``: the time as a 32-bit offset, the reward value, a meta word, and the rewards' list
/// only for entries that got several, within ``ListedRewards``'s budget.
///
/// Entries are parallel arrays in arrival order (so the oldest is at the front: the expiry and the cap take from
/// there); an ``EventKeyIndex`` finds an entry by its key. A removed entry is marked dead; dead entries are compacted
/// away once they are a fifth of all. The activation time of an orphan is not kept (only whether it was activated:
/// the join activates the decision when it comes).
struct OrphanTable: Sendable {
    private var index = EventKeyIndex()
    private var seen = Offset32Column()
    private var value: [Double] = []
    /// Bit 31: dead; bit 30: activated; bit 29: rewards not listed; bits 0-28: the number of rewards (saturating).
    private var meta: [UInt32] = []
    private var lists = ListedRewards()
    /// Entries before `head` are all dead.
    private var head = 0
    private(set) var count = 0

    private static let dead = EventKeyIndex.dead
    private static let activatedBit: UInt32 = 1 << 30
    private static let unlistedBit: UInt32 = 1 << 29
    private static let countMask: UInt32 = (1 << 29) - 1

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
                           rewards: lists.tally(index, count: m & Self.countMask, value: value[index], unlisted: m & Self.unlistedBit != 0))
    }

    private mutating func store(_ event: OrphanEvent, at index: Int) {
        let listed = lists.store(index, event.rewards)
        meta[index] = UInt32(min(max(0, Int(event.rewards.count)), Int(Self.countMask)))
            | (event.activated != nil ? Self.activatedBit : 0) | (listed ? 0 : Self.unlistedBit)
        seen.set(index, to: event.seen, meta: meta)
        value[index] = event.rewards.value
    }

    private mutating func insert(_ key: EventKey, _ event: OrphanEvent) {
        let entry = index.append(key, live: count, meta: meta)
        meta.appendGrowingByAQuarter(0)
        seen.append(nil, meta: meta)
        value.appendGrowingByAQuarter(0)
        store(event, at: entry)
        count += 1
    }

    private mutating func kill(_ index: Int) {
        meta[index] |= Self.dead
        lists.remove(index)
        count -= 1
        while head < meta.count, meta[head] & Self.dead != 0 { head += 1 }
        if EventKeyIndex.compactionDue(entries: meta.count, live: count) { compact() }
    }

    private func find(_ key: EventKey) -> Int? { index.locate(key)?.index }

    /// Moves the live entries to the front (in order) and rebuilds the table.
    private mutating func compact() {
        index.compact(meta: meta, live: count)
        var write = 0
        var moves: [(from: Int, to: Int)] = []
        for read in 0..<meta.count where meta[read] & Self.dead == 0 {
            seen.copy(read, to: write)
            value[write] = value[read]
            meta[write] = meta[read]
            if lists.holds(read) { moves.append((read, write)) }
            write += 1
        }
        lists.renumber(moves)
        let removed = meta.count - write
        seen.removeLast(removed); value.removeLast(removed); meta.removeLast(removed)
        head = 0
    }
}

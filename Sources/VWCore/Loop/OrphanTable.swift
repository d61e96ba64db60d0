/// Rewards and activations waiting for their decision, in arrival order, in about 55 bytes each (SPEC §8.9: a flood of
/// rewards for unknown ids must cost a few MB per 100,000, not the 150 bytes a dictionary of keys and tallies takes).
///
/// Entries are parallel arrays in arrival order (so the oldest is at the front: the expiry and the cap take from
/// there); an open-addressing table of 32-bit entry numbers finds an entry by its 128-bit key (the key's low bits are
/// SHA-256 bits: no crafted id clusters them). A removed entry is marked dead; dead entries are compacted away once
/// they are as many as the live ones. The activation time of an orphan is not kept (only whether it was activated:
/// the join activates the decision when it comes), nor more than ``RewardTally/keep`` rewards.
struct OrphanTable: Sendable {
    private var high: [UInt64] = []
    private var low: [UInt64] = []
    private var seen: [Int64] = []
    private var first: [Double] = []
    private var sum: [Double] = []
    /// Bit 31: dead; bit 30: activated; bits 0-29: the number of rewards (saturating).
    private var meta: [UInt32] = []
    /// The rewards after the first of entries that got several (rare), by entry number.
    private var more: [Int: [Double]] = [:]
    /// Open addressing: 0 empty, -1 removed, else entry number + 1.
    private var slots: [Int32] = []
    private var tombstones = 0
    /// Entries before `head` are all dead.
    private var head = 0
    private(set) var count = 0

    private static let dead: UInt32 = 1 << 31
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
        guard let (slot, index) = locate(key) else { return nil }
        let event = event(at: index)
        slots[slot] = -1
        tombstones += 1
        kill(index)
        return event
    }

    /// The oldest live orphan.
    var oldest: (key: EventKey, event: OrphanEvent)? {
        var index = head
        while index < meta.count, meta[index] & Self.dead != 0 { index += 1 }
        guard index < meta.count else { return nil }
        return (EventKey(high: high[index], low: low[index]), event(at: index))
    }

    var keys: [EventKey] {
        var keys: [EventKey] = []
        keys.reserveCapacity(count)
        for index in head..<meta.count where meta[index] & Self.dead == 0 { keys.append(EventKey(high: high[index], low: low[index])) }
        return keys
    }

    func forEach(_ body: (EventKey, OrphanEvent) -> Void) {
        for index in head..<meta.count where meta[index] & Self.dead == 0 {
            body(EventKey(high: high[index], low: low[index]), event(at: index))
        }
    }

    // MARK: - Entries

    private func event(at index: Int) -> OrphanEvent {
        let m = meta[index]
        var tally = RewardTally()
        tally.count = Int32(m & Self.countMask)
        tally.first = first[index]
        tally.sum = sum[index]
        tally.more = more[index] ?? []
        return OrphanEvent(seen: seen[index], activated: m & Self.activatedBit != 0 ? seen[index] : nil, rewards: tally)
    }

    private mutating func store(_ event: OrphanEvent, at index: Int) {
        seen[index] = event.seen
        first[index] = event.rewards.first
        sum[index] = event.rewards.sum
        meta[index] = UInt32(min(max(0, Int(event.rewards.count)), Int(Self.countMask))) | (event.activated != nil ? Self.activatedBit : 0)
        more[index] = event.rewards.more.isEmpty ? nil : event.rewards.more
    }

    private mutating func insert(_ key: EventKey, _ event: OrphanEvent) {
        if (count + tombstones + 1) * 2 > slots.count { rebuild() }
        let index = meta.count
        high.append(key.high)
        low.append(key.low)
        seen.append(0)
        first.append(0)
        sum.append(0)
        meta.append(0)
        store(event, at: index)
        var slot = Int(truncatingIfNeeded: key.low) & (slots.count - 1)
        while slots[slot] > 0 { slot = (slot + 1) & (slots.count - 1) }
        if slots[slot] == -1 { tombstones -= 1 }
        slots[slot] = Int32(index + 1)
        count += 1
    }

    private mutating func kill(_ index: Int) {
        meta[index] |= Self.dead
        more[index] = nil
        count -= 1
        while head < meta.count, meta[head] & Self.dead != 0 { head += 1 }
        let deadEntries = meta.count - count
        if deadEntries >= 4096 && deadEntries > count { compact() }
    }

    private func find(_ key: EventKey) -> Int? { locate(key)?.index }

    private func locate(_ key: EventKey) -> (slot: Int, index: Int)? {
        guard !slots.isEmpty else { return nil }
        var slot = Int(truncatingIfNeeded: key.low) & (slots.count - 1)
        while true {
            let value = slots[slot]
            if value == 0 { return nil }
            if value > 0 {
                let index = Int(value - 1)
                if low[index] == key.low && high[index] == key.high { return (slot, index) }
            }
            slot = (slot + 1) & (slots.count - 1)
        }
    }

    /// Moves the live entries to the front (in order) and rebuilds the table.
    private mutating func compact() {
        var write = 0
        var moved: [Int: [Double]] = [:]
        for read in 0..<meta.count where meta[read] & Self.dead == 0 {
            high[write] = high[read]
            low[write] = low[read]
            seen[write] = seen[read]
            first[write] = first[read]
            sum[write] = sum[read]
            meta[write] = meta[read]
            if let extra = more[read] { moved[write] = extra }
            write += 1
        }
        for index in [high.count - write] where index > 0 {
            high.removeLast(index); low.removeLast(index); seen.removeLast(index)
            first.removeLast(index); sum.removeLast(index); meta.removeLast(index)
        }
        more = moved
        head = 0
        rebuild()
    }

    /// A table of at least twice the live entries (and 16), without removed slots.
    private mutating func rebuild() {
        var capacity = 16
        while capacity < (count + 1) * 2 { capacity <<= 1 }
        slots = [Int32](repeating: 0, count: capacity)
        tombstones = 0
        for index in head..<meta.count where meta[index] & Self.dead == 0 {
            var slot = Int(truncatingIfNeeded: low[index]) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            slots[slot] = Int32(index + 1)
        }
    }
}

/// The keys of a packed table's entries, in entry order, and an open-addressing table that finds an entry's number
/// by its 128-bit key (``OrphanTable``, ``PendingTable``).
///
/// The key's low bits are SHA-256 bits, so no crafted event id clusters them. The table holds 32-bit entry numbers
/// and is at most three quarters full (about 7 bytes an entry on average; uniform bits probe linearly well). Which
/// entries are dead is the owner's business: it passes its `meta` words (bit 31 set: dead) when the table is rebuilt
/// or compacted.
struct EventKeyIndex: Sendable {
    private var high: [UInt64] = []
    private var low: [UInt64] = []
    /// 0 empty, -1 removed, else entry number + 1.
    private var slots: [Int32] = []
    private var tombstones = 0

    static let dead: UInt32 = 1 << 31

    /// Entries, dead ones included.
    var entries: Int { high.count }

    func key(at index: Int) -> EventKey { EventKey(high: high[index], low: low[index]) }

    /// The slot and entry number of `key`'s entry, if it is in the table.
    func locate(_ key: EventKey) -> (slot: Int, index: Int)? {
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

    /// Appends `key` as the next entry and returns its number; `live` is the owner's live entries before it.
    mutating func append(_ key: EventKey, live: Int, meta: [UInt32]) -> Int {
        if (live + tombstones + 1) * 4 > slots.count * 3 { rebuild(live: live, meta: meta) }
        let index = high.count
        high.append(key.high)
        low.append(key.low)
        var slot = Int(truncatingIfNeeded: key.low) & (slots.count - 1)
        while slots[slot] > 0 { slot = (slot + 1) & (slots.count - 1) }
        if slots[slot] == -1 { tombstones -= 1 }
        slots[slot] = Int32(index + 1)
        return index
    }

    /// Frees `slot` (its entry is dead from now on).
    mutating func remove(slot: Int) {
        slots[slot] = -1
        tombstones += 1
    }

    /// Keeps the keys of the live entries, in order (as the owner moves its own columns), and rebuilds the table.
    mutating func compact(meta: [UInt32], live: Int) {
        var write = 0
        for read in 0..<meta.count where meta[read] & Self.dead == 0 {
            high[write] = high[read]
            low[write] = low[read]
            write += 1
        }
        high.removeLast(high.count - write)
        low.removeLast(low.count - write)
        rebuild(live: live, meta: Array(repeating: 0, count: write))
    }

    /// Replaces the keys with `keys` (all live) and rebuilds the table.
    mutating func reset(_ keys: [EventKey]) {
        high = keys.map(\.high)
        low = keys.map(\.low)
        rebuild(live: keys.count, meta: Array(repeating: 0, count: keys.count))
    }

    /// A table of at least one and a half times the live entries (and 16), without removed slots.
    private mutating func rebuild(live: Int, meta: [UInt32]) {
        var capacity = 16
        while capacity * 2 < (live + 1) * 3 { capacity <<= 1 }
        slots = [Int32](repeating: 0, count: capacity)
        tombstones = 0
        for index in 0..<high.count where meta[index] & Self.dead == 0 {
            var slot = Int(truncatingIfNeeded: low[index]) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            slots[slot] = Int32(index + 1)
        }
    }
}

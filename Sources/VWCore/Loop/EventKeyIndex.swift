/// The keys of a packed table's entries, in entry order, and an open-addressing table that finds an entry's number
/// by its key (``OrphanTable``, ``PendingTable``).
///
/// Keys are SHA-256 bits, so no crafted event id clusters them; the table maps a key to its first slot by the high
/// half of key × capacity (any capacity, not only powers of two) and probes linearly. It holds 32-bit entry numbers,
/// is rebuilt at two thirds full when it passes four fifths, so it costs about 5.5 bytes an entry beside the 8 of
/// the key. Which entries are dead is the owner's business: it passes its `meta` words (bit 31 set: dead) when the
/// table is rebuilt or compacted.
struct EventKeyIndex: Sendable {
    private var keys: [UInt64] = []
    /// 0 empty, -1 removed, else entry number + 1.
    private var slots: [Int32] = []
    private var tombstones = 0

    static let dead: UInt32 = 1 << 31

    /// Whether a table of `entries` entries, `live` of them alive, should compact: once a fifth are dead (and at
    /// least 4,096), so dead entries cost at most a quarter more, and each compaction moves at most 4 entries for
    /// each one it drops.
    static func compactionDue(entries: Int, live: Int) -> Bool {
        let dead = entries - live
        return dead >= 4096 && dead * 5 > entries
    }

    /// Entries, dead ones included.
    var entries: Int { keys.count }

    func key(at index: Int) -> EventKey { EventKey(value: keys[index]) }

    private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: key.multipliedFullWidth(by: UInt64(slots.count)).high) }

    private func next(_ slot: Int) -> Int { slot + 1 == slots.count ? 0 : slot + 1 }

    /// The slot and entry number of `key`'s entry, if it is in the table.
    func locate(_ key: EventKey) -> (slot: Int, index: Int)? {
        guard !slots.isEmpty else { return nil }
        var slot = home(key.value)
        while true {
            let value = slots[slot]
            if value == 0 { return nil }
            if value > 0 && keys[Int(value - 1)] == key.value { return (slot, Int(value - 1)) }
            slot = next(slot)
        }
    }

    /// Appends `key` as the next entry and returns its number; `live` is the owner's live entries before it.
    mutating func append(_ key: EventKey, live: Int, meta: [UInt32]) -> Int {
        if (live + tombstones + 1) * 5 > slots.count * 4 { rebuild(live: live + 1, meta: meta) }
        let index = keys.count
        keys.appendGrowingByAQuarter(key.value)
        var slot = home(key.value)
        while slots[slot] > 0 { slot = next(slot) }
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
            keys[write] = keys[read]
            write += 1
        }
        keys.removeLast(keys.count - write)
        rebuild(live: live, meta: Array(repeating: 0, count: write))
    }

    /// Replaces the keys with `keys` (all live) and rebuilds the table.
    mutating func reset(_ keys: [EventKey]) {
        self.keys = keys.map(\.value)
        rebuild(live: keys.count, meta: Array(repeating: 0, count: keys.count))
    }

    /// A table of one and a half times `live` slots (at least 16), without removed slots.
    private mutating func rebuild(live: Int, meta: [UInt32]) {
        slots = [Int32](repeating: 0, count: max(16, live + live / 2))
        tombstones = 0
        for index in 0..<keys.count where meta[index] & Self.dead == 0 {
            var slot = home(keys[index])
            while slots[slot] != 0 { slot = next(slot) }
            slots[slot] = Int32(index + 1)
        }
    }
}

extension Array {
    /// Appends, growing full storage by a quarter rather than doubling it: a packed table's columns then hold at
    /// most a quarter more than their entries (doubling left a million-entry table with room for two).
    mutating func appendGrowingByAQuarter(_ element: Element) {
        if count == capacity { reserveCapacity(count + count / 4 + 16) }
        append(element)
    }
}

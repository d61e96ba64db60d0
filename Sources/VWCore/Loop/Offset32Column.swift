/// A column of optional `Int64` values (times in ms, arrival orders) of a packed table (``PendingTable``,
/// ``OrphanTable``), held as 32-bit offsets from a base, so an entry spends 4 bytes on each, not 8 or 9 (SPEC §8.9).
///
/// The base follows the values: a value below it lowers the base; a value beyond the 32-bit range above it raises
/// the base to the smallest live value. When the live values span more than the range (more than 49 days of
/// milliseconds, more than 4 billion decisions apart: no wait may be that long, see ``LoopConfig``), the smallest are
/// raised to fit, so they read as younger than they are; nothing traps. Rebasing visits every entry and leaves
/// room for at least 2^31 more in the direction the values move, so it is rare.
struct Offset32Column: Sendable {
    private var base: Int64 = 0
    private var offsets: [UInt32] = []

    private static let absent = UInt32.max
    private static let largest = Int64(UInt32.max - 1)

    subscript(entry: Int) -> Int64? {
        let offset = offsets[entry]
        return offset == Self.absent ? nil : base + Int64(offset)
    }

    /// Whether `entry` holds a value.
    func holds(_ entry: Int) -> Bool { offsets[entry] != Self.absent }

    /// Appends `value`; `meta` is the owner's meta words (bit 31 set: dead), which say whose values must be kept.
    mutating func append(_ value: Int64?, meta: [UInt32]) {
        offsets.appendGrowingByAQuarter(Self.absent)
        set(offsets.count - 1, to: value, meta: meta)
    }

    mutating func set(_ entry: Int, to value: Int64?, meta: [UInt32]) {
        guard let value else {
            offsets[entry] = Self.absent
            return
        }
        if value < base || value - base > Self.largest { rebase(toHold: value, at: entry, meta: meta) }
        offsets[entry] = UInt32(min(max(0, value - base), Self.largest))
    }

    mutating func copy(_ read: Int, to write: Int) { offsets[write] = offsets[read] }

    mutating func removeLast(_ count: Int) { offsets.removeLast(count) }

    mutating func removeAll() {
        offsets.removeAll()
        base = 0
    }

    /// Moves the base so that `value` and every live value fit (raising the smallest if they cannot all fit).
    private mutating func rebase(toHold value: Int64, at entry: Int, meta: [UInt32]) {
        var low = value, high = value
        for index in offsets.indices where index != entry && offsets[index] != Self.absent
            && (index >= meta.count || meta[index] & EventKeyIndex.dead == 0) {
            let v = base + Int64(offsets[index])
            low = min(low, v)
            high = max(high, v)
        }
        // Room below for a clock that steps back a little; the rest above, where orders and times move.
        let newBase = high - low <= Self.largest ? low - (Self.largest - (high - low)) / 8 : high - Self.largest / 2
        for index in offsets.indices where index != entry && offsets[index] != Self.absent {
            offsets[index] = UInt32(min(max(0, base + Int64(offsets[index]) - newBase), Self.largest))
        }
        base = newBase
    }
}

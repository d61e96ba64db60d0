/// Decisions waiting to be joined, by event key, in order of arrival, in about 49-55 bytes each (SPEC §8.9: one
/// million pending decisions, the default `max_pending`, take about 50 MB, however many rewards each gets:
/// `JoinMemoryTests`).
///
/// Entries are parallel arrays in `order` (the join's arrival order), so the oldest is at the front and the due
/// decisions are found by two cursors, not queues: ``oldestPlain()`` (decisions that wait for their rewards) and
/// ``oldestUnactivatedDeferred()`` (deferred decisions that wait for an activation). An ``EventKeyIndex`` finds an
/// entry by its key (8 bytes and about 5.5 of table). The rest is packed: the order and one time as 32-bit offsets
/// (``Offset32Column``), the segment and offset in one word (24 and 40 bits: a larger value is stored clipped, so the
/// line read back is not the decision's and the join skips it, counted, by its event-id check), the length, the
/// reward value and a meta word; the rewards' list only for entries that got several, within ``ListedRewards``'s
/// budget. The one time is when the decision was read, or, once a deferred decision is activated, when it was
/// (nothing needs its reading time after that); a plain decision's activation time is not kept, only that it was
/// activated (it reads as its reading time). A removed entry is marked dead; dead entries are compacted away once
/// they are a fifth of all. Entries inserted out of order (a restore replays records whose keys come in any order)
/// are sorted before the next scan.
struct PendingTable: Sendable {
    private var index = EventKeyIndex()
    private var order = Offset32Column()
    private var time = Offset32Column()
    /// The segment (high 24 bits) and the byte offset in it (low 40 bits).
    private var position: [UInt64] = []
    private var length: [Int32] = []
    private var value: [Double] = []
    /// Bit 31: dead; bit 30: deferred; bit 29: `:learn`; bit 28: activated; bit 27: rewards not listed (see
    /// ``ListedRewards``); bits 0-26: the number of rewards (saturating).
    private var meta: [UInt32] = []
    private var lists = ListedRewards()
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
    private static let activatedBit: UInt32 = 1 << 28
    private static let unlistedBit: UInt32 = 1 << 27
    private static let countMask: UInt32 = (1 << 27) - 1

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
        lists.remove(entry)
        count -= 1
        while head < meta.count, meta[head] & Self.dead != 0 { head += 1 }
        if EventKeyIndex.compactionDue(entries: meta.count, live: count) { compact() }
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
              meta[deferredCursor] & (Self.dead | Self.deferredBit | Self.activatedBit) != Self.deferredBit {
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
        let time = time[entry] ?? 0
        return PendingDecision(
            order: Int(order[entry] ?? 0), seen: time, segment: Int32(position[entry] >> Self.offsetBits),
            offset: Int(position[entry] & (1 << Self.offsetBits - 1)), length: length[entry],
            deferred: m & Self.deferredBit != 0, learn: m & Self.learnBit != 0, activated: m & Self.activatedBit != 0 ? time : nil,
            rewards: lists.tally(entry, count: m & Self.countMask, value: value[entry], unlisted: m & Self.unlistedBit != 0)
        )
    }

    private mutating func store(_ decision: PendingDecision, at entry: Int) {
        let listed = lists.store(entry, decision.rewards)
        meta[entry] = UInt32(min(max(0, Int(decision.rewards.count)), Int(Self.countMask)))
            | (decision.deferred ? Self.deferredBit : 0) | (decision.learn ? Self.learnBit : 0)
            | (decision.activated != nil ? Self.activatedBit : 0) | (listed ? 0 : Self.unlistedBit)
        order.set(entry, to: Int64(decision.order), meta: meta)
        time.set(entry, to: decision.deferred ? decision.activated ?? decision.seen : decision.seen, meta: meta)
        let segment = UInt64(min(max(0, Int(decision.segment)), 1 << (64 - Self.offsetBits) - 1))
        position[entry] = segment << Self.offsetBits | UInt64(min(max(0, decision.offset), 1 << Self.offsetBits - 1))
        length[entry] = decision.length
        value[entry] = decision.rewards.value
    }

    private mutating func insert(_ key: EventKey, _ decision: PendingDecision) {
        if let lastOrder, decision.order <= lastOrder { sorted = false }
        lastOrder = decision.order
        let entry = index.append(key, live: count, meta: meta)
        meta.appendGrowingByAQuarter(0)
        order.append(nil, meta: meta); time.append(nil, meta: meta)
        position.appendGrowingByAQuarter(0); length.appendGrowingByAQuarter(0); value.appendGrowingByAQuarter(0)
        store(decision, at: entry)
        count += 1
    }

    /// Moves the live entries to the front (in order), keeping the cursors on the same entries.
    private mutating func compact() {
        index.compact(meta: meta, live: count)
        var write = 0
        var plain = 0, deferred = 0
        var moves: [(from: Int, to: Int)] = []
        for read in 0..<meta.count {
            if read == plainCursor { plain = write }
            if read == deferredCursor { deferred = write }
            guard meta[read] & Self.dead == 0 else { continue }
            order.copy(read, to: write); time.copy(read, to: write)
            position[write] = position[read]; length[write] = length[read]; value[write] = value[read]; meta[write] = meta[read]
            if lists.holds(read) { moves.append((read, write)) }
            write += 1
        }
        lists.renumber(moves)
        if plainCursor >= meta.count { plain = write }
        if deferredCursor >= meta.count { deferred = write }
        truncate(to: write)
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
        order.removeAll(); time.removeAll()
        lists = ListedRewards()
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
        order.removeLast(removed); time.removeLast(removed)
        position.removeLast(removed); length.removeLast(removed); value.removeLast(removed); meta.removeLast(removed)
    }
}

/// The rewards' lists of a packed table's entries (``PendingTable``, ``OrphanTable``), for the joined line's `"o"`,
/// where the entry's count and value do not already say them: an entry with one reward lists its value, so only
/// entries that got several (or one -0) keep a list here.
///
/// At most `budget` rewards are listed across the table: a client that sends several rewards for each of a million
/// events must not make the table hold them (64 rewards each were 600 bytes an event). Beyond it an entry's list is
/// dropped and the entry marked unlisted: its count and value stay exact, its `"o"` lists nothing.
struct ListedRewards: Sendable {
    static let budget = 65_536

    private var lists: [Int32: [Double]] = [:]
    private var held = 0

    func tally(_ entry: Int, count: UInt32, value: Double, unlisted: Bool) -> RewardTally {
        var tally = RewardTally()
        tally.count = Int32(count)
        tally.value = value
        tally.listed = lists[Int32(entry)] ?? (unlisted || count == 0 ? [] : [value])
        return tally
    }

    /// Keeps `tally`'s list for `entry` when its count and value do not say it; false when it had to be dropped.
    mutating func store(_ entry: Int, _ tally: RewardTally) -> Bool {
        remove(entry)
        let implied = tally.count == 0 ? tally.listed.isEmpty
            : tally.count == 1 && tally.listed.count == 1 && tally.listed[0].bitPattern == tally.value.bitPattern
        if implied { return true }
        guard !tally.listed.isEmpty, held + tally.listed.count <= Self.budget else { return false }
        lists[Int32(entry)] = tally.listed
        held += tally.listed.count
        return true
    }

    mutating func remove(_ entry: Int) {
        if let list = lists.removeValue(forKey: Int32(entry)) { held -= list.count }
    }

    func holds(_ entry: Int) -> Bool { lists[Int32(entry)] != nil }

    /// Keeps the lists of the entries in `moves` (every live entry that ``holds(_:)`` one), under their new numbers.
    mutating func renumber(_ moves: [(from: Int, to: Int)]) {
        var renumbered: [Int32: [Double]] = [:]
        renumbered.reserveCapacity(moves.count)
        for (from, to) in moves { renumbered[Int32(to)] = lists[Int32(from)] }
        lists = renumbered
    }
}

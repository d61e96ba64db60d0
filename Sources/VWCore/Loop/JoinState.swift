/// The join's memory of one model (SPEC §8.9 "Bounded state"): decisions waiting for rewards and rewards waiting
/// for decisions, kept as references into the log and running reward tallies, never as copies of lines.

/// An event id as the join keeps it: the first 64 bits of its SHA-256 (8 bytes whatever the id's length).
///
/// 64 bits are enough because nobody sees a key: a client that wants another event's rewards must name that
/// event's id (then it could send rewards for it anyway), or land on one of a million pending keys blind, one
/// request per try (2^-44 a try). Honest ids collide with odds of about 2^-44 per reward at a million pending;
/// a reward that did would join the wrong decision, so that is also the error rate of the join, far below the
/// loss of any real logging pipeline.
struct EventKey: Hashable, Sendable {
    let value: UInt64

    init(_ id: String) {
        var hasher = SHA256()
        hasher.update(id.utf8)
        let digest = hasher.finalize()
        var value: UInt64 = 0
        for index in 0..<8 { value = value << 8 | UInt64(digest[index]) }
        self.value = value
    }

    init(value: UInt64) {
        self.value = value
    }

    /// 16 lowercase hex digits.
    var hex: String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }

    /// 16 lowercase hex digits, or 32 (a version-1 record's 128-bit key, whose first 64 bits are this key).
    init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 16 || utf8.count == 32, utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
              let value = UInt64(String(decoding: utf8[0..<16], as: UTF8.self), radix: 16) else { return nil }
        self.init(value: value)
    }
}

/// The rewards read for one event: how many, their value so far, and the first `keep` of them for the joined
/// line's `"o"` list. Each reward is clipped to the reward range and aggregated by the rule in force when it is
/// read (SPEC §8.9): `sum` adds it (saturating), `earliest` keeps the first.
struct RewardTally: Equatable, Sendable {
    /// At most this many rewards are listed in a joined line's `"o"` (all are counted and aggregated).
    static let keep = 64

    var value = 0.0
    var count: Int32 = 0
    /// The rewards read, in order, up to `keep`. A packed table lists them for a bounded number of events
    /// (``ListedRewards``): beyond that an event with several rewards lists none; its count and value stay exact.
    var listed: [Double] = []

    mutating func add(_ reward: Double, _ aggregation: RewardAggregation) {
        if count == 0 || aggregation == .sum {
            // Saturating: a sum of finite rewards stays finite (two of 1e308 made +inf, which no record can hold).
            value = min(max(value + reward, -Double.greatestFiniteMagnitude), Double.greatestFiniteMagnitude)
        }
        // Listed only while the list holds every reward before it (not past `keep`, nor after a table dropped it).
        if listed.count == Int(count) && listed.count < Self.keep { listed.append(reward) }
        if count < Int32.max { count += 1 }
    }

    /// The event's reward clipped to `range`; `fallback` when none came.
    func value(range: ClosedRange<Double>, fallback: Double) -> Double {
        guard count > 0 else { return fallback }
        return value.isFinite ? min(max(value, range.lowerBound), range.upperBound) : (value > 0 ? range.upperBound : range.lowerBound)
    }
}

/// A decision (or `:learn` line) waiting to be joined: where its line is in the log, not the line.
struct PendingDecision: Equatable, Sendable {
    var order: Int
    /// When the joiner first read it (ms of the caller's clock). ``PendingTable`` keeps one time: an activated
    /// deferred decision reads back with its activation time here, and an activated plain one with this as its
    /// activation time (neither needs the other).
    var seen: Int64
    /// Its segment (an index into ``JoinState/segments``), byte offset and length.
    var segment: Int32
    var offset: Int
    var length: Int32
    var deferred: Bool
    var learn: Bool
    var activated: Int64?
    var rewards = RewardTally()
}

/// Rewards and activations of an event id whose decision was not read yet.
struct OrphanEvent: Equatable, Sendable {
    var seen: Int64
    var activated: Int64?
    var rewards = RewardTally()
}

/// A first-in first-out list of keys with the value that marks their entry (order or time); entries whose key
/// moved on are skipped by the reader. Amortised O(1), compacted as it drains.
struct KeyQueue: Sendable {
    private var items: [(key: EventKey, mark: Int64)] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var first: (key: EventKey, mark: Int64)? { isEmpty ? nil : items[head] }

    mutating func append(_ key: EventKey, _ mark: Int64) { items.append((key, mark)) }

    mutating func removeFirst() {
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: items.count < 4096)
            head = 0
        } else if head >= 4096 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
    }

    mutating func removeAll() {
        items = []
        head = 0
    }

    /// Rebuilt from `(key, mark)` pairs in mark order.
    init(_ pairs: [(key: EventKey, mark: Int64)] = []) {
        items = pairs.sorted { $0.mark < $1.mark }
    }
}

/// Everything the join must remember across restarts, and its journal form (see ``Joiner``).
struct JoinState: Sendable {
    var nextFile = 1
    var nextOrder = 0
    var joined = 0
    /// The last step written (to the journal or a snapshot).
    var step = 0
    var offsets: [String: Int] = [:]
    var segments: [String] = []
    var segmentIndex: [String: Int32] = [:]
    var pending = PendingTable()
    var orphans = OrphanTable()

    mutating func segment(_ name: String) -> Int32 {
        if let index = segmentIndex[name] { return index }
        let index = Int32(segments.count)
        segments.append(name)
        segmentIndex[name] = index
        return index
    }

    // MARK: Serialised form

    /// One record: a full snapshot (every member) or a journal entry (what one step changed), one JSON line:
    /// `{"v":2,"step":N,"next_file":F,"next_order":K,"joined":J,"offsets":{"<segment>":bytes},`
    /// ` "pending":[[key,order,seen,"<segment>",offset,length,flags,activated|null,count,value,[listed]]],`
    /// ` "orphans":[[key,seen,activated|null,count,value,[listed]]],"removed":[key,...]}`;
    /// keys are 16 hex digits, flags 1 = deferred, 2 = `:learn`, times in ms of the joiner's clock. Version 1
    /// records (32-digit keys, tallies as `count,first,sum,[more]`) are still read: their value is the sum.
    func record(offsets changedOffsets: [String: Int], keys: some Sequence<EventKey>) -> [UInt8] {
        var writer = JSONWriter(capacity: 256)
        begin(&writer, offsets: changedOffsets)
        var removed: [EventKey] = []
        var orphanEvents: [(EventKey, OrphanEvent)] = []
        writer.key("pending")
        writer.beginArray()
        for key in keys {
            if let p = pending[key] {
                entry(&writer, key, p)
            } else if let orphan = orphans[key] {
                orphanEvents.append((key, orphan))
            } else {
                removed.append(key)
            }
        }
        writer.endArray()
        writer.key("orphans")
        writer.beginArray()
        for (key, o) in orphanEvents { entry(&writer, key, o) }
        writer.endArray()
        writer.key("removed")
        writer.beginArray()
        for key in removed { writer.string(key.hex) }
        writer.endArray()
        writer.endObject()
        return writer.bytes + [0x0A]
    }

    /// The snapshot: every member, as records of about `piece` bytes each (one line each; the first holds the
    /// offsets), handed to `emit` one at a time. Applied in order onto an empty state they restore it; a million
    /// pending decisions are about 100 MB of JSON, which is never held whole, written or read, nor a list of keys.
    func snapshot<E: Error>(piece: Int = 1 << 20, emit: ([UInt8]) throws(E) -> Void) throws(E) {
        var writer = JSONWriter(capacity: piece + 4096)
        var first = true
        var orphanSection = false
        func open() {
            begin(&writer, offsets: first ? offsets : [:])
            first = false
            writer.key("pending")
            writer.beginArray()
            if orphanSection {
                writer.endArray()
                writer.key("orphans")
                writer.beginArray()
            }
        }
        func close() throws(E) {
            writer.endArray()
            if !orphanSection {
                writer.key("orphans")
                writer.beginArray()
                writer.endArray()
            }
            writer.key("removed")
            writer.beginArray()
            writer.endArray()
            writer.endObject()
            writer.raw("\n".utf8)
            try writer.flush(emit)
        }
        open()
        try pending.forEach { (key, p) throws(E) in
            entry(&writer, key, p)
            if writer.bytes.count >= piece {
                try close()
                open()
            }
        }
        writer.endArray()
        writer.key("orphans")
        writer.beginArray()
        orphanSection = true
        try orphans.forEach { (key, o) throws(E) in
            entry(&writer, key, o)
            if writer.bytes.count >= piece {
                try close()
                open()
            }
        }
        try close()
    }

    private func begin(_ writer: inout JSONWriter, offsets: [String: Int]) {
        writer.beginObject()
        writer.key("v"); writer.int(2)
        writer.key("step"); writer.int(step)
        writer.key("next_file"); writer.int(nextFile)
        writer.key("next_order"); writer.int(nextOrder)
        writer.key("joined"); writer.int(joined)
        writer.key("offsets")
        writer.beginObject()
        for (segment, offset) in offsets.sorted(by: { $0.key < $1.key }) { writer.key(segment); writer.int(offset) }
        writer.endObject()
    }

    private func entry(_ writer: inout JSONWriter, _ key: EventKey, _ p: PendingDecision) {
        writer.beginArray()
        writer.string(key.hex); writer.int(p.order); writer.int(Int(p.seen)); writer.string(segments[Int(p.segment)])
        writer.int(p.offset); writer.int(Int(p.length)); writer.int((p.deferred ? 1 : 0) | (p.learn ? 2 : 0))
        Self.optional(&writer, p.activated); Self.tally(&writer, p.rewards)
        writer.endArray()
    }

    private func entry(_ writer: inout JSONWriter, _ key: EventKey, _ o: OrphanEvent) {
        writer.beginArray()
        writer.string(key.hex); writer.int(Int(o.seen)); Self.optional(&writer, o.activated); Self.tally(&writer, o.rewards)
        writer.endArray()
    }

    private static func optional(_ writer: inout JSONWriter, _ value: Int64?) {
        if let value { writer.int(Int(value)) } else { writer.raw("null".utf8) }
    }

    private static func tally(_ writer: inout JSONWriter, _ t: RewardTally) {
        writer.int(Int(t.count)); writer.double(t.value)
        writer.beginArray(); for r in t.listed { writer.double(r) }; writer.endArray()
    }

    /// Applies one record (a snapshot onto an empty state, or a journal entry onto the state before it).
    /// Throws, changing nothing, when any part of it is not what `record` writes.
    mutating func apply(_ line: some Collection<UInt8>) throws(JoinStateError) {
        guard let value = try? JSONParser.parse(Array(line), maxDepth: 6), case .object = value,
              let version = value[member: "v"]?.numberText, version == "1" || version == "2" else {
            throw JoinStateError("not a join state record")
        }
        // Version 1: a tally is count, first, sum and the rewards after the first.
        let tallyFields = version == "1" ? 4 : 3
        // Counts, orders and times (ms) below 2^50: the join adds to them (a state holding Int.max trapped every start).
        func int(_ v: JSONValue?, _ what: String) throws(JoinStateError) -> Int {
            guard let text = v?.numberText, let n = Int(text), n >= 0, n < 1 << 50 else {
                throw JoinStateError("\(what) is not a count below 2^50")
            }
            return n
        }
        func optionalTime(_ v: JSONValue?) throws(JoinStateError) -> Int64? {
            v == .null ? nil : Int64(try int(v, "a time"))
        }
        func double(_ v: JSONValue?) throws(JoinStateError) -> Double {
            guard let text = v?.numberText, let d = Double(text), d.isFinite else { throw JoinStateError("a reward is not finite") }
            return d
        }
        func tally(_ fields: ArraySlice<JSONValue>) throws(JoinStateError) -> RewardTally {
            guard fields.count == tallyFields, let list = fields.last?.arrayValue,
                  list.count + tallyFields - 3 <= RewardTally.keep else {
                throw JoinStateError("a reward tally is malformed")
            }
            let start = fields.startIndex
            var t = RewardTally()
            let count = try int(fields[start], "a reward count")
            guard count <= Int(Int32.max) else { throw JoinStateError("a reward count is too large") }
            t.count = Int32(count)
            t.value = try double(fields[start + tallyFields - 2])
            if tallyFields == 4 && count > 0 { t.listed.append(try double(fields[start + 1])) }
            for r in list { t.listed.append(try double(r)) }
            guard t.listed.count <= count else { throw JoinStateError("a reward tally lists more rewards than it counts") }
            return t
        }
        func key(_ v: JSONValue?) throws(JoinStateError) -> EventKey {
            guard let text = v?.stringValue, let key = EventKey(hex: text) else { throw JoinStateError("an event key is malformed") }
            return key
        }
        let step = try int(value[member: "step"], "step")
        let nextFile = try int(value[member: "next_file"], "next_file")
        let nextOrder = try int(value[member: "next_order"], "next_order")
        let joined = try int(value[member: "joined"], "joined")
        guard nextFile >= 1, case .object(let offsetList)? = value[member: "offsets"],
              let pendingList = value[member: "pending"]?.arrayValue, let orphanList = value[member: "orphans"]?.arrayValue,
              let removedList = value[member: "removed"]?.arrayValue else { throw JoinStateError("a member is missing") }
        // Everything is checked before anything changes (no copy of the state per record).
        var offsets: [(String, Int)] = []
        for (segment, offset) in offsetList {
            guard SegmentName(fileName: segment) != nil else { throw JoinStateError("\(segment) is not a segment name") }
            offsets.append((segment, try int(offset, "an offset")))
        }
        var removed: [EventKey] = []
        for item in removedList { removed.append(try key(item)) }
        var decisions: [(EventKey, String, PendingDecision)] = []
        for item in pendingList {
            guard let f = item.arrayValue, f.count == 8 + tallyFields, let segment = f[3].stringValue, SegmentName(fileName: segment) != nil else {
                throw JoinStateError("a pending decision is malformed")
            }
            let flags = try int(f[6], "flags")
            let length = try int(f[5], "a length")
            let order = try int(f[1], "an order")
            // Flag 2 (`:learn`) is never pending across steps: a record holding one was not written by the join.
            guard flags <= 1, length <= Int(Int32.max), order < nextOrder else { throw JoinStateError("a pending decision is malformed") }
            decisions.append((try key(f[0]), segment, PendingDecision(
                order: order, seen: Int64(try int(f[2], "a time")), segment: 0, offset: try int(f[4], "an offset"),
                length: Int32(length), deferred: flags & 1 != 0, learn: flags & 2 != 0, activated: try optionalTime(f[7]),
                rewards: try tally(f[8...])
            )))
        }
        var orphanEvents: [(EventKey, OrphanEvent)] = []
        for item in orphanList {
            guard let f = item.arrayValue, f.count == 3 + tallyFields else { throw JoinStateError("an orphan is malformed") }
            orphanEvents.append((try key(f[0]), OrphanEvent(seen: Int64(try int(f[1], "a time")), activated: try optionalTime(f[2]),
                                                            rewards: try tally(f[3...]))))
        }
        self.step = step
        self.nextFile = nextFile
        self.nextOrder = nextOrder
        self.joined = joined
        for (segment, offset) in offsets { self.offsets[segment] = offset }
        for k in removed {
            pending[k] = nil
            orphans[k] = nil
        }
        for (k, segment, var decision) in decisions {
            decision.segment = self.segment(segment)
            pending[k] = decision
            orphans[k] = nil
        }
        for (k, orphan) in orphanEvents {
            orphans[k] = orphan
            pending[k] = nil
        }
    }
}

struct JoinStateError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

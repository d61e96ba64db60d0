import Synchronization

/// The slot ids of the multislot decisions this instance made lately, so that a reward naming a slot its decision
/// does not have is refused (400) rather than logged and never joined. Bounded in entries and in bytes (slot ids
/// are up to 256 bytes, a decision may have many): the oldest are forgotten first. A reward for an event not
/// remembered here (another replica's, or from before a restart) is accepted, as single-slot rewards are (SPEC §8.3).
final class RecentSlotDecisions: Sendable {
    private struct Table {
        var slots: [String: [String]] = [:]
        var order: [String] = []
        var head = 0
        var bytes = 0
    }

    private let table = Mutex(Table())
    let capacity: Int
    let maxBytes: Int

    init(capacity: Int = 100_000, maxBytes: Int = 16 << 20) {
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    /// The memory an entry is counted for: its strings and a fixed overhead.
    private static func size(_ eventID: String, _ slots: [String]) -> Int {
        64 + eventID.utf8.count + slots.reduce(0) { $0 + 16 + $1.utf8.count }
    }

    func remember(eventID: String, slots: [String]) {
        table.withLock { table in
            if let old = table.slots.updateValue(slots, forKey: eventID) {
                table.bytes -= Self.size(eventID, old)
            } else {
                table.order.append(eventID)
            }
            table.bytes += Self.size(eventID, slots)
            while table.head < table.order.count && (table.order.count - table.head > capacity || table.bytes > maxBytes) {
                let oldest = table.order[table.head]
                if let old = table.slots.removeValue(forKey: oldest) { table.bytes -= Self.size(oldest, old) }
                table.head += 1
            }
            if table.head > 1024 && table.head * 2 > table.order.count {
                table.order.removeFirst(table.head)
                table.head = 0
            }
        }
    }

    /// The slot ids of the decision `eventID`; nil when it is not remembered.
    func slots(of eventID: String) -> [String]? {
        table.withLock { $0.slots[eventID] }
    }
}

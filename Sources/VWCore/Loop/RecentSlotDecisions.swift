import Synchronization

/// The slot ids of the multislot decisions this instance made lately, so that a reward naming a slot its decision
/// does not have is refused (400) rather than logged and never joined. Bounded: the oldest are forgotten first; a
/// reward for an event not remembered here (another replica's, or from before a restart) is accepted, as
/// single-slot rewards are (SPEC §8.3).
final class RecentSlotDecisions: Sendable {
    private struct Table {
        var slots: [String: [String]] = [:]
        var order: [String] = []
        var head = 0
    }

    private let table = Mutex(Table())
    let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    func remember(eventID: String, slots: [String]) {
        table.withLock { table in
            if table.slots.updateValue(slots, forKey: eventID) == nil { table.order.append(eventID) }
            while table.order.count - table.head > capacity {
                table.slots[table.order[table.head]] = nil
                table.head += 1
            }
            if table.head > capacity {
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

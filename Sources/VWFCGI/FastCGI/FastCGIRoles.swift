import CFastCGI
import VWCore

/// One nginx connection: libfcgi's state for it, owned by whichever thread took its last event.
///
/// Unchecked Sendable: the epoll set's one-shot arming gives a connection to one thread at a time (from its event
/// to its arming again), and it moves from a poller to another thread only through ``Roles``' lock.
struct Connection: @unchecked Sendable {
    let request: UnsafeMutablePointer<FCGX_Request>

    init(request: UnsafeMutablePointer<FCGX_Request>) {
        self.request = request
    }

    init(token: UInt64) {
        request = UnsafeMutablePointer(bitPattern: UInt(token))!
    }

    /// The connection's token in the epoll set: its state's address.
    var token: UInt64 { UInt64(UInt(bitPattern: request)) }
}

/// A request read by a poller that waits (for vw, for the disk), with its connection.
struct WaitingRequest: Sendable {
    let connection: Connection
    var request: HTTPRequest
    /// Whether the poller read the body already.
    let bodyRead: Bool
}

/// Which thread polls and which answers a request that waits: at most `pollers` poll at a time, the others answer
/// one waiting request each or are parked.
///
/// Unchecked Sendable: `polling`, `parked`, `queued` and `head` are only touched under `condition`'s lock.
final class Roles: @unchecked Sendable {
    enum Role {
        case poll
        case serve(WaitingRequest)
    }

    private let pollers: Int
    private let condition = Condition()
    private var polling = 0
    private var parked = 0
    /// Taken slots are nil (their request freed at once) up to `head`; they are dropped when the queue empties, or
    /// once they are half of it.
    private var queued: [WaitingRequest?] = []
    private var head = 0

    init(pollers: Int) {
        self.pollers = pollers
    }

    /// A thread's next role, once there is one: polling while fewer than `pollers` poll (the front first), else the
    /// oldest queued request; parked meanwhile.
    func next() -> Role {
        condition.waitToTake({ () -> Role? in
            if polling < pollers {
                polling += 1
                return .poll
            }
            guard head < queued.count, let request = queued[head] else { return nil }
            queued[head] = nil
            head += 1
            if head == queued.count {
                queued.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64, head * 2 >= queued.count {
                queued.removeFirst(head)
                head = 0
            }
            return .serve(request)
        }, waiting: { parked += $0 ? 1 : -1 })
    }

    /// A poller took a request that waits: when a thread is parked, gives it this one's place (true); else false
    /// (the poller queues the request and polls on).
    func handOverPolling() -> Bool {
        condition.signal {
            guard parked > 0 else { return false }
            polling -= 1
            return true
        }
    }

    /// Queues a request for the next thread that finishes one (every thread is busy).
    func queue(_ request: WaitingRequest) {
        condition.withLock { queued.append(request) }
    }

    /// Whether no request is queued (a thread following its connection leaves it for a queued one).
    var nothingQueued: Bool {
        condition.withLock { head == queued.count }
    }
}

#if canImport(Glibc)
import Glibc
#endif
public import Logging
import Synchronization

/// A request to stop, which a long-lived thread waits on between two rounds of work: the one way such a thread
/// pauses (a condition variable with a ``Deadline``), and, for a thread that blocks in `poll(2)`, a descriptor that
/// becomes readable once stopped.
public final class StopToken: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let condition = Condition()
    /// A pipe's read end, readable once ``stop()`` ran: poll it beside the descriptor a thread waits on (-1 when no
    /// pipe could be made: such a thread sees the stop at its next timeout).
    public let descriptor: Int32
    private let writeEnd: Int32

    public init() {
        // (vw children close every descriptor they do not need before exec: CSpawn.)
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) != 0 { ends = [-1, -1] }
        for end in ends where end >= 0 {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        descriptor = ends[0]
        writeEnd = ends[1]
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
        if writeEnd >= 0 { close(writeEnd) }
    }

    public var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// Asks the thread to stop; wakes it wherever it waits (the condition or its descriptor).
    public func stop() {
        condition.broadcast { stopped.store(true, ordering: .releasing) }
        if writeEnd >= 0 {
            var one: UInt8 = 1
            _ = write(writeEnd, &one, 1)
        }
    }

    /// Waits until `deadline` passes or a stop is asked; returns whether a stop was asked.
    @discardableResult
    public func wait(until deadline: Deadline) -> Bool {
        condition.wait(until: deadline) { isStopped }
    }

    /// Waits `duration`, or less when a stop is asked; returns whether a stop was asked.
    @discardableResult
    public func wait(for duration: Duration) -> Bool {
        wait(until: .after(duration))
    }
}

/// A long-lived job on its own thread (the shape of swift-service-lifecycle's `Service`, on threads): `run` works
/// until `stop` is asked, finishes what it started, and returns.
public protocol BackgroundService: Sendable {
    /// The thread's name (at most 15 bytes show in `ps`).
    var serviceName: String { get }
    func run(until stop: StopToken)
}

/// Starts services in order, each on its own thread, and stops them in the reverse order, waiting for each to
/// return (SPEC's graceful stop: `vwfcgi serve` and `vwfcgi train` on SIGTERM/SIGINT).
public final class ServiceGroup: Sendable {
    private final class Running: Sendable {
        let service: any BackgroundService
        let token = StopToken()
        let finished = Atomic<Bool>(false)
        let done = Condition()

        init(_ service: any BackgroundService) { self.service = service }
    }

    private let running = Mutex<[Running]>([])
    private let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    /// Starts `service` on a new thread; it is stopped before every service started earlier.
    public func start(_ service: some BackgroundService) {
        let entry = Running(service)
        running.withLock { $0.append(entry) }
        DetachedThread.start(name: service.serviceName) {
            entry.service.run(until: entry.token)
            entry.done.broadcast { entry.finished.store(true, ordering: .releasing) }
        }
    }

    /// Stops the services, the last started first, giving each until `deadline` to return; returns the names of
    /// those that did not (they are left running: the process is about to exit).
    @discardableResult
    public func stop(deadline: Deadline) -> [String] {
        let entries = running.withLock { entries in
            defer { entries.removeAll() }
            return entries
        }
        var late: [String] = []
        for entry in entries.reversed() {
            entry.token.stop()
            let stopped = entry.done.wait(until: deadline) { entry.finished.load(ordering: .acquiring) }
            if !stopped {
                logger.warning("a service did not stop in time", metadata: ["service": "\(entry.service.serviceName)"])
                late.append(entry.service.serviceName)
            }
        }
        return late
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A point in time by which something must have happened: the one time type of every wait in the engine.
public struct Deadline: Sendable, Comparable {
    public let instant: ContinuousClock.Instant

    public init(_ instant: ContinuousClock.Instant) {
        self.instant = instant
    }

    /// The deadline `duration` from now.
    public static func after(_ duration: Duration) -> Deadline {
        Deadline(.now + duration)
    }

    /// A deadline that never comes.
    public static let never = Deadline(.now + .seconds(100 * 365 * 86_400))

    public var hasPassed: Bool { ContinuousClock.now >= instant }

    /// The time left, zero once passed.
    public var remaining: Duration { max(.zero, instant - .now) }

    /// The earlier of two deadlines.
    public func capped(at other: Deadline) -> Deadline { min(self, other) }

    /// The deadline as an absolute CLOCK_MONOTONIC time, for `pthread_cond_timedwait` and `poll`.
    var monotonicTimespec: timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = remaining.components
        var result = timespec(tv_sec: now.tv_sec + Int(seconds), tv_nsec: now.tv_nsec + Int(attoseconds / 1_000_000_000))
        if result.tv_nsec >= 1_000_000_000 {
            result.tv_sec += 1
            result.tv_nsec -= 1_000_000_000
        }
        return result
    }

    /// Milliseconds left, rounded up, for poll(2); 0 once passed, capped to Int32.
    var pollMilliseconds: Int32 {
        let (seconds, attoseconds) = remaining.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }

    public static func < (lhs: Deadline, rhs: Deadline) -> Bool { lhs.instant < rhs.instant }
}

/// A condition variable over its own mutex, waited on with a ``Deadline``.
///
/// Replaces sleep-polling: whoever changes what waiters look at calls `broadcast` under `withLock`.
///
/// Unchecked Sendable: its only state is the pthread mutex and condition, allocated once and used only through
/// pthread calls, which are thread-safe.
public final class Condition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Wakes every waiter, after `change` ran under the lock.
    public func broadcast(after change: () -> Void = {}) {
        pthread_mutex_lock(mutex)
        change()
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Runs `change` under the lock and wakes one waiter when it returns true (each change for one taker).
    @discardableResult
    public func signal(when change: () -> Bool) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard change() else { return false }
        pthread_cond_signal(condition)
        return true
    }

    /// Waits, without a deadline, until `take` (run under the lock) returns a value, and returns it; `waiting(true)`
    /// and `waiting(false)` run under the lock around each wait (to count the waiters).
    public func waitToTake<T>(_ take: () -> T?, waiting: (Bool) -> Void = { _ in }) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if let value = take() { return value }
            waiting(true)
            pthread_cond_wait(condition, mutex)
            waiting(false)
        }
    }

    /// Runs `body` under the lock (what waiters look at, read or changed without waking anyone).
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits until `predicate` holds or `deadline` passes; returns whether it holds.
    ///
    /// `predicate` is evaluated under the lock, so a `broadcast` between its check and the wait is never missed.
    @discardableResult
    public func wait(until deadline: Deadline, for predicate: () -> Bool) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !predicate() {
            if deadline.hasPassed { return false }
            var time = deadline.monotonicTimespec
            _ = pthread_cond_timedwait(condition, mutex, &time)
        }
        return true
    }
}

#if canImport(Glibc)
import Glibc
#endif
public import Logging

/// Keeps a `ModelStore` in line with its directory: inotify for speed, a periodic rescan for what
/// inotify misses (network file systems, Kubernetes' `..data` symlink swap on some volumes).
///
/// A burst of events is coalesced into one reconciliation. Files announced finished by the
/// kernel (closed after writing, or renamed into place) load at once; files that merely changed
/// load once they have been left alone for a moment, so a model copied in place is never read
/// half-written.
public final class ModelDirectoryWatcher: BackgroundService {
    let store: ModelStore
    let rescanInterval: Duration
    let logger: Logger

    public init(store: ModelStore, rescanInterval: Duration = .seconds(1), logger: Logger) {
        self.store = store
        self.rescanInterval = rescanInterval
        self.logger = logger
    }

    public var serviceName: String { "model-watcher" }

    /// Watches until `stop` is asked (its descriptor is polled beside inotify's, so a stop is seen at once).
    public func run(until stop: StopToken) {
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        if fd < 0 {
            logger.warning("inotify unavailable, relying on the periodic rescan", metadata: ["errno": "\(errno)"])
        } else {
            let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MODIFY)
            if inotify_add_watch(fd, store.settings.modelDirectory, mask) < 0 {
                logger.warning("cannot watch the model directory, relying on the periodic rescan", metadata: ["errno": "\(errno)"])
            }
        }
        defer { if fd >= 0 { close(fd) } }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
        defer { buffer.deallocate() }
        var nextRescan = ContinuousClock.now + rescanInterval
        var waitingToSettle = false
        // Files a writer has open (modified, not yet closed): kept across iterations, cleared by close, rename or delete.
        var writing = Set<String>()
        while !stop.isStopped {
            let wait = waitingToSettle ? min(ModelReconciler.settleTime, nextRescan - .now) : nextRescan - .now
            var finished = Set<String>()
            var settleAll = false
            var sawEvent = false
            if Self.poll(fd, stop: stop.descriptor, timeout: wait) {
                sawEvent = true
                // Coalesce a burst: keep reading while events keep coming within a few milliseconds.
                repeat {
                    let n = read(fd, buffer.baseAddress, buffer.count)
                    if n <= 0 { break }
                    Self.parse(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), finished: &finished, writing: &writing, settleAll: &settleAll)
                } while Self.poll(fd, stop: stop.descriptor, timeout: .milliseconds(5))
            }
            if stop.isStopped { break }
            if !sawEvent && !waitingToSettle && ContinuousClock.now < nextRescan { continue }
            if settleAll { writing.removeAll() }
            waitingToSettle = store.reconcile(finished: finished, writing: writing, settleAll: settleAll)
            if ContinuousClock.now >= nextRescan { nextRescan = ContinuousClock.now + rescanInterval }
        }
    }

    /// Collects the names the kernel reports as completely written.
    private static func parse(
        _ events: UnsafeRawBufferPointer, finished: inout Set<String>, writing: inout Set<String>, settleAll: inout Bool
    ) {
        var offset = 0
        let headerSize = MemoryLayout<inotify_event>.size
        while offset + headerSize <= events.count {
            let mask = events.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let length = Int(events.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameBytes = events[(offset + headerSize)..<min(events.count, offset + headerSize + length)]
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            if mask & UInt32(IN_MODIFY) != 0 {
                // Written again after a close: not finished any more.
                writing.insert(name)
                finished.remove(name)
            }
            if mask & UInt32(IN_DELETE | IN_MOVED_FROM) != 0 { writing.remove(name) }
            if mask & UInt32(IN_CLOSE_WRITE | IN_MOVED_TO) != 0 {
                writing.remove(name)
                finished.insert(name)
                // Kubernetes publishes a new volume content by renaming `..data`.
                if name.hasPrefix("..") { settleAll = true }
            }
            if mask & UInt32(IN_Q_OVERFLOW) != 0 { settleAll = true }
            offset += headerSize + length
        }
    }

    /// Waits until inotify's `fd` is readable (true), or `stop` is, or `timeout` passes (false). `fd` may be -1
    /// (no inotify: only the stop and the timeout end the wait).
    private static func poll(_ fd: Int32, stop: Int32, timeout: Duration) -> Bool {
        var entries = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stop, events: Int16(POLLIN), revents: 0)]
        let deadline = Deadline.after(max(.zero, timeout))
        let rc = retryingInterrupts { Glibc.poll(&entries, 2, deadline.pollMilliseconds) }
        return rc > 0 && entries[0].revents != 0
    }
}

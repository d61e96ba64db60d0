#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The name of one log segment, `<instance>-<seq>.dsjson`; segments sort by instance, then seq as a number.
public struct SegmentName: Comparable, Hashable, Sendable {
    public let instance: String
    public let seq: Int

    public init(instance: String, seq: Int) {
        self.instance = instance
        self.seq = seq
    }

    /// Parses a file name; nil for anything else (temporary files, other names).
    public init?(fileName: String) {
        guard fileName.hasSuffix(".dsjson") else { return nil }
        let stem = fileName.dropLast(".dsjson".count)
        guard let dash = stem.lastIndex(of: "-"), let seq = LoopFiles.number(in: stem[stem.index(after: dash)...]) else { return nil }
        let instance = String(stem[..<dash])
        guard EventLog.isValidInstance(instance) else { return nil }
        self.init(instance: instance, seq: seq)
    }

    public var fileName: String { "\(instance)-\(seq).dsjson" }

    public static func < (lhs: SegmentName, rhs: SegmentName) -> Bool {
        (lhs.instance, lhs.seq) < (rhs.instance, rhs.seq)
    }
}

/// One model's durable, append-only decision and reward log (SPEC §8.4).
///
/// Lines go to `<state>/<name>/log/<instance>-<seq>.dsjson`. A new segment starts when the current one would
/// exceed `maxSegmentBytes` or is older than `maxSegmentAge`, and always when a log is opened, so a writer never
/// appends after another process's torn line (kill -9 leaves at most the last line of a segment torn; the
/// ``LogReader`` skips and reports it).
///
/// Group commit (leader/follower): every `append` enqueues its lines and waits on one ``Condition``; whichever
/// caller finds no write in progress becomes the leader, takes everything queued, writes it with one `write`
/// and one `fsync`, publishes the result and wakes the others. Appends arriving during that fsync form the next
/// batch. So N concurrent appends cost as few as 2 fsyncs, and a lone append costs exactly one.
///
/// A failed write or fsync (disk full, directory gone, read-only) throws to every append of the batch; the
/// segment is cut back to its length before the batch when possible, otherwise the next batch starts a new
/// segment. A failed append may still have reached the disk (its caller got an error and may retry).
///
/// `@unchecked Sendable`: the fields after `condition` are read and written only under its mutex, and those marked
/// "owned by the current leader" only by the one append that set `leaderActive` under that mutex (ownership passes
/// from leader to leader through it).
public final class EventLog: @unchecked Sendable {
    public let directory: String
    /// The log directory, held by descriptor (never through a symlink: SPEC §8.9).
    private let handle: StateDirectory
    public let instance: String
    public let maxSegmentBytes: Int
    public let maxSegmentAge: Duration

    private let condition = Condition()
    // Guarded by `condition`'s mutex:
    private var queued: [UInt8] = []
    private var lastEnqueued = 0
    private var lastCompleted = 0
    private var leaderActive = false
    private var failures: [Int: EventLogError] = [:]
    private var fsyncs = 0
    /// The leader's segment, published after each batch.
    private var lastSegment: SegmentName
    // Owned by the current leader:
    private var fd: Int32 = -1
    private var segment: SegmentName
    private var segmentBytes = 0
    private var segmentOpened = ContinuousClock.now
    /// Test hook: run by each leader after it took its batch, before writing it.
    private let beforeBatch = Mutex<(@Sendable () -> Void)?>(nil)

    /// Opens the log of model `name` under `stateDirectory` for `instance` (creating the directories); the first
    /// segment is `seq` one past the highest of this instance already there.
    public init(stateDirectory: String, name: String, instance: String, maxSegmentBytes: Int = 64 << 20,
                maxSegmentAge: Duration = .seconds(3600)) throws(EventLogError) {
        guard EventLog.isValidInstance(instance) else { throw EventLogError("event log: invalid instance id \(instance)") }
        handle = try StateDirectory.root(stateDirectory).directory(name + "/log")
        directory = handle.path
        self.instance = instance
        self.maxSegmentBytes = maxSegmentBytes
        self.maxSegmentAge = maxSegmentAge
        let highest = handle.list().compactMap(SegmentName.init(fileName:)).filter { $0.instance == instance }
            .map(\.seq).max() ?? 0
        segment = SegmentName(instance: instance, seq: highest)
        lastSegment = segment
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// `[A-Za-z0-9_.-]{1,128}`, not starting with `.`: safe in a file name.
    public static func isValidInstance(_ instance: String) -> Bool {
        FileName.isSafe(instance.utf8)
    }

    /// How many fsyncs of segment data were made (group commit makes it far fewer than appends).
    public var fsyncCount: Int { locked { fsyncs } }

    /// Appends accepted so far (queued, written or failed).
    var appendsQueued: Int { locked { lastEnqueued } }

    /// The segment of the last batch (its seq is that of the newest segment before the first append).
    public var currentSegment: SegmentName { locked { lastSegment } }

    /// Appends `lines` (each one JSON object without "\n") and returns once they are written and fsynced.
    /// The lines of one call stay together and in order.
    public func append(lines: [[UInt8]]) throws(EventLogError) {
        for line in lines where line.isEmpty || line.contains(0x0A) {
            throw EventLogError("event log: a line must be non-empty and hold no newline")
        }
        if lines.isEmpty { return }
        var ticket = 0
        condition.broadcast {
            // Copied once, straight into the queue (no intermediate buffer per append).
            for line in lines {
                queued.append(contentsOf: line)
                queued.append(0x0A)
            }
            lastEnqueued += 1
            ticket = lastEnqueued
        }
        while true {
            var batch: [UInt8] = []
            var batchEnd = 0, batchStart = 0
            condition.wait(until: .never) {
                if lastCompleted >= ticket { return true }
                if leaderActive { return false }
                leaderActive = true
                batch = queued
                queued = []
                batchStart = lastCompleted + 1
                batchEnd = lastEnqueued
                return true
            }
            if batchEnd == 0 {
                // Completed by some leader.
                let failure: EventLogError? = locked { failures.removeValue(forKey: ticket) }
                if let failure { throw failure }
                return
            }
            beforeBatch.withLock { $0 }?()
            let result = writeBatch(batch)
            condition.broadcast {
                leaderActive = false
                lastCompleted = batchEnd
                lastSegment = segment
                if case .failure(let error) = result {
                    for t in batchStart...batchEnd where t != ticket { failures[t] = error }
                } else {
                    fsyncs += 1
                }
            }
            if case .failure(let error) = result { throw error }
            return
        }
    }

    /// Closes the current segment once no batch is being written; the next append opens a new one.
    public func close() {
        condition.wait(until: .never) {
            if leaderActive { return false }
            leaderActive = true
            return true
        }
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        condition.broadcast { leaderActive = false }
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.withLock(body)
    }

    /// Sets the test hook run by each leader after it took its batch, before writing it.
    func setBeforeBatch(_ hook: (@Sendable () -> Void)?) {
        beforeBatch.withLock { $0 = hook }
    }

    /// Writes and fsyncs one batch into the current segment, rotating first when due. Leader only.
    private func writeBatch(_ bytes: [UInt8]) -> Result<Void, EventLogError> {
        do throws(EventLogError) {
            if fd >= 0 && segmentBytes > 0
                && (segmentBytes + bytes.count > maxSegmentBytes || ContinuousClock.now - segmentOpened >= maxSegmentAge) {
                Glibc.close(fd)
                fd = -1
            }
            if fd < 0 { try openNextSegment() }
            let path = directory + "/" + segment.fileName
            do {
                try LoopFiles.writeAll(fd, bytes, path: path)
                try LoopFiles.fsyncFile(fd, path: path)
                segmentBytes += bytes.count
            } catch {
                // Cut the partial batch off; if that fails too, leave the segment (the reader skips a torn line).
                if ftruncate(fd, off_t(segmentBytes)) != 0 || fsync(fd) != 0 {
                    Glibc.close(fd)
                    fd = -1
                }
                throw error
            }
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    private func openNextSegment() throws(EventLogError) {
        let next = SegmentName(instance: instance, seq: segment.seq + 1)
        let path = directory + "/" + next.fileName
        let opened = openat(handle.fd, next.fileName, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if opened < 0 {
            // Keep the number when it was taken, so the next try moves on.
            if errno == EEXIST { segment = next }
            throw .system("create segment", path)
        }
        segment = next
        segmentBytes = 0
        segmentOpened = .now
        fd = opened
        do {
            try handle.sync()
        } catch {
            Glibc.close(fd)
            fd = -1
            throw error
        }
    }
}

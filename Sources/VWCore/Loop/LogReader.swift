#if canImport(Glibc)
import Glibc
#endif

/// One complete, valid line of the event log.
public struct LogRecord: Sendable {
    public let segment: SegmentName
    /// Byte offset of the line in its segment.
    public let offset: Int
    public let line: [UInt8]
    /// The parsed line: an object with a string `"EventId"`.
    public let value: JSONValue
    public let eventId: String
}

/// Why a line (or a file) was skipped: the `reason` label of `vwfcgi_loop_skipped_lines_total`.
public enum SkipReason: String, Sendable {
    /// A last line without "\n" in a segment its writer has left (kill -9 while writing: never acknowledged).
    case torn
    /// A line over the reader's line limit (never held whole: skipped as it streams by).
    case tooLong = "too_long"
    /// Not a JSON object with a string `"EventId"`, or not a decision, reward, activation or `:learn` line.
    case invalid
    /// A decision whose `a`/`p` are not action ids with probabilities.
    case decision
    /// A reward that is not a finite number.
    case reward
    /// A file where a segment should be that is not a regular file (FIFO, socket, device, directory, symlink).
    case notRegular = "not_regular"
    /// A decision line that was gone or different when it was read again to be joined.
    case changed
    /// A joined line the trainer refused (TrainingInput).
    case training
    /// A logged probability below `min_probability`, clipped for training (the line is still learned).
    case clippedProbability = "clipped_probability"
}

/// A line the reader skipped: torn by a crash (no final "\n" in a segment its writer has left) or not a valid event.
public struct SkippedLine: Equatable, Sendable, CustomStringConvertible {
    public let segment: SegmentName
    public let offset: Int
    public let length: Int
    public let reason: String
    public var kind: SkipReason = .invalid

    public init(segment: SegmentName, offset: Int, length: Int, reason: String, kind: SkipReason = .invalid) {
        self.segment = segment
        self.offset = offset
        self.length = length
        self.reason = reason
        self.kind = kind
    }

    public var description: String { "\(segment.fileName) at byte \(offset) (\(length) bytes): \(reason)" }
}

/// Reads every instance's segments under `<state>/<name>/log/`, resuming where it stopped.
///
/// Segments are read in ``SegmentName`` order (instance, then seq as a number), each from its remembered byte
/// offset to its last complete line. A last line without "\n" is left alone while it is in the newest segment
/// of its instance (its writer may still be appending it); in an older segment (the writer moved on or was
/// restarted) it is torn: skipped and reported. A complete line that is not a JSON object with a string
/// `"EventId"` is skipped and reported too.
///
/// Bounded: an unterminated tail is remembered by how far it was scanned and only the bytes after that are read
/// next time; a line longer than `maxLineBytes` is skipped as it streams by (never held whole); one call reads at
/// most about `maxBytesPerRead` (the rest comes in the next call: `caughtUp` says whether it read to the end).
/// Entries that are not regular files are refused (opened with `O_NOFOLLOW | O_NONBLOCK`, checked with `fstat`),
/// reported once each. Nothing here is fatal but an unreadable log directory.
public struct LogReader: Sendable {
    public let directory: StateDirectory
    /// Bytes consumed per segment file name: everything before is read, reported or skipped.
    public var offsets: [String: Int]
    /// JSON nesting allowed in a line (the context's own limit plus the line's object).
    public var maxDepth = 64
    public var maxLineBytes = 16 << 20
    public var maxBytesPerRead = 4 << 20
    /// Per segment: how many bytes past its offset were scanned without finding "\n", and whether that tail is
    /// over the line limit (then the offset moves with the scan and the line is skipped when it ends).
    private var tails: [String: (scanned: Int, skipping: Bool)] = [:]
    /// Entries already reported as not regular files.
    private var refused: Set<String> = []
    /// Bytes read from segments so far (a tail is never read again whole: tests check this).
    public private(set) var bytesRead = 0
    /// Whether the last `readNew` reached the end of every segment.
    public private(set) var caughtUp = true

    /// Reads the log directory at `logDirectory` (created when missing).
    public init(logDirectory: String, offsets: [String: Int] = [:]) throws(EventLogError) {
        self.init(directory: try StateDirectory.root(logDirectory), offsets: offsets)
    }

    public init(directory: StateDirectory, offsets: [String: Int] = [:]) {
        self.directory = directory
        self.offsets = offsets
    }

    /// The lines appended since the last call, and the lines skipped on the way.
    /// With `writersStopped`, a last line without "\n" counts as torn in every segment (no writer is running).
    public mutating func readNew(writersStopped: Bool = false) -> (records: [LogRecord], skipped: [SkippedLine]) {
        var segments: [SegmentName] = []
        var skipped: [SkippedLine] = []
        for entry in directory.entries() {
            guard let segment = SegmentName(fileName: entry.name) else { continue }
            if entry.regular {
                segments.append(segment)
            } else if refused.insert(entry.name).inserted {
                skipped.append(SkippedLine(segment: segment, offset: 0, length: 0,
                                           reason: "not a regular file (\(StateDirectory.kind(at: directory.fd, entry.name))); refused",
                                           kind: .notRegular))
            }
        }
        segments.sort()
        var newest: [String: Int] = [:]
        for segment in segments { newest[segment.instance] = max(newest[segment.instance] ?? 0, segment.seq) }
        var records: [LogRecord] = []
        var budget = maxBytesPerRead
        caughtUp = true
        for segment in segments {
            guard budget > 0 else {
                caughtUp = false
                break
            }
            let fd: Int32
            do {
                guard let opened = try directory.openRegular(segment.fileName) else { continue }  // removed since the listing
                fd = opened
            } catch {
                if refused.insert(segment.fileName).inserted {
                    skipped.append(SkippedLine(segment: segment, offset: 0, length: 0, reason: error.message, kind: .notRegular))
                }
                continue
            }
            defer { close(fd) }
            let torn = writersStopped || segment.seq < (newest[segment.instance] ?? segment.seq)
            let more = read(segment, fd: fd, torn: torn, budget: &budget, into: &records, skipped: &skipped)
            if more { caughtUp = false }
        }
        return (records, skipped)
    }

    /// Reads one segment from its offset; returns whether bytes are left unread for lack of budget.
    ///
    /// Only the bytes past what was scanned before are read; when they end an unterminated tail that was short
    /// enough to keep, that one line is read back whole (once).
    private mutating func read(_ segment: SegmentName, fd: Int32, torn: Bool, budget: inout Int,
                               into records: inout [LogRecord], skipped: inout [SkippedLine]) -> Bool {
        let name = segment.fileName
        let start = offsets[name] ?? 0
        let tail = tails[name] ?? (0, false)
        var info = stat()
        guard fstat(fd, &info) == 0 else { return false }
        let size = Int(info.st_size)
        let scanEnd = start + tail.scanned
        // Shorter than what was read (cut by someone else): wait until it grows past it again.
        if size < scanEnd { return false }
        if size == scanEnd {
            if torn && size > start {
                skipped.append(SkippedLine(segment: segment, offset: start, length: size - start,
                                           reason: tail.skipping ? "line over \(maxLineBytes) bytes" : "torn last line (no final newline)",
                                           kind: tail.skipping ? .tooLong : .torn))
                offsets[name] = size
                tails[name] = nil
            }
            return false
        }
        let bytes = Self.pread(fd, offset: scanEnd, count: min(size - scanEnd, max(budget, 1 << 16)))
        budget -= bytes.count
        bytesRead += bytes.count
        var lineStart = 0
        var lineOffset = start
        if tail.scanned > 0 {
            guard let newline = bytes.firstIndex(of: 0x0A) else {
                let scanned = tail.scanned + bytes.count
                tails[name] = (scanned, tail.skipping || scanned > maxLineBytes)
                return scanEnd + bytes.count < size
            }
            let length = tail.scanned + newline
            if tail.skipping || length > maxLineBytes {
                skipped.append(SkippedLine(segment: segment, offset: start, length: length,
                                           reason: "line over \(maxLineBytes) bytes", kind: .tooLong))
            } else {
                let line = Self.pread(fd, offset: start, count: length)
                bytesRead += line.count
                take(line, segment: segment, offset: start, into: &records, skipped: &skipped)
            }
            lineStart = newline + 1
            lineOffset = scanEnd + lineStart
        }
        while lineStart < bytes.count {
            guard let newline = bytes[lineStart...].firstIndex(of: 0x0A) else {
                let rest = bytes.count - lineStart
                tails[name] = (rest, rest > maxLineBytes)
                offsets[name] = lineOffset
                return scanEnd + bytes.count < size
            }
            let length = newline - lineStart
            if length > maxLineBytes {
                skipped.append(SkippedLine(segment: segment, offset: lineOffset, length: length,
                                           reason: "line over \(maxLineBytes) bytes", kind: .tooLong))
            } else {
                take(Array(bytes[lineStart..<newline]), segment: segment, offset: lineOffset, into: &records, skipped: &skipped)
            }
            lineStart = newline + 1
            lineOffset = scanEnd + lineStart
        }
        tails[name] = nil
        offsets[name] = lineOffset
        return scanEnd + bytes.count < size
    }

    private func take(_ line: [UInt8], segment: SegmentName, offset: Int, into records: inout [LogRecord], skipped: inout [SkippedLine]) {
        do {
            let value = try JSONParser.parse(line, maxDepth: maxDepth)
            if let id = value[member: "EventId"]?.stringValue {
                records.append(LogRecord(segment: segment, offset: offset, line: line, value: value, eventId: id))
            } else {
                skipped.append(SkippedLine(segment: segment, offset: offset, length: line.count, reason: "not an event (no string EventId)"))
            }
        } catch {
            skipped.append(SkippedLine(segment: segment, offset: offset, length: line.count, reason: error.message))
        }
    }

    /// Up to `count` bytes of `fd` at `offset` (fewer at its end or on an error).
    static func pread(_ fd: Int32, offset: Int, count: Int) -> [UInt8] {
        (try? FileIO.read(fd, at: offset, count: count)) ?? []
    }

    /// Reads back the line at `offset` (`length` bytes, without its "\n") of `segment`; nil when it is gone,
    /// not a regular file, shorter, or not followed by "\n".
    public func line(in segment: String, offset: Int, length: Int) -> [UInt8]? {
        guard length >= 0, length <= maxLineBytes, offset >= 0,
              let fd = try? directory.openRegular(segment) else { return nil }
        defer { close(fd) }
        var bytes = Self.pread(fd, offset: offset, count: length + 1)
        let got = bytes.count
        guard got == length + 1, bytes[length] == 0x0A else { return nil }
        bytes.removeLast()
        return bytes
    }
}

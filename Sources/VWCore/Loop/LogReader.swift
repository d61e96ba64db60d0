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
    public var eventId: String { value[member: "EventId"]!.stringValue! }
}

/// A line the reader skipped: torn by a crash (no final "\n" in a segment its writer has left) or not a valid event.
public struct SkippedLine: Equatable, Sendable, CustomStringConvertible {
    public let segment: SegmentName
    public let offset: Int
    public let length: Int
    public let reason: String

    public var description: String { "\(segment.fileName) at byte \(offset) (\(length) bytes): \(reason)" }
}

/// Reads every instance's segments under `<state>/<name>/log/`, resuming where it stopped.
///
/// Segments are read in ``SegmentName`` order (instance, then seq as a number), each from its remembered byte
/// offset to its last complete line. A last line without "\n" is left alone while it is in the newest segment
/// of its instance (its writer may still be appending it); in an older segment (the writer moved on or was
/// restarted) it is torn: skipped and reported. A complete line that is not a JSON object with a string
/// `"EventId"` is skipped and reported too. Nothing here is fatal but an unreadable directory or file.
public struct LogReader: Sendable {
    public let directory: String
    /// Bytes consumed per segment file name: everything before is read, reported or skipped.
    public var offsets: [String: Int]
    /// JSON nesting allowed in a line (the context's own limit plus the line's object).
    public var maxDepth = 64

    public init(logDirectory: String, offsets: [String: Int] = [:]) {
        directory = logDirectory
        self.offsets = offsets
    }

    /// The lines appended since the last call, and the lines skipped on the way.
    /// With `writersStopped`, a last line without "\n" counts as torn in every segment (no writer is running).
    public mutating func readNew(writersStopped: Bool = false) throws(EventLogError) -> (records: [LogRecord], skipped: [SkippedLine]) {
        let segments = LoopFiles.list(directory).compactMap(SegmentName.init(fileName:)).sorted()
        var newest: [String: Int] = [:]
        for segment in segments { newest[segment.instance] = max(newest[segment.instance] ?? 0, segment.seq) }
        var records: [LogRecord] = []
        var skipped: [SkippedLine] = []
        for segment in segments {
            let path = directory + "/" + segment.fileName
            let start = offsets[segment.fileName] ?? 0
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                if errno == ENOENT { continue }  // removed since the listing (shipped away): nothing to read
                throw .system("open", path)
            }
            let bytes: [UInt8]
            do {
                bytes = try LoopFiles.readRest(fd, from: start, path: path)
            } catch {
                close(fd)
                throw error
            }
            close(fd)
            var lineStart = 0
            while lineStart < bytes.count {
                guard let newline = bytes[lineStart...].firstIndex(of: 0x0A) else {
                    if writersStopped || segment.seq < newest[segment.instance]! {
                        skipped.append(SkippedLine(segment: segment, offset: start + lineStart, length: bytes.count - lineStart,
                                                   reason: "torn last line (no final newline)"))
                        lineStart = bytes.count
                    }
                    break
                }
                let line = Array(bytes[lineStart..<newline])
                do {
                    let value = try JSONParser.parse(line, maxDepth: maxDepth)
                    if value[member: "EventId"]?.stringValue == nil {
                        skipped.append(SkippedLine(segment: segment, offset: start + lineStart, length: line.count,
                                                   reason: "not an event (no string EventId)"))
                    } else {
                        records.append(LogRecord(segment: segment, offset: start + lineStart, line: line, value: value))
                    }
                } catch {
                    skipped.append(SkippedLine(segment: segment, offset: start + lineStart, length: line.count, reason: error.message))
                }
                lineStart = newline + 1
            }
            offsets[segment.fileName] = start + lineStart
        }
        return (records, skipped)
    }
}

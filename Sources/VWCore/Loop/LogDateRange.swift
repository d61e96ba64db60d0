#if canImport(Glibc)
import Glibc
#endif

/// The time span of a model's logged events (Personalizer's `GET …/logs/properties`, SPEC §9): the `Timestamp` of the
/// first line of each instance's oldest segment and of the last complete line of its newest one, read from the
/// segments' ends only (never whole files).
public struct LogDateRange: Sendable, Equatable {
    public var from: String?
    public var to: String?

    /// How much of a segment's start or end is read for its first or last line.
    static let window = 64 << 10

    /// The range of the segments in `directory` (`<state>/<name>/log`); nil ends when there is none.
    public static func of(directory: String) -> LogDateRange {
        var range = LogDateRange()
        let segments = (ModelDirectory.entries(of: directory) ?? []).compactMap(SegmentName.init(fileName:))
        for instance in Set(segments.map(\.instance)) {
            let mine = segments.filter { $0.instance == instance }
            if let oldest = mine.min(), let first = timestamp(directory + "/" + oldest.fileName, last: false) {
                if range.from.map({ first < $0 }) ?? true { range.from = first }
            }
            if let newest = mine.max(), let last = timestamp(directory + "/" + newest.fileName, last: true) {
                if range.to.map({ last > $0 }) ?? true { range.to = last }
            }
        }
        return range
    }

    /// The `Timestamp` of the first (or last complete) line of a file; RFC 3339 UTC strings compare as times.
    static func timestamp(_ path: String, last: Bool) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        let size = Int(info.st_size)
        let start = last ? max(0, size - window) : 0
        let bytes = (try? FileIO.read(fd, at: start, count: min(window, size - start))) ?? []
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: true)
        // A line not ended by "\n" may be half-written or cut by the window, as may the window's first one.
        if bytes.last != 0x0A, !lines.isEmpty { lines.removeLast() }
        if start > 0, !lines.isEmpty { lines.removeFirst() }
        for line in last ? Array(lines.reversed()) : Array(lines) {
            if case .object(let members)? = try? JSONParser.parse(Array(line), maxDepth: 64),
               case .string(let stamp)? = members.last(where: { $0.key == "Timestamp" })?.value {
                return stamp
            }
        }
        return nil
    }
}

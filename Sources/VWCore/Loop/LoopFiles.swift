#if canImport(Glibc)
import Glibc
#endif

/// Why the event log or the join could not do its work; `message` is meant for a 503 body and the log.
public struct EventLogError: Error, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    /// The error for a failed system call on `path`, with errno's text (`No space left on device`).
    static func system(_ operation: String, _ path: String, errno code: Int32 = errno) -> EventLogError {
        EventLogError(SystemError(operation, path: path, code: code))
    }

    init(_ error: SystemError) {
        self.init("event log: \(error.description)")
    }

    public var description: String { message }
}

/// The file-system steps of the log and the join, each checked and reported as an ``EventLogError``.
enum LoopFiles {
    /// Creates `path` and its missing parents (mode 0755).
    static func makeDirectories(_ path: String) throws(EventLogError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component + "/"
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw .system("create directory", prefix) }
        }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { throw .system("use directory", path) }
    }

    /// The names in `directory` (no `.`/`..`); empty when it does not exist.
    static func list(_ directory: String) -> [String] { FileIO.entryNames(atPath: directory) ?? [] }

    /// Writes all of `bytes` to `fd`, resuming after short writes and EINTR.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(EventLogError) {
        let written = bytes.withUnsafeBytes { raw in Result { () throws(SystemError) in try FileIO.writeAll(fd, raw, path: path) } }
        if case .failure(let error) = written { throw EventLogError(error) }
    }

    static func fsyncFile(_ fd: Int32, path: String) throws(EventLogError) {
        if fsync(fd) != 0 { throw .system("fsync", path) }
    }

    /// Replaces `path` with `bytes` atomically, through ``StateDirectory/replace(_:fill:)`` in its directory
    /// (the temporary is `.<name>.tmp`, a name every reader of these directories ignores).
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(EventLogError) {
        let name = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
        guard StateDirectory.isPlainName(name) else { throw EventLogError("event log: cannot write \(path): not a file name") }
        try StateDirectory.root(directory(of: path)).writeAtomically(bytes, to: name)
    }

    /// The whole file, or nil when it does not exist; anything but a regular file (a FIFO cannot block the
    /// reader: `O_NONBLOCK`, then `fstat`) is refused.
    static func read(_ path: String) throws(EventLogError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .system("open", path)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw EventLogError("\(path) is not a regular file; refused") }
        return try readRest(fd, from: 0, path: path)
    }

    /// The bytes of `fd` from `offset` to its end.
    static func readRest(_ fd: Int32, from offset: Int, path: String) throws(EventLogError) -> [UInt8] {
        do {
            return try FileIO.readToEnd(fd, from: offset)
        } catch {
            throw .system("read", path, errno: error.code)
        }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The number `N` of a name `<prefix>N<suffix>` with only digits for N, else nil.
    static func number(in name: Substring) -> Int? {
        guard !name.isEmpty, name.count <= 18, name.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(name)
    }
}

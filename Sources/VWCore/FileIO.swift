#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: what was done, on which path (empty when none), and errno.
public struct SystemError: Error, Equatable, CustomStringConvertible {
    public let operation: String
    public let path: String
    public let code: Int32

    init(_ operation: String, path: String = "", code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    /// `cannot write /state/m/log/a-1.dsjson: No space left on device`.
    public var description: String {
        "cannot \(operation)\(path.isEmpty ? "" : " " + path): \(String(cString: strerror(code)))"
    }
}

/// Calls `call` again while it fails with EINTR: the one such loop. Returns its result (-1 with errno set when it
/// failed otherwise), for calls whose failure the caller handles itself (poll, waitpid, a pipe's EAGAIN).
@inline(__always)
func retryingInterrupts<Result: FixedWidthInteger & SignedInteger>(_ call: () -> Result) -> Result {
    while true {
        let result = call()
        if result != -1 || errno != EINTR { return result }
    }
}

/// Runs system call `call` (retried after EINTR) and throws a ``SystemError`` with errno and `path` when it fails:
/// the shape of swift-nio's `syscall(blocking:where:)`.
@discardableResult
func syscall<Result: FixedWidthInteger & SignedInteger>(
    _ operation: String, path: String = "", _ call: () -> Result
) throws(SystemError) -> Result {
    let result = retryingInterrupts(call)
    if result == -1 { throw SystemError(operation, path: path) }
    return result
}

/// Whole reads and writes on a descriptor, resumed after short transfers (and EINTR, through ``syscall(_:path:_:)``):
/// the one copy of these loops behind the model directory (`LoadError`), the event log and the join
/// (`EventLogError`). Failures carry the errno.
public enum FileIO {
    public typealias Failure = SystemError

    /// Writes all of `bytes` to `fd`.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String = "") throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            offset += try syscall("write", path: path) { Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
        }
    }

    /// Reads into `buffer` until it is full or `fd` ends (with `pread` from `offset` when given, else from the file
    /// position); the number of bytes read.
    static func fill(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int? = nil, path: String = "") throws(SystemError) -> Int {
        var filled = 0
        while filled < buffer.count {
            let n = try syscall("read", path: path) {
                if let offset { Glibc.pread(fd, buffer.baseAddress! + filled, buffer.count - filled, off_t(offset + filled)) }
                else { Glibc.read(fd, buffer.baseAddress! + filled, buffer.count - filled) }
            }
            if n == 0 { break }
            filled += n
        }
        return filled
    }

    /// Up to `count` bytes of `fd` from `offset` (fewer at its end).
    static func read(_ fd: Int32, at offset: Int, count: Int, path: String = "") throws(SystemError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: max(0, count))
        // (Array's withUnsafeMutableBytes rethrows untyped: the result comes out as a Result.)
        let got = bytes.withUnsafeMutableBytes { buffer in Result { () throws(SystemError) in try fill(fd, buffer, at: offset, path: path) } }
        bytes.removeSubrange(try got.get()...)
        return bytes
    }

    /// The bytes of `fd` from `offset` (read with pread) to its end, at most `maxBytes` of them
    /// (EFBIG beyond).
    public static func readToEnd(_ fd: Int32, from offset: Int = 0, maxBytes: Int = .max, path: String = "") throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var position = offset
        while true {
            let n = try chunk.withUnsafeMutableBytes { buffer in
                Result { () throws(SystemError) in try syscall("read", path: path) { pread(fd, buffer.baseAddress!, buffer.count, off_t(position)) } }
            }.get()
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
            position += n
            if result.count > maxBytes { throw SystemError("read", path: path, code: EFBIG) }
        }
    }

    /// The entries of the directory open at `fd` (no `.`/`..`), each with whether it is a regular file (by `d_type`,
    /// or `fstatat` without following a link when the file system does not say): the one readdir loop. `fd` stays
    /// open (a duplicate is read).
    static func entries(ofDirectory fd: Int32) -> [(name: String, regular: Bool)] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return []
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [(String, Bool)] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            var regular = Int32(entry.pointee.d_type) == Int32(DT_REG)
            if Int32(entry.pointee.d_type) == Int32(DT_UNKNOWN) {
                var info = stat()
                regular = fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT == S_IFREG
            }
            names.append((name, regular))
        }
        return names
    }

    /// The names in the directory at `path` (any type), nil when it cannot be opened.
    static func entryNames(atPath path: String) -> [String]? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return entries(ofDirectory: fd).map(\.name)
    }
}

/// The one rule for names that become file names (model names, instance ids): 1 to 128 bytes of `[A-Za-z0-9_.-]`,
/// not starting with `.` (no hidden, temporary-looking or relative name), and with `alphanumericFirst` a letter
/// or digit first (model names: `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`).
enum FileName {
    static func isSafe(_ name: some Collection<UInt8>, alphanumericFirst: Bool = false) -> Bool {
        guard let first = name.first, name.count <= 128, first != UInt8(ascii: "."),
              !alphanumericFirst || isAlphanumeric(first) else { return false }
        return name.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
    }
}

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
}

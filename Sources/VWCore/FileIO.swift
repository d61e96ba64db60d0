#if canImport(Glibc)
import Glibc
#endif

/// Whole reads and writes on a descriptor, resumed after short transfers and EINTR: the one copy of
/// these loops behind the model directory (`LoadError`) and the event log and join (`EventLogError`).
/// Failures carry the errno.
public enum FileIO {
    public struct Failure: Error {
        public let code: Int32
    }

    /// Writes all of `bytes` to `fd`.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(code: errno)
            }
            offset += n
        }
    }

    /// The bytes of `fd` from `offset` (read with pread) to its end, at most `maxBytes` of them
    /// (EFBIG beyond).
    public static func readToEnd(_ fd: Int32, from offset: Int = 0, maxBytes: Int = .max) throws(Failure) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var position = offset
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(position)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(code: errno)
            }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
            position += n
            if result.count > maxBytes { throw Failure(code: EFBIG) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// What the model directory holds for one model name, as seen by stat(2).
struct ModelFiles: Equatable, Sendable {
    var model: FileStamp?
    var config: FileStamp?
    var checksum: FileStamp?

    /// The latest modification time among the files (realtime nanoseconds).
    var newestModification: Int64 {
        [model, config, checksum].compactMap { $0?.modified }.max() ?? 0
    }
}

func realtimeNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// Enough of stat(2) to notice that a file changed (symlinks followed, as Kubernetes swaps `..data`).
struct FileStamp: Equatable, Sendable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modified: Int64

    init(device: UInt64, inode: UInt64, size: Int64, modified: Int64) {
        self.device = device
        self.inode = inode
        self.size = size
        self.modified = modified
    }

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }
}

/// Lists model files by the naming rules of the model directory.
enum ModelDirectory {
    enum Kind { case model, config, checksum }

    /// Whether `name` is a valid model name: `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`.
    static func isValidName(_ name: Substring) -> Bool {
        let bytes = name.utf8
        guard let first = bytes.first, bytes.count <= 128, isAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
    }

    /// Files that writers use while writing, always skipped silently.
    static func isTransient(_ file: String) -> Bool {
        file.hasPrefix(".") || file.hasSuffix(".tmp") || file.hasSuffix(".part") || file.hasSuffix(".writing") || file.hasSuffix("~")
    }

    /// Splits a file name into a model name and what the file is; nil for other files.
    static func classify(_ file: String) -> (name: Substring, kind: Kind)? {
        for (suffix, kind) in [(".vw", Kind.model), (".json", .config), (".sha256", .checksum)] where file.hasSuffix(suffix) {
            let name = file.dropLast(suffix.count)
            return isValidName(name) ? (name, kind) : nil
        }
        return nil
    }

    /// Names in `directory` (entries only), or nil when it cannot be read.
    static func entries(of directory: String) -> [String]? {
        guard let dir = opendir(directory) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Reads a whole small file (a config or checksum), refusing one over `maxBytes`.
    static func read(_ path: String, maxBytes: Int = 1 << 20) throws(LoadError) -> [UInt8] {
        // O_NONBLOCK: a FIFO put where a file belongs cannot block the reader; fstat refuses it (a symlink to a
        // regular file is fine: Kubernetes mounts ConfigMaps and volumes through them).
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw .unreadable("\(path) is not a regular file") }
        do {
            return try FileIO.readToEnd(fd, maxBytes: maxBytes)
        } catch {
            throw .unreadable(error.code == EFBIG ? "\(path) is over \(maxBytes) bytes" : "\(path): \(String(cString: strerror(error.code)))")
        }
    }

    /// How much of a model file is read before anything else: VW's header is in it.
    static let headerBytes = 1 << 16

    /// Copies the model file at `source` to the new file `staged`, hashing the bytes as they are copied.
    ///
    /// Never holds more than one chunk of the file in memory. The size is checked before the
    /// first read and again while reading (the file may grow); `checkHeader` sees the first
    /// `headerBytes` before anything is written, so a file that is not a VW model costs one read.
    /// On any failure `staged` is removed.
    ///
    /// - Returns: the hasher after the model bytes (the caller appends the config for the version).
    static func stage(
        _ source: String, to staged: String, maxBytes: Int, checkHeader: ([UInt8]) throws(LoadError) -> Void
    ) throws(LoadError) -> SHA256 {
        let fd = open(source, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable("\(source): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw .unreadable("\(source): not a regular file") }
        if Int(info.st_size) > maxBytes {
            throw .unreadable("\(source) is \(info.st_size) bytes, over the limit of \(maxBytes) (--max-model-bytes)")
        }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(LoadError) -> Int {
            var filled = 0
            while filled < buffer.count {
                let n = Glibc.read(fd, buffer.baseAddress! + filled, buffer.count - filled)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .unreadable("\(source): \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }
                filled += n
            }
            return filled
        }
        var count = try fill(UnsafeMutableRawBufferPointer(rebasing: chunk[0..<headerBytes]))
        try checkHeader(Array(UnsafeRawBufferPointer(rebasing: chunk[0..<count])))
        let out = open(staged, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw .unreadable("cannot stage \(staged): \(String(cString: strerror(errno)))") }
        var hasher = SHA256()
        var total = 0
        do throws(LoadError) {
            defer { close(out) }
            while count > 0 {
                total += count
                if total > maxBytes {
                    throw .unreadable("\(source) grew over the limit of \(maxBytes) bytes (--max-model-bytes)")
                }
                let bytes = UnsafeRawBufferPointer(rebasing: chunk[0..<count])
                hasher.update(bytes)
                if isZero(bytes) {
                    // Holes stay holes: a sparse file is not made dense in the staging directory.
                    guard lseek(out, off_t(count), SEEK_CUR) >= 0 else {
                        throw .unreadable("cannot stage \(staged): \(String(cString: strerror(errno)))")
                    }
                } else {
                    try writeAll(bytes, to: out, path: staged)
                }
                count = try fill(chunk)
            }
            guard ftruncate(out, off_t(total)) == 0 else {
                throw .unreadable("cannot stage \(staged): \(String(cString: strerror(errno)))")
            }
        } catch {
            unlink(staged)
            throw error
        }
        return hasher
    }

    /// Copies `source` to `destination` durably (a `.tmp` copy, mode 0644, fsync, rename); returns the
    /// SHA-256 of the bytes, nil on any failure (nothing is left at `destination` then).
    static func copyDurably(_ source: String, to destination: String) -> SHA256? {
        let temporary = destination + ".tmp"
        unlink(temporary)
        guard let hash = try? stage(source, to: temporary, maxBytes: Int.max, checkHeader: { _ in }) else { return nil }
        let fd = open(temporary, O_RDONLY | O_CLOEXEC)
        let synced = fd >= 0 && fsync(fd) == 0
        if fd >= 0 { close(fd) }
        // Readable by a sidecar that ships it (a staged copy is private, 0600).
        guard synced, chmod(temporary, 0o644) == 0, rename(temporary, destination) == 0 else {
            unlink(temporary)
            return nil
        }
        return hash
    }

    /// Writes model `name` into `directory` as a model-sync source expects: `<name>.sha256`, then `<name>.vw`,
    /// each through a temporary name every reader ignores, fsynced and renamed. nil or why not.
    static func publish(name: String, model: String, into directory: String) -> String? {
        let target = directory + "/" + name
        let staged = directory + "/." + name + ".vw.publish"
        defer { unlink(staged) }
        guard var hash = copyDurably(model, to: staged) else { return "cannot copy \(model) to \(staged)" }
        do throws(EventLogError) {
            try LoopFiles.writeAtomically(Array((hash.finalize().hexString + "  " + name + ".vw\n").utf8), to: target + ".sha256")
            if rename(staged, target + ".vw") != 0 { throw .system("rename", staged) }
            try LoopFiles.fsyncDirectory(directory)
        } catch {
            return error.message
        }
        return nil
    }

    private static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let words = bytes.count / 8
        while index < words {
            if bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self) != 0 { return false }
            index += 1
        }
        for byte in bytes[(words * 8)...] where byte != 0 { return false }
        return true
    }

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32, path: String) throws(LoadError) {
        do {
            try FileIO.writeAll(fd, bytes)
        } catch {
            throw .unreadable("cannot stage \(path): \(String(cString: strerror(error.code)))")
        }
    }
}

/// The current time in RFC 3339 (UTC, milliseconds).
func rfc3339Now() -> String {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    var seconds = now.tv_sec
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ value: Int32, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
}

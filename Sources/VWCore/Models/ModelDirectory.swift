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
        FileName.isSafe(name.utf8, alphanumericFirst: true)
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
    static func entries(of directory: String) -> [String]? { FileIO.entryNames(atPath: directory) }

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
        try copy(source, into: .newFile(staged), maxBytes: maxBytes, checkHeader: checkHeader)
    }

    /// Where ``copy(_:into:maxBytes:checkHeader:)`` writes: a new private file (mode 0600, created once the header
    /// passed, removed on failure), or an open descriptor (a durable write's temporary, see ``copyDurably``).
    enum CopyTarget {
        case newFile(String)
        case descriptor(Int32, path: String)
    }

    /// Copies the model file at `source` into `target`, hashing the bytes (see ``stage``).
    static func copy(
        _ source: String, into target: CopyTarget, maxBytes: Int, checkHeader: ([UInt8]) throws(LoadError) -> Void
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
            do {
                return try FileIO.fill(fd, buffer)
            } catch {
                throw .unreadable("\(source): \(String(cString: strerror(error.code)))")
            }
        }
        var count = try fill(UnsafeMutableRawBufferPointer(rebasing: chunk[0..<headerBytes]))
        try checkHeader(Array(UnsafeRawBufferPointer(rebasing: chunk[0..<count])))
        let out: Int32, staged: String
        switch target {
        case .newFile(let path):
            out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            staged = path
            guard out >= 0 else { throw .unreadable("cannot stage \(staged): \(String(cString: strerror(errno)))") }
        case .descriptor(let fd, let path):
            (out, staged) = (fd, path)
        }
        var hasher = SHA256()
        var total = 0
        do throws(LoadError) {
            defer { if case .newFile = target { close(out) } }
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
            if case .newFile = target { unlink(staged) }
            throw error
        }
        return hasher
    }

    /// Copies `source` into `directory` as `name` through the one durable write (``StateDirectory/replace(_:fill:)``:
    /// a temporary, mode 0644 so that a sidecar can ship it, fsynced, renamed); the SHA-256 of the bytes, nil on any
    /// failure (`name` is unchanged then).
    static func copyDurably(_ source: String, into directory: StateDirectory, as name: String) -> SHA256? {
        var hash: SHA256?
        do throws(EventLogError) {
            try directory.replace(name) { fd, path throws(EventLogError) in
                do throws(LoadError) {
                    hash = try copy(source, into: .descriptor(fd, path: path), maxBytes: Int.max, checkHeader: { _ in })
                } catch {
                    throw EventLogError(error.description)
                }
            }
        } catch {
            return nil
        }
        return hash
    }

    /// ``copyDurably(_:into:as:)`` to a path.
    static func copyDurably(_ source: String, to destination: String) -> SHA256? {
        let name = destination.lastIndex(of: "/").map { String(destination[destination.index(after: $0)...]) } ?? destination
        guard let directory = try? StateDirectory.root(LoopFiles.directory(of: destination)) else { return nil }
        return copyDurably(source, into: directory, as: name)
    }

    /// Writes model `name` into `directory` as a model-sync source expects: `<name>.sha256`, then `<name>.vw`.
    /// The model is first copied durably under a name every reader ignores (hashing the bytes copied), the checksum
    /// written durably, then the copy renamed into place and the directory fsynced. nil or why not.
    static func publish(name: String, model: String, into directory: String) -> String? {
        let staged = "." + name + ".vw.publish"
        do throws(EventLogError) {
            let target = try StateDirectory.root(directory)
            defer { target.remove(staged) }
            guard var hash = copyDurably(model, into: target, as: staged) else { return "cannot copy \(model) into \(directory)" }
            try target.writeAtomically(Array((hash.finalize().hexString + "  " + name + ".vw\n").utf8), to: name + ".sha256")
            try target.rename(staged, to: name + ".vw")
            try target.sync()
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

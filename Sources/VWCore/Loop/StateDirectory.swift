#if canImport(Glibc)
import Glibc
#endif

/// A directory under `--state-dir`, held by descriptor (SPEC §8.9 "State directory").
///
/// The state directory may be writable by others than vwfcgi (a shared volume, a bucket sync, a mis-mounted
/// PVC), so nothing in it is trusted for its type:
/// * each directory is opened one component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)` (a symlink or
///   a non-directory in place of one is refused, never followed, never emptied);
/// * files are opened relative to their directory's descriptor with `O_NOFOLLOW | O_NONBLOCK` (a FIFO cannot
///   block the opener) and checked with `fstat` to be regular files before one byte is read;
/// * files are created with `O_EXCL`, replaced with `renameat` and removed with `unlinkat` inside the
///   directory itself: nothing outside it is written, renamed or deleted.
///
/// Unchecked Sendable: the descriptor is immutable and closed once, in `deinit`.
public final class StateDirectory: @unchecked Sendable {
    public let path: String
    let fd: Int32

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { Glibc.close(fd) }

    /// Opens `root` (the operator's `--state-dir`, trusted: it may be a mount point reached through a symlink),
    /// creating it when missing.
    public static func root(_ root: String) throws(EventLogError) -> StateDirectory {
        try LoopFiles.makeDirectories(root)
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw .system("open directory", root) }
        return StateDirectory(fd: fd, path: root)
    }

    /// The subdirectory `relative` (components separated by `/`), created when missing, never through a symlink.
    public func directory(_ relative: String, create: Bool = true) throws(EventLogError) -> StateDirectory {
        var current = self
        for component in relative.split(separator: "/") {
            let name = String(component)
            guard Self.isPlainName(name) else { throw EventLogError("state directory: invalid name \(name)") }
            let childPath = current.path + "/" + name
            if create && mkdirat(current.fd, name, 0o755) != 0 && errno != EEXIST { throw .system("create directory", childPath) }
            let child = openat(current.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if child < 0 {
                let code = errno
                if code == ELOOP || code == ENOTDIR {
                    throw EventLogError("state directory: \(childPath) is not a directory (\(Self.kind(at: current.fd, name))); refused")
                }
                throw .system("open directory", childPath, errno: code)
            }
            current = StateDirectory(fd: child, path: childPath)
        }
        return current
    }

    /// A name without `/` that is not `.` or `..`.
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(UInt8(ascii: "/")) && !name.utf8.contains(0)
    }

    /// What the entry `name` of directory `fd` is, for messages (`symlink`, `fifo`, ...), without following it.
    static func kind(at fd: Int32, _ name: String) -> String {
        var info = stat()
        guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return "missing" }
        return kind(of: info.st_mode)
    }

    static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: "regular file"
        case S_IFDIR: "directory"
        case S_IFLNK: "symlink"
        case S_IFIFO: "fifo"
        case S_IFSOCK: "socket"
        case S_IFCHR, S_IFBLK: "device"
        default: "unknown file type"
        }
    }

    /// Opens the regular file `name` for reading (`O_NOFOLLOW | O_NONBLOCK`, then `fstat`); nil when it does not
    /// exist; anything but a regular file is refused with an error naming its type.
    public func openRegular(_ name: String, flags: Int32 = 0 /* O_RDONLY */) throws(EventLogError) -> Int32? {
        let file = path + "/" + name
        let fd = openat(self.fd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o644)
        if fd < 0 {
            let code = errno
            if code == ENOENT { return nil }
            if code == ELOOP || code == EISDIR || code == ENXIO {
                throw EventLogError("state directory: \(file) is not a regular file (\(Self.kind(at: self.fd, name))); refused")
            }
            throw .system("open", file, errno: code)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = EventLogError.system("stat", file)
            Glibc.close(fd)
            throw error
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(fd)
            throw EventLogError("state directory: \(file) is not a regular file (\(Self.kind(of: info.st_mode))); refused")
        }
        return fd
    }

    /// The whole regular file `name` (at most `maxBytes`), or nil when it does not exist.
    public func read(_ name: String, maxBytes: Int = 1 << 30) throws(EventLogError) -> [UInt8]? {
        guard let fd = try openRegular(name) else { return nil }
        defer { Glibc.close(fd) }
        do {
            return try FileIO.readToEnd(fd, maxBytes: maxBytes)
        } catch {
            throw .system("read", path + "/" + name, errno: error.code)
        }
    }

    /// Creates the regular file `name`, which must not exist (`O_EXCL`: never through a symlink).
    public func create(_ name: String, flags: Int32 = 1 /* O_WRONLY */) throws(EventLogError) -> Int32 {
        let fd = openat(self.fd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if fd < 0 { throw .system("create", path + "/" + name) }
        return fd
    }

    /// Replaces `name` with `bytes` atomically (see ``replace(_:fill:)``).
    public func writeAtomically(_ bytes: [UInt8], to name: String) throws(EventLogError) {
        try replace(name) { file, path throws(EventLogError) in try LoopFiles.writeAll(file, bytes, path: path) }
    }

    /// The one durable write of the project: `.name.tmp` is created (`O_EXCL | O_NOFOLLOW`: a leftover is removed
    /// first, a planted link never written through), filled by `fill` (its descriptor and path; mode 0644), fsynced, renamed
    /// over `name`, and the directory fsynced. A reader sees the old file or the new one, never a part; on any
    /// failure the temporary is removed and `name` is unchanged.
    public func replace(_ name: String, fill: (_ fd: Int32, _ path: String) throws(EventLogError) -> Void) throws(EventLogError) {
        let temporary = "." + name + ".tmp"
        unlinkat(fd, temporary, 0)
        let file = openat(fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if file < 0 { throw .system("create", path + "/" + temporary) }
        do {
            defer { Glibc.close(file) }
            try fill(file, path + "/" + temporary)
            try LoopFiles.fsyncFile(file, path: path + "/" + temporary)
        } catch {
            unlinkat(fd, temporary, 0)
            throw error
        }
        do {
            try rename(temporary, to: name)
        } catch {
            unlinkat(fd, temporary, 0)
            throw error
        }
        try sync()
    }

    /// Renames an entry of this directory (never anything outside it).
    public func rename(_ from: String, to: String) throws(EventLogError) {
        if renameat(fd, from, fd, to) != 0 { throw .system("rename", path + "/" + from) }
    }

    /// Moves `name` into subdirectory `into` of this directory as `as`.
    public func move(_ name: String, into: StateDirectory, as newName: String) throws(EventLogError) {
        if renameat(fd, name, into.fd, newName) != 0 { throw .system("move", path + "/" + name) }
    }

    /// Removes the entry `name` (a file, or an empty directory with `directory`); a symlink itself, never its target.
    public func remove(_ name: String, directory: Bool = false) {
        unlinkat(fd, name, directory ? AT_REMOVEDIR : 0)
    }

    public func sync() throws(EventLogError) {
        if fsync(fd) != 0 { throw .system("fsync directory", path) }
    }

    /// The entries of this directory (no `.`/`..`), with whether each is a regular file (not followed).
    public func entries() -> [(name: String, regular: Bool)] { FileIO.entries(ofDirectory: fd) }

    /// The names of the entries (any type).
    public func list() -> [String] { entries().map(\.name) }
}

#if canImport(Glibc)
import Glibc
#endif

/// A model's `joined/` files as retention counts them, kept without listing the directory at every pass.
///
/// A loop writes a joined file per join step that joins anything: about 4 a second under steady traffic, so about
/// ten million over the default 30 days of `joined` retention. Listing and stat-ing all of them at every retention
/// pass (every 2 s, after every join step with a budget) would take the joiner's whole time within days. Joined files
/// are numbered in the order they are written, so the index learns the new ones by probing the numbers after the
/// last it knows, up to the joiner's next number; it forgets the ones retention deletes, and lists the directory
/// again every ``rescanSeconds`` (for what another process or an operator changed meanwhile; outside the joiner's
/// lock: ten million files take about a minute to list and stat).
struct JoinedFileIndex {
    struct File {
        let number: Int
        let bytes: Int
        /// Last modification, seconds since the epoch.
        let modified: Int
    }

    static let rescanSeconds = 3_600

    /// Ascending numbers from `head`; a deleted file in the middle is a tombstone (bytes -1) until compaction.
    private var files: [File] = []
    private var head = 0
    private var tombstones = 0
    private(set) var bytes = 0
    /// The first number not probed yet.
    private var next = 1
    private var scannedAt: Int?

    /// Brings the index up to date: ``rescanIfDue(_:now:)``, then ``probe(_:upTo:)``.
    mutating func refresh(_ directory: StateDirectory, upTo limit: Int?, now: Int) {
        rescanIfDue(directory, now: now)
        probe(directory, upTo: limit)
    }

    /// Lists the directory when the last listing is ``rescanSeconds`` old (or the clock went back, or none was made).
    /// The caller need not hold the joiner: a file renamed in meanwhile is found by the next probe or listing.
    mutating func rescanIfDue(_ directory: StateDirectory, now: Int) {
        if let scannedAt, now >= scannedAt, now - scannedAt < Self.rescanSeconds { return }
        var found: [File] = []
        for entry in directory.entries() where entry.regular {
            guard let number = Joiner.joinedNumber(entry.name), let file = Self.file(directory, entry.name, number: number) else { continue }
            found.append(file)
        }
        found.sort { $0.number < $1.number }
        files = []
        head = 0
        tombstones = 0
        bytes = 0
        for file in found { append(file) }
        next = max(next, (found.last?.number ?? 0) + 1)
        scannedAt = now
    }

    /// Adds the files numbered from the last known up to `limit` (exclusive: the joiner's next number, nil when this
    /// process does not join), one `fstatat` each.
    mutating func probe(_ directory: StateDirectory, upTo limit: Int?) {
        while let limit, next < limit {
            if let file = Self.file(directory, "\(next).dsjson", number: next) { append(file) }
            next += 1
        }
    }

    /// Forgets `number` (retention deleted it).
    mutating func remove(_ number: Int) {
        var low = head, high = files.count
        while low < high {
            let middle = (low + high) / 2
            if files[middle].number < number { low = middle + 1 } else { high = middle }
        }
        guard low < files.count, files[low].number == number, files[low].bytes >= 0 else { return }
        bytes -= files[low].bytes
        files[low] = File(number: number, bytes: -1, modified: files[low].modified)
        tombstones += 1
        while head < files.count, files[head].bytes < 0 {
            head += 1
            tombstones -= 1
        }
        if head >= 4096 && head * 2 >= files.count || tombstones >= 4096 && tombstones * 2 >= files.count - head {
            files = files[head...].filter { $0.bytes >= 0 }
            head = 0
            tombstones = 0
        }
    }

    /// The files, oldest number first, while `body` returns true.
    func forEach(_ body: (File) -> Bool) {
        for file in files[head...] where file.bytes >= 0 {
            if !body(file) { return }
        }
    }

    private mutating func append(_ file: File) {
        files.append(file)
        bytes += file.bytes
    }

    private static func file(_ directory: StateDirectory, _ name: String, number: Int) -> File? {
        var info = stat()
        guard fstatat(directory.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return File(number: number, bytes: Int(info.st_size), modified: Int(info.st_mtim.tv_sec))
    }
}

import CSpawn
import Synchronization

/// How much of the sandbox the kernel lets every vw child run in.
public enum SandboxMode: String, Sendable {
    /// Landlock (read-only filesystem, no TCP, scoped signals and abstract sockets), seccomp,
    /// no new privileges and rlimits.
    case landlockSeccomp = "landlock+seccomp"
    /// The kernel has no Landlock: seccomp, no new privileges and rlimits only.
    case seccomp
    /// The kernel has no seccomp filters: no vw can be started at all.
    case none
}

/// What the server asks of every vw child beyond the fixed sandbox.
public struct SandboxPolicy: Sendable, Equatable {
    /// Largest address space of one vw process in bytes (`RLIMIT_AS`); 0 means unlimited.
    public var memoryLimit: UInt64

    public static let defaultMemoryLimit: UInt64 = 4 << 30

    public init(memoryLimit: UInt64 = SandboxPolicy.defaultMemoryLimit) {
        self.memoryLimit = memoryLimit
    }

    /// Parses a byte count: digits with an optional binary suffix `K`, `M`, `G` or `T` (also
    /// `KiB`, `MB`, ...; case-insensitive). `nil` when malformed or too large.
    public static func parseBytes(_ text: String) -> UInt64? {
        var digits = Substring(text)
        var suffix = ""
        while let last = digits.last, !last.isNumber {
            suffix = String(last) + suffix
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt64(digits) else { return nil }
        let shift: UInt64
        switch suffix.uppercased() {
        case "", "B": shift = 0
        case "K", "KB", "KIB": shift = 10
        case "M", "MB", "MIB": shift = 20
        case "G", "GB", "GIB": shift = 30
        case "T", "TB", "TIB": shift = 40
        default: return nil
        }
        guard value <= UInt64.max >> shift else { return nil }
        return value << shift
    }
}

/// The sandbox of vw children: probed once, configured once at start (see `cspawn_piped`).
public enum Sandbox {
    /// What this kernel enforces on every vw child.
    public static let mode: SandboxMode = {
        switch cspawn_sandbox_mode() {
        case Int32(CSPAWN_SANDBOX_LANDLOCK_SECCOMP): .landlockSeccomp
        case Int32(CSPAWN_SANDBOX_SECCOMP): .seccomp
        default: .none
        }
    }()

    /// The kernel's Landlock ABI version; 0 without Landlock.
    public static let landlockABI = Int(cspawn_landlock_abi())

    private static let current = Mutex(SandboxPolicy())

    /// The policy `VWProcess.spawn` applies by default.
    public static var policy: SandboxPolicy { current.withLock { $0 } }

    /// Sets the policy for every vw started from now on (once, at start).
    public static func configure(_ policy: SandboxPolicy) {
        current.withLock { $0 = policy }
    }
}

/// The one directory a sandboxed vw may write in (the trainer's private output directory), and how
/// large each file may grow.
///
/// vw writes its `-f` model as `<file>.writing` and renames it: Landlock grants creating, writing,
/// renaming and removing regular files beneath this directory alone, so vw can touch nothing else.
/// The grant is made on a descriptor opened with `O_NOFOLLOW | O_DIRECTORY` (`handle`, or `path` opened so):
/// a symlink put in the directory's place is refused, never followed.
public struct WritableDirectory: Sendable {
    public var path: String
    /// `RLIMIT_FSIZE` of the child, in bytes.
    public var maxFileBytes: UInt64
    /// The directory, already opened by descriptor (the trainer's `train/out`).
    public var handle: StateDirectory?

    public init(path: String, maxFileBytes: UInt64) {
        self.path = path
        self.maxFileBytes = maxFileBytes
    }

    public init(_ directory: StateDirectory, maxFileBytes: UInt64) {
        path = directory.path
        self.maxFileBytes = maxFileBytes
        handle = directory
    }
}

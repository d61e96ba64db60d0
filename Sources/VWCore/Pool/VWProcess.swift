#if canImport(Glibc)
import Glibc
#endif
import CSpawn
import Synchronization

/// Why a vw process could not be started or talked to.
public struct ProcessError: Error, Equatable, Sendable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32

    public var description: String { "\(operation) failed: \(String(cString: strerror(errno)))" }
}

/// One vw child driven over its stdin/stdout pipes.
///
/// vw runs as `-i MODEL -t -d /dev/stdin -p /dev/stdout --quiet` (never `--daemon`, which binds
/// every interface). It gets SIGKILL when vwfcgi dies, runs in its own process group, inherits no
/// descriptor but its three pipes, and runs sandboxed (`Sandbox`): it can read files but not
/// write any, cannot open a socket, and its address space is capped.
public final class VWProcess: Sendable {
    public let pid: Int32
    let stdinFD: Int32
    let stdoutFD: Int32
    let stderrFD: Int32

    private init(pid: pid_t, stdinFD: Int32, stdoutFD: Int32, stderrFD: Int32) {
        self.pid = pid
        self.stdinFD = stdinFD
        self.stdoutFD = stdoutFD
        self.stderrFD = stderrFD
    }

    /// Writing to a vw that died must fail with EPIPE, not kill the server.
    private static let ignoreBrokenPipes: Void = { _ = Glibc.signal(SIGPIPE, SIG_IGN) }()

    /// The full argument vector for serving `modelPath`.
    public static func arguments(command: [String], modelPath: String, extraArguments: [String]) -> [String] {
        command + ["-i", modelPath, "-t", "-d", "/dev/stdin", "-p", "/dev/stdout", "--quiet"] + extraArguments
    }

    /// Starts `arguments` with piped stdio, sandboxed, with at most `memoryLimit` bytes of address
    /// space (0: unlimited), from the spawner thread.
    ///
    /// The parent-death signal of a child follows the thread that forked it, not the process: a
    /// child forked by a short-lived thread (a load, a retire) would be killed when that thread
    /// ends. Every fork therefore happens on one thread that lives as long as the server.
    public static func spawn(
        arguments: [String], memoryLimit: UInt64 = Sandbox.policy.memoryLimit, writableDirectory: WritableDirectory? = nil
    ) throws(ProcessError) -> VWProcess {
        ignoreBrokenPipes
        let result = Spawner.shared.run { () -> Result<VWProcess, ProcessError> in
            var cStrings: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
            cStrings.append(nil)
            defer { for pointer in cStrings { free(pointer) } }
            var stdinFD: Int32 = -1, stdoutFD: Int32 = -1, stderrFD: Int32 = -1
            // The grant is made on a descriptor opened without following a symlink (never on a path the child resolves).
            var directoryFD: Int32 = -1
            if let writableDirectory {
                directoryFD = writableDirectory.handle.map { dup($0.fd) }
                    ?? open(writableDirectory.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if directoryFD < 0 { return .failure(ProcessError(operation: "open \(writableDirectory.path)", errno: errno)) }
            }
            defer { if directoryFD >= 0 { close(directoryFD) } }
            let pid = cStrings.withUnsafeBufferPointer { argv in
                cspawn_piped(argv.baseAddress, memoryLimit, directoryFD, writableDirectory?.maxFileBytes ?? 0, &stdinFD, &stdoutFD, &stderrFD)
            }
            guard pid > 0 else { return .failure(ProcessError(operation: "spawn \(arguments.first ?? "")", errno: errno)) }
            return .success(VWProcess(pid: pid, stdinFD: stdinFD, stdoutFD: stdoutFD, stderrFD: stderrFD))
        }
        let process = try result.get()
        // Bigger pipes mean fewer context switches for batches.
        _ = fcntl(process.stdinFD, 1031 /* F_SETPIPE_SZ */, 1 << 20)
        _ = fcntl(process.stdoutFD, 1031 /* F_SETPIPE_SZ */, 1 << 20)
        // Writes wait with poll(2) and a deadline: a vw that stops reading must not block a writer forever.
        _ = fcntl(process.stdinFD, F_SETFL, fcntl(process.stdinFD, F_GETFL) | O_NONBLOCK)
        return process
    }

    /// Writes all of `bytes` to vw's stdin; false when the pipe is broken or takes no bytes until `deadline`.
    func writeAll(_ bytes: UnsafeRawBufferPointer, by deadline: Deadline) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = retryingInterrupts { Glibc.write(stdinFD, bytes.baseAddress! + offset, bytes.count - offset) }
            if n >= 0 {
                offset += n
                continue
            }
            guard errno == EAGAIN else { return false }
            var descriptor = pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)
            if retryingInterrupts({ poll(&descriptor, 1, deadline.pollMilliseconds) }) <= 0 { return false }
        }
        return true
    }

    /// Reads what vw printed on `fd`; 0 at end of file, -1 on error.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        retryingInterrupts { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    func signal(_ signal: Int32) {
        _ = Glibc.kill(pid, signal)
    }

    /// SIGKILL to the process's group (vw leads its own), so nothing it forked survives it.
    func killGroup() {
        _ = Glibc.kill(-pid, SIGKILL)
        _ = Glibc.kill(pid, SIGKILL)
    }

    /// Closes vw's stdin, which makes it finish its input and exit.
    func closeInput() {
        _ = Glibc.close(stdinFD)
    }

    /// Waits for the process to exit and returns a description of how it ended.
    func reap() -> String {
        var status: Int32 = 0
        if retryingInterrupts({ waitpid(pid, &status, 0) }) < 0 { return "exit status unknown" }
        if status & 0x7f == 0 { return "exited with code \((status >> 8) & 0xff)" }
        return "killed by signal \(status & 0x7f)"
    }
}

/// How a vw run to completion ended (`VWProcess.runToEnd`).
public struct CompletedRun: Sendable {
    /// The exit code, or -1 when it was killed (by a signal or at its deadline) or could not start.
    public var exitStatus: Int32
    public var output: [UInt8]
    /// The last part of what it printed on stderr (at most 4 KiB), or why it did not run.
    public var errorText: String
}

extension VWProcess {
    /// Runs `arguments` sandboxed with no input, collecting stdout and stderr until it exits; kills its
    /// group at `deadline`. Used by the trainer, whose vw reads a file and may write in `writableDirectory`.
    public static func runToEnd(
        arguments: [String], memoryLimit: UInt64, writableDirectory: WritableDirectory?, deadline: Deadline, maxOutput: Int = 256 << 20,
        isCancelled: () -> Bool = { false }
    ) -> CompletedRun {
        let process: VWProcess
        do {
            process = try spawn(arguments: arguments, memoryLimit: memoryLimit, writableDirectory: writableDirectory)
        } catch {
            return CompletedRun(exitStatus: -1, output: [], errorText: "\(error)")
        }
        process.closeInput()
        var output: [UInt8] = []
        var errors: [UInt8] = []
        var open = [process.stdoutFD, process.stderrFD]
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var killed: String?
        while !open.isEmpty {
            var descriptors = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            // Woken at least every 250 ms to ask `isCancelled`.
            let ready = retryingInterrupts { poll(&descriptors, nfds_t(descriptors.count), min(deadline.pollMilliseconds, 250)) }
            if ready < 0 || (ready == 0 && deadline.hasPassed) || output.count > maxOutput || isCancelled() {
                process.killGroup()
                killed = isCancelled() ? "vw was stopped: the run was cancelled. " : "vw was stopped at its deadline or output limit. "
                break
            }
            for descriptor in descriptors where descriptor.revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(descriptor.fd, into: $0) }
                if count <= 0 {
                    open.removeAll { $0 == descriptor.fd }
                } else if descriptor.fd == process.stdoutFD {
                    output.append(contentsOf: buffer[0..<count])
                } else {
                    errors.append(contentsOf: buffer[0..<count])
                    if errors.count > 4096 { errors.removeFirst(errors.count - 4096) }
                }
            }
        }
        var status: Int32 = 0
        _ = retryingInterrupts { waitpid(process.pid, &status, 0) }
        _ = Glibc.close(process.stdoutFD)
        _ = Glibc.close(process.stderrFD)
        let exited = status & 0x7f == 0
        var text = String(decoding: errors, as: UTF8.self).trimmingWhitespace()
        if let killed { text = killed + text }
        return CompletedRun(exitStatus: killed != nil || !exited ? -1 : (status >> 8) & 0xff, output: output, errorText: text)
    }
}

/// The one long-lived thread that forks every vw child (see `VWProcess.spawn`).
///
/// Not a ``BackgroundService`` on purpose: a child's parent-death signal follows the thread that forked it, so this
/// thread must outlive every vw process, including those a stopping server still drains; it ends with the process.
final class Spawner: Sendable {
    static let shared = Spawner()

    private struct Job {
        let work: @Sendable () -> Void
    }

    private let jobs = Mutex<[Job]>([])
    private let wake = Condition()

    private init() {
        DetachedThread.start(name: "vw-spawner") { [self] in
            while true {
                var next: Job?
                wake.wait(until: .never) {
                    next = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
                    return next != nil
                }
                next?.work()
            }
        }
    }

    /// Runs `body` on the spawner thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let result = Mutex<T?>(nil)
        let done = Condition()
        let job = Job {
            let value = body()
            done.broadcast { result.withLock { $0 = value } }
        }
        wake.broadcast { jobs.withLock { $0.append(job) } }
        done.wait(until: .never) { result.withLock { $0 != nil } }
        return result.withLock { $0! }
    }
}

import CSpawn
import Glibc
import Synchronization
import Testing
@testable import VWCore

/// The package root, found from this file's path (`Tests/VWCoreTests/SandboxTests.swift`).
private let packageRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

/// The interpreter of `bin/vw`; stand-in programs use it too.
private let pythonPath = packageRoot + "/.venv/bin/python"
private let binVW = packageRoot + "/bin/vw"

private let hasLandlock = Sandbox.mode == .landlockSeccomp

/// What a sandboxed child printed and how it ended.
private struct Outcome {
    var stdout: String
    var stderr: String
    var exit: String
}

/// Reads `fd` to its end.
private func drain(_ fd: Int32) -> String {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buffer.withUnsafeMutableBytes { VWProcess.read(fd, into: $0) }
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Runs `arguments` through `VWProcess.spawn` (so in the sandbox) with `input` on stdin.
private func run(_ arguments: [String], input: String = "", memoryLimit: UInt64 = SandboxPolicy.defaultMemoryLimit) throws -> Outcome {
    let process = try VWProcess.spawn(arguments: arguments, memoryLimit: memoryLimit)
    _ = Array(input.utf8).withUnsafeBytes { process.writeAll($0, by: .after(.seconds(10))) }
    process.closeInput()
    let stdout = drain(process.stdoutFD)
    let stderr = drain(process.stderrFD)
    close(process.stdoutFD)
    close(process.stderrFD)
    return Outcome(stdout: stdout, stderr: stderr, exit: process.reap())
}

private func python(_ code: String) -> [String] { [pythonPath, "-c", code] }

/// A fresh private directory under /tmp.
private func temporaryDirectory() -> String {
    var template = Array("/tmp/vwfcgi-sandbox-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: made!)
}

private func removeTree(_ path: String) {
    _ = system("rm -rf '\(path)'")
}

private func fileContents(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    while true {
        let c = fgetc(file)
        if c == EOF { break }
        bytes.append(UInt8(c))
    }
    return String(decoding: bytes, as: UTF8.self)
}

private func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

private func writeFile(_ path: String, _ text: String) {
    let file = fopen(path, "w")!
    fputs(text, file)
    fclose(file)
}

/// Kills every process whose command line mentions `marker` (an unconfined `vw --daemon` calls
/// `setsid`, so killing its process group is not enough).
private func killProcesses(mentioning marker: String) {
    guard let proc = opendir("/proc") else { return }
    defer { closedir(proc) }
    while let entry = readdir(proc) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let pid = Int32(name), pid != getpid() else { continue }
        if let command = fileContents("/proc/\(pid)/cmdline"), command.contains(marker) { kill(pid, SIGKILL) }
    }
}

// MARK: Sockets of the test itself

private func loopback(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}

/// A non-blocking TCP listener on 127.0.0.1 and its port.
private func tcpListener() -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            precondition(bind(fd, raw, length) == 0 && listen(fd, 16) == 0)
            precondition(getsockname(fd, raw, &length) == 0)
        }
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// A port nothing listens on right now.
private func freePort() -> UInt16 {
    let (fd, port) = tcpListener()
    close(fd)
    return port
}

/// Whether a connection to 127.0.0.1:`port` is accepted.
private func canConnect(port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopback(port: port)
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// Whether anyone connected to a non-blocking listener.
private func acceptedAnyone(_ listener: Int32) -> Bool {
    let fd = accept(listener, nil, nil)
    if fd >= 0 { close(fd) }
    return fd >= 0
}

private func abstractAddress(_ name: String) -> (sockaddr_un, socklen_t) {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = [0] + Array(name.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { path in
        for (index, byte) in bytes.enumerated() { path[index] = byte }
    }
    return (address, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count))
}

/// A non-blocking listener on the abstract unix address `name`.
private func abstractListener(_ name: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    var (address, length) = abstractAddress(name)
    withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            precondition(bind(fd, $0, length) == 0 && listen(fd, 16) == 0)
        }
    }
    return fd
}

private func canConnect(abstract name: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var (address, length) = abstractAddress(name)
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) == 0 }
    }
}

// MARK: Tests

@Suite(.serialized)
struct SandboxTests {
    @Test func theProbedModeIsReported() {
        #expect(Sandbox.mode != .none, "seccomp filters are missing: no vw can start")
        #expect((Sandbox.landlockABI > 0) == hasLandlock)
    }

    /// Degradation: a kernel of an older ABI gets what that ABI knows, never a right it would refuse.
    @Test func theRulesetHandlesWhatEachLandlockABIKnows() {
        func handled(_ abi: Int32) -> [UInt64] {
            var fs: UInt64 = 0, net: UInt64 = 0, scoped: UInt64 = 0
            cspawn_landlock_handled(abi, &fs, &net, &scoped)
            return [fs, net, scoped]
        }
        #expect(handled(0) == [0, 0, 0])
        #expect(handled(1) == [0x1fff, 0, 0])
        #expect(handled(2) == [0x3fff, 0, 0])
        #expect(handled(3) == [0x7fff, 0, 0])
        #expect(handled(4) == [0x7fff, 0x3, 0])
        #expect(handled(5) == [0xffff, 0x3, 0])
        #expect(handled(6) == [0xffff, 0x3, 0x3])
        #expect(handled(7) == [0xffff, 0x3, 0x3])
        #expect(handled(99) == [0xffff, 0x3, 0x3])
    }

    @Test func byteCountsParse() {
        #expect(SandboxPolicy.parseBytes("4G") == 4 << 30)
        #expect(SandboxPolicy.parseBytes("512M") == 512 << 20)
        #expect(SandboxPolicy.parseBytes("512MiB") == 512 << 20)
        #expect(SandboxPolicy.parseBytes("64k") == 64 << 10)
        #expect(SandboxPolicy.parseBytes("1048576") == 1_048_576)
        #expect(SandboxPolicy.parseBytes("0") == 0)
        for bad in ["", "G", "4X", "-1", "1.5G", "4 G", "99999999999999999999", "20000000000T"] {
            #expect(SandboxPolicy.parseBytes(bad) == nil, "\(bad)")
        }
    }

    @Test func childHasNoNewPrivilegesASeccompFilterAndNoCoreOrFileSize() throws {
        let outcome = try run(["/bin/sh", "-c", "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; ulimit -c; ulimit -f"])
        let lines = outcome.stdout.split(separator: "\n").map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        #expect(lines == ["NoNewPrivs: 1", "Seccomp: 2", "0", "0"], "\(outcome)")
    }

    @Test(.enabled(if: hasLandlock, "the kernel has no Landlock"))
    func filesCannotBeCreatedWrittenTruncatedRemovedOrRenamed() throws {
        let directory = temporaryDirectory()
        defer { removeTree(directory) }
        writeFile("\(directory)/keep", "original\n")
        let script = """
            cd '\(directory)'
            for attempt in 'echo new > new' 'echo more >> keep' ': > keep' 'truncate -s 0 keep' 'mkdir sub' \
                'mkfifo fifo' 'ln -s keep link' 'ln keep hard' 'mv keep moved' 'rm -f keep' 'cp keep copy'; do
                (eval "$attempt") 2>/dev/null || echo refused
            done
            """
        let outcome = try run(["/bin/sh", "-c", script])
        #expect(outcome.stdout == String(repeating: "refused\n", count: 11), "\(outcome)")
        #expect(fileContents("\(directory)/keep") == "original\n")
        for made in ["new", "sub", "fifo", "link", "hard", "moved", "copy"] {
            #expect(!exists("\(directory)/\(made)"), "\(made) was created: \(outcome)")
        }
    }

    @Test(.enabled(if: hasLandlock, "the kernel has no Landlock"))
    func filesCannotBeWrittenThroughPython() throws {
        let directory = temporaryDirectory()
        defer { removeTree(directory) }
        writeFile("\(directory)/keep", "original\n")
        let code = """
            import os
            for attempt in (lambda: open('\(directory)/new', 'w'), lambda: open('\(directory)/keep', 'a'),
                            lambda: os.truncate('\(directory)/keep', 0), lambda: os.unlink('\(directory)/keep'),
                            lambda: os.rename('\(directory)/keep', '\(directory)/moved')):
                try:
                    attempt(); print('allowed')
                except OSError as error:
                    print('refused', error.errno)
            """
        let outcome = try run(python(code))
        #expect(outcome.stdout == String(repeating: "refused 13\n", count: 5), "\(outcome)")
        #expect(fileContents("\(directory)/keep") == "original\n")
        #expect(!exists("\(directory)/new") && !exists("\(directory)/moved"))
    }

    @Test func tcpConnectNeverReachesAListener() throws {
        let (listener, port) = tcpListener()
        defer { close(listener) }
        let code = """
            import socket
            try:
                socket.create_connection(('127.0.0.1', \(port)), timeout=2).sendall(b'x'); print('connected')
            except OSError as error:
                print('refused', error.errno)
            """
        let outcome = try run(python(code))
        #expect(outcome.stdout.hasPrefix("refused"), "\(outcome)")
        #expect(!acceptedAnyone(listener), "the sandboxed child connected")
    }

    @Test func tcpBindAndListenFail() throws {
        let port = freePort()
        let code = """
            import socket, sys
            try:
                s = socket.socket(); s.bind(('127.0.0.1', \(port))); s.listen(); print('listening', flush=True)
            except OSError as error:
                print('refused', error.errno, flush=True)
            sys.stdin.read()
            """
        let process = try VWProcess.spawn(arguments: python(code))
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.last != 10, withUnsafeMutableBytes(of: &byte, { VWProcess.read(process.stdoutFD, into: $0) }) == 1 {
            line.append(byte)
        }
        let listening = canConnect(port: port)
        process.closeInput()
        close(process.stdoutFD)
        close(process.stderrFD)
        _ = process.reap()
        #expect(String(decoding: line, as: UTF8.self).hasPrefix("refused"))
        #expect(!listening, "the sandboxed child listens on 127.0.0.1:\(port)")
    }

    @Test func unixSocketsFail() throws {
        let name = "vwfcgi-sandbox-test-\(getpid())"
        let listener = abstractListener(name)
        defer { close(listener) }
        let code = """
            import socket
            for attempt in (lambda: socket.socket(socket.AF_UNIX).connect('\\0\(name)'),
                            lambda: socket.socket(socket.AF_UNIX).bind('\\0\(name)-child'),
                            lambda: socket.socketpair(), lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)):
                try:
                    attempt(); print('allowed')
                except OSError as error:
                    print('refused', error.errno)
            """
        let outcome = try run(python(code))
        #expect(outcome.stdout == String(repeating: "refused 13\n", count: 4), "\(outcome)")
        #expect(!acceptedAnyone(listener), "the sandboxed child connected to an abstract unix socket")
        #expect(!canConnect(abstract: "\(name)-child"))
    }

    @Test func ioUringAndPtraceAreRefused() throws {
        let code = """
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            params = ctypes.create_string_buffer(120)
            for number, arguments in ((425, (8, params)), (101, (0, 0, 0, 0))):  # io_uring_setup; ptrace(PTRACE_TRACEME)
                result = libc.syscall(number, *arguments)
                print('refused' if result < 0 and ctypes.get_errno() == 1 else 'allowed')
            """
        let outcome = try run(python(code))
        #expect(outcome.stdout == "refused\nrefused\n", "\(outcome)")
    }

    @Test func addressSpaceIsCappedByTheMemoryLimit() throws {
        let code = """
            import mmap
            try:
                mmap.mmap(-1, 512 << 20); print('allocated')
            except OSError as error:
                print('refused', error.errno)
            """
        let limited = try run(python(code), memoryLimit: 256 << 20)
        #expect(limited.stdout == "refused 12\n", "\(limited)")
        let unlimited = try run(python(code), memoryLimit: 0)
        #expect(unlimited.stdout == "allocated\n", "\(unlimited)")
        let shell = try run(["/bin/sh", "-c", "ulimit -v"], memoryLimit: 256 << 20)
        #expect(shell.stdout == "\(256 << 10)\n")
    }

    @Test func aFailedSpawnReportsTheErrno() {
        #expect(throws: ProcessError(operation: "spawn /nonexistent/vw", errno: ENOENT)) {
            try VWProcess.spawn(arguments: ["/nonexistent/vw"])
        }
    }
}

/// The real vw (`bin/vw`) in the sandbox.
@Suite(.serialized)
struct SandboxedVWTests {
    /// Trains a small model outside the sandbox (plain `system`) into a fresh directory.
    private static func trainModel() -> (directory: String, model: String) {
        let directory = temporaryDirectory()
        writeFile("\(directory)/train.txt", "1 | a b\n0 | c d\n1 | a e\n0 | d f\n")
        let status = system("'\(binVW)' -d '\(directory)/train.txt' -f '\(directory)/model.vw' --quiet")
        precondition(status == 0, "training failed")
        return (directory, "\(directory)/model.vw")
    }

    @Test func predictionsComeBackOverThePipes() throws {
        let (directory, model) = Self.trainModel()
        defer { removeTree(directory) }
        let input = "| a b\n| c d\n| e\n"
        writeFile("\(directory)/test.txt", input)
        #expect(system("'\(binVW)' -t -i '\(model)' -d '\(directory)/test.txt' -p '\(directory)/want.txt' --quiet") == 0)
        let outcome = try run(VWProcess.arguments(command: [binVW], modelPath: model, extraArguments: []), input: input)
        #expect(outcome.exit == "exited with code 0", "\(outcome)")
        #expect(outcome.stdout == fileContents("\(directory)/want.txt"), "\(outcome)")
        #expect(outcome.stdout.split(separator: "\n").count == 3)
    }

    @Test(.enabled(if: hasLandlock, "the kernel has no Landlock"))
    func modelAndReadableModelWritesProduceNoFile() throws {
        let (directory, model) = Self.trainModel()
        defer { removeTree(directory) }
        let extra = [
            "-f", "\(directory)/y.vw", "--readable_model", "\(directory)/x.txt", "--invert_hash", "\(directory)/h.txt",
            "--save_resume",
        ]
        let outcome = try run(VWProcess.arguments(command: [binVW], modelPath: model, extraArguments: extra), input: "| a b\n")
        for written in ["y.vw", "y.vw.writing", "x.txt", "h.txt"] {
            #expect(!exists("\(directory)/\(written)"), "vw wrote \(written): \(outcome)")
        }
        #expect(outcome.stderr.contains("Permission denied"), "\(outcome)")
    }

    /// The trainer's vw (issue 13): it may create, write and rename files in its one output directory,
    /// and nothing else: not beside it, not above it, no subdirectory or link in it, no file over the size limit.
    @Test(.enabled(if: hasLandlock, "the kernel has no Landlock"))
    func aTrainerWritesOnlyInItsOutputDirectory() throws {
        let directory = temporaryDirectory()
        defer { removeTree(directory) }
        let out = "\(directory)/out"
        mkdir(out, 0o700)
        writeFile("\(directory)/keep", "original\n")
        let script = """
            cd '\(directory)'
            for attempt in 'echo a > out/model.writing' 'mv out/model.writing out/model' 'echo b >> out/model' \
                'echo c > beside' 'echo d >> keep' 'mkdir out/sub' 'ln -s /etc/passwd out/link' 'mv out/model moved' \
                'head -c 5000 /dev/zero > out/big'; do
                (eval "$attempt") 2>&3 && echo allowed || echo refused
            done 3>&2
            """
        let process = try VWProcess.spawn(arguments: ["/bin/sh", "-c", script], memoryLimit: 0,
                                          writableDirectory: WritableDirectory(path: out, maxFileBytes: 4096))
        process.closeInput()
        let stdout = drain(process.stdoutFD)
        let stderr = drain(process.stderrFD)
        _ = process.reap()
        let expected = ["allowed", "allowed", "allowed", "refused", "refused", "refused", "refused", "refused", "refused"]
        #expect(stdout.split(separator: "\n").map(String.init) == expected, "\(stdout) \(stderr)")
        #expect(fileContents("\(out)/model") == "a\nb\n")
        #expect(fileContents("\(directory)/keep") == "original\n")
        for made in ["beside", "moved", "out/sub", "out/link"] {
            #expect(!exists("\(directory)/\(made)"), "\(made) was created")
        }
        #expect((fileContents("\(out)/big")?.utf8.count ?? 0) <= 4096)
    }

    /// The trainer's command line: vw learns with `--save_resume` and writes its `-f` model in the output
    /// directory (as `<file>.writing`, renamed), and the continuation is the one an unconfined vw gives.
    @Test(.enabled(if: hasLandlock, "the kernel has no Landlock"))
    func aSandboxedTrainerContinuesAModelLikeVW() throws {
        let (directory, model) = Self.trainModel()
        defer { removeTree(directory) }
        let out = "\(directory)/out"
        mkdir(out, 0o700)
        writeFile("\(directory)/more.txt", "1 | a c\n0 | b d\n1 | a f\n")
        let run = VWProcess.runToEnd(
            arguments: [binVW, "-i", model, "-d", "\(directory)/more.txt", "--save_resume", "-f", "\(out)/next.vw",
                        "-p", "/dev/stdout", "--quiet"],
            memoryLimit: 0, writableDirectory: WritableDirectory(path: out, maxFileBytes: 1 << 20), deadline: .after(.seconds(60))
        )
        #expect(run.exitStatus == 0, "\(run.errorText)")
        #expect(String(decoding: run.output, as: UTF8.self).split(separator: "\n").count == 3)
        #expect(system("'\(binVW)' -i '\(model)' -d '\(directory)/more.txt' --save_resume -f '\(directory)/ref.vw' --quiet") == 0)
        writeFile("\(directory)/test.txt", "| a b\n| c d\n")
        #expect(system("'\(binVW)' -t -i '\(out)/next.vw' -d '\(directory)/test.txt' -p '\(directory)/got.txt' --quiet") == 0)
        #expect(system("'\(binVW)' -t -i '\(directory)/ref.vw' -d '\(directory)/test.txt' -p '\(directory)/want.txt' --quiet") == 0)
        #expect(fileContents("\(directory)/got.txt") == fileContents("\(directory)/want.txt"))
        #expect(fileContents("\(directory)/got.txt") != nil)
    }

    @Test func daemonDoesNotListen() throws {
        let (directory, model) = Self.trainModel()
        defer { removeTree(directory) }
        let port = freePort()
        let process = try VWProcess.spawn(arguments: [binVW, "-i", model, "--daemon", "--port", "\(port)", "--quiet"])
        var listened = false
        for _ in 0..<20 where !listened {
            listened = canConnect(port: port)
            usleep(50_000)
        }
        // An unconfined vw --daemon would have forked children in a session of their own.
        kill(-process.pid, SIGKILL)
        killProcesses(mentioning: model)
        close(process.stdoutFD)
        close(process.stderrFD)
        _ = process.reap()
        #expect(!listened, "a sandboxed vw --daemon listens on 127.0.0.1:\(port)")
    }

    /// A run asked to stop (a deleted evaluation) kills its process while it runs, not when it ends by itself: the
    /// child here would sleep an hour, and the run says it was cancelled.
    @Test func aCancelledRunIsKilledWhileItRuns() {
        let asked = Atomic<Int>(0)
        let run = VWProcess.runToEnd(arguments: ["/bin/sh", "-c", "echo started; exec sleep 3600"], memoryLimit: 0, writableDirectory: nil,
                                     deadline: .after(.seconds(7200))) {
            asked.add(1, ordering: .relaxed).newValue > 2
        }
        #expect(run.exitStatus == -1)
        #expect(run.errorText.contains("cancelled"), "\(run.errorText)")
    }
}

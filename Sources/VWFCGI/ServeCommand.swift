#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import VWCore

/// `vwfcgi --version`.
let vwfcgiVersion = "0.9.0"

@main
struct VWFCGICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vwfcgi",
        abstract: "Serve Vowpal Wabbit models over FastCGI (behind nginx).",
        version: vwfcgiVersion,
        subcommands: [Serve.self, Train.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Load the models of a directory and answer FastCGI requests.")

    @Option(help: "Model directory: <name>.vw files, optional <name>.json and <name>.sha256.")
    var models: String

    @Option(help: "Unix socket to listen on (mode 0660).")
    var socket: String?

    @Option(help: "Loopback address to listen on instead of a unix socket, e.g. 127.0.0.1:9000.")
    var listen: String?

    @Option(help: "vw processes per model (a model's .json may override).")
    var shards: Int = 1

    @Option(help: "FastCGI threads; each holds one nginx connection while it is kept alive.")
    var threads: Int = 64

    @Option(help: "The vw command (default: $VWFCGI_VW_COMMAND, else `vw` on PATH); split on spaces.")
    var vwCommand: String?

    @Option(help: "Seconds a request may wait for vw before a 504.")
    var timeout: Double = 5

    @Option(help: "Largest request body in bytes (413 beyond).")
    var maxBodyBytes: Int = 8 << 20

    @Option(help: "Most instances per request unless a model's max_batch says otherwise (413 beyond).")
    var maxBatch: Int = 10_000

    @Option(help: "Longest line of VW text in bytes (400 beyond).")
    var maxLineBytes: Int = 1 << 20

    @Option(help: "Most features on one line of VW text (400 beyond).")
    var maxFeatures: Int = 65_536

    @Option(help: "Most feature computations one request may cost vw, interactions included (413 above).")
    var maxInteractionFeatures: Int = 50_000_000

    @Option(help: "Deepest JSON nesting accepted (400 beyond).")
    var maxJsonDepth: Int = 32

    @Option(help: "Requests queued per model before 503 with Retry-After.")
    var maxQueue: Int = 1024

    @Option(help: "Largest address space of each vw process, in bytes or with a suffix (512M, 4G); 0 for no limit.")
    var vwMemoryLimit: String = "4G"

    @Option(help: "Seconds to wait for in-flight requests on SIGTERM/SIGINT.")
    var grace: Double = 10

    @Option(help: "Directory of the learning loop's event logs and joined events (SPEC §8.4); created on first use.")
    var stateDir: String = "./state"

    @Option(help: "This instance's name in event log file names (default: the host name).")
    var instanceId: String?

    @Option(help: "The vw command of the loop's trainer (default: the --vw-command); split on spaces.")
    var trainerVwCommand: String?

    @Option(help: "Directory for private copies of loaded model files (default: a fresh one under $TMPDIR or /tmp).")
    var stagingDir: String?

    @Option(help: "Seconds between full rescans of the model directory (inotify catches most changes at once).")
    var rescanInterval: Double = 1

    @Option(help: "Largest model file loaded, in bytes; larger ones are refused before they are read (last_error says why).")
    var maxModelBytes: Int = 1 << 30

    @Flag(help: "Load a model only when <name>.sha256 exists next to it and matches.")
    var requireChecksum = false

    @Option(help: "Seconds a model's vw processes may take to start and answer the load probe.")
    var loadTimeout: Double = 60

    @Option(help: "When /readyz answers 200: any (once the start-up models were tried, while one model serves) or all (only while every model serves).")
    var readiness: String = "any"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Log format: text (default) or json (one object per line).")
    var logFormat: String = "text"

    func validate() throws {
        guard ReadinessRule(rawValue: readiness) != nil else { throw ValidationError("--readiness must be any or all") }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        if (socket == nil) == (listen == nil) { throw ValidationError("give exactly one of --socket PATH or --listen 127.0.0.1:PORT") }
        if shards < 1 || shards > 64 { throw ValidationError("--shards must be from 1 to 64") }
        if threads < 1 || threads > 1024 { throw ValidationError("--threads must be from 1 to 1024") }
        if rescanInterval <= 0 { throw ValidationError("--rescan-interval must be positive") }
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if loadTimeout <= 0 { throw ValidationError("--load-timeout must be positive") }
        if maxModelBytes < 1 { throw ValidationError("--max-model-bytes must be positive") }
        if maxBodyBytes < 1 || maxBatch < 1 || maxLineBytes < 1 || maxFeatures < 1 || maxInteractionFeatures < 1 || maxJsonDepth < 1 || maxQueue < 1 {
            throw ValidationError("limits must be positive")
        }
        guard SandboxPolicy.parseBytes(vwMemoryLimit) != nil else {
            throw ValidationError("--vw-memory-limit must be a byte count such as 536870912, 512M or 4G")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() throws {
        let logger = Self.bootstrapLogging(level: logLevel, format: logFormat)
        signal(SIGPIPE, SIG_IGN)
        MemoryTuning.limitMallocArenas(to: 2)

        let command = (vwCommand ?? ProcessEnvironment.value("VWFCGI_VW_COMMAND") ?? "vw")
            .split(separator: " ").map(String.init)
        let staging = try stagingDir ?? Self.makeStagingDirectory()
        var settings = EngineSettings(modelDirectory: models, vwCommand: command, stagingDirectory: staging)
        settings.defaultShards = shards
        settings.maxBatch = maxBatch
        settings.limits = ExampleLimits(maxLineBytes: maxLineBytes, maxFeatures: maxFeatures)
        settings.maxInteractionFeatures = maxInteractionFeatures
        settings.requestTimeout = .milliseconds(Int64(timeout * 1000))
        settings.maxQueuedRequests = maxQueue
        settings.drainGrace = .milliseconds(Int64(grace * 1000))
        settings.vwMemoryLimit = SandboxPolicy.parseBytes(vwMemoryLimit) ?? SandboxPolicy.defaultMemoryLimit
        Sandbox.configure(SandboxPolicy(memoryLimit: settings.vwMemoryLimit))
        Self.logSandbox(logger: logger, memoryLimit: settings.vwMemoryLimit)
        settings.maxModelBytes = maxModelBytes
        settings.requireChecksum = requireChecksum
        settings.loadTimeout = .milliseconds(Int64(loadTimeout * 1000))
        settings.readiness = ReadinessRule(rawValue: readiness) ?? .anyModel
        let loops = LearningLoops(stateDirectory: stateDir, instance: try Self.instance(instanceId), logger: logger)
        settings.learnedModel = { name, base, loop in loops.learnedModel(name: name, base: base, loop: loop) }
        var trainer = TrainerSettings(vwCommand: trainerVwCommand.map { $0.split(separator: " ").map(String.init) } ?? command)
        trainer.memoryLimit = settings.vwMemoryLimit
        trainer.maxModelBytes = UInt64(maxModelBytes)

        let stopSignals = StopSignals()
        let metrics = RequestMetrics.bootstrap()
        let store = ModelStore(settings: settings, logger: logger)
        if let socket { try Self.refuseLiveSocket(socket) }
        // Serve from the start: /healthz answers and /readyz says 503 until the models were tried.
        let socketFD = try FastCGIServer.openSocket(unixPath: socket, listen: listen)
        let engine = Engine(store: store, loops: loops, maxJSONDepth: maxJsonDepth)
        let router = Router(engine: engine, metrics: metrics)
        let server = FastCGIServer(socketFD: socketFD, threads: threads, maxBodyBytes: maxBodyBytes, logger: logger) { request, context in
            router.handle(request, context: &context)
        }
        server.start()
        logger.info("vwfcgi serving", metadata: ["socket": "\(socket ?? listen ?? "")", "threads": "\(threads)", "vw": "\(command.joined(separator: " "))"])

        store.reconcile()
        // Reloads start at once, even while a start-up model is still loading.
        ModelDirectoryWatcher(store: store, rescanInterval: .milliseconds(Int64(rescanInterval * 1000)), logger: logger).start()
        store.waitForLoads()
        engine.resumeLoops()
        loops.startLearning(store: store, settings: trainer)
        store.finishStartup()
        let loaded = store.statuses
        logger.info("models loaded", metadata: [
            "ready": "\(loaded.filter(\.ready).map(\.name))", "not_ready": "\(loaded.filter { !$0.ready }.map(\.name))",
        ])

        let received = stopSignals.wait()
        logger.info("stopping", metadata: ["signal": "\(received)"])
        store.beginDraining()
        server.stop(grace: settings.drainGrace)
        store.shutdown()
        if let socket { unlink(socket) }
        rmdir(staging)
        logger.info("stopped")
    }

    /// Sets up logging: text or JSON lines on stderr, client-sent values escaped.
    static func bootstrapLogging(level name: String, format: String) -> Logger {
        let level = Logger.Level(rawValue: name) ?? .info
        LoggingSystem.bootstrap { label in
            // Client-sent values (X-Request-Id, paths) are escaped before any handler writes them.
            if format == "json" {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return SanitizingLogHandler(inner: handler)
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return SanitizingLogHandler(inner: handler)
        }
        var logger = Logger(label: "vwfcgi")
        logger.logLevel = level
        return logger
    }

    /// Says once what every vw child is confined by, and loudly when the kernel allows less.
    static func logSandbox(logger: Logger, memoryLimit: UInt64) {
        let metadata: Logger.Metadata = [
            "sandbox": "\(Sandbox.mode.rawValue)", "landlock_abi": "\(Sandbox.landlockABI)",
            "vw_memory_limit": "\(memoryLimit)",
        ]
        switch Sandbox.mode {
        case .landlockSeccomp:
            logger.info("vw sandbox", metadata: metadata)
        case .seccomp:
            logger.warning("this kernel has no Landlock: vw children are not confined to a read-only filesystem and may connect or listen over TCP (seccomp still refuses sockets)", metadata: metadata)
        case .none:
            logger.error("this kernel has no seccomp filters: no vw child can be started", metadata: metadata)
        }
    }

    /// Refuses to start when another server answers on `path`; only a stale socket (nobody
    /// listening) may be replaced. Anything else at `path` is left alone.
    static func refuseLiveSocket(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw ValidationError("\(path) exists and is not a socket; not replacing it")
        }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ValidationError("socket path \(path) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected == 0 || errno == EAGAIN {
            throw ValidationError("another server is listening on \(path); not starting a second one on it")
        }
    }

    /// `--instance-id`, else the host name; it names this instance's log segments.
    static func instance(_ given: String?) throws -> String {
        var name = given ?? ""
        if given == nil {
            var buffer = [CChar](repeating: 0, count: 256)
            if gethostname(&buffer, buffer.count - 1) == 0 {
                name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        guard EventLog.isValidInstance(name) else {
            throw ValidationError("instance id \"\(name)\" must match [A-Za-z0-9_.-]{1,128} and not start with '.' (set --instance-id)")
        }
        return name
    }

    static func makeStagingDirectory() throws -> String {
        let base = ProcessEnvironment.value("TMPDIR") ?? "/tmp"
        var template = Array("\(base)/vwfcgi-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ValidationError("cannot create a staging directory under \(base)")
        }
        return String(cString: made)
    }
}

enum ProcessEnvironment {
    static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }
}

/// Blocks SIGTERM and SIGINT in every thread and lets the main thread wait for them.
struct StopSignals {
    private var set = sigset_t()

    /// Must run before any other thread starts, so all threads inherit the mask.
    init() {
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    func wait() -> Int32 {
        var set = self.set
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received
    }
}

#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CSpawn
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
        subcommands: [Serve.self, Train.self, Evaluate.self],
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

    @Option(help: "FastCGI threads for the requests that wait (for vw, for the disk), one each at a time.")
    var threads: Int = 64

    @Option(help: "FastCGI threads that wait for nginx's requests at once and answer what waits for nothing (health, natively scored predictions); default: the CPUs vwfcgi may use.")
    var eventThreads: Int?

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

    @Flag(help: "Load a model only when <name>.sha256 exists next to it and matches.")
    var requireChecksum = false

    @Option(help: "When /readyz answers 200: any (once the start-up models were tried, while one model serves) or all (only while every model serves).")
    var readiness: String = "any"

    @Option(help: "File of API keys, one per line (default: $VWFCGI_API_KEY_FILE); guarded routes then need Authorization: Bearer <key> or Ocp-Apim-Subscription-Key: <key>.")
    var apiKeyFile: String?

    @Option(help: "Routes an API key guards: writes (the learning loop's :rank, :reward, :activate, :learn, loop:rollback, loop:rotate) or all (also :predict, /v2 and the status routes; never /healthz, /readyz, /metrics).")
    var apiKeyScope: String = "writes"

    @Option(help: "The model the Personalizer-compatible API serves at the server root ({Endpoint}/personalizer/...); any loop model answers at /loops/<model>/personalizer/....")
    var personalizerModel: String = "personalizer"

    @Option(help: "Which engine answers predictions: auto (the default: the in-process native scorer for models it reproduces bit for bit, verified against vw at load; the vw pool for the rest), vw (always the pool), native (as auto, warning when a model stays on vw). A model's .json \"engine\" overrides it.")
    var engine: String = "auto"

    @Option(help: "One native request in K is also answered by vw and compared; a difference switches the model back to vw (0: never).")
    var nativeShadowEvery: Int = 1000

    @OptionGroup var common: EngineOptions

    func validate() throws {
        guard ReadinessRule(rawValue: readiness) != nil else { throw ValidationError("--readiness must be any or all") }
        guard APIKeys.Scope(rawValue: apiKeyScope) != nil else { throw ValidationError("--api-key-scope must be writes or all") }
        guard EngineMode(rawValue: engine) != nil else { throw ValidationError("--engine must be vw, native or auto") }
        if nativeShadowEvery < 0 { throw ValidationError("--native-shadow-every must be 0 or more") }
        if (socket == nil) == (listen == nil) { throw ValidationError("give exactly one of --socket PATH or --listen 127.0.0.1:PORT") }
        if shards < 1 || shards > 64 { throw ValidationError("--shards must be from 1 to 64") }
        if threads < 1 || threads > 1024 { throw ValidationError("--threads must be from 1 to 1024") }
        if let eventThreads, eventThreads < 1 || eventThreads > 256 { throw ValidationError("--event-threads must be from 1 to 256") }
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if maxBodyBytes < 1 || maxBatch < 1 || maxLineBytes < 1 || maxFeatures < 1 || maxInteractionFeatures < 1 || maxJsonDepth < 1 || maxQueue < 1 {
            throw ValidationError("limits must be positive")
        }
    }

    func run() throws {
        let logger = common.bootstrapLogging()
        signal(SIGPIPE, SIG_IGN)
        MemoryTuning.limitMallocArenas(to: 2)

        let apiKeys = try Self.apiKeys(file: apiKeyFile, scope: apiKeyScope, logger: logger)
        let staging = try stagingDir ?? Self.makeStagingDirectory()
        var settings = common.settings(modelDirectory: models, stagingDirectory: staging, logger: logger)
        settings.defaultShards = shards
        settings.maxBatch = maxBatch
        settings.limits = ExampleLimits(maxLineBytes: maxLineBytes, maxFeatures: maxFeatures)
        settings.maxInteractionFeatures = maxInteractionFeatures
        settings.requestTimeout = .milliseconds(Int64(timeout * 1000))
        settings.maxQueuedRequests = maxQueue
        settings.drainGrace = .milliseconds(Int64(grace * 1000))
        settings.requireChecksum = requireChecksum
        settings.readiness = ReadinessRule(rawValue: readiness) ?? .anyModel
        settings.native = NativeSettings(mode: EngineMode(rawValue: engine) ?? .auto, shadowEvery: nativeShadowEvery)
        let loops = common.loops(stateDirectory: stateDir, instance: try Self.instance(instanceId), logger: logger)
        let trainer = common.trainerSettings(settings, vwCommand: trainerVwCommand.map { $0.split(separator: " ").map(String.init) })

        let stopSignals = StopSignals()
        let metrics = RequestMetrics.bootstrap()
        let store = ModelStore(settings: settings, logger: logger, learnedModels: loops)
        // Serve from the start: /healthz answers and /readyz says 503 until the models were tried.
        let socketFD: Int32
        do {
            if let socket { try Self.refuseLiveSocket(socket) }
            socketFD = try FastCGIServer.openSocket(unixPath: socket, listen: listen)
        } catch {
            // Through the logger, so a container's JSON log has this line as JSON too.
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        let engine = Engine(store: store, loops: loops, maxJSONDepth: maxJsonDepth)
        let router = Router(engine: engine, metrics: metrics, apiKeys: apiKeys, personalizerModel: personalizerModel)
        let server = FastCGIServer(socketFD: socketFD, pollers: eventThreads ?? Int(cspawn_cpus_available()), workers: threads,
                                   maxBodyBytes: maxBodyBytes, grace: settings.drainGrace, router: router, logger: logger)
        // One group runs every long-lived thread, started in this order and stopped in the reverse one.
        let services = ServiceGroup(logger: logger)
        services.start(server)
        logger.info("vwfcgi serving", metadata: ["socket": "\(socket ?? listen ?? "")", "threads": "\(threads)", "event_threads": "\(server.pollers)", "max_connections": "\(server.maxConnections)", "vw": "\(settings.vwCommand.joined(separator: " "))"])

        store.reconcile()
        // Reloads start at once, even while a start-up model is still loading.
        services.start(ModelDirectoryWatcher(store: store, rescanInterval: common.rescanPeriod, logger: logger))
        services.start(loops.joining)
        store.waitForLoads()
        engine.resumeLoops()
        services.start(loops.learning(store: store, settings: trainer))
        store.finishStartup()
        let loaded = store.statuses
        logger.info("models loaded", metadata: [
            "ready": "\(loaded.filter(\.ready).map(\.name))", "not_ready": "\(loaded.filter { !$0.ready }.map(\.name))",
        ])

        let received = stopSignals.wait()
        logger.info("stopping", metadata: ["signal": "\(received)"])
        store.beginDraining()
        // The trainer (after its update in progress), the joiner (after its step), the watcher, then the FastCGI
        // threads (drained for up to --grace).
        services.stop(deadline: .after(settings.drainGrace + .seconds(5)))
        store.shutdown()
        if let socket { unlink(socket) }
        rmdir(staging)
        logger.info("stopped")
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

    /// The keys of `--api-key-file` (else `$VWFCGI_API_KEY_FILE`); without one, says once that the loop's write routes are open.
    static func apiKeys(file given: String?, scope: String, logger: Logger) throws -> APIKeys? {
        guard let path = given ?? ProcessEnvironment.value("VWFCGI_API_KEY_FILE") else {
            logger.warning("no --api-key-file: the learning loop's write routes (:rank, :reward, :activate, :learn, loop:rollback, loop:rotate) are open to every client that reaches nginx")
            return nil
        }
        do {
            let keys = try APIKeys.load(path: path, scope: APIKeys.Scope(rawValue: scope) ?? .writes)
            logger.info("API keys", metadata: ["file": "\(path)", "keys": "\(keys.count)", "scope": "\(keys.scope.rawValue)"])
            if keys.readableByOthers { logger.warning("\(path) is readable by every user of this machine: chmod o-r it") }
            return keys
        } catch {
            throw ValidationError("--api-key-file: \(error.description)")
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

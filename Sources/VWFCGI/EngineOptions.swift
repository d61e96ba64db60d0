import ArgumentParser
import Logging
import VWCore

/// The options `vwfcgi serve` and `vwfcgi train` share: how vw runs, how models load, how the process logs.
struct EngineOptions: ParsableArguments {
    @Option(help: "The vw command (default: $VWFCGI_VW_COMMAND, else `vw` on PATH); split on spaces.")
    var vwCommand: String?

    @Option(help: "Largest address space of each vw process, in bytes or with a suffix (512M, 4G); 0 for no limit.")
    var vwMemoryLimit: String = "4G"

    @Option(help: "Largest model file loaded (or learned), in bytes; larger ones are refused before they are read (last_error says why).")
    var maxModelBytes: Int = 1 << 30

    @Option(help: "Seconds a model's vw processes may take to start and answer the load probe.")
    var loadTimeout: Double = 60

    @Option(help: "Seconds between full rescans of the model directory (inotify catches most changes at once).")
    var rescanInterval: Double = 1

    @Option(help: "Budget of the state directory (event logs, joined events, learned and rejected models), in bytes or with a suffix (512M, 20G); 0 for none. Over it, the oldest files nothing needs are deleted; with nothing left to delete, the loop's write routes answer 503.")
    var stateMaxBytes: String = "0"

    @Option(help: "Event log segments rotate at this size, in bytes or with a suffix (64M).")
    var logSegmentBytes: String = "64M"

    @Option(help: "Event log segments rotate at this age, in seconds.")
    var logSegmentSeconds: Double = 3600

    @Option(help: "Joined events one trainer update reads at most, in bytes or with a suffix (64M): a backlog (a trainer that failed for a while, a model that did not serve) is learned a piece of about this size per update interval, never read whole.")
    var maxUpdateBytes: String = "64M"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Log format: text (default) or json (one object per line).")
    var logFormat: String = "text"

    func validate() throws {
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard SandboxPolicy.parseBytes(vwMemoryLimit) != nil else {
            throw ValidationError("--vw-memory-limit must be a byte count such as 536870912, 512M or 4G")
        }
        if rescanInterval <= 0 { throw ValidationError("--rescan-interval must be positive") }
        if loadTimeout <= 0 { throw ValidationError("--load-timeout must be positive") }
        if maxModelBytes < 1 { throw ValidationError("--max-model-bytes must be positive") }
        guard SandboxPolicy.parseBytes(stateMaxBytes) != nil else {
            throw ValidationError("--state-max-bytes must be a byte count such as 1073741824, 512M or 20G (0 for none)")
        }
        guard let segment = SandboxPolicy.parseBytes(logSegmentBytes), segment >= 4096 else {
            throw ValidationError("--log-segment-bytes must be a byte count of at least 4096, such as 64M")
        }
        if logSegmentSeconds <= 0 { throw ValidationError("--log-segment-seconds must be positive") }
        guard let update = SandboxPolicy.parseBytes(maxUpdateBytes), update >= 1 else {
            throw ValidationError("--max-update-bytes must be a positive byte count such as 64M")
        }
    }

    /// The loops of this process (`serve` or `train`), with the state budget and segment rotation of these options.
    func loops(stateDirectory: String, instance: String, externalTrainer: Bool = false, logger: Logger) -> LearningLoops {
        let budget = SandboxPolicy.parseBytes(stateMaxBytes).map(Int.init) ?? 0
        return LearningLoops(
            stateDirectory: stateDirectory, instance: instance, externalTrainer: externalTrainer, stateBudget: budget > 0 ? budget : nil,
            segmentBytes: Int(SandboxPolicy.parseBytes(logSegmentBytes) ?? 64 << 20),
            segmentAge: .milliseconds(Int64(logSegmentSeconds * 1000)), logger: logger
        )
    }

    /// The vw command: the option, else `$VWFCGI_VW_COMMAND`, else `vw` on PATH; split on spaces.
    static func vwCommand(_ option: String?) -> [String] {
        (option ?? ProcessEnvironment.value("VWFCGI_VW_COMMAND") ?? "vw").split(separator: " ").map(String.init)
    }

    var rescanPeriod: Duration { .milliseconds(Int64(rescanInterval * 1000)) }

    /// The engine's settings from these options; configures (and logs) the sandbox of every vw child.
    func settings(modelDirectory: String, stagingDirectory: String, logger: Logger) -> EngineSettings {
        let command = Self.vwCommand(vwCommand)
        var settings = EngineSettings(modelDirectory: modelDirectory, vwCommand: command, stagingDirectory: stagingDirectory)
        settings.vwMemoryLimit = SandboxPolicy.parseBytes(vwMemoryLimit) ?? SandboxPolicy.defaultMemoryLimit
        Sandbox.configure(SandboxPolicy(memoryLimit: settings.vwMemoryLimit))
        Self.logSandbox(logger: logger, memoryLimit: settings.vwMemoryLimit)
        settings.maxModelBytes = maxModelBytes
        settings.loadTimeout = .milliseconds(Int64(loadTimeout * 1000))
        return settings
    }

    /// The learning loop's trainer: the same limits as the shards; `vwCommand` (default the shards') runs the training.
    func trainerSettings(_ settings: EngineSettings, vwCommand: [String]? = nil) -> TrainerSettings {
        var trainer = TrainerSettings(vwCommand: vwCommand ?? settings.vwCommand)
        trainer.memoryLimit = settings.vwMemoryLimit
        trainer.maxModelBytes = UInt64(settings.maxModelBytes)
        trainer.maxUpdateBytes = Int(SandboxPolicy.parseBytes(maxUpdateBytes) ?? 64 << 20)
        return trainer
    }

    /// Sets up logging: text or JSON lines on stderr, client-sent values escaped.
    func bootstrapLogging() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            // Client-sent values (X-Request-Id, paths) are escaped before any handler writes them.
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return SanitizingLogHandler(inner: handler)
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return SanitizingLogHandler(inner: handler, quotesValues: true)
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

}

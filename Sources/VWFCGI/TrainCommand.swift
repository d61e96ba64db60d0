#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import VWCore

/// `vwfcgi train --state DIR --models OUT`: the external trainer of many replicas (SPEC §8.7).
///
/// Serves nothing. It loads the models of OUT (the bucket's models, synced in) as a server would, joins
/// the event logs of every instance found under `DIR/<name>/log/`, learns each model whose loop says
/// `"trainer": "external"` every `update_interval`, and publishes each learned model into OUT
/// (`<name>.sha256`, then `<name>.vw`, each written then renamed) for the model-sync sidecar to ship.
/// A file dropped into OUT by someone else is the operator's new base, as in a serving instance.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join every instance's event logs, learn and publish models into a model directory (the external trainer)."
    )

    @Option(help: "State directory holding <name>/log/<instance>-<seq>.dsjson of every instance; the join and learning state go there too.")
    var state: String

    @Option(help: "Model directory with the base models (<name>.vw, <name>.json); learned models are written into it.")
    var models: String

    @Option(help: "The vw command (default: $VWFCGI_VW_COMMAND, else `vw` on PATH); split on spaces.")
    var vwCommand: String?

    @Option(help: "Largest address space of each vw process, in bytes or with a suffix (512M, 4G); 0 for no limit.")
    var vwMemoryLimit: String = "4G"

    @Option(help: "Largest model file loaded or written, in bytes.")
    var maxModelBytes: Int = 1 << 30

    @Option(help: "Seconds a model's vw may take to start and answer the load probe.")
    var loadTimeout: Double = 60

    @Option(help: "Seconds between full rescans of the model directory.")
    var rescanInterval: Double = 1

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Log format: text (default) or json (one object per line).")
    var logFormat: String = "text"

    func validate() throws {
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
        guard SandboxPolicy.parseBytes(vwMemoryLimit) != nil else {
            throw ValidationError("--vw-memory-limit must be a byte count such as 536870912, 512M or 4G")
        }
        if maxModelBytes < 1 || loadTimeout <= 0 || rescanInterval <= 0 { throw ValidationError("limits must be positive") }
    }

    func run() throws {
        let logger = Serve.bootstrapLogging(level: logLevel, format: logFormat)
        signal(SIGPIPE, SIG_IGN)
        let command = (vwCommand ?? ProcessEnvironment.value("VWFCGI_VW_COMMAND") ?? "vw").split(separator: " ").map(String.init)
        let staging = try Serve.makeStagingDirectory()
        var settings = EngineSettings(modelDirectory: models, vwCommand: command, stagingDirectory: staging)
        settings.vwMemoryLimit = SandboxPolicy.parseBytes(vwMemoryLimit) ?? SandboxPolicy.defaultMemoryLimit
        Sandbox.configure(SandboxPolicy(memoryLimit: settings.vwMemoryLimit))
        Serve.logSandbox(logger: logger, memoryLimit: settings.vwMemoryLimit)
        settings.maxModelBytes = maxModelBytes
        settings.loadTimeout = .milliseconds(Int64(loadTimeout * 1000))
        // One vw per model: it only answers the load probe of each base and learned model.
        settings.defaultShards = 1
        let loops = LearningLoops(stateDirectory: state, instance: "trainer", externalTrainer: true, logger: logger)
        settings.learnedModel = { name, base, loop in loops.learnedModel(name: name, base: base, loop: loop) }
        var trainer = TrainerSettings(vwCommand: command)
        trainer.memoryLimit = settings.vwMemoryLimit
        trainer.maxModelBytes = UInt64(maxModelBytes)
        trainer.publishDirectory = models

        let stopSignals = StopSignals()
        let store = ModelStore(settings: settings, logger: logger)
        store.reconcile()
        ModelDirectoryWatcher(store: store, rescanInterval: .milliseconds(Int64(rescanInterval * 1000)), logger: logger).start()
        store.waitForLoads()
        loops.startLearning(store: store, settings: trainer)
        logger.info("vwfcgi trainer running", metadata: ["state": "\(state)", "models": "\(models)"])
        let received = stopSignals.wait()
        logger.info("stopping", metadata: ["signal": "\(received)"])
        store.shutdown()
        rmdir(staging)
        logger.info("stopped")
    }
}

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

    @OptionGroup var common: EngineOptions

    func run() throws {
        let logger = common.bootstrapLogging()
        signal(SIGPIPE, SIG_IGN)
        let staging = try Serve.makeStagingDirectory()
        var settings = common.settings(modelDirectory: models, stagingDirectory: staging, logger: logger)
        // One vw per model: it only answers the load probe of each base and learned model.
        settings.defaultShards = 1
        let loops = common.loops(stateDirectory: state, instance: "trainer", externalTrainer: true, logger: logger)
        var trainer = common.trainerSettings(settings)
        trainer.publishDirectory = models

        let stopSignals = StopSignals()
        let store = ModelStore(settings: settings, logger: logger, learnedModels: loops)
        store.reconcile()
        ModelDirectoryWatcher(store: store, rescanInterval: common.rescanPeriod, logger: logger).start()
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

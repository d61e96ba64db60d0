#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import Prometheus
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

    @Option(help: "Serve GET /metrics (Prometheus text: the loop's updates, learned events, joins, state bytes) over plain HTTP on this IPv4 host:port, e.g. 0.0.0.0:9102; off when not given.")
    var metricsListen: String?

    @OptionGroup var common: EngineOptions

    func run() throws {
        let logger = common.bootstrapLogging()
        signal(SIGPIPE, SIG_IGN)
        // Before anything makes a metric (the store, the loops), when they are served.
        let metrics = metricsListen.map { _ in RequestMetrics.bootstrap() }
        let staging = try Serve.makeStagingDirectory()
        var settings = common.settings(modelDirectory: models, stagingDirectory: staging, logger: logger)
        // One vw per model: it only answers the load probe of each base and learned model.
        settings.defaultShards = 1
        let loops = common.loops(stateDirectory: state, instance: "trainer", externalTrainer: true, logger: logger)
        var trainer = common.trainerSettings(settings)
        trainer.publishDirectory = models

        let stopSignals = StopSignals()
        let store = ModelStore(settings: settings, logger: logger, learnedModels: loops)
        let services = ServiceGroup(logger: logger)
        if let metricsListen, let metrics {
            do {
                services.start(try MetricsEndpoint(address: metricsListen, logger: logger) {
                    RequestMetrics.addingHelp(to: metrics.registry.emitToBuffer())
                })
            } catch {
                logger.critical("cannot start", metadata: ["error": "\(error)"])
                throw ExitCode.failure
            }
            logger.info("serving /metrics", metadata: ["listen": "\(metricsListen)"])
        }
        store.reconcile()
        services.start(ModelDirectoryWatcher(store: store, rescanInterval: common.rescanPeriod, logger: logger))
        services.start(loops.joining)
        store.waitForLoads()
        services.start(loops.learning(store: store, settings: trainer))
        logger.info("vwfcgi trainer running", metadata: ["state": "\(state)", "models": "\(models)"])
        let received = stopSignals.wait()
        logger.info("stopping", metadata: ["signal": "\(received)"])
        // The trainer stops after its update in progress (a learned model is published whole or not at all).
        services.stop(deadline: .after(.seconds(60)))
        store.shutdown()
        rmdir(staging)
        logger.info("stopped")
    }
}

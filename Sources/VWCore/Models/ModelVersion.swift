import CoreMetrics
import Synchronization

/// One loaded version of a model: immutable, swapped atomically by the store.
public final class ModelVersion: Sendable {
    public let name: String
    /// The first 12 hex digits of SHA-256(model bytes + config bytes).
    public let version: String
    /// RFC 3339 time the version started serving.
    public let loadedAt: String
    public let vwArgs: [String]
    public let multiline: Bool
    public let predictionKind: PredictionKind
    /// Whether multiline labels reach vw as written (see `ModelOptions.keepsMultilineLabels`).
    public let keepsMultilineLabels: Bool
    public let maxBatch: Int
    public let pool: ShardPool
    let stagedPath: String
    let inflight = Atomic<Int>(0)
    /// `vwfcgi_model_info{model,version}`, removed when the version retires.
    let infoGauge: Gauge

    init(name: String, version: String, loadedAt: String, vwArgs: [String], multiline: Bool,
         predictionKind: PredictionKind, keepsMultilineLabels: Bool, maxBatch: Int, pool: ShardPool, stagedPath: String) {
        self.name = name
        self.version = version
        self.loadedAt = loadedAt
        self.vwArgs = vwArgs
        self.multiline = multiline
        self.predictionKind = predictionKind
        self.keepsMultilineLabels = keepsMultilineLabels
        self.maxBatch = maxBatch
        self.pool = pool
        self.stagedPath = stagedPath
        infoGauge = Gauge(label: "vwfcgi_model_info", dimensions: [("model", name), ("version", version)])
        infoGauge.record(1)
    }
}

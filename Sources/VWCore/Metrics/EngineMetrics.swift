import CoreMetrics

/// The engine's metrics, through swift-metrics (the executable picks the backend).
///
/// Names follow SPEC §5; every handle used on the request path is created once per model version.
enum EngineMetrics {
    static func modelLoaded(_ name: String, ok: Bool) {
        Counter(label: "vwfcgi_model_loads_total", dimensions: [("model", name), ("result", ok ? "ok" : "failed")]).increment()
    }

    static func framingViolation(model: String) {
        Counter(label: "vwfcgi_framing_violations_total", dimensions: [("model", model)]).increment()
    }

    /// Drops every engine series of a removed model.
    static func forget(model: String) {
        for result in ["ok", "failed"] {
            Counter(label: "vwfcgi_model_loads_total", dimensions: [("model", model), ("result", result)]).destroy()
        }
        Counter(label: "vwfcgi_shard_restarts_total", dimensions: [("model", model)]).destroy()
        Counter(label: "vwfcgi_framing_violations_total", dimensions: [("model", model)]).destroy()
        Meter(label: "vwfcgi_inflight_requests", dimensions: [("model", model)]).destroy()
    }

    static func shardRestarted(model: String) {
        Counter(label: "vwfcgi_shard_restarts_total", dimensions: [("model", model)]).increment()
    }
}

/// Per-model gauges of requests inside the engine.
struct PoolMetrics: Sendable {
    /// Requests waiting for or being answered by vw.
    let inflight: Meter

    init(model: String) {
        inflight = Meter(label: "vwfcgi_inflight_requests", dimensions: [("model", model)])
        // Present from the start, so dashboards and alerts see 0 rather than no series.
        Counter(label: "vwfcgi_shard_restarts_total", dimensions: [("model", model)]).increment(by: 0)
    }
}

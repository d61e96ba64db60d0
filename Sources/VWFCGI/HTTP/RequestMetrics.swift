import CoreMetrics
import Prometheus
import Synchronization
import VWCore

/// HTTP-level metrics through swift-metrics, exposed by swift-prometheus on `GET /metrics`.
///
/// Handles are cached per label set so the request path takes one short lock, not a factory lookup.
final class RequestMetrics: Sendable {
    struct Outcome {
        var route: String
        var model: String = ""
        var examples = 0
        var errorReason: String?
    }

    /// A request thread's own handles: the shared caches are consulted once per label set and thread.
    struct HandleCache {
        fileprivate var requests: [RequestKey: CoreMetrics.Counter] = [:]
        fileprivate var perModel: [String: ModelHandles] = [:]
        fileprivate var errors: [String: CoreMetrics.Counter] = [:]
    }

    fileprivate struct RequestKey: Hashable {
        let model: String
        let route: String
        let code: Int
    }

    fileprivate struct ModelHandles {
        let duration: CoreMetrics.Timer
        let examples: CoreMetrics.Counter
    }

    /// Request latency buckets, 50 µs to 5 s.
    static let durationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5),
    ]

    let registry: PrometheusCollectorRegistry
    private let requests = Mutex<[RequestKey: CoreMetrics.Counter]>([:])
    private let perModel = Mutex<[String: ModelHandles]>([:])
    private let errors = Mutex<[String: CoreMetrics.Counter]>([:])
    private let startedAt = ContinuousClock.now
    private let uptime = Gauge(label: "vwfcgi_uptime_seconds")

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Makes swift-metrics report to `registry`, with the request-latency buckets.
    static func bootstrap() -> RequestMetrics {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["vwfcgi_request_duration_seconds"] = durationBuckets
        MetricsSystem.bootstrap(factory)
        return RequestMetrics(registry: registry)
    }

    func record(_ outcome: Outcome, status: Int, duration: Duration, cache: inout HandleCache) {
        let key = RequestKey(model: outcome.model, route: outcome.route, code: status)
        let counter = cache.requests[key] ?? requests.withLock { shared in
            if let counter = shared[key] { return counter }
            let counter = Counter(label: "vwfcgi_requests_total", dimensions: [
                ("model", key.model), ("route", key.route), ("code", String(key.code)),
            ])
            shared[key] = counter
            return counter
        }
        cache.requests[key] = counter
        counter.increment()
        let handles = cache.perModel[outcome.model] ?? perModel.withLock { shared in
            if let handles = shared[outcome.model] { return handles }
            let handles = ModelHandles(
                duration: CoreMetrics.Timer(label: "vwfcgi_request_duration_seconds", dimensions: [("model", outcome.model)]),
                examples: Counter(label: "vwfcgi_examples_total", dimensions: [("model", outcome.model)])
            )
            shared[outcome.model] = handles
            return handles
        }
        cache.perModel[outcome.model] = handles
        handles.duration.recordNanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        if outcome.examples > 0 { handles.examples.increment(by: outcome.examples) }
        if let reason = outcome.errorReason {
            let errorKey = outcome.model + "\u{0}" + reason
            let counter = cache.errors[errorKey] ?? errors.withLock { shared in
                if let counter = shared[errorKey] { return counter }
                let counter = Counter(label: "vwfcgi_errors_total", dimensions: [("model", outcome.model), ("reason", reason)])
                shared[errorKey] = counter
                return counter
            }
            cache.errors[errorKey] = counter
            counter.increment()
        }
    }

    /// The Prometheus text exposition, with the gauges that are read at scrape time brought up to date.
    func exposition(store: ModelStore) -> [UInt8] {
        let elapsed = ContinuousClock.now - startedAt
        uptime.record(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        for status in store.statuses {
            Gauge(label: "vwfcgi_queue_depth", dimensions: [("model", status.name)])
                .record(Double(status.shards.reduce(0) { $0 + $1.inflight }))
        }
        return registry.emitToBuffer()
    }
}

extension PredictError {
    /// A short label for `vwfcgi_errors_total{reason}`.
    var metricReason: String {
        switch self {
        case .modelNotFound: "model_not_found"
        case .modelNotReady: "model_not_ready"
        case .invalidExample: "invalid_example"
        case .malformedBody: "malformed_body"
        case .tooManyInstances: "too_many_instances"
        case .tooExpensive: "too_many_interactions"
        case .overloaded: "overloaded"
        case .timedOut: "timeout"
        case .shardFailed: "vw_failed"
        }
    }
}

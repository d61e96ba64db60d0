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
        /// The request needs a thread that may wait: not answered here, nothing to record.
        var needsWorker = false
    }

    /// A request thread's own handles: the shared caches are consulted once per label set and thread.
    struct HandleCache {
        /// The `epoch` the handles were taken in: series of removed models are dropped by starting a new one.
        fileprivate var epoch = 0
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
    /// Raised whenever series are dropped, so threads drop their cached handles too.
    private let epoch = Atomic<Int>(0)
    /// Models whose `vwfcgi_queue_depth` was exported by the last scrape.
    private let queueGauges = Mutex<Set<String>>([])
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
        let current = epoch.load(ordering: .acquiring)
        if cache.epoch != current { cache = HandleCache(epoch: current) }
        let key = RequestKey(model: outcome.model, route: outcome.route, code: status)
        // A thread's own handle is looked up once; the shared map (a lock) and the factory only on its first use.
        let counter: CoreMetrics.Counter
        if let cached = cache.requests[key] {
            counter = cached
        } else {
            counter = requests.withLock { shared in
                if let counter = shared[key] { return counter }
                let counter = Counter(label: "vwfcgi_requests_total", dimensions: [
                    ("model", key.model), ("route", key.route), ("code", String(key.code)),
                ])
                shared[key] = counter
                return counter
            }
            cache.requests[key] = counter
        }
        counter.increment()
        let handles: ModelHandles
        if let cached = cache.perModel[outcome.model] {
            handles = cached
        } else {
            handles = perModel.withLock { shared in
                if let handles = shared[outcome.model] { return handles }
                let handles = ModelHandles(
                    duration: CoreMetrics.Timer(label: "vwfcgi_request_duration_seconds", dimensions: [("model", outcome.model)]),
                    examples: Counter(label: "vwfcgi_examples_total", dimensions: [("model", outcome.model)])
                )
                shared[outcome.model] = handles
                return handles
            }
            cache.perModel[outcome.model] = handles
        }
        handles.duration.recordNanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        if outcome.examples > 0 { handles.examples.increment(by: outcome.examples) }
        if let reason = outcome.errorReason {
            let errorKey = outcome.model + "\u{0}" + reason
            let counter: CoreMetrics.Counter
            if let cached = cache.errors[errorKey] {
                counter = cached
            } else {
                counter = errors.withLock { shared in
                    if let counter = shared[errorKey] { return counter }
                    let counter = Counter(label: "vwfcgi_errors_total", dimensions: [("model", outcome.model), ("reason", reason)])
                    shared[errorKey] = counter
                    return counter
                }
                cache.errors[errorKey] = counter
            }
            counter.increment()
        }
    }

    /// The Prometheus text exposition, with the gauges that are read at scrape time brought up to date.
    func exposition(_ statuses: [ModelStatus]) -> [UInt8] {
        let elapsed = ContinuousClock.now - startedAt
        uptime.record(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        let present = Set(statuses.map(\.name))
        for status in statuses {
            Gauge(label: "vwfcgi_queue_depth", dimensions: [("model", status.name)])
                .record(Double(status.shards.reduce(0) { $0 + $1.inflight }))
        }
        let goneQueues = queueGauges.withLock { exported in
            defer { exported = present }
            return exported.subtracting(present)
        }
        for name in goneQueues { Gauge(label: "vwfcgi_queue_depth", dimensions: [("model", name)]).destroy() }
        dropSeries(keeping: present)
        return Self.addingHelp(to: registry.emitToBuffer())
    }

    /// Drops the request series of models that are no longer in the directory (`model=""` stays).
    private func dropSeries(keeping present: Set<String>) {
        func gone(_ model: String) -> Bool { !model.isEmpty && !present.contains(model) }
        var dropped = false
        requests.withLock { shared in
            for (key, counter) in shared where gone(key.model) {
                counter.destroy()
                shared.removeValue(forKey: key)
                dropped = true
            }
        }
        perModel.withLock { shared in
            for (model, handles) in shared where gone(model) {
                handles.duration.destroy()
                handles.examples.destroy()
                shared.removeValue(forKey: model)
                dropped = true
            }
        }
        errors.withLock { shared in
            for (key, counter) in shared where gone(String(key.prefix { $0 != "\u{0}" })) {
                counter.destroy()
                shared.removeValue(forKey: key)
                dropped = true
            }
        }
        if dropped { epoch.wrappingAdd(1, ordering: .releasing) }
    }

    /// `# HELP` of every metric vwfcgi exports (swift-metrics has no place for it).
    static let help: [String: String] = [
        "vwfcgi_requests_total": "Requests vwfcgi answered, by model, route and HTTP status.",
        "vwfcgi_request_duration_seconds": "Time from a request reaching vwfcgi to its reply.",
        "vwfcgi_examples_total": "Examples (instances) in successful predictions.",
        "vwfcgi_errors_total": "Error replies by model and reason.",
        "vwfcgi_model_loads_total": "Model loads and reloads, by result (ok or failed).",
        "vwfcgi_shard_restarts_total": "vw processes that exited or hung and were replaced.",
        "vwfcgi_framing_violations_total": "vw processes killed because what they printed did not match the answers their requests expect (nothing was delivered).",
        "vwfcgi_inflight_requests": "Requests in the engine, waiting for vw or being answered by it.",
        "vwfcgi_queue_depth": "Requests queued at the model's vw processes, read at scrape time.",
        "vwfcgi_model_info": "1 for the version each model serves.",
        "vwfcgi_model_ready": "1 while the model has a serving version, 0 otherwise.",
        "vwfcgi_uptime_seconds": "Seconds since the vwfcgi process started.",
        "vwfcgi_loop_events_total": "Decisions and rewards this instance logged durably, by kind.",
        "vwfcgi_loop_joined_total": "Decisions this instance joined with their rewards into training lines.",
        "vwfcgi_loop_pending_events": "Decisions waiting for their rewards before they are joined.",
        "vwfcgi_loop_reward_sum": "The sum of the rewards this instance received.",
        "vwfcgi_loop_updates_total": "Learning updates (train, probe, publish), by result: ok or failed (the serving version stays).",
        "vwfcgi_loop_learned_events": "Joined events the served model has learned, from the first in join order.",
        "vwfcgi_loop_ips_estimate": "The learning policy's inverse-propensity estimate of its average reward on the last update's events.",
        "vwfcgi_loop_average_reward": "The logged policy's average reward over the events joined since start.",
        "vwfcgi_loop_skipped_lines_total": "Event log lines the joiner skipped (a torn last line after a crash, or an unreadable one), and joined lines the trainer did not learn (they failed its checks).",
    ]

    /// Inserts a `# HELP` line before each family's `# TYPE` line.
    static func addingHelp(to exposition: [UInt8]) -> [UInt8] {
        let typePrefix = Array("# TYPE ".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(exposition.count + 128 * help.count)
        var lineStart = 0
        while lineStart < exposition.count {
            let lineEnd = exposition[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? exposition.count
            let line = exposition[lineStart..<lineEnd]
            if line.starts(with: typePrefix) {
                let nameBytes = line.dropFirst(typePrefix.count).prefix { $0 != UInt8(ascii: " ") }
                let name = String(decoding: nameBytes, as: UTF8.self)
                out.append(contentsOf: "# HELP \(name) \(help[name] ?? "vwfcgi metric \(name).")\n".utf8)
            }
            out.append(contentsOf: line)
            out.append(UInt8(ascii: "\n"))
            lineStart = lineEnd + 1
        }
        return out
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
        case .invalidRequest: "invalid_request"
        case .eventLogFailed: "event_log_failed"
        case .needsWorker: "needs_worker"
        }
    }
}

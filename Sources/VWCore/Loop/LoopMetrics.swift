import CoreMetrics

/// `vwfcgi_loop_*` of one model.
struct LoopMetrics: Sendable {
    enum Kind: String {
        case decision, reward, activation, learn
    }

    let joined: Counter
    private let model: String
    let droppedPending: Counter
    let droppedOrphans: Counter
    let updatesRejected: Counter
    let pending: Gauge
    let rewardSum: Gauge
    let averageReward: Gauge
    /// `vwfcgi_loop_events_total{kind}`: SPEC §8.8 names the kinds decision, reward and learn; an activation
    /// counts as a reward-side event. Made once: a metric looked up per request takes the factory's lock.
    private let decisions: Counter
    private let rewards: Counter
    private let learns: Counter
    /// The learning half (SPEC §8.6, §8.8).
    let updatesOK: Counter
    let updatesFailed: Counter
    let learnedEvents: Gauge
    let ipsEstimate: Gauge
    /// `vwfcgi_loop_apprentice_switches_total`: apprentice mode switched to online by the trainer.
    let apprenticeSwitches: Counter

    init(model: String) {
        func counter(_ label: String, _ extra: [(String, String)] = []) -> Counter {
            let counter = Counter(label: label, dimensions: [("model", model)] + extra)
            counter.increment(by: 0)
            return counter
        }
        func gauge(_ label: String) -> Gauge { Gauge(label: label, dimensions: [("model", model)]) }
        joined = counter("vwfcgi_loop_joined_total")
        self.model = model
        droppedPending = counter("vwfcgi_loop_dropped_total", [("kind", "pending")])
        droppedOrphans = counter("vwfcgi_loop_dropped_total", [("kind", "orphan")])
        updatesRejected = counter("vwfcgi_loop_updates_total", [("result", "rejected")])
        pending = gauge("vwfcgi_loop_pending_events")
        rewardSum = gauge("vwfcgi_loop_reward_sum")
        averageReward = gauge("vwfcgi_loop_average_reward")
        decisions = Counter(label: "vwfcgi_loop_events_total", dimensions: [("model", model), ("kind", "decision")])
        rewards = Counter(label: "vwfcgi_loop_events_total", dimensions: [("model", model), ("kind", "reward")])
        learns = Counter(label: "vwfcgi_loop_events_total", dimensions: [("model", model), ("kind", "learn")])
        updatesOK = counter("vwfcgi_loop_updates_total", [("result", "ok")])
        updatesFailed = counter("vwfcgi_loop_updates_total", [("result", "failed")])
        learnedEvents = gauge("vwfcgi_loop_learned_events")
        ipsEstimate = gauge("vwfcgi_loop_ips_estimate")
        apprenticeSwitches = counter("vwfcgi_loop_apprentice_switches_total")
        pending.record(0)
        rewardSum.record(0)
        learnedEvents.record(0)
    }

    /// `vwfcgi_state_bytes{model,kind}`.
    func stateBytes(_ kind: StateKind, _ bytes: Int) {
        Gauge(label: "vwfcgi_state_bytes", dimensions: [("model", model), ("kind", kind.rawValue)]).record(bytes)
    }

    /// `vwfcgi_state_deleted_bytes_total{model,kind}`.
    func deleted(_ kind: StateKind, bytes: Int) {
        Counter(label: "vwfcgi_state_deleted_bytes_total", dimensions: [("model", model), ("kind", kind.rawValue)]).increment(by: bytes)
    }

    /// `vwfcgi_state_budget_bytes` and `vwfcgi_state_volume_free_bytes`.
    static func recordBudget(_ budget: Int?, free: Int?) {
        if let budget { Gauge(label: "vwfcgi_state_budget_bytes").record(budget) }
        if let free { Gauge(label: "vwfcgi_state_volume_free_bytes").record(free) }
    }

    /// `vwfcgi_loop_skipped_lines_total{model,reason}` (rare: looked up when it happens).
    func skipped(_ reason: SkipReason, count: Int = 1) {
        Counter(label: "vwfcgi_loop_skipped_lines_total", dimensions: [("model", model), ("reason", reason.rawValue)]).increment(by: count)
    }

    func recorded(_ kind: Kind, count: Int, rewardSum total: Double) {
        switch kind {
        case .decision: decisions.increment(by: count)
        case .reward, .activation: rewards.increment(by: count)
        case .learn: learns.increment(by: count)
        }
        if kind == .reward { rewardSum.record(total) }
    }

    /// One learning update ended.
    func updated(ok success: Bool, learnedEvents events: Int?, ips estimate: Double?) {
        (success ? updatesOK : updatesFailed).increment()
        if let events { learnedEvents.record(events) }
        if let estimate { ipsEstimate.record(estimate) }
    }
}

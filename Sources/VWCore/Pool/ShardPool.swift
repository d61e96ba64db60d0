#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Logging
import CoreMetrics
import Synchronization

/// The vw processes serving one model version, with least-loaded dispatch and one retry.
public final class ShardPool: Sendable {
    public let shards: [Shard]
    let modelName: String
    let maxQueuedRequests: Int
    private let queued = Atomic<Int>(0)
    let metrics: PoolMetrics

    /// Broadcast when any shard changes phase.
    private let changed = Condition()

    init(modelName: String, arguments: [String], count: Int, maxQueuedRequests: Int,
         hangTimeout: Duration = .seconds(5), logger: Logger) {
        self.modelName = modelName
        self.maxQueuedRequests = maxQueuedRequests
        metrics = PoolMetrics(model: modelName)
        let changed = changed
        shards = (0..<max(1, count)).map {
            Shard(index: $0, modelName: modelName, arguments: arguments, hangTimeout: hangTimeout, changed: changed, logger: logger)
        }
    }

    /// Starts every shard and checks each answers `probe` within `timeout`.
    func start(probe: PreparedBatch, timeout: Duration) throws(LoadError) {
        for shard in shards {
            do {
                try shard.start()
            } catch {
                throw LoadError.spawnFailed(error.description)
            }
        }
        for shard in shards {
            let deadline = Deadline.after(timeout)
            let result: Result<ShardAnswer, ShardFailure>?
            do {
                result = try shard.submit(probe).wait(until: deadline)
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success?:
                continue
            case .failure(let failure)?:
                // vw's last words explain the failure.
                let detail = shard.stderrTail(waitingUntil: .after(.milliseconds(500))).trimmingWhitespace()
                throw LoadError.probeFailed("\(failure)" + (detail.isEmpty ? "" : ": \(detail)"))
            case nil:
                throw LoadError.probeFailed("vw did not answer the probe within \(timeout)")
            }
        }
    }

    /// Stops every shard, letting vw answer what it already holds.
    func stop(grace: Duration) {
        for shard in shards { shard.stop(grace: grace) }
    }

    public var status: [ShardStatus] { shards.map(\.status) }

    /// Requests written to vw and not yet answered, over all shards.
    public var queueDepth: Int { shards.reduce(0) { $0 + $1.load } }
    public var isReady: Bool { shards.contains { $0.isReady } }

    /// Sends `batch` to the least-loaded ready shard and waits for its answers.
    public func predict(_ batch: PreparedBatch, deadline: Deadline) throws(PoolError) -> ShardAnswer {
        if queued.wrappingAdd(1, ordering: .relaxed).newValue > maxQueuedRequests {
            queued.wrappingSubtract(1, ordering: .relaxed)
            throw .overloaded(model: modelName)
        }
        metrics.inflight.increment()
        defer {
            queued.wrappingSubtract(1, ordering: .relaxed)
            metrics.inflight.decrement()
        }
        var lastFailure = "no ready shard"
        var failedShard: Shard?
        // One attempt plus one retry: prediction with -t is idempotent.
        for _ in 0..<2 {
            guard let shard = pickShard(avoiding: failedShard) ?? waitForReadyShard(until: deadline) else { break }
            let request: PendingPrediction
            do {
                request = try shard.submit(batch)
            } catch {
                failedShard = shard
                lastFailure = "\(error)"
                continue
            }
            switch request.wait(until: deadline) {
            case .success(let answer)?:
                return answer
            case .failure(let failure)?:
                failedShard = shard
                lastFailure = "\(failure)"
            case nil:
                shard.killHung(holding: request)
                throw .timedOut(model: modelName)
            }
        }
        if deadline.hasPassed { throw .timedOut(model: modelName) }
        throw .shardFailed(lastFailure)
    }

    private func pickShard(avoiding avoided: Shard?) -> Shard? {
        var best: Shard?
        var bestLoad = Int.max
        for shard in shards where shard !== avoided || shards.count == 1 {
            guard shard.isReady else { continue }
            let load = shard.load
            if load < bestLoad {
                best = shard
                bestLoad = load
            }
        }
        return best
    }

    /// Waits for a restarting shard to come back.
    private func waitForReadyShard(until deadline: Deadline) -> Shard? {
        var shard: Shard?
        changed.wait(until: deadline) {
            shard = pickShard(avoiding: nil)
            return shard != nil
        }
        return shard
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[start...end])
    }
}

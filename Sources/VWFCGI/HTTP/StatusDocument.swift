import VWCore

/// JSON documents of `GET /v1/models` and `GET /v1/models/<name>`.
enum StatusDocument {
    static func list(_ statuses: [ModelStatus], engines: (String) -> EngineStatus? = { _ in nil }) -> JSONWriter {
        var writer = JSONWriter(capacity: 256 * max(1, statuses.count))
        writer.raw("{\"models\":[")
        for (index, status) in statuses.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.model(status, engine: engines(status.name))
        }
        writer.raw("]}")
        return writer
    }

    /// `GET /v1/models/<name>/loop` (SPEC §8.8).
    static func loop(_ status: LoopStatus) -> JSONWriter {
        var writer = JSONWriter(capacity: 256)
        writer.raw("{\"decisions\":")
        writer.integer(status.decisions)
        writer.raw(",\"rewards\":")
        writer.integer(status.rewards)
        writer.raw(",\"activations\":")
        writer.integer(status.activations)
        writer.raw(",\"learns\":")
        writer.integer(status.learns)
        writer.raw(",\"joined\":")
        writer.integer(status.joined)
        writer.raw(",\"pending\":")
        writer.integer(status.pending)
        writer.raw(",\"reward_sum\":")
        writer.raw(finite(status.rewardSum))
        writer.raw(",\"average_reward\":")
        writer.raw(status.averageReward.map(finite) ?? "null")
        let learning = status.learning
        writer.raw(",\"updates\":")
        writer.integer(learning.updates)
        writer.raw(",\"failed_updates\":")
        writer.integer(learning.failedUpdates)
        writer.raw(",\"last_update\":")
        writer.optionalString(learning.lastUpdate)
        writer.raw(",\"learned_version\":")
        writer.optionalString(learning.learnedVersion)
        writer.raw(",\"learned_events\":")
        writer.integer(learning.learnedEvents)
        writer.raw(",\"ips_estimate\":")
        writer.raw(learning.ipsEstimate.map(finite) ?? "null")
        writer.raw(",\"last_update_logged_average\":")
        writer.raw(learning.loggedAverage.map(finite) ?? "null")
        writer.raw(",\"rejected_updates\":")
        writer.integer(learning.rejectedUpdates)
        writer.raw(",\"orphans\":")
        writer.integer(status.orphans)
        writer.raw(",\"dropped_pending\":")
        writer.integer(status.droppedPending)
        writer.raw(",\"dropped_orphans\":")
        writer.integer(status.droppedOrphans)
        writer.raw(",\"skipped_lines\":")
        writer.integer(status.skippedLines)
        writer.raw(",\"clipped_probabilities\":")
        writer.integer(status.clippedProbabilities)
        writer.raw(",\"joins_here\":")
        writer.raw(status.joinsHere ? "true" : "false")
        writer.raw(",\"last_error\":")
        writer.optionalString(learning.lastError)
        writer.raw(",\"state_bytes\":{")
        for (index, (kind, bytes)) in status.stateBytes.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { writer.raw(",") }
            writer.string(kind); writer.raw(":"); writer.integer(bytes)
        }
        writer.raw("},\"deleted_bytes\":{")
        for (index, (kind, bytes)) in status.deletedBytes.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { writer.raw(",") }
            writer.string(kind); writer.raw(":"); writer.integer(bytes)
        }
        writer.raw("},\"state_budget_bytes\":")
        writer.raw(status.stateBudget.map { "\($0)" } ?? "null")
        writer.raw(",\"volume_free_bytes\":")
        writer.raw(status.freeBytes.map { "\($0)" } ?? "null")
        writer.raw(",\"over_budget\":")
        writer.optionalString(status.overBudget)
        writer.raw(",\"settings\":")
        if let settings = status.settings { writer.loopSettings(settings) } else { writer.raw("null") }
        writer.raw("}")
        return writer
    }

    /// A finite double as a JSON number (`"\(Double)"` is valid JSON for finite values).
    private static func finite(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }

    static func model(_ status: ModelStatus, engine: EngineStatus? = nil) -> JSONWriter {
        var writer = JSONWriter()
        writer.model(status, engine: engine)
        return writer
    }
}

extension JSONWriter {
    mutating func model(_ status: ModelStatus, engine: EngineStatus? = nil) {
        raw("{\"name\":")
        string(status.name)
        raw(",\"ready\":")
        raw(status.ready ? "true" : "false")
        raw(",\"version\":")
        optionalString(status.version)
        raw(",\"loaded_at\":")
        optionalString(status.loadedAt)
        raw(",\"shards\":[")
        for (index, shard) in status.shards.enumerated() {
            if index > 0 { raw(",") }
            raw("{\"pid\":")
            if let pid = shard.pid { integer(Int(pid)) } else { raw("null") }
            raw(",\"ready\":")
            raw(shard.ready ? "true" : "false")
            raw(",\"restarts\":")
            integer(shard.restarts)
            raw(",\"inflight\":")
            integer(shard.inflight)
            raw("}")
        }
        raw("],\"vw_args\":[")
        for (index, argument) in status.vwArgs.enumerated() {
            if index > 0 { raw(",") }
            string(argument)
        }
        raw("],\"multiline\":")
        if let multiline = status.multiline { raw(multiline ? "true" : "false") } else { raw("null") }
        raw(",\"last_error\":")
        if let failure = status.lastError {
            raw("{\"time\":")
            string(failure.time)
            raw(",\"reason\":")
            string(failure.reason)
            raw("}")
        } else {
            raw("null")
        }
        raw(",\"sandbox\":")
        string(Sandbox.mode.rawValue)
        // Where the serving bytes came from (SPEC §8.6): the model directory, or the learning loop.
        raw(",\"origin\":")
        switch status.origin {
        case nil: raw("null")
        case .file?: raw("\"file\"")
        case .learned(let base, let events)?:
            raw("\"learned\",\"base_version\":")
            string(base)
            raw(",\"learned_events\":")
            integer(events)
        }
        // Which engine answers (SPEC §11), and why vw when it is vw; null without a serving version.
        raw(",\"engine\":")
        optionalString(engine?.engine)
        if let reason = engine?.reason {
            raw(",\"engine_reason\":")
            string(reason)
        }
        raw("}")
    }

    mutating func optionalString(_ value: String?) {
        if let value { string(value) } else { raw("null") }
    }
}

extension JSONWriter {
    /// The loop settings in force (SPEC §8.9), with the units of the `.json`: durations in seconds.
    mutating func loopSettings(_ loop: LoopConfig) {
        func seconds(_ d: Duration) -> String {
            let (s, atto) = d.components
            return "\(Double(s) + Double(atto) / 1e18)"
        }
        raw("{\"reward_wait_seconds\":"); raw(seconds(loop.rewardWait))
        raw(",\"default_reward\":"); raw("\(loop.defaultReward)")
        raw(",\"reward_range\":["); raw("\(loop.rewardRange.lowerBound),\(loop.rewardRange.upperBound)]")
        raw(",\"reward_aggregation\":"); string(loop.rewardAggregation.rawValue)
        raw(",\"learning_mode\":"); string(loop.learningMode.rawValue)
        raw(",\"update_interval_seconds\":"); raw(seconds(loop.updateInterval))
        raw(",\"min_events\":"); integer(loop.minEvents)
        raw(",\"trainer\":"); string(loop.externalTrainer ? "external" : "internal")
        raw(",\"max_abs_label\":"); raw("\(loop.maxAbsLabel)")
        raw(",\"max_importance\":"); raw("\(loop.maxImportance)")
        raw(",\"max_abs_feature_value\":"); raw("\(loop.maxAbsFeatureValue)")
        raw(",\"min_probability\":"); raw("\(loop.minProbability)")
        raw(",\"max_pending\":"); integer(loop.maxPending)
        raw(",\"max_orphans\":"); integer(loop.maxOrphans)
        raw(",\"orphan_wait_seconds\":"); raw(seconds(loop.orphanWait))
        raw(",\"deferred_wait_seconds\":"); raw(seconds(loop.deferredWait))
        raw(",\"gate\":{\"max_regression\":"); raw(loop.maxRegression.map { "\($0)" } ?? "null"); raw("}")
        raw(",\"retention\":{\"log_seconds\":"); raw(seconds(loop.retention.log))
        raw(",\"joined_seconds\":"); raw(seconds(loop.retention.joined))
        raw(",\"learned_versions\":"); integer(loop.retention.learnedVersions)
        raw(",\"rejected_seconds\":"); raw(seconds(loop.retention.rejected)); raw("}}")
    }
}

import VWCore

/// JSON documents of `GET /v1/models` and `GET /v1/models/<name>`.
enum StatusDocument {
    static func list(_ statuses: [ModelStatus], engines: (String) -> EngineStatus? = { _ in nil }) -> JSONWriter {
        var writer = JSONWriter(capacity: 256 * max(1, statuses.count))
        writer.beginObject()
        writer.key("models")
        writer.beginArray()
        for status in statuses { writer.model(status, engine: engines(status.name)) }
        writer.endArray()
        writer.endObject()
        return writer
    }

    /// `GET /v1/models/<name>/loop` (SPEC §8.8).
    static func loop(_ status: LoopStatus) -> JSONWriter {
        var writer = JSONWriter(capacity: 256)
        let learning = status.learning
        writer.beginObject()
        writer.key("decisions"); writer.int(status.decisions)
        writer.key("rewards"); writer.int(status.rewards)
        writer.key("activations"); writer.int(status.activations)
        writer.key("learns"); writer.int(status.learns)
        writer.key("joined"); writer.int(status.joined)
        writer.key("pending"); writer.int(status.pending)
        writer.key("reward_sum"); writer.double(status.rewardSum)
        writer.key("average_reward"); writer.double(orNull: status.averageReward)
        writer.key("updates"); writer.int(learning.updates)
        writer.key("failed_updates"); writer.int(learning.failedUpdates)
        writer.key("last_update"); writer.string(orNull: learning.lastUpdate)
        writer.key("learned_version"); writer.string(orNull: learning.learnedVersion)
        writer.key("learned_events"); writer.int(learning.learnedEvents)
        writer.key("ips_estimate"); writer.double(orNull: learning.ipsEstimate)
        writer.key("last_update_logged_average"); writer.double(orNull: learning.loggedAverage)
        writer.key("rejected_updates"); writer.int(learning.rejectedUpdates)
        writer.key("apprentice")
        if let apprentice = learning.apprentice {
            writer.beginObject()
            writer.key("evaluations"); writer.int(apprentice.evaluations)
            writer.key("evaluated_at"); writer.string(apprentice.evaluatedAt)
            writer.key("events"); writer.int(apprentice.last.events)
            writer.key("baseline_reward"); writer.double(apprentice.last.baselineReward)
            writer.key("learned_reward"); writer.double(apprentice.last.learnedReward)
            writer.key("imitation"); writer.double(apprentice.last.imitation)
            writer.key("threshold"); writer.double(apprentice.last.threshold)
            writer.key("met"); writer.bool(apprentice.last.met)
            writer.key("switched_at"); writer.string(orNull: apprentice.switchedAt)
            writer.endObject()
        } else {
            writer.null()
        }
        writer.key("orphans"); writer.int(status.orphans)
        writer.key("dropped_pending"); writer.int(status.droppedPending)
        writer.key("dropped_orphans"); writer.int(status.droppedOrphans)
        writer.key("skipped_lines"); writer.int(status.skippedLines)
        writer.key("clipped_probabilities"); writer.int(status.clippedProbabilities)
        writer.key("joins_here"); writer.bool(status.joinsHere)
        writer.key("last_error"); writer.string(orNull: learning.lastError)
        for (name, counts) in [("state_bytes", status.stateBytes), ("deleted_bytes", status.deletedBytes)] {
            writer.key(name)
            writer.beginObject()
            for (kind, bytes) in counts.sorted(by: { $0.key < $1.key }) {
                writer.key(kind); writer.int(bytes)
            }
            writer.endObject()
        }
        writer.key("state_budget_bytes"); writer.int(orNull: status.stateBudget)
        writer.key("volume_free_bytes"); writer.int(orNull: status.freeBytes)
        writer.key("over_budget"); writer.string(orNull: status.overBudget)
        writer.key("settings")
        if let settings = status.settings { writer.loopSettings(settings) } else { writer.null() }
        writer.endObject()
        return writer
    }

    static func model(_ status: ModelStatus, engine: EngineStatus? = nil) -> JSONWriter {
        var writer = JSONWriter()
        writer.model(status, engine: engine)
        return writer
    }
}

extension JSONWriter {
    mutating func model(_ status: ModelStatus, engine: EngineStatus? = nil) {
        beginObject()
        key("name"); string(status.name)
        key("ready"); bool(status.ready)
        key("version"); string(orNull: status.version)
        key("loaded_at"); string(orNull: status.loadedAt)
        key("shards")
        beginArray()
        for shard in status.shards {
            beginObject()
            key("pid"); int(orNull: shard.pid.map(Int.init))
            key("ready"); bool(shard.ready)
            key("restarts"); int(shard.restarts)
            key("inflight"); int(shard.inflight)
            endObject()
        }
        endArray()
        key("vw_args")
        beginArray()
        for argument in status.vwArgs { string(argument) }
        endArray()
        key("multiline")
        if let multiline = status.multiline { bool(multiline) } else { null() }
        key("last_error")
        if let failure = status.lastError {
            beginObject()
            key("time"); string(failure.time)
            key("reason"); string(failure.reason)
            endObject()
        } else {
            null()
        }
        key("weights_bytes_estimate"); int(orNull: status.memoryEstimate.map { Int(clamping: $0.totalBytes) })
        key("sandbox"); string(Sandbox.mode.rawValue)
        // Where the serving bytes came from (SPEC §8.6): the model directory, or the learning loop.
        key("origin")
        switch status.origin {
        case nil: null()
        case .file?: string("file")
        case .learned(let base, let events)?:
            string("learned")
            key("base_version"); string(base)
            key("learned_events"); int(events)
        }
        // Which engine answers (SPEC §11), and why vw when it is vw; null without a serving version.
        key("engine"); string(orNull: engine?.engine)
        if let reason = engine?.reason {
            key("engine_reason"); string(reason)
        }
        endObject()
    }

    /// The loop settings in force (SPEC §8.9), with the units of the `.json`: durations in seconds.
    mutating func loopSettings(_ loop: LoopConfig) {
        func seconds(_ d: Duration) -> Double {
            let (s, atto) = d.components
            return Double(s) + Double(atto) / 1e18
        }
        beginObject()
        key("reward_wait_seconds"); double(seconds(loop.rewardWait))
        key("default_reward"); double(loop.defaultReward)
        key("reward_range")
        beginArray(); double(loop.rewardRange.lowerBound); double(loop.rewardRange.upperBound); endArray()
        key("reward_aggregation"); string(loop.rewardAggregation.rawValue)
        key("learning_mode"); string(loop.learningMode.rawValue)
        key("apprentice_threshold"); double(loop.apprenticeThreshold)
        key("update_interval_seconds"); double(seconds(loop.updateInterval))
        key("min_events"); int(loop.minEvents)
        key("trainer"); string(loop.externalTrainer ? "external" : "internal")
        key("max_abs_label"); double(loop.maxAbsLabel)
        key("max_importance"); double(loop.maxImportance)
        key("max_abs_feature_value"); double(loop.maxAbsFeatureValue)
        key("min_probability"); double(loop.minProbability)
        key("max_pending"); int(loop.maxPending)
        key("max_orphans"); int(loop.maxOrphans)
        key("orphan_wait_seconds"); double(seconds(loop.orphanWait))
        key("deferred_wait_seconds"); double(seconds(loop.deferredWait))
        key("gate")
        beginObject(); key("max_regression"); double(orNull: loop.maxRegression); endObject()
        key("retention")
        beginObject()
        key("log_seconds"); double(seconds(loop.retention.log))
        key("joined_seconds"); double(seconds(loop.retention.joined))
        key("learned_versions"); int(loop.retention.learnedVersions)
        key("rejected_seconds"); double(seconds(loop.retention.rejected))
        endObject()
        endObject()
    }
}

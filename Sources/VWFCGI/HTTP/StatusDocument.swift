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
        writer.raw(",\"last_error\":")
        writer.optionalString(learning.lastError)
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

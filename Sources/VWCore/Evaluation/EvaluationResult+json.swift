extension EvaluationResult {
    /// The result as one JSON object (`vwfcgi evaluate --json`): the events, and per policy its summary and time series.
    public func json() -> [UInt8] {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("model"); writer.string(model)
        writer.key("events"); writer.int(events)
        writer.key("skipped"); writer.int(skipped)
        writer.key("skipped_reasons")
        writer.beginArray()
        for reason in skippedReasons { writer.string(reason) }
        writer.endArray()
        writer.key("first_timestamp"); Self.optional(firstTimestamp, &writer)
        writer.key("last_timestamp"); Self.optional(lastTimestamp, &writer)
        writer.key("interval_method")
        writer.string("95%: IPS normal approximation on the per-event terms w*r (ips_interval), empirical Bernstein (ips_bernstein_interval), percentile bootstrap with --interval bootstrap (ips_bootstrap_interval); SNIPS delta method")
        writer.key("interval"); writer.string(interval.rawValue)
        writer.key("optimal_policy")
        if let optimal = optimalPolicy { writer.string(optimal.arguments) } else { writer.raw("null".utf8) }
        writer.key("grid")
        writer.beginArray()
        for policy in grid {
            writer.beginObject()
            writer.key("arguments"); writer.string(policy.arguments)
            writer.key("summary"); policy.summary.write(into: &writer)
            writer.endObject()
        }
        writer.endArray()
        writer.key("policies")
        writer.beginArray()
        for policy in policies {
            writer.beginObject()
            writer.key("name"); writer.string(policy.name)
            writer.key("policySource"); writer.string(policy.source.rawValue)
            writer.key("arguments"); writer.string(policy.arguments)
            writer.key("summary"); policy.summary.write(into: &writer)
            writer.key("timeseries")
            writer.beginArray()
            for window in policy.timeseries {
                writer.beginObject()
                writer.key("start"); Self.optional(window.start, &writer)
                writer.key("end"); Self.optional(window.end, &writer)
                writer.key("estimate"); window.estimate.write(into: &writer)
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes + [0x0A]
    }

    private static func optional(_ text: String?, _ writer: inout JSONWriter) {
        if let text { writer.string(text) } else { writer.raw("null".utf8) }
    }
}

extension OffPolicyEstimate {
    func write(into writer: inout JSONWriter) {
        func interval(_ value: ConfidenceInterval?) {
            guard let value else { return writer.raw("null".utf8) }
            writer.beginArray()
            writer.double(value.lower)
            writer.double(value.upper)
            writer.endArray()
        }
        writer.beginObject()
        writer.key("events"); writer.int(events)
        writer.key("ips"); writer.double(ips)
        writer.key("ips_interval"); interval(ipsInterval)
        writer.key("ips_bernstein_interval"); interval(ipsBernsteinInterval)
        writer.key("ips_bootstrap_interval"); interval(ipsBootstrapInterval)
        writer.key("snips")
        if let snips { writer.double(snips) } else { writer.raw("null".utf8) }
        writer.key("snips_interval"); interval(snipsInterval)
        writer.key("effective_sample_size"); writer.double(effectiveSampleSize)
        writer.key("mean_weight"); writer.double(meanWeight)
        writer.endObject()
    }
}

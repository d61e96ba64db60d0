extension EvaluationResult {
    /// The evaluation in Prometheus' text format (`vwfcgi evaluate --metrics-file`), for node-exporter's textfile
    /// collector and so Grafana: per policy its IPS and SNIPS point estimates and 95% bounds (IPS by the evaluation's
    /// interval method, SNIPS by the delta method), its effective sample size and mean weight; the events, and when the
    /// evaluation finished (`finished`, seconds since the epoch) and over which time range.
    public func prometheusText(finished: Double) -> String {
        var out = ""
        func family(_ name: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
            let text = labels.map { "\($0.0)=\"\(Self.escapedLabel($0.1))\"" }.joined(separator: ",")
            out += "\(name){\(text)} \(Self.sampleValue(value))\n"
        }
        let model = ("model", self.model)
        family("vwfcgi_evaluation_estimate",
               "Estimated average reward of a policy on the logged events (estimator ips|snips; bound point|lower|upper of the 95% interval).")
        for policy in policies {
            let name = ("policy", policy.name), arguments = ("arguments", policy.arguments), source = ("source", policy.source.rawValue)
            let s = policy.summary
            let ips = s.ipsInterval(interval)
            for (bound, value) in [("point", s.ips), ("lower", ips.lower), ("upper", ips.upper)] {
                sample("vwfcgi_evaluation_estimate", [model, name, source, arguments, ("estimator", "ips"), ("bound", bound)], value)
            }
            if let snips = s.snips, let bounds = s.snipsInterval {
                for (bound, value) in [("point", snips), ("lower", bounds.lower), ("upper", bounds.upper)] {
                    sample("vwfcgi_evaluation_estimate", [model, name, source, arguments, ("estimator", "snips"), ("bound", bound)], value)
                }
            }
        }
        family("vwfcgi_evaluation_effective_sample_size", "(sum w)^2 / sum w^2 of a policy's weights.")
        for policy in policies {
            sample("vwfcgi_evaluation_effective_sample_size", [model, ("policy", policy.name)], policy.summary.effectiveSampleSize)
        }
        family("vwfcgi_evaluation_mean_weight", "sum w / n of a policy's weights (1 in expectation).")
        for policy in policies {
            sample("vwfcgi_evaluation_mean_weight", [model, ("policy", policy.name)], policy.summary.meanWeight)
        }
        family("vwfcgi_evaluation_events", "Joined events evaluated.")
        sample("vwfcgi_evaluation_events", [model], Double(events))
        family("vwfcgi_evaluation_skipped_lines", "Joined lines left out (they fail the trainer's checks).")
        sample("vwfcgi_evaluation_skipped_lines", [model], Double(skipped))
        family("vwfcgi_evaluation_info", "The evaluation's interval method and time range (value 1).")
        sample("vwfcgi_evaluation_info", [model, ("interval", interval.rawValue), ("first_event", firstTimestamp ?? ""),
                                          ("last_event", lastTimestamp ?? "")], 1)
        family("vwfcgi_evaluation_finished_timestamp_seconds", "When the evaluation finished.")
        sample("vwfcgi_evaluation_finished_timestamp_seconds", [model], finished)
        return out
    }

    /// A label value as the text format writes it: `\`, `"` and newline escaped.
    static func escapedLabel(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    static func sampleValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        return "\(value)"
    }
}

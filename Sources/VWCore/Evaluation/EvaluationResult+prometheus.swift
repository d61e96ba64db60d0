extension EvaluationResult {
    /// The evaluation in Prometheus' text format (`vwfcgi evaluate --metrics-file`), for node-exporter's textfile
    /// collector and so Grafana: per policy its IPS and SNIPS point estimates and 95% bounds (IPS by the evaluation's
    /// interval method, SNIPS by the delta method), its effective sample size and mean weight; the events, and when the
    /// evaluation finished (`finished`, seconds since the epoch) and over which time range.
    public func prometheusText(finished: Double) -> String {
        Self.prometheusText([(self, finished)])
    }

    /// Several models' evaluations in one exposition (each family's help and type once): the server's `/metrics`.
    public static func prometheusText(_ evaluations: [(result: EvaluationResult, finished: Double)]) -> String {
        var out = ""
        func family(_ name: String, _ help: String, _ samples: (EvaluationResult, Double) -> [(labels: [(String, String)], value: Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for (result, finished) in evaluations {
                for sample in samples(result, finished) {
                    let text = ([("model", result.model)] + sample.labels).map { "\($0.0)=\"\(escapedLabel($0.1))\"" }.joined(separator: ",")
                    out += "\(name){\(text)} \(sampleValue(sample.value))\n"
                }
            }
        }
        family("vwfcgi_evaluation_estimate",
               "Estimated average reward of a policy on the logged events (estimator ips|snips; bound point|lower|upper of the 95% interval).") { result, _ in
            result.policies.flatMap { policy in
                let labels = [("policy", policy.name), ("source", policy.source.rawValue), ("arguments", policy.arguments)]
                let s = policy.summary
                let ips = s.ipsInterval(result.interval)
                var samples = [("point", s.ips), ("lower", ips.lower), ("upper", ips.upper)].map { bound, value in
                    (labels + [("estimator", "ips"), ("bound", bound)], value)
                }
                if let snips = s.snips, let bounds = s.snipsInterval {
                    samples += [("point", snips), ("lower", bounds.lower), ("upper", bounds.upper)].map { bound, value in
                        (labels + [("estimator", "snips"), ("bound", bound)], value)
                    }
                }
                return samples
            }
        }
        family("vwfcgi_evaluation_effective_sample_size", "(sum w)^2 / sum w^2 of a policy's weights.") { result, _ in
            result.policies.map { ([("policy", $0.name)], $0.summary.effectiveSampleSize) }
        }
        family("vwfcgi_evaluation_mean_weight", "sum w / n of a policy's weights (1 in expectation).") { result, _ in
            result.policies.map { ([("policy", $0.name)], $0.summary.meanWeight) }
        }
        family("vwfcgi_evaluation_events", "Joined events evaluated.") { result, _ in [([], Double(result.events))] }
        family("vwfcgi_evaluation_skipped_lines", "Joined lines left out (they fail the trainer's checks).") { result, _ in
            [([], Double(result.skipped))]
        }
        family("vwfcgi_evaluation_info", "The evaluation's interval method and time range (value 1).") { result, _ in
            [([("interval", result.interval.rawValue), ("first_event", result.firstTimestamp ?? ""), ("last_event", result.lastTimestamp ?? "")], 1)]
        }
        family("vwfcgi_evaluation_finished_timestamp_seconds", "When the evaluation finished.") { _, finished in [([], finished)] }
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

import VWCore

/// `vwfcgi evaluate`'s terminal output: one row per policy, then each policy's IPS per window.
struct EvaluationTable {
    let text: String

    init(_ result: EvaluationResult) {
        var out = "model \(result.model): \(result.events) events"
        if let first = result.firstTimestamp, let last = result.lastTimestamp { out += " from \(first) to \(last)" }
        out += ", \(result.skipped) joined lines left out\n"
        for reason in result.skippedReasons.prefix(3) { out += "  left out: \(reason)\n" }
        out += "\n" + Self.row(["policy", "IPS", "95% interval", "SNIPS", "95% interval", "ESS", "mean w"]) + "\n"
        for policy in result.policies {
            let s = policy.summary
            out += Self.row([policy.name, Self.number(s.ips), Self.interval(s.ipsInterval(result.interval)), s.snips.map(Self.number) ?? "-",
                             s.snipsInterval.map(Self.interval) ?? "-", String(Int(s.effectiveSampleSize.rounded())),
                             Self.number(s.meanWeight)]) + "\n"
        }
        let custom = result.policies.filter { !$0.arguments.isEmpty }
        if !custom.isEmpty { out += "\n" }
        for policy in custom { out += "\(policy.name): \(policy.arguments)\n" }
        out += "\nIPS per window (equal numbers of events):\n"
        out += Self.row(["window start"] + result.policies.map(\.name), first: 26) + "\n"
        let windows = result.policies.first?.timeseries.count ?? 0
        for index in 0..<windows {
            let start = result.policies[0].timeseries[index].start ?? "-"
            out += Self.row([start] + result.policies.map { Self.number($0.timeseries[index].estimate.ips) }, first: 26) + "\n"
        }
        if !result.grid.isEmpty {
            out += "\nGrid searched (\(result.grid.count) settings; the winner has the highest lower bound of its IPS interval):\n"
            for policy in result.grid {
                out += Self.row([Self.number(policy.summary.ips), Self.interval(policy.summary.ipsInterval(result.interval))], first: 9)
                    + "  " + policy.arguments + "\n"
            }
        }
        let method = switch result.interval {
        case .normal: "normal approximation on the per-event terms w*r"
        case .bernstein: "empirical Bernstein (Maurer & Pontil)"
        case .bootstrap: "percentile bootstrap (B = 1000, seed 22)"
        }
        out += "\nIntervals: IPS, \(method); SNIPS, delta method. ESS = (sum w)^2 / sum w^2.\n"
        text = out
    }

    static func number(_ value: Double) -> String {
        let scaled = (value * 10_000).rounded() / 10_000
        var text = String(scaled)
        if let dot = text.firstIndex(of: "."), !text.contains("e") {
            let decimals = text.distance(from: dot, to: text.endIndex) - 1
            if decimals < 4 { text += String(repeating: "0", count: 4 - decimals) }
        }
        return text
    }

    static func interval(_ value: ConfidenceInterval) -> String { "[\(number(value.lower)), \(number(value.upper))]" }

    static func row(_ cells: [String], first: Int = 12) -> String {
        cells.enumerated().map { index, cell in
            let width = index == 0 ? first : (cell.hasPrefix("[") || cell == "95% interval" ? 20 : 9)
            return cell.count >= width ? cell + " " : cell + String(repeating: " ", count: width - cell.count)
        }.joined().trimmingCharacters()
    }
}

private extension String {
    func trimmingCharacters() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}

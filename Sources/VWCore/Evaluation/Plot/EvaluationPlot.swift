#if canImport(Glibc)
import Glibc
#endif

/// `vwfcgi evaluate --plot`: each policy's IPS estimate per window (a line through the windows, one colour per
/// policy) over its 95% interval (a translucent band, with error bars at the windows), a y axis of rewards and an x
/// axis of the windows' end times, a legend with the policies' names.
public enum EvaluationPlot {
    public static let width = 960
    public static let height = 540
    public static let background = RGB(255, 255, 255)
    static let ink = RGB(40, 40, 40)
    static let grid = RGB(225, 225, 225)
    /// Tableau 10, in order; a policy's colour is `palette[index % 10]`.
    public static let palette: [RGB] = [
        RGB(31, 119, 180), RGB(255, 127, 14), RGB(44, 160, 44), RGB(214, 39, 40), RGB(148, 103, 189),
        RGB(140, 86, 75), RGB(227, 119, 194), RGB(127, 127, 127), RGB(188, 189, 34), RGB(23, 190, 207),
    ]

    /// The plot's PNG file.
    public static func png(_ result: EvaluationResult) -> [UInt8] { canvas(result).png() }

    static func canvas(_ result: EvaluationResult) -> Canvas {
        var canvas = Canvas(width: width, height: height, background: background)
        let policies = result.policies
        let windows = policies.map(\.timeseries.count).max() ?? 0
        // The legend: 4 names per row, 2 when a policy has arguments to show.
        let columns = policies.contains { !$0.arguments.isEmpty } ? 2 : 4
        let legendRows = (policies.count + columns - 1) / columns
        let left = 80, right = width - 20, top = 40, bottom = height - 50 - 16 * legendRows
        let title = "\(result.model): IPS estimate and 95% \(result.interval.rawValue) interval per window, \(result.events) events"
        canvas.text(title, x: left, y: 12, ink, scale: 2)

        // The y range: every window's interval, padded by 5%, ticks at a round step.
        let intervals = policies.flatMap { $0.timeseries.map { $0.estimate.ipsInterval(result.interval) } }
        var low = intervals.map(\.lower).min() ?? 0, high = intervals.map(\.upper).max() ?? 1
        if !(high > low) { low -= 0.5; high += 0.5 }
        let pad = (high - low) * 0.05
        low -= pad
        high += pad
        let step = niceStep((high - low) / 8)
        func y(_ value: Double) -> Int { bottom - Int(((value - low) / (high - low) * Double(bottom - top)).rounded()) }
        func x(_ index: Int) -> Int {
            windows <= 1 ? (left + right) / 2 : left + 20 + index * (right - left - 40) / (windows - 1)
        }
        let decimals = max(0, min(6, Int((-log10(step)).rounded(.up))))
        var tick = (low / step).rounded(.up) * step
        while tick <= high {
            let ty = y(tick)
            canvas.line(left, ty, right, ty, grid)
            let label = fixed(tick, decimals)
            canvas.text(label, x: left - 8 - Canvas.textWidth(label, scale: 1), y: ty - 3, ink)
            tick += step
        }
        canvas.line(left, top, left, bottom, ink)
        canvas.line(left, bottom, right, bottom, ink)
        canvas.text("reward", x: 8, y: top - 14, ink)

        // The x ticks: each window's end time (MM-DD HH:MM), as many as fit without overlapping.
        var lastLabelEnd = Int.min
        for index in 0..<windows {
            let tx = x(index)
            canvas.line(tx, bottom, tx, bottom + 4, ink)
            let label = shortTime(policies.first?.timeseries[index].end) ?? "#\(index + 1)"
            let labelWidth = Canvas.textWidth(label)
            if tx - labelWidth / 2 > lastLabelEnd + 8 {
                canvas.text(label, x: tx - labelWidth / 2, y: bottom + 8, ink)
                lastLabelEnd = tx + labelWidth / 2
            }
        }
        let axis = "window end (UTC), equal numbers of events per window"
        canvas.text(axis, x: (left + right - Canvas.textWidth(axis)) / 2, y: bottom + 20, ink)

        // Bands first (translucent), then error bars, lines and points on top.
        for (index, policy) in policies.enumerated() {
            let colour = palette[index % palette.count]
            let series = policy.timeseries.map { $0.estimate.ipsInterval(result.interval) }
            if series.count == 1 {
                canvas.fill(x: x(0) - 12, y: y(series[0].upper), width: 25, height: y(series[0].lower) - y(series[0].upper) + 1, colour, alpha: 0.15)
            }
            for k in series.indices.dropLast() {
                let x0 = x(k), x1 = x(k + 1)
                for column in x0..<x1 {
                    let t = Double(column - x0) / Double(x1 - x0)
                    let upper = series[k].upper + t * (series[k + 1].upper - series[k].upper)
                    let lower = series[k].lower + t * (series[k + 1].lower - series[k].lower)
                    canvas.fill(x: column, y: y(upper), width: 1, height: y(lower) - y(upper) + 1, colour, alpha: 0.15)
                }
            }
        }
        for (index, policy) in policies.enumerated() {
            let colour = palette[index % palette.count]
            let estimates = policy.timeseries.map(\.estimate)
            for (k, estimate) in estimates.enumerated() {
                let interval = estimate.ipsInterval(result.interval)
                let bx = x(k) + (index - policies.count / 2) * 3
                canvas.line(bx, y(interval.upper), bx, y(interval.lower), colour)
                canvas.line(bx - 3, y(interval.upper), bx + 3, y(interval.upper), colour)
                canvas.line(bx - 3, y(interval.lower), bx + 3, y(interval.lower), colour)
            }
            for k in estimates.indices.dropLast() {
                canvas.line(x(k), y(estimates[k].ips), x(k + 1), y(estimates[k + 1].ips), colour, thickness: 2)
            }
            for (k, estimate) in estimates.enumerated() {
                canvas.fill(x: x(k) - 3, y: y(estimate.ips) - 3, width: 7, height: 7, colour)
            }
        }

        // The legend: a swatch and the name of each policy (with its arguments, cut to fit).
        for (index, policy) in policies.enumerated() {
            let lx = left + (index % columns) * ((right - left) / columns)
            let ly = height - 8 - 16 * (legendRows - index / columns)
            let colour = palette[index % palette.count]
            canvas.fill(x: lx, y: ly, width: 18, height: 10, colour)
            let name = policy.arguments.isEmpty ? policy.name : "\(policy.name): \(policy.arguments)"
            let room = (right - left) / columns - 26
            canvas.text(String(name.prefix(room / BitmapFont.advance)), x: lx + 24, y: ly + 2, ink)
        }
        return canvas
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let power = pow(10, (log10(raw)).rounded(.down))
        for factor in [1.0, 2, 5, 10] where factor * power >= raw { return factor * power }
        return 10 * power
    }

    /// `value` with `decimals` digits after the point.
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        let scale = pow(10, Double(decimals))
        let scaled = Int64((abs(value) * scale).rounded())
        let sign = value < 0 && scaled != 0 ? "-" : ""
        guard decimals > 0 else { return sign + String(scaled) }
        var digits = String(scaled)
        while digits.count <= decimals { digits = "0" + digits }
        return sign + digits.dropLast(decimals) + "." + digits.suffix(decimals)
    }

    /// `2026-12-01T10:05:00.000Z` → `12-01 10:05`.
    static func shortTime(_ timestamp: String?) -> String? {
        guard let timestamp, timestamp.count >= 16 else { return nil }
        let characters = Array(timestamp)
        return String(characters[5..<10]) + " " + String(characters[11..<16])
    }
}

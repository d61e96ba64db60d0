#if canImport(Glibc)
import Glibc
#endif
@testable import VWCore

/// Random VW text for the native scorer's differential tests: namespaces seen in interactions and
/// not, integer, string and anonymous feature names, string values, extreme, tiny and denormal
/// values, empty namespaces, namespace values, labels with an initial value, tags.
enum NativeExamples {
    static let namespaces = ["a", "b", "c", "ab", "bc", "12", "A", "é"]
    static let values = [
        "", "", "", ":1", ":0", ":-1", ":0.5", ":1.5", ":-2e-3", ":1e37", ":-9.9e37", ":3e-38", ":1e-40", ":1.4e-45",
        ":7e-46", ":0.0000001", ":5.", ":.25", ":1E+2", ":123456789.123456789", ":99999999999999999999",
        ":0.1234567890123456789012345678901234567", ":-0", ":1e-39", ":2.5E-7", ":red", ":east",
    ]
    static let moderate = ["", "", ":0.3", ":2", ":-0.7", ":1.1", ":0.05", ":-3", ":0.125", ":4.75", ":1e-3", ":-0.0625"]
    static let names = ["x", "y", "z", "0", "7", "1924", "4294967295", "4294967296", "99999999999", "f_1", "é", "Zz", "-", "x1", "007"]

    /// One example line as a client could send it (the grammar then writes it in canonical form).
    static func line(_ random: inout SplitMix, manyFeatures: Bool = false) -> String {
        var text = ""
        switch random.below(6) {
        case 0: text += random.pick(["1 ", "-1 ", "0.5 ", "3 2 "])
        case 1: text += random.pick(["1 1 0.5 ", "0 1 -2 ", "1 2 1e-3 ", "-1 1 7 ", "1 1 1e37 "])
        default: break
        }
        if random.chance(30) { text += "'t\(random.below(100)) " }
        let groups = 1 + random.below(4)
        for _ in 0..<groups {
            text += "|"
            if !random.chance(20) {
                text += random.pick(namespaces)
                if random.chance(15) { text += random.pick([":2", ":0.5", ":-1", ":0", ":1e-20", ":3e30"]) }
            }
            let count = manyFeatures ? random.below(60) : random.below(6)
            for _ in 0..<count {
                text += " "
                var name = random.chance(10) ? "" : random.pick(names)
                if random.chance(5) { name += String(random.below(100_000)) }
                var value = random.chance(75) ? random.pick(moderate) : random.pick(values)
                if name.isEmpty && (value.isEmpty || value.hasPrefix(":r") || value.hasPrefix(":e")) { value = ":1.25" }
                text += name + value
            }
            text += " "
        }
        return text
    }
}

/// Runs the real vw (sandboxed, as the server does) on `lines` with `model`; its `-p` output.
func vwPredictions(model: String, extra: [String] = [], lines: [String]) throws -> String {
    let input = lines.map { $0 + "\n" }.joined()
    let run = try runSandboxed(
        [vwPath, "--quiet", "-i", model, "-t", "-d", "/dev/stdin", "-p", "/dev/stdout"] + extra, input: Array(input.utf8)
    )
    return run.output
}

/// The native scorer of a model file, built from its stored options as the server builds it.
func nativeScorer(model: String) throws -> NativeScorer {
    let options = try ModelOptions.check(header: ModelHeader.read(path: model), extra: [])
    return try NativeScorer.load(options: options, file: readAll(model))
}

/// A count from the environment (the longer documented runs), else `default`.
func environmentCount(_ name: String, default value: Int) -> Int {
    getenv(name).flatMap { Int(String(cString: $0)) } ?? value
}

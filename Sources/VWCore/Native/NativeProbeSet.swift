/// The examples a model must answer exactly as vw does before the native scorer serves it: built
/// from the model itself (every namespace of its interactions, the default namespace, the constant),
/// with integer, string and anonymous feature names, string values, extreme, tiny and denormal
/// values, namespace values, empty namespaces, initial values in labels, many features, and
/// deterministic random mixtures of all of these. The operator's warmup examples are added.
enum NativeProbeSet {
    static let values = [
        "", ":1", ":0", ":-1", ":0.5", ":-2e-3", ":1e37", ":-9.9e37", ":3e-38", ":1e-40", ":1.4e-45", ":7e-46",
        ":0.0000001", ":5.", ":.25", ":1E+2", ":123456789.123456789", ":99999999999999999999", ":-0", ":2.5E-7",
        ":0.1234567890123456789012345678901234567", ":red", ":4294967296",
    ]
    static let names = ["x", "y", "0", "7", "1924", "4294967295", "4294967296", "99999999999", "f_1", "é", "-", "007", ""]

    /// The probe examples (client text, one line each) for a model with these interactions.
    static func examples(interactions: [[UInt8]], warmup: [String], randomCount: Int = 400) -> [String] {
        var namespaces = Set<UInt8>(interactions.joined())
        namespaces.formUnion([UInt8(ascii: "a"), UInt8(ascii: "b")])
        let named = namespaces.filter { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "|") && $0 != UInt8(ascii: ":") }
            .sorted().map { String(UnicodeScalar($0)) }
        var examples = ["|", "| ", "|a", "|a |b", "1 1 0.5 |", "0 1 -2 'probe |a x", "'tag | x"]
        for name in named {
            examples.append("|\(name)")
            examples.append("|\(name) x y:2 1924 :3 f:red")
            examples.append("|\(name):2 x:0.5 7 |\(name)Z y")
            examples.append("|\(name) |\(name) x")
            for value in values {
                for feature in names where !(feature.isEmpty && (value.isEmpty || value == ":red")) {
                    examples.append("|\(name) \(feature)\(value)")
                }
            }
        }
        // Every interaction with several features in each of its namespaces, and each with the default one.
        for interaction in interactions {
            var line = ""
            for term in interaction {
                let name = term == 0x20 ? "" : String(UnicodeScalar(term))
                line += "|\(name) x:1.5 y:-0.25 3 q:red "
            }
            examples.append(line)
            examples.append("1 1 0.125 " + line + "| z:2")
        }
        examples.append("|a " + (0..<300).map { "f\($0):\($0 % 7 - 3).5" }.joined(separator: " ") + " |b " + (0..<40).map { "\($0)" }.joined(separator: " "))
        var random = SplitMix(state: 0x5EED)
        for _ in 0..<randomCount {
            var line = random.below(4) == 0 ? random.pick(["1 1 0.5 ", "-1 ", "0 1 3e-3 "]) : ""
            for _ in 0..<(1 + random.below(4)) {
                line += "|" + (random.below(5) == 0 ? "" : random.pick(named))
                if random.below(8) == 0 { line += random.pick([":2", ":0.5", ":-1", ":1e-20"]) }
                for _ in 0..<random.below(8) {
                    let feature = random.pick(names)
                    var value = random.pick(values)
                    if feature.isEmpty && (value.isEmpty || value == ":red") { value = ":1.5" }
                    line += " " + feature + value
                }
                line += " "
            }
            examples.append(line)
        }
        return warmup + examples
    }
}

extension NativeProbeSet {
    /// The probe examples of an ADF model (each one's lines joined by "\n"): with and without a
    /// `shared` line, 1 to 8 actions and 17 or more (beyond libstdc++'s insertion sort), duplicate
    /// actions that tie, every namespace of the interactions (and the default one) on either side,
    /// shared namespaces the actions have too, the single-line probes' names and values (NaN and
    /// infinite scores included), and deterministic random mixtures. The operator's warmup examples are added.
    static func adfExamples(interactions: [[UInt8]], warmup: [String], randomCount: Int = 300) -> [String] {
        var namespaces = Set<UInt8>(interactions.joined())
        namespaces.formUnion([UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "s")])
        let named = namespaces.filter { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "|") && $0 != UInt8(ascii: ":") }
            .sorted().map { String(UnicodeScalar($0)) }
        var examples = [
            "|", "shared |\n|", "shared |s x\n|a y", "shared 'probe |s x\n|a y\n|b z", "|a x\n|a x", "shared |s x\n|a y\n|a y\n|a z",
            "shared |a x\n|a x\n|b y", "| x\n| y\n| z", "shared | x\n|", "shared |s x:1e37\n|a y:1e37\n|a y:-1e37\n|b z",
        ]
        for name in named {
            examples.append("shared |\(name) x y:2\n|\(name) x\n|\(name) 1924:0.5 f:red")
            examples.append("|\(name) x:-1\n|\(name) x:1\n|\(name) x:0")
            examples.append("shared |\(name):2 x:0.5 7 |\(name)Z y\n| z\n|\(name)")
            for value in values {
                var lines = ["shared |\(name) s\(value)"]
                for feature in names where !(feature.isEmpty && (value.isEmpty || value == ":red")) {
                    lines.append("|\(name) \(feature)\(value)")
                    if lines.count == 9 { break }
                }
                examples.append(lines.joined(separator: "\n"))
            }
        }
        for interaction in interactions {
            let terms = interaction.map { $0 == UInt8(ascii: ":") ? UInt8(ascii: "a") : $0 }
            let features = terms.map { term in "|\(term == 0x20 ? "" : String(UnicodeScalar(term))) x:1.5 y:-0.25 3 q:red" }
            examples.append("shared " + features.joined(separator: " ") + "\n" + features.joined(separator: " ") + "\n| z")
            examples.append((0..<terms.count).map { features[$0] }.joined(separator: "\n"))
        }
        // More actions than libstdc++ sorts by insertion, moderate values (no NaN: the scorer would leave those to vw).
        examples.append("shared |s x\n" + (0..<20).map { "|a f\($0 % 7):\($0 % 3).5" }.joined(separator: "\n"))
        examples.append((0..<17).map { _ in "|a x" }.joined(separator: "\n"))
        var random = SplitMix(state: 0xADF)
        let moderate = ["", ":0.5", ":-2", ":0.125", ":3", ":1e-3", ":-0.75"]
        for _ in 0..<randomCount {
            var lines: [String] = []
            let many = random.below(10) == 0
            func features() -> String {
                var line = ""
                for _ in 0..<(1 + random.below(3)) {
                    let namespace = random.below(5) == 0 ? "" : random.pick(named)
                    line += "|" + namespace
                    if !namespace.isEmpty && random.below(8) == 0 { line += random.pick([":2", ":0.5", ":-1"]) }
                    for _ in 0..<random.below(6) {
                        let feature = random.pick(names)
                        var value = many ? random.pick(moderate) : random.pick(values)
                        if feature.isEmpty && (value.isEmpty || value == ":red") { value = ":1.5" }
                        line += " " + feature + value
                    }
                    line += " "
                }
                return line
            }
            if random.below(4) != 0 { lines.append("shared " + features()) }
            let actions = many ? 17 + random.below(8) : 1 + random.below(8)
            for _ in 0..<actions {
                if lines.count > 1 && random.below(6) == 0 {
                    lines.append(lines[1 + random.below(lines.count - 1)])  // never the shared line
                } else {
                    lines.append(features())
                }
            }
            examples.append(lines.joined(separator: "\n"))
        }
        return warmup + examples
    }
}

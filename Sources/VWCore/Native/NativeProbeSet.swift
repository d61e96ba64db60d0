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

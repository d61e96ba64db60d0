/// The probe set of a `vw_json` model (SPEC §11): VW JSON objects built from the model itself, each
/// form VW's JSON reader treats its own way (numbers as rapidjson reads them: integers, exponents,
/// long significands, extreme, tiny and denormal values; strings with spaces, `:`, `|`, TABs, escapes
/// and Unicode; booleans, nulls, arrays with nulls and zeros, arrays of objects, nested and empty
/// objects, `_text`, integer keys), the default namespace and every namespace of the interactions,
/// and deterministic random mixtures; for an ADF model the same inside a shared object and its
/// `_multi` actions (1 to 8, and 17 to 24), ties included.
extension NativeProbeSet {
    static let jsonNumbers = [
        "1", "0", "-1", "0.5", "-2e-3", "1e37", "-9.9e37", "3e-38", "1e-40", "1.4e-45", "7e-46", "0.0000001", "1E+2",
        "123456789.123456789", "99999999999999999999", "-0", "2.5E-7", "0.1234567890123456789012345678901234567",
        "4294967296", "-2147483649", "18446744073709551615", "9007199254740993", "1e-330", "3.4028234e38", "0.1", "-0.0",
        "1.0000000000000002", "7", "1924", "12345678901234567", "5e-324",
    ]
    static let jsonStrings = [
        "red", "", " ", "a b", "x:y", "p|q", "tab\\there", "quote\\\"d", "back\\\\slash", "é", "日本", "0", "42", "-", "  padded  ",
    ]
    static let jsonKeys = ["x", "y", "0", "7", "1924", "4294967296", "f_1", "é", "-", "007", " k", "a b", "k:v"]

    /// The probe objects (one JSON object each) for a model with these interactions.
    static func jsonExamples(interactions: [[UInt8]], adf: Bool, randomCount: Int = 300) -> [String] {
        var namespaces = Set<UInt8>(interactions.joined())
        namespaces.formUnion([UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "s")])
        let named = namespaces.filter { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "_") && $0 != UInt8(ascii: ":") }
            .sorted().map { String(UnicodeScalar($0)) }
        var bodies: [String] = ["", "\"x\":1", "\"a\":{}", "\"a\":{\"x\":1}", "\"a\":[]", "\"x\":null", "\"x\":false", "\"x\":true"]
        for key in jsonKeys {
            for number in jsonNumbers { bodies.append("\(quoted(key)):\(number)") }
            for string in jsonStrings { bodies.append("\(quoted(key)):\"\(string)\"") }
        }
        bodies.append("\"_text\":\"w1 w2:3 p|q\\tz  é 12\"")
        for name in named {
            bodies.append("\"\(name)\":{\"x\":1,\"y\":\"red\",\"z\":true,\"n\":null,\"7\":2.5}")
            bodies.append("\"\(name)\":[1,null,0,-2.5,1e-3]")
            bodies.append("\"\(name)\":[{\"x\":1},{\"y\":\"v\",\"_text\":\"a b\"}]")
            bodies.append("\"\(name)\":{\"\(name)\(name)\":{\"x\":-1},\"w\":3},\"\(name)Z\":{\"y\":0.25},\"q\":1")
            bodies.append("\"\(name)long\":{\"x\":1},\"\(name)\":{\"x\":1}")
            for number in jsonNumbers { bodies.append("\"\(name)\":{\"x\":\(number),\"y\":1}") }
        }
        // Every interaction with features in each of its namespaces, and the default one.
        for interaction in interactions {
            let terms = interaction.map { $0 == UInt8(ascii: ":") ? UInt8(ascii: "a") : $0 }
            bodies.append(terms.map { term in
                term == 0x20 ? "\"x\":1.5,\"y\":-0.25" : "\"\(String(UnicodeScalar(term)))\":{\"x\":1.5,\"y\":-0.25,\"3\":true,\"q\":\"red\"}"
            }.joined(separator: ","))
        }
        bodies.append("\"a\":{" + (0..<300).map { "\"f\($0)\":\($0 % 7 - 3).5" }.joined(separator: ",") + "}")
        var random = SplitMix(state: 0x15_0A)
        for _ in 0..<randomCount { bodies.append(randomBody(&random, named: named)) }
        guard adf else { return bodies.map { "{\($0)}" } }
        var examples: [String] = []
        for (index, body) in bodies.enumerated() {
            // The body as the shared object's and as the actions', 1 to 8 actions (ties where two are equal).
            let actions = (0..<(1 + index % 8)).map { $0 % 3 == 2 ? "{\(body)}" : "{\(bodies[(index + $0 * 7) % bodies.count])}" }
            examples.append(multi(shared: index % 4 == 0 ? "" : body, actions: actions))
        }
        for count in [17, 20, 24] {
            examples.append(multi(shared: "\"s\":{\"x\":1}", actions: (0..<count).map { "{\"a\":{\"f\($0 % 7)\":\($0 % 3).5}}" }))
        }
        for _ in 0..<randomCount {
            let actions = (0..<(random.below(10) == 0 ? 17 + random.below(8) : 1 + random.below(8))).map { _ in
                "{\(randomBody(&random, named: named, moderate: true))}"
            }
            examples.append(multi(shared: random.below(4) == 0 ? "" : randomBody(&random, named: named, moderate: true), actions: actions))
        }
        return examples
    }

    static func multi(shared: String, actions: [String]) -> String {
        "{\(shared)\(shared.isEmpty ? "" : ",")\"_multi\":[\(actions.joined(separator: ","))]}"
    }

    static func quoted(_ key: String) -> String { "\"\(key)\"" }

    /// A random object body: top-level features, nested namespaces, arrays and `_text`.
    static func randomBody(_ random: inout SplitMix, named: [String], moderate: Bool = false) -> String {
        let numbers = moderate ? ["1", "0.5", "-2", "0.125", "3", "1e-3", "-0.75", "7"] : jsonNumbers
        func member(depth: Int) -> String {
            let key = random.pick(jsonKeys)
            switch random.below(depth > 1 ? 6 : 9) {
            case 0, 1: return "\(quoted(key)):\(random.pick(numbers))"
            case 2: return "\(quoted(key)):\"\(random.pick(jsonStrings))\""
            case 3: return "\(quoted(key)):\(random.pick(["true", "false", "null"]))"
            case 4: return "\"_text\":\"\(random.pick(jsonStrings)) \(random.pick(jsonStrings))\""
            case 5: return "\(quoted(random.pick(named))):[\((0..<random.below(5)).map { _ in random.pick(numbers + ["null"]) }.joined(separator: ","))]"
            default:
                let inner = (0..<random.below(4)).map { _ in member(depth: depth + 1) }.joined(separator: ",")
                let name = random.pick(named) + (random.below(3) == 0 ? random.pick(["", "x", "2"]) : "")
                return random.below(5) == 0 ? "\(quoted(name)):[{\(inner)}]" : "\(quoted(name)):{\(inner)}"
            }
        }
        return (0..<(1 + random.below(6))).map { _ in member(depth: 1) }.joined(separator: ",")
    }
}

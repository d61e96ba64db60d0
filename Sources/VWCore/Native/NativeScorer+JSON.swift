/// VW's JSON example reader (`vw --json`: `json_parser/src/parse_example_json.cc`, `json_utils.h`) for
/// the native scorer, over the canonical lines ``VWJSONGrammar`` writes (one example a line).
///
/// What VW builds from an object, as its state machine does it:
/// * every object is a namespace: the example itself and each `_multi` action are `" "`, a member
///   `"k": {...}` is `k`: its features go to the feature group of `k`'s first byte, hashed with the
///   seed `hash(k, --hash_seed)` (the model's hasher, so `" "` hashes to the seed under `--hash strings`);
/// * `"k": number` is the feature `hash(k, ns)` with the number as a float (rapidjson's normal
///   precision, see ``rapidjsonFloat(_:)``), `"k": "v"` the feature `hash(k + v, ns)` with value 1 (` `, TAB,
///   `|` and `:` in `v` made `_`), `"k": true` the feature `hash(k, ns)`, `false` and `null` nothing;
/// * `"k": [numbers]` is namespace `k` with features `hash(k) + i`, unmasked (nulls skip no index),
///   `"k": [{...}]` reads each object's members into namespace `k`;
/// * `"_text"`: its words (split on space and TAB, `:` and `|` made `_`) hashed in the current namespace;
/// * zero-valued numbers are dropped (`namespace_builder::add_feature`);
/// * a feature group joins the example's namespace order (`ec.indices`) when a namespace of it closes
///   having added a feature (`pop_ns`): the example's own `" "` last, after its nested namespaces.
///
/// Anything else in a line (`_slots`, labels, unknown `_` keys, a number rapidjson would round
/// differently from a single IEEE operation) makes the scorer decline, and vw answers.
extension NativeScorer {
    /// What vw prints for the canonical VW JSON lines of `payload` (each ending in "\n"), or nil
    /// when a line holds something the scorer does not reproduce.
    func predictJSON(payload: [UInt8]) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(64)
        var reader = JSONExampleReader(scorer: self)
        var scratch = ADFScratch()
        var example = NativeExample()
        var start = payload.startIndex
        while start < payload.endIndex {
            guard let end = payload[start...].firstIndex(of: 0x0A) else { return nil }
            guard case .object(let members)? = try? JSONParser.parse(Array(payload[start..<end]), maxDepth: 256) else { return nil }
            start = end + 1
            guard reader.read(members, multiline: configuration.adf != nil) else { return nil }
            if let adf = configuration.adf {
                guard reader.examples.count > 1 else { return nil }
                reader.fill(&scratch.shared, from: 0)
                scratch.scores.removeAll(keepingCapacity: true)
                let wildcards = configuration.interactions.contains { $0.contains(UInt8(ascii: ":")) }
                for action in 1..<reader.examples.count {
                    reader.fill(&scratch.example, from: action)
                    scratch.scores.append(scoreAction(&scratch, wildcards: wildcards))
                }
                guard appendADFAnswer(&scratch, adf: adf, into: &output) else { return nil }
            } else {
                reader.fill(&example, from: 0)
                appendPrediction(&example, initial: 0, into: &output)
            }
            // The example's (the shared object's) `_tag`; an action's is not printed.
            if !reader.tag.isEmpty {
                output.append(0x20)
                output.append(contentsOf: reader.tag)
            }
            output.append(0x0A)
            if configuration.adf != nil { output.append(0x0A) }
        }
        return output
    }

    /// The float VW's JSON handler makes of a JSON number: rapidjson's `Reader::ParseNumber` without
    /// `kParseFullPrecisionFlag`, step for step (an integer within 64 bits goes to `Int`/`Uint`/`Int64`/`Uint64`;
    /// any other number to `Double` after `StrtodNormalPrecision`: the significand accumulated exactly up to
    /// 2^53, then in double for at most 17 digits, times or over rapidjson's `Pow10`), then `static_cast<float>`.
    /// Nil for text that is not a JSON number, or one rapidjson refuses as too big.
    static func rapidjsonFloat(_ text: String) -> Float? {
        var text = text
        return text.withUTF8 { bytes -> Float? in
            var at = 0
            // rapidjson's stream ends in NUL: a peek past the end reads 0.
            let s = { (index: Int) -> UInt8 in index < bytes.count ? bytes[index] : 0 }
            @inline(__always) func peekDigit() -> UInt8? {
                let byte = s(at)
                return byte >= 0x30 && byte <= 0x39 ? byte - 0x30 : nil
            }
            let minus = s(at) == UInt8(ascii: "-")
            if minus { at += 1 }
            var i: UInt32 = 0
            var i64: UInt64 = 0
            var use64bit = false
            var significandDigit = 0
            guard let first = peekDigit() else { return nil }
            at += 1
            i = UInt32(first)
            /// rapidjson's integer loops: digits accumulated while the value stays within `limit` (then `last`);
            /// false when the next digit would pass it (rapidjson then widens).
            func accumulate<T: FixedWidthInteger>(_ value: inout T, limit: T, last: UInt8) -> Bool {
                while let digit = peekDigit() {
                    if value >= limit && (value != limit || digit > last) { return false }
                    value = value * 10 + T(digit)
                    at += 1
                    significandDigit += 1
                }
                return true
            }
            var useDouble = false
            var d = 0.0
            if first != 0 && !accumulate(&i, limit: minus ? 214_748_364 : 429_496_729, last: minus ? 8 : 5) {
                i64 = UInt64(i)
                use64bit = true
            }
            if use64bit && !accumulate(&i64, limit: minus ? 0x0CCC_CCCC_CCCC_CCCC : 0x1999_9999_9999_9999, last: minus ? 8 : 5) {
                d = Double(i64)
                useDouble = true
            }
            if useDouble {
                while let digit = peekDigit() {
                    d = d * 10 + Double(digit)
                    at += 1
                }
            }
            var expFrac = 0
            if s(at) == UInt8(ascii: ".") {
                at += 1
                guard peekDigit() != nil else { return nil }
                if !useDouble {
                    if !use64bit { i64 = UInt64(i) }
                    while let digit = peekDigit() {
                        if i64 > 0x1F_FFFF_FFFF_FFFF { break }
                        i64 = i64 * 10 + UInt64(digit)
                        at += 1
                        expFrac -= 1
                        if i64 != 0 { significandDigit += 1 }
                    }
                    d = Double(i64)
                    useDouble = true
                }
                while let digit = peekDigit() {
                    if significandDigit < 17 {
                        d = d * 10.0 + Double(digit)
                        expFrac -= 1
                        if d > 0.0 { significandDigit += 1 }
                    }
                    at += 1
                }
            }
            var exp = 0
            if s(at) == UInt8(ascii: "e") || s(at) == UInt8(ascii: "E") {
                at += 1
                if !useDouble {
                    d = Double(use64bit ? i64 : UInt64(i))
                    useDouble = true
                }
                var expMinus = false
                if s(at) == UInt8(ascii: "+") {
                    at += 1
                } else if s(at) == UInt8(ascii: "-") {
                    expMinus = true
                    at += 1
                }
                guard let leading = peekDigit() else { return nil }
                at += 1
                exp = Int(leading)
                if expMinus {
                    let maxExp = (expFrac + 2_147_483_639) / 10
                    while let digit = peekDigit() {
                        exp = exp * 10 + Int(digit)
                        at += 1
                        if exp > maxExp {
                            while peekDigit() != nil { at += 1 }
                        }
                    }
                    exp = -exp
                } else {
                    let maxExp = 308 - expFrac
                    while let digit = peekDigit() {
                        exp = exp * 10 + Int(digit)
                        at += 1
                        if exp > maxExp { return nil }  // kParseErrorNumberTooBig
                    }
                }
            }
            guard at == bytes.count else { return nil }
            if useDouble {
                d = strtodNormalPrecision(d, exp + expFrac)
                if d > Double.greatestFiniteMagnitude { return nil }
                return Float(minus ? -d : d)
            }
            if use64bit { return minus ? Float(Int64(bitPattern: ~i64 &+ 1)) : Float(i64) }
            return minus ? Float(Int32(bitPattern: ~i &+ 1)) : Float(i)
        }
    }

    /// rapidjson's `internal::StrtodNormalPrecision` and `FastPath`.
    static func strtodNormalPrecision(_ d: Double, _ p: Int) -> Double {
        func fastPath(_ significand: Double, _ exp: Int) -> Double {
            if exp < -308 { return 0.0 }
            return exp >= 0 ? significand * powersOfTen[exp] : significand / powersOfTen[-exp]
        }
        return p < -308 ? fastPath(fastPath(d, -308), p + 308) : fastPath(d, p)
    }

    /// rapidjson's `internal::Pow10` table: the doubles nearest 1e0 ... 1e308 (as its literals are read).
    static let powersOfTen: [Double] = (0...308).map { Double("1e\($0)") ?? .infinity }
}

/// The features of one VW JSON example and its actions, in VW's order, from the parsed canonical object.
struct JSONExampleReader {
    /// One example's features in the order parsed, and its feature groups in `ec.indices` order.
    struct Built {
        var features: [NativeExample.Feature] = []
        var order: [UInt8] = []
    }

    /// A namespace being read (`namespace_builder`): its group, its hash, how many features it added.
    struct Namespace {
        var group: UInt8
        var hash: UInt32
        var count: Int
    }

    let hashesAll: Bool
    let hashSeed: UInt32
    let mask: UInt64
    let multiplier: UInt64
    let ignored: [Bool]
    /// The example (0) and its actions (1...), of the line read last.
    var examples: [Built] = []
    /// The example's `_tag` (the top-level object's).
    var tag: [UInt8] = []
    private var stack: [Namespace] = []
    private var current = 0
    private var used = 0
    private var bytes: [UInt8] = []

    init(scorer: NativeScorer) {
        hashesAll = scorer.configuration.hashesAll
        hashSeed = scorer.configuration.hashSeed
        mask = (UInt64(1) << UInt64(scorer.bits)) - 1
        multiplier = scorer.multiplier
        ignored = scorer.configuration.ignored
    }

    /// Reads one example object; false when it holds something the scorer does not reproduce.
    mutating func read(_ members: [(key: String, value: JSONValue)], multiline: Bool) -> Bool {
        for index in examples.indices {
            examples[index].features.removeAll(keepingCapacity: true)
            examples[index].order.removeAll(keepingCapacity: true)
        }
        used = 1
        if examples.isEmpty { examples.append(Built()) }
        current = 0
        tag.removeAll(keepingCapacity: true)
        stack.removeAll(keepingCapacity: true)
        push(" ")
        guard readMembers(members, top: true, multiline: multiline) else { return false }
        pop()
        examples.removeLast(examples.count - used)
        return true
    }

    /// Appends example `index`'s features to `example` (reset first), grouped as VW orders them.
    func fill(_ example: inout NativeExample, from index: Int) {
        example.reset()
        let built = examples[index]
        for group in built.order {
            for feature in built.features where feature.namespace == group {
                example.add(namespace: feature.namespace, index: feature.index, value: feature.value)
            }
        }
    }

    private mutating func readMembers(_ members: [(key: String, value: JSONValue)], top: Bool, multiline: Bool) -> Bool {
        for (key, value) in members {
            let keyBytes = Array(key.utf8)
            if keyBytes.first == UInt8(ascii: "_") {
                switch key {
                case "_tag":
                    // The example's tag is printed; an action's (Personalizer's action id) is not a feature.
                    // In a namespace object VW would add it to the example's tag (the grammar refuses it there).
                    guard top, case .string(let text) = value else { return false }
                    if current == 0 { tag = Array(text.utf8) }
                case "_text":
                    guard case .string(let text) = value else { return false }
                    var word: [UInt8] = []
                    for byte in text.utf8 {
                        if byte == 0x20 || byte == 0x09 {
                            if !word.isEmpty { addHashed(word, value: 1) }
                            word.removeAll(keepingCapacity: true)
                        } else {
                            word.append(byte == UInt8(ascii: ":") || byte == UInt8(ascii: "|") ? UInt8(ascii: "_") : byte)
                        }
                    }
                    if !word.isEmpty { addHashed(word, value: 1) }
                case "_multi":
                    guard top, current == 0, multiline, case .array(let actions) = value else { return false }
                    for action in actions {
                        guard case .object(let actionMembers) = action else { return false }
                        if used == examples.count { examples.append(Built()) }
                        current = used
                        used += 1
                        push(" ")
                        guard readMembers(actionMembers, top: true, multiline: false) else { return false }
                        pop()
                    }
                    current = 0
                default:
                    return false
                }
                continue
            }
            switch value {
            case .null:
                continue
            case .bool(let flag):
                if flag { addHashed(keyBytes, value: 1) }
            case .number(let text):
                guard let number = NativeScorer.rapidjsonFloat(text) else { return false }
                if number != 0 { addHashed(keyBytes, value: number) }
            case .string(let text):
                bytes.removeAll(keepingCapacity: true)
                bytes.append(contentsOf: keyBytes)
                for byte in text.utf8 {
                    switch byte {
                    case 0x20, 0x09, UInt8(ascii: "|"), UInt8(ascii: ":"): bytes.append(UInt8(ascii: "_"))
                    default: bytes.append(byte)
                    }
                }
                addHashed(bytes, value: 1)
            case .object(let inner):
                push(keyBytes)
                guard readMembers(inner, top: false, multiline: false) else { return false }
                pop()
            case .array(let elements):
                push(keyBytes)
                var offset: UInt64 = 0
                for element in elements {
                    switch element {
                    case .null:
                        continue
                    case .number(let text):
                        guard let number = NativeScorer.rapidjsonFloat(text) else { return false }
                        if number != 0 { add(index: UInt64(stack[stack.count - 1].hash) &+ offset, value: number) }
                        offset += 1
                    case .object(let inner):
                        // Each object reads its members into the array's namespace (a builder of its own).
                        push(keyBytes)
                        guard readMembers(inner, top: false, multiline: false) else { return false }
                        pop()
                    default:
                        return false
                    }
                }
                pop()
            }
        }
        return true
    }

    private mutating func push(_ name: String) { push(Array(name.utf8)) }

    /// `push_ns`: a namespace named `name`, hashed with the model's hasher and `--hash_seed`.
    private mutating func push(_ name: [UInt8]) {
        let hash = name.withUnsafeBufferPointer { VWHash.hash($0, seed: hashSeed, all: hashesAll) }
        stack.append(Namespace(group: name.first ?? 0x20, hash: hash, count: 0))
    }

    /// `pop_ns`: a namespace that added features puts its group in the example's order, once.
    private mutating func pop() {
        guard let closed = stack.popLast() else { return }
        if closed.count > 0 && !examples[current].order.contains(closed.group) { examples[current].order.append(closed.group) }
    }

    /// A feature named `name` in the current namespace (`hash(name, namespace hash) & parse_mask`).
    private mutating func addHashed(_ name: [UInt8], value: Float) {
        let seed = stack[stack.count - 1].hash
        let hash = name.withUnsafeBufferPointer { VWHash.hash($0, seed: seed, all: hashesAll) }
        add(index: UInt64(hash) & mask, value: value)
    }

    private mutating func add(index: UInt64, value: Float) {
        let top = stack.count - 1
        let group = stack[top].group
        stack[top].count += 1
        // VW drops an ignored namespace's features after parsing (`--ignore`, `--keep`).
        guard !ignored[Int(group)] else { return }
        examples[current].features.append(NativeExample.Feature(namespace: group, index: index &* multiplier, value: value))
    }
}

// Over 400 lines on purpose: one computation that must equal VW bit for bit; its steps follow VW's source files in
// order and are checked together.
import Glibc

/// An in-process scorer for linear VW models, computing exactly what `vw -t -p` prints.
///
/// Every step is VW 9's own, in VW's order (see the files named): the text parser
/// (`parse_example_text.cc`), feature hashing (`hashstring.h`), the constant feature
/// (`add_constant_feature`), the linear terms then the interactions (`gd_predict.h`,
/// `interactions_predict.h`), each term added as `p += w * x` in float, the clipping to the
/// model's label range (`finalize_prediction`), the link (`scorer.cc`) and the `-p` format. A
/// model is only served by it after it has matched a real vw byte for byte (`NativeSlot.verify`).
public struct NativeScorer: Sendable {
    /// The feature table's bits and weight 0 of each slot.
    let bits: Int
    let weights: WeightTable
    let minLabel: Float
    let maxLabel: Float
    /// What the options say: interactions (in VW's order), constant, hashing, link, classes, ignored namespaces.
    let configuration: NativeConfiguration
    /// `setup_example` multiplies every feature index by the feature width, a power of two (`--oaa K`:
    /// the smallest ≥ K, found in vw's model files; `--cb_type dr`: 2), so that class c's weight of a
    /// feature sits c slots after it.
    let multiplier: UInt64
    /// Whether the payload is VW JSON (`vw --json`, canonical lines from ``VWJSONGrammar``) rather than VW text.
    var readsJSON = false

    /// `VW::details::CONSTANT`, the constant feature's index, and its namespace.
    static let constantIndex: UInt64 = 11_650_396
    static let constantNamespace: UInt8 = 128
    static let fnvPrime: UInt64 = 16_777_619

    init(file: NativeModelFile, configuration: NativeConfiguration) {
        bits = file.bits
        weights = WeightTable(file.weights)
        minLabel = file.minLabel
        maxLabel = file.maxLabel
        self.configuration = configuration
        if configuration.classes > 1 {
            multiplier = UInt64(1) << UInt64(64 - UInt64(configuration.classes - 1).leadingZeroBitCount)
        } else {
            multiplier = configuration.adf?.doublyRobust == true ? 2 : 1
        }
    }

    /// What vw prints for `payload` (VW text lines, each ending in "\n"), or nil when a line holds
    /// something the scorer does not reproduce (then vw must answer).
    public func predict(payload: [UInt8]) -> [UInt8]? {
        if readsJSON { return predictJSON(payload: payload) }
        if configuration.adf != nil { return predictADF(payload: payload) }
        var output: [UInt8] = []
        output.reserveCapacity(payload.count / 4 + 16)
        var example = NativeExample()
        return predictLines(payload: payload, example: &example, into: &output) ? output : nil
    }

    /// Appends what vw prints for `payload`'s lines (a linear model's) to `output`, `example` the
    /// working memory; false when a line holds something the scorer does not reproduce.
    func predictLines(payload: [UInt8], example: inout NativeExample, into output: inout [UInt8]) -> Bool {
        payload.withUnsafeBufferPointer { bytes -> Bool in
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != 0x0A { end += 1 }
                guard predict(line: bytes, start, end, example: &example, into: &output) else { return false }
                start = end + 1
            }
            return true
        }
    }

    /// Scores one line (`bytes[start..<end]`, no newline) and appends VW's answer line.
    func predict(
        line bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, example: inout NativeExample, into output: inout [UInt8]
    ) -> Bool {
        guard let bar = (start..<end).first(where: { bytes[$0] == UInt8(ascii: "|") }) else { return false }
        var initial: Float = 0
        var tag = start..<start
        guard readLabel(bytes, start, bar, initial: &initial, tag: &tag) else { return false }
        example.reset()
        guard parseFeatures(bytes, bar, end, into: &example) else { return false }
        appendPrediction(&example, initial: initial, into: &output)
        if !tag.isEmpty {
            output.append(0x20)
            output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[tag]))
        }
        output.append(0x0A)
        return true
    }

    /// Adds the constant to an example's parsed features, groups them and appends what `-p` prints
    /// for it (the class, or the finalized and linked score), without tag or newline.
    func appendPrediction(_ example: inout NativeExample, initial: Float, into output: inout [UInt8]) {
        if configuration.addsConstant { example.add(namespace: Self.constantNamespace, index: Self.constantIndex &* multiplier, value: 1) }
        example.group()
        if configuration.classes > 0 {
            VWFloatText.appendPrediction(Float(predictClass(example)), to: &output)
        } else {
            VWFloatText.appendPrediction(link(finalize(score(example, initial: initial))), to: &output)
        }
    }

    // MARK: - Label and tag

    /// Reads the label section (`substring_to_example`): words split on spaces after any TAB; the
    /// last word is the tag when it touches the `|` or starts with `'`; a simple label's third
    /// word is the initial value the prediction starts from.
    private func readLabel(
        _ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ bar: Int, initial: inout Float, tag: inout Range<Int>
    ) -> Bool {
        guard bar > start else { return true }
        var from = start
        if let tab = (start..<bar).first(where: { bytes[$0] == 0x09 }) { from = tab + 1 }
        // Only three things matter: how many words, the third, and the last (the tag candidate).
        var count = 0
        var third = from..<from
        var last = from..<from
        var index = from
        while index < bar {
            while index < bar && bytes[index] == 0x20 { index += 1 }
            let wordStart = index
            while index < bar && bytes[index] != 0x20 { index += 1 }
            if index > wordStart {
                count += 1
                if count == 3 { third = wordStart..<index }
                last = wordStart..<index
            }
        }
        if count > 0, last.upperBound == bar || bytes[last.lowerBound] == UInt8(ascii: "'") {
            count -= 1
            tag = (bytes[last.lowerBound] == UInt8(ascii: "'") ? last.lowerBound + 1 : last.lowerBound)..<last.upperBound
        }
        if count == 3 {
            // `float_of_string`: VW's parse_float, else strtof; nothing read or NaN gives 0.
            let word = third
            if let parsed = VWFloatText.parse(bytes, from: word.lowerBound, to: word.upperBound) {
                initial = parsed.value
            } else {
                let read = VWFloatText.strtof(bytes, from: word.lowerBound, to: word.upperBound)
                initial = read.count == 0 ? 0 : read.value
            }
            if initial.isNaN { initial = 0 }
        }
        return true
    }

    // MARK: - Features

    @inline(__always) private static func endsName(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == UInt8(ascii: "|") || byte == 0x0D || byte == UInt8(ascii: ":")
    }

    @inline(__always) private static func endsToken(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == UInt8(ascii: "|") || byte == 0x0D
    }

    /// `tc_parser::list_name_space` over `bytes[bar..<end]`; false where VW would warn of a
    /// malformed example (the grammar refuses those before they reach a scorer).
    func parseFeatures(_ bytes: UnsafeBufferPointer<UInt8>, _ bar: Int, _ end: Int, into example: inout NativeExample) -> Bool {
        let mask: UInt64 = (1 << UInt64(bits)) - 1
        var index = bar
        while index < end && bytes[index] == UInt8(ascii: "|") {
            index += 1
            var namespaceValue: Float = 1
            var namespace: UInt8 = 0x20
            // The default namespace's hash: 0, or with `--hash_seed` MurmurHash3 of "" (whatever `--hash` says).
            var channel: UInt64 = configuration.hashSeed == 0 ? 0 : UInt64(VWHash.murmur(UnsafeBufferPointer(start: nil, count: 0), seed: configuration.hashSeed))
            var anonymous: UInt64 = 0
            if index < end && !Self.endsToken(bytes[index]) {
                guard bytes[index] != UInt8(ascii: ":") else { return false }
                namespace = bytes[index]
                let nameStart = index
                while index < end && !Self.endsName(bytes[index]) { index += 1 }
                channel = UInt64(hash(bytes, nameStart, index, seed: configuration.hashSeed))
                if index < end && bytes[index] == UInt8(ascii: ":") {
                    index += 1
                    guard let parsed = VWFloatText.parse(bytes, from: index, to: end) else { return false }
                    namespaceValue = parsed.value.isNaN ? 1 : parsed.value
                    index = parsed.end
                }
            }
            guard namespace != Self.constantNamespace || !configuration.addsConstant else { return false }
            while index < end && (bytes[index] == 0x20 || bytes[index] == 0x09) {
                index += 1
                guard index < end, !Self.endsToken(bytes[index]) else { continue }
                let nameStart = index
                while index < end && !Self.endsName(bytes[index]) { index += 1 }
                let nameEnd = index
                var value: Float = 1
                var stringValue: Range<Int>? = nil
                if index < end && bytes[index] == UInt8(ascii: ":") {
                    index += 1
                    if let parsed = VWFloatText.parse(bytes, from: index, to: end) {
                        value = parsed.value
                        index = parsed.end
                    } else {
                        var tokenEnd = index
                        while tokenEnd < end && !Self.endsToken(bytes[tokenEnd]) { tokenEnd += 1 }
                        let read = VWFloatText.strtof(bytes, from: index, to: tokenEnd)
                        if read.count == 0 {
                            // A string value: up to the next space, TAB, CR or LF (a '|' does not end it).
                            var valueEnd = index
                            while valueEnd < end && bytes[valueEnd] != 0x20 && bytes[valueEnd] != 0x09 && bytes[valueEnd] != 0x0D {
                                valueEnd += 1
                            }
                            guard valueEnd > index else { return false }
                            stringValue = index..<valueEnd
                            index = valueEnd
                        } else {
                            guard read.count == tokenEnd - index else { return false }
                            value = read.value
                            index = tokenEnd
                        }
                    }
                    if value.isNaN { value = 0 }
                }
                let featureValue: Float = stringValue == nil ? namespaceValue * value : 1
                let featureIndex: UInt64
                if let stringValue {
                    let nameHash = hash(bytes, nameStart, nameEnd, seed: UInt32(truncatingIfNeeded: channel))
                    featureIndex = UInt64(hash(bytes, stringValue.lowerBound, stringValue.upperBound, seed: nameHash)) & mask
                } else if nameEnd > nameStart {
                    featureIndex = UInt64(hash(bytes, nameStart, nameEnd, seed: UInt32(truncatingIfNeeded: channel))) & mask
                } else {
                    featureIndex = channel &+ anonymous
                    anonymous += 1
                }
                // `setup_example` drops ignored namespaces after parsing; nothing else depends on their features.
                if featureValue != 0 && !configuration.ignored[Int(namespace)] {
                    example.add(namespace: namespace, index: featureIndex &* multiplier, value: featureValue)
                }
            }
            guard index >= end || bytes[index] == UInt8(ascii: "|") || bytes[index] == 0x0D else { return false }
        }
        return index >= end
    }

    @inline(__always) private func hash(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, seed: UInt32) -> UInt32 {
        VWHash.hash(UnsafeBufferPointer(rebasing: bytes[start..<end]), seed: seed, all: configuration.hashesAll)
    }

    // MARK: - Sum

    /// `finalize_prediction`: NaN becomes 0, then the model's label range clips.
    @inline(__always) func finalize(_ value: Float) -> Float {
        if value.isNaN { return 0 }
        if value > maxLabel { return maxLabel }
        if value < minLabel { return minLabel }
        return value
    }

    /// The scorer reduction's link (`scorer.cc`).
    @inline(__always) func link(_ value: Float) -> Float {
        configuration.logisticLink ? 1 / (1 + expf(-value)) : value
    }

    /// `inline_predict`: the initial value, then `p += w * x` for every feature and interaction.
    private func score(_ example: NativeExample, initial: Float) -> Float {
        weights.withUnsafeBufferPointer { w in
            var sum = ScalarSum(weights: w, mask: UInt64(w.count - 1), p: initial)
            accumulate(example, interactions: configuration.interactions, into: &sum)
            return sum.p
        }
    }

    /// `oaa`'s predict: gd's `multipredict` over the K classes (features with |x| < 1e-10 skipped),
    /// each class finalized and linked, then the first class with the largest score.
    private func predictClass(_ example: NativeExample) -> Int {
        weights.withUnsafeBufferPointer { w in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: configuration.classes) { scores in
                scores.initialize(repeating: 0)
                var sum = ClassSums(weights: w, mask: UInt64(w.count - 1), scores: scores)
                accumulate(example, interactions: configuration.interactions, into: &sum)
                var best = 0
                for c in 0..<configuration.classes {
                    scores[c] = link(finalize(scores[c]))
                    if scores[c] > scores[best] { best = c }
                }
                // `--indexing 0` prints the slot itself (so class 0, trained in the last slot, prints as K-1).
                return configuration.zeroBasedClasses ? best : best + 1
            }
        }
    }

    /// `foreach_feature`: the linear terms namespace by namespace, then each interaction.
    @inline(__always)
    func accumulate<Sum: NativeSum>(_ example: NativeExample, interactions: [[UInt8]], into sum: inout Sum) {
        let features = example.sorted
        for namespace in example.order where !configuration.ignoredLinear[Int(namespace)] {
            for slot in example.ranges[Int(namespace)] { sum.add(features[slot].value, features[slot].index) }
        }
        for terms in interactions {
            var empty = false
            for term in terms where example.ranges[Int(term)].isEmpty { empty = true }
            if empty { continue }
            switch terms.count {
            case 2: quadratic(terms, example, &sum)
            case 3: cubic(terms, example, &sum)
            default: generic(terms, example, &sum)
            }
        }
    }

    /// `process_quadratic_interaction` (combinations: a namespace with itself starts at the same feature).
    @inline(__always)
    private func quadratic<Sum: NativeSum>(_ terms: [UInt8], _ example: NativeExample, _ sum: inout Sum) {
        let f = example.sorted
        let first = example.ranges[Int(terms[0])]
        let second = example.ranges[Int(terms[1])]
        let same = terms[0] == terms[1]
        for (i, a) in first.enumerated() {
            let halfhash = Self.fnvPrime &* f[a].index
            let value = f[a].value
            for b in (same ? second.lowerBound + i : second.lowerBound)..<second.upperBound {
                sum.add(value * f[b].value, f[b].index ^ halfhash)
            }
        }
    }

    /// `process_cubic_interaction`.
    @inline(__always)
    private func cubic<Sum: NativeSum>(_ terms: [UInt8], _ example: NativeExample, _ sum: inout Sum) {
        let f = example.sorted
        let first = example.ranges[Int(terms[0])]
        let second = example.ranges[Int(terms[1])]
        let third = example.ranges[Int(terms[2])]
        let same1 = terms[0] == terms[1]
        let same2 = terms[1] == terms[2]
        for (i, a) in first.enumerated() {
            let halfhash1 = Self.fnvPrime &* f[a].index
            var j = same1 ? i : 0
            while second.lowerBound + j < second.upperBound {
                let b = second.lowerBound + j
                let halfhash = Self.fnvPrime &* (halfhash1 ^ f[b].index)
                let value = f[a].value * f[b].value
                for c in (same2 ? third.lowerBound + j : third.lowerBound)..<third.upperBound {
                    sum.add(value * f[c].value, f[c].index ^ halfhash)
                }
                j += 1
            }
        }
    }

    /// `process_generic_interaction` (4 namespaces or more), as a recursion over the terms.
    private func generic<Sum: NativeSum>(_ terms: [UInt8], _ example: NativeExample, _ sum: inout Sum) {
        let f = example.sorted
        let ranges = terms.map { example.ranges[Int($0)] }
        func level(_ k: Int, from offset: Int, hash: UInt64, x: Float) {
            let range = ranges[k]
            let start = k > 0 && terms[k] == terms[k - 1] ? offset : 0
            if k == terms.count - 1 {
                for c in (range.lowerBound + start)..<range.upperBound { sum.add(x * f[c].value, f[c].index ^ hash) }
                return
            }
            var position = start
            while range.lowerBound + position < range.upperBound {
                let slot = range.lowerBound + position
                if k == 0 {
                    level(1, from: position, hash: Self.fnvPrime &* f[slot].index, x: f[slot].value)
                } else {
                    level(k + 1, from: position, hash: Self.fnvPrime &* (hash ^ f[slot].index), x: f[slot].value * x)
                }
                position += 1
            }
        }
        level(0, from: 0, hash: 0, x: 1)
    }
}

/// Where a feature term `x` with weight index `index` goes.
protocol NativeSum {
    mutating func add(_ x: Float, _ index: UInt64)
}

/// gd's `vec_add`: one prediction, `p += w * x`.
struct ScalarSum: NativeSum {
    let weights: UnsafeBufferPointer<Float>
    let mask: UInt64
    var p: Float

    @inline(__always) mutating func add(_ x: Float, _ index: UInt64) {
        p += weights[Int(index & mask)] * x
    }
}

/// gd's `vec_add_multipredict`: K predictions, class c's weight c slots after the feature's (wrapping
/// at the table's end); terms with |x| < 1e-10 are skipped.
struct ClassSums: NativeSum {
    let weights: UnsafeBufferPointer<Float>
    let mask: UInt64
    let scores: UnsafeMutableBufferPointer<Float>

    @inline(__always) mutating func add(_ x: Float, _ index: UInt64) {
        if -1e-10 < x && x < 1e-10 { return }
        var slot = index & mask
        for c in 0..<scores.count {
            scores[c] += x * weights[Int(slot)]
            slot = (slot + 1) & mask
        }
    }
}

/// One example's features as VW holds them: per namespace index, in the order VW parsed them,
/// and the namespace order of `ec.indices` (first namespace to get a feature first).
struct NativeExample {
    struct Feature {
        var namespace: UInt8
        var index: UInt64
        var value: Float
    }

    var parsed: [Feature] = []
    var sorted: [Feature] = []
    var order: [UInt8] = []
    /// Each namespace's features in `sorted`. An array, not an `InlineArray`: the example is read
    /// through `let`s and closures on the hot path, where a 4 KB inline table was copied each time.
    var ranges = [Range<Int>](repeating: 0..<0, count: 256)

    init() {
        parsed.reserveCapacity(64)
        sorted.reserveCapacity(64)
        order.reserveCapacity(8)
    }

    mutating func reset() {
        for namespace in order { ranges[Int(namespace)] = 0..<0 }
        parsed.removeAll(keepingCapacity: true)
        sorted.removeAll(keepingCapacity: true)
        order.removeAll(keepingCapacity: true)
    }

    @inline(__always) mutating func add(namespace: UInt8, index: UInt64, value: Float) {
        parsed.append(Feature(namespace: namespace, index: index, value: value))
    }

    /// Groups the parsed features by namespace (stable), namespaces in order of their first feature.
    mutating func group() {
        if groupRuns() { return }
        groupScattered()
    }

    /// When each namespace's features are one run in `parsed` (a namespace written once per line, the usual case),
    /// they are grouped already: records the runs and takes `parsed` as `sorted` without copying. False, with
    /// nothing changed, when a namespace comes back after another.
    private mutating func groupRuns() -> Bool {
        let count = parsed.count
        var start = 0
        while start < count {
            let namespace = parsed[start].namespace
            guard ranges[Int(namespace)].isEmpty else {
                for seen in order { ranges[Int(seen)] = 0..<0 }
                order.removeAll(keepingCapacity: true)
                return false
            }
            var end = start + 1
            while end < count && parsed[end].namespace == namespace { end += 1 }
            ranges[Int(namespace)] = start..<end
            order.append(namespace)
            start = end
        }
        // `sorted` is empty (`reset`); the two buffers trade places, each keeping its capacity.
        swap(&parsed, &sorted)
        return true
    }

    /// The general case: a counting sort of `parsed` into `sorted`.
    private mutating func groupScattered() {
        // Per namespace: its feature count, then where its next feature goes in `sorted`.
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 256) { slots in
            slots.initialize(repeating: 0)
            for feature in parsed {
                let namespace = Int(feature.namespace)
                if slots[namespace] == 0 { order.append(feature.namespace) }
                slots[namespace] += 1
            }
            var offset = 0
            for namespace in order {
                let count = slots[Int(namespace)]
                slots[Int(namespace)] = offset
                ranges[Int(namespace)] = offset..<(offset + count)
                offset += count
            }
            // Copied into `sorted`'s own storage (an assignment would share `parsed`'s, then copy it on the first write).
            sorted.removeAll(keepingCapacity: true)
            sorted.append(contentsOf: parsed)
            for feature in parsed {
                let namespace = Int(feature.namespace)
                sorted[slots[namespace]] = feature
                slots[namespace] += 1
            }
        }
    }
}

/// The weights, in memory of their own for the scorer's life: a table of 2 MiB or more sits in transparent huge
/// pages. A sum reads weights all over the table; with 4 KiB pages nearly every interaction term's load also missed
/// the TLB (a `-b 20` table is 1,024 such pages, 2 huge ones): +13% on 100-example batches of such a model.
///
/// Unchecked Sendable: the memory is written once, in `init`, and only read afterwards.
final class WeightTable: @unchecked Sendable {
    private let storage: UnsafeMutableBufferPointer<Float>

    /// Tables from this size on are placed in 2 MiB pages (transparent huge pages, asked with `madvise`).
    static let hugePage = 2 << 20

    init(_ weights: [Float]) {
        let count = max(1, weights.count)
        let bytes = count * MemoryLayout<Float>.stride
        var memory: UnsafeMutableRawPointer? = nil
        if bytes >= Self.hugePage {
            let size = (bytes + Self.hugePage - 1) / Self.hugePage * Self.hugePage
            if posix_memalign(&memory, Self.hugePage, size) == 0, let memory {
                _ = madvise(memory, size, MADV_HUGEPAGE)
            }
        }
        if memory == nil { memory = malloc(bytes) }
        // Out of memory, as an array of the same size would be.
        guard let memory else { fatalError("cannot allocate \(bytes) bytes of weights") }
        storage = UnsafeMutableBufferPointer(start: memory.bindMemory(to: Float.self, capacity: count), count: count)
        _ = storage.initialize(from: weights)
        if weights.isEmpty { storage[0] = 0 }
    }

    deinit { free(storage.baseAddress) }

    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(storage))
    }
}

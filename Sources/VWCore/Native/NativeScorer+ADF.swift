/// The `--cb_adf` / `--cb_explore_adf` (epsilon-greedy) prediction, in VW 9's order: the shared
/// example's features appended to each action's after its constant (`shared_feature_merger.cc`,
/// `append_example_namespaces_from_example`), `:` wildcards expanded over the namespaces present
/// (`generate_interactions.cc`, `interactions.h`), each action's raw score `Σ w·x` (`csoaa_ldf.cc`'s
/// `make_single_prediction`: no clipping, no link), the actions sorted by score then index,
/// epsilon-greedy's PMF over the first (tied) actions (`cb_explore_adf_greedy.cc`, `fill_tied`), and
/// `print_action_score`'s `action:value` list (`fmt_float(value, 6)`), then a blank line.
extension NativeScorer {
    /// Reused buffers of one `predictADF` call.
    struct ADFScratch {
        var example = NativeExample()
        var shared = NativeExample()
        var scores: [Float] = []
        var order: [Int] = []
        var lines: [Range<Int>] = []
        /// The last wildcard expansion and the interaction namespaces it was made for.
        var expandedFor: (UInt64, UInt64)? = nil
        var expanded: [[UInt8]] = []
    }

    /// What vw prints for ADF examples (each one's lines, then a blank line), or nil when an example
    /// holds something the scorer does not reproduce (then vw must answer).
    func predictADF(payload: [UInt8]) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(64)
        var scratch = ADFScratch()
        let ok = payload.withUnsafeBufferPointer { bytes -> Bool in
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != 0x0A { end += 1 }
                guard end < bytes.count else { return false }
                if end == start {
                    // A blank line ends the example; one without lines is not ours to answer.
                    guard !scratch.lines.isEmpty, predictADFExample(bytes, &scratch, into: &output) else { return false }
                    scratch.lines.removeAll(keepingCapacity: true)
                } else {
                    scratch.lines.append(start..<end)
                }
                start = end + 1
            }
            return scratch.lines.isEmpty
        }
        return ok ? output : nil
    }

    /// One ADF example (`scratch.lines`, no blank line): appends its answer and the blank line.
    private func predictADFExample(_ bytes: UnsafeBufferPointer<UInt8>, _ s: inout ADFScratch, into output: inout [UInt8]) -> Bool {
        guard let adf = configuration.adf else { return false }
        guard let first = Self.readADFLabel(bytes, s.lines[0]) else { return false }
        s.shared.reset()
        var firstAction = 0
        if first.shared {
            guard parseFeatures(bytes, first.bar, s.lines[0].upperBound, into: &s.shared) else { return false }
            // The merge skips the constant's namespace (128); a shared namespace of that byte is not reproduced.
            for feature in s.shared.parsed where feature.namespace == Self.constantNamespace { return false }
            firstAction = 1
        }
        let count = s.lines.count - firstAction
        guard count > 0 else { return false }
        s.scores.removeAll(keepingCapacity: true)
        let wildcards = configuration.interactions.contains { $0.contains(UInt8(ascii: ":")) }
        for index in firstAction..<s.lines.count {
            let line = s.lines[index]
            guard let label = index == 0 ? first : Self.readADFLabel(bytes, line), !label.shared, !label.labelled else { return false }
            s.example.reset()
            guard parseFeatures(bytes, label.bar, line.upperBound, into: &s.example) else { return false }
            s.scores.append(scoreAction(&s, wildcards: wildcards))
        }
        guard appendADFAnswer(&s, adf: adf, into: &output) else { return false }
        // The tag printed is the first line's (`shared_feature_merger` swaps the shared example's tag in).
        if !first.tag.isEmpty {
            output.append(0x20)
            output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[first.tag]))
        }
        output.append(0x0A)
        output.append(0x0A)
        return true
    }

    /// One action's raw score: its own parsed features (in `s.example`), then the constant and the
    /// shared example's features, grouped, the interactions (wildcards expanded for the namespaces present) summed.
    func scoreAction(_ s: inout ADFScratch, wildcards: Bool) -> Float {
        if configuration.addsConstant {
            s.example.add(namespace: Self.constantNamespace, index: Self.constantIndex &* multiplier, value: 1)
        }
        for feature in s.shared.parsed { s.example.add(namespace: feature.namespace, index: feature.index, value: feature.value) }
        s.example.group()
        let interactions: [[UInt8]]
        if wildcards {
            let present = Self.interactionNamespaces(s.example.order)
            if s.expandedFor == nil || s.expandedFor! != present {
                s.expanded = Self.expandWildcards(configuration.interactions, present: present)
                s.expandedFor = present
            }
            interactions = s.expanded
        } else {
            interactions = configuration.interactions
        }
        return weights.withUnsafeBufferPointer { w in
            var sum = ScalarSum(weights: w, mask: UInt64(w.count - 1), p: 0)
            accumulate(s.example, interactions: interactions, into: &sum)
            return sum.p
        }
    }

    /// Appends the answer for the actions scored in `s.scores` (the PMF, the scores or the chosen
    /// action), without tag or newline; false when the order would depend on libstdc++'s sort of NaNs.
    func appendADFAnswer(_ s: inout ADFScratch, adf: NativeADF, into output: inout [UInt8]) -> Bool {
        let count = s.scores.count
        guard count > 0 else { return false }
        // `std::sort` with `action_score`'s `operator<`: by score, equal scores by action index. A NaN
        // score (inf times a zero weight) makes that order partial: where the result then depends on
        // libstdc++'s algorithm, it is reproduced for at most 16 actions (its insertion sort) only.
        s.order.removeAll(keepingCapacity: true)
        s.order.append(contentsOf: 0..<count)
        let scores = s.scores
        let less = { (a: Int, b: Int) -> Bool in scores[a] == scores[b] ? a < b : scores[a] < scores[b] }
        if count <= 16 {
            Self.insertionSort(&s.order, by: less)
        } else {
            guard !scores.contains(where: \.isNaN) else { return false }
            s.order.sort(by: less)
        }
        if adf.explores {
            // `generate_epsilon_greedy` as cb_explore_adf_greedy does it: epsilon spread over all
            // actions, the rest shared by the actions tied with the best (`fill_tied`, `are_same_rel`).
            let best = scores[s.order[0]]
            var tied = 1
            while tied < count && Self.areSameRelative(scores[s.order[tied]], best) { tied += 1 }
            let spread = adf.epsilon / Float(count)
            let greedy = spread + (1 - adf.epsilon) / Float(tied)
            for (position, action) in s.order.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                VWFloatText.appendDecimal(UInt64(action), to: &output)
                output.append(UInt8(ascii: ":"))
                VWFloatText.appendShortFixed(position < tied ? greedy : spread, to: &output)
            }
        } else if adf.rankAll {
            for (position, action) in s.order.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                VWFloatText.appendDecimal(UInt64(action), to: &output)
                output.append(UInt8(ascii: ":"))
                VWFloatText.appendShortFixed(scores[action], to: &output)
            }
        } else {
            VWFloatText.appendPrediction(Float(s.order[0]), to: &output)
        }
        return true
    }

    /// libstdc++'s `std::sort` of at most 16 elements (`__insertion_sort` with `__unguarded_linear_insert`),
    /// step for step, so that a partial order (NaN) gives vw's result too.
    static func insertionSort(_ order: inout [Int], by less: (Int, Int) -> Bool) {
        guard order.count > 1 else { return }
        for i in 1..<order.count {
            let value = order[i]
            if less(value, order[0]) {
                var j = i
                while j > 0 {
                    order[j] = order[j - 1]
                    j -= 1
                }
                order[0] = value
            } else {
                // Unguarded in libstdc++: order[0] stops it, as `less(value, order[0])` is false.
                var j = i - 1
                while j >= 0 && less(value, order[j]) {
                    order[j + 1] = order[j]
                    j -= 1
                }
                order[j + 1] = value
            }
        }
    }

    /// `VW::math::are_same_rel` in float with its default tolerance.
    @inline(__always) static func areSameRelative(_ lhs: Float, _ rhs: Float) -> Bool {
        abs(lhs - rhs) <= Float(0.0001) * (abs(lhs) + abs(rhs))
    }

    /// The label section of an ADF line: where its features start, whether it is the `shared` line,
    /// whether it holds any other label word (a cost: not reproduced), and its tag (`substring_to_example`).
    static func readADFLabel(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Range<Int>) -> (bar: Int, shared: Bool, labelled: Bool, tag: Range<Int>)? {
        guard let bar = line.first(where: { bytes[$0] == UInt8(ascii: "|") }) else { return nil }
        var from = line.lowerBound
        // Only the words after a TAB count, as for single-line examples; the grammar writes none.
        if let tab = (line.lowerBound..<bar).first(where: { bytes[$0] == 0x09 }) { from = tab + 1 }
        var words: [Range<Int>] = []
        var index = from
        while index < bar {
            while index < bar && bytes[index] == 0x20 { index += 1 }
            let start = index
            while index < bar && bytes[index] != 0x20 { index += 1 }
            if index > start { words.append(start..<index) }
        }
        var tag = bar..<bar
        if let last = words.last, last.upperBound == bar || bytes[last.lowerBound] == UInt8(ascii: "'") {
            words.removeLast()
            tag = (bytes[last.lowerBound] == UInt8(ascii: "'") ? last.lowerBound + 1 : last.lowerBound)..<last.upperBound
        }
        let shared = words.count == 1 && bytes[words[0]].elementsEqual("shared".utf8)
        return (bar, shared, !words.isEmpty && !shared, tag)
    }

    /// The namespaces of an example that `:` wildcards expand over (`is_interaction_ns`: ' ' to '~',
    /// and the ccb slot namespace 139), as a 128-bit set.
    static func interactionNamespaces(_ order: [UInt8]) -> (UInt64, UInt64) {
        var low: UInt64 = 0
        var high: UInt64 = 0
        for namespace in order {
            let bit: Int
            if namespace >= 0x20 && namespace <= 0x7E { bit = Int(namespace) - 0x20 } else if namespace == 139 { bit = 95 } else { continue }
            if bit < 64 { low |= 1 << UInt64(bit) } else { high |= 1 << UInt64(bit - 64) }
        }
        return (low, high)
    }

    /// `compile_interactions` over the namespaces `present`: each interaction with `k` wildcards
    /// becomes every choice of k namespaces (two: `expand_quadratics_wildcard_interactions`, pairs
    /// in ascending order; otherwise `generate_namespace_combinations_with_repetition`, in
    /// non-increasing order), its own namespaces kept in place; then VW's sort and de-duplication.
    static func expandWildcards(_ written: [[UInt8]], present: (UInt64, UInt64)) -> [[UInt8]] {
        var namespaces: [UInt8] = []
        for bit in 0..<96 {
            let set = bit < 64 ? present.0 & (1 << UInt64(bit)) != 0 : present.1 & (1 << UInt64(bit - 64)) != 0
            if set { namespaces.append(bit == 95 ? 139 : UInt8(bit + 0x20)) }
        }
        // VW clears every interaction when no namespace can interact (none of them could add a term then).
        guard !namespaces.isEmpty else { return [] }
        let wildcard = UInt8(ascii: ":")
        var all: [[UInt8]] = []
        for interaction in written {
            let k = interaction.count { $0 == wildcard }
            guard k > 0 else {
                all.append(interaction)
                continue
            }
            var choices: [[UInt8]] = []
            if k == 2 {
                for (i, a) in namespaces.enumerated() {
                    for b in namespaces[i...] { choices.append([a, b]) }
                }
            } else {
                // Non-increasing sequences of k namespaces.
                func extend(_ prefix: [UInt8], below limit: Int) {
                    if prefix.count == k {
                        choices.append(prefix)
                        return
                    }
                    for index in 0...limit { extend(prefix + [namespaces[index]], below: index) }
                }
                for top in namespaces.indices { extend([namespaces[top]], below: top) }
            }
            for choice in choices {
                var next = choice.makeIterator()
                all.append(interaction.map { $0 == wildcard ? next.next()! : $0 })
            }
        }
        return NativeConfiguration.sortedAndFiltered(all)
    }
}

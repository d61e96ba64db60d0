// Over 400 lines on purpose: one grammar (VW's JSON example format) read in one pass; its rules are easier to check
// against VW's parser side by side.
/// VW's JSON example format (`vw --json`), strictly: validates one client object completely and
/// writes it back as one compact JSON line built from the parsed values, so vw only ever reads
/// bytes written by the server (never the client's).
///
/// The format is the one VW's JSON reader (`vowpalwabbit/json_parser/src/parse_example_json.cc`,
/// `DefaultState`) reads:
///
/// | member | VW reads it as | accepted here |
/// |---|---|---|
/// | `"k": number` | feature `k` of the current namespace, value `number` (as a float) | finite as a float (`1e39`, `1e400` refused: inf, or a rapidjson error that stops vw) |
/// | `"k": "v"` | feature `kv` (key and value concatenated, then hashed; ` `, TAB, `\|`, `:` in `v` become `_`), value 1 | no control characters |
/// | `"k": true` / `false` | feature `k` / nothing | both, written as they are |
/// | `"k": null` | nothing | dropped |
/// | `"k": {...}` | namespace `k` (its index the first byte of `k`), members read the same way | `k` starts with a printable ASCII byte other than space; depth ≤ `maxDepth` |
/// | `"k": [numbers]` | namespace `k`, features at hash(k)+0, +1, ... (nulls skipped, not counted) | numbers and nulls only (nested arrays refused) |
/// | `"k": [{...}, ...]` | each object read as namespace `k`'s members (`"j": [{"x": 1}]` is `j^x`; Personalizer's `FromUrl` and `j`, SPEC §9) | objects only, each checked as a namespace object |
/// | `"_text": "a b c"` | the words (split on space/TAB, `:`/`\|` become `_`) as features of the current namespace | no control characters |
/// | `"_multi": [{...}, ...]` | the actions of an ADF example (the object around it is the shared example); the members after it are skipped, or read as decision-service fields (`"c"` adds features) | top level of an ADF model only, exactly once, ≥ 1 object (empty or missing: vw prints nothing; nested: vw stops), last but for dropped label and tag keys |
/// | `"_tag"` (any case) | the example's tag, printed after the prediction | the client's is dropped; the server's may be written instead |
/// | `"_tag"` in an action | that action's tag, not printed, no feature | a string not starting with `save` (VW's save command), kept (Personalizer's action id, so the log names it) |
/// | `"_slots": [{...}, ...]` | the slots of a `--ccb_explore_adf` example, each a slot example (its members read as features) | ccb models only, right after `_multi`, ≥ 1 object, last; slot `k` (from 0) must be offered more than `k` actions, or vw prints an empty line for it (the earlier slots take one action each) |
/// | `"_id"` in a slot | skipped by a raw byte scan (the slot's id in Personalizer's logs) | a string or a non-negative integer, kept |
/// | `"_tag"` in a slot | the slot's tag: `seed=<text>` seeds that slot's draw (`cb_sample` hashes `<text>`) instead of vw's random state | `seed=` and 1 to 256 bytes, kept; a slot without one gets `seed=<digest>_<k>` (``CanonicalSeed``: FNV-1a of the canonical object without the added tags, `k` the slot's index), so the answer depends on the example alone, as for VW text |
/// | `"_inc"` in a slot | the actions offered to that slot (indices into `_multi`; vw ignores indices past the end) | distinct integers in `0..<actions`, ≥ 1 |
/// | `"_label"`, `"_label_*"`, `"_labelIndex"` (this one in any case) | the label | dropped: cannot change a `-t` prediction, and vw aborts on many as sent (any `"_label_cost"` under `--json` on a cb_adf model: "only one cost can be known but found 2"); a simple label's initial value (`"Initial"`, `"_label_Initial"`, a third word in a string label), which VW adds to the prediction even under `-t`: refused |
/// | any other key starting with `_` (`_comment`, `_slots` outside a ccb model, `_a`, `_p`, `_inc`, `__aid`, ...) | skipped by a raw byte scan, or read as decision-service or ccb data | refused |
///
/// Every string (keys too) is valid UTF-8 (the parser checks) without bytes below 0x20 (but TAB) or 0x7F;
/// keys are not empty. Members keep their document order; duplicates are kept, as VW reads them.
/// At most `limits.maxFeatures` features (numbers, strings, `true`, array elements, `_text` words)
/// and `limits.maxLineBytes` bytes in the line written.
///
/// The canonical line is `{["_tag":"serverTag",]member,...}\n` without spaces: strings escaped
/// with `\"`, `\\` and `\t` only (other bytes raw UTF-8), numbers the client's validated text.
///
/// vw (checked against vw 9.11 with `VWJSONGrammarVWTests`: the same answers as for the client's
/// bytes) prints, per example: for a non-ADF model one line `prediction[ tag]` (plus a blank line
/// for `--cb`/`--cb_explore`); for an ADF model one line (the action scores or PMF, then ` tag`
/// when there is one) and a blank line. So a server tag frames JSON answers as it does text ones.
public struct VWJSONGrammar: Sendable {
    /// Whether the model reads multiline (ADF) examples: objects with `_multi`.
    public let isADF: Bool
    /// Whether the model is a `--ccb_explore_adf` one: `_multi` followed by `_slots`, one answer line per slot.
    public let isCCB: Bool
    public let limits: ExampleLimits
    /// The deepest nesting of objects and arrays accepted (the example object is depth 1).
    public let maxDepth: Int

    public init(isADF: Bool, isCCB: Bool = false, limits: ExampleLimits = ExampleLimits(), maxDepth: Int = 8) {
        self.isADF = isADF || isCCB
        self.isCCB = isCCB
        self.limits = limits
        self.maxDepth = maxDepth
    }

    /// The grammar for a model of `family`; nil for the families VW's JSON reader cannot serve:
    /// csoaaLDF (`_multi` on a cost-sensitive label: vw stops, "label type is not CB, ..."),
    /// slates (its `_slot_id` structure is not implemented here).
    ///
    /// The answer framing is the text format's (checked against vw 9.11): single-line families
    /// print one line (`--cb` and `--cb_explore` then a blank line, as in text), cbADF one line and a
    /// blank line; every answer line ends in ` tag` when the example has a `_tag`.
    public init?(family: ExampleFamily, limits: ExampleLimits = ExampleLimits(), maxDepth: Int = 8) {
        switch family {
        case .simple, .multiclass, .multilabel, .costSensitive, .contextualBandit: self.init(isADF: false, limits: limits, maxDepth: maxDepth)
        case .cbADF: self.init(isADF: true, limits: limits, maxDepth: maxDepth)
        case .ccb: self.init(isADF: true, isCCB: true, limits: limits, maxDepth: maxDepth)
        case .csoaaLDF, .slates: return nil
        }
    }

    /// Parses one example from the bytes of one JSON document (with the bounded parser) and checks it.
    public func parse(bytes: [UInt8]) throws(ExampleProblem) -> VWJSONExample {
        if bytes.count > limits.maxLineBytes { throw .lineTooLong(limit: limits.maxLineBytes) }
        let value: JSONValue
        do throws(JSONError) {
            value = try JSONParser.parse(bytes, maxDepth: maxDepth + 1)
        } catch {
            throw .invalidInstance(error.message)
        }
        return try parse(value)
    }

    /// Checks one example already parsed (an element of a request's `instances`) and returns it in canonical form.
    public func parse(_ value: JSONValue) throws(ExampleProblem) -> VWJSONExample {
        guard case .object(let members) = value else {
            throw .invalidInstance("a VW JSON example is an object, not \(value.kindName)")
        }
        var writer = Writer(limits: limits, maxDepth: maxDepth, isCCB: isCCB)
        writer.output.reserveCapacity(256)
        try writer.writeObject(members, namespace: VWTextSyntax.space, depth: 1, role: isADF ? .shared : .single)
        if writer.slots.contains(where: { !$0.seeded }) {
            // Written again with a seed for each untagged slot, derived from the object as written the first time.
            var seeded = Writer(limits: limits, maxDepth: maxDepth, isCCB: isCCB)
            seeded.seedDigest = CanonicalSeed.digest(writer.output)
            seeded.output.reserveCapacity(writer.output.count + 32 * writer.slots.count)
            try seeded.writeObject(members, namespace: VWTextSyntax.space, depth: 1, role: .shared)
            writer = seeded
        }
        if isADF && writer.actions == 0 {
            throw .invalidStructure("an ADF example needs \"_multi\" with at least one action object (vw prints nothing without it)")
        }
        if isCCB {
            if writer.slots.isEmpty { throw .invalidStructure("a ccb example needs \"_slots\" with at least one slot object after \"_multi\"") }
            // vw gives each slot an action the earlier slots did not take: slot k needs more than k actions offered,
            // or it gets none and vw prints an empty line for it (which would end the answer early).
            for (index, slot) in writer.slots.enumerated() {
                let offered = slot.included?.count ?? writer.actions
                if offered <= index {
                    throw .invalidStructure("slot \(index) is offered \(offered) action(s) and the \(index) slot(s) before it may take them all; "
                        + "slot k needs more than k actions")
                }
            }
        }
        if writer.output.count + 1 > limits.maxLineBytes { throw .lineTooLong(limit: limits.maxLineBytes) }
        return VWJSONExample(isADF: isADF, actions: writer.actions, includedActions: writer.slots.map(\.included), featureCounts: writer.counts,
                             body: writer.output)
    }

    // MARK: - Writing

    /// What the object being written is in the example.
    enum Role {
        /// The example of a single-line model.
        case single
        /// The top-level (shared) object of an ADF example: `_multi` allowed.
        case shared
        /// One element of `_multi`.
        case action
        /// One element of `_slots` (a ccb model's).
        case slot
        /// A namespace object inside one of the above.
        case namespace
    }

    /// Validates and writes members; counts features per namespace index.
    struct Writer {
        let limits: ExampleLimits
        let maxDepth: Int
        var output: [UInt8] = []
        var counts = FeatureCounts()
        var actions = 0
        var sawMulti = false
        let isCCB: Bool
        /// The slots written (ccb), with the actions each is offered (nil: all) and whether it has a seed tag.
        var slots: [(id: JSONValue?, included: Set<Int>?, seeded: Bool)] = []
        var sawSlots = false
        /// When set, a slot without a `_tag` is written with `seed=<this digest>_<its index>` first.
        var seedDigest: UInt64?

        init(limits: ExampleLimits, maxDepth: Int, isCCB: Bool = false) {
            self.limits = limits
            self.maxDepth = maxDepth
            self.isCCB = isCCB
        }

        mutating func count(_ n: Int, in namespace: UInt8) throws(ExampleProblem) {
            counts.add(n, to: namespace)
            if counts.total > limits.maxFeatures { throw .tooManyFeatures(limit: limits.maxFeatures) }
            if output.count > limits.maxLineBytes { throw .lineTooLong(limit: limits.maxLineBytes) }
        }

        /// Writes `"key":`, after a comma unless it is the object's first member.
        mutating func writeKey(_ key: String, first: inout Bool) {
            if !first { output.append(UInt8(ascii: ",")) }
            first = false
            JSONQuoting.append(key, to: &output)
            output.append(UInt8(ascii: ":"))
        }

        /// Writes `{...}` for an object whose features belong to `namespace` (an index byte).
        mutating func writeObject(_ members: [(key: String, value: JSONValue)], namespace: UInt8, depth: Int, role: Role,
                                  seed: UInt64? = nil) throws(ExampleProblem) {
            if depth > maxDepth { throw .invalidInstance("objects nested deeper than \(maxDepth)") }
            output.append(UInt8(ascii: "{"))
            var first = true
            if let seed {
                var tag: [UInt8] = []
                CanonicalSeed.write(digest: seed, slot: slots.count - 1, into: &tag)
                writeKey("_tag", first: &first)
                JSONQuoting.append(String(decoding: tag, as: UTF8.self), to: &output)
            }
            for member in members {
                let key = member.key
                let keyBytes = key.utf8
                guard let head = keyBytes.first else { throw .invalidInstance("empty key") }
                try VWJSONGrammar.checkText(key, what: "key")
                let afterMulti = role == .shared && sawMulti
                if head == UInt8(ascii: "_") {
                    let kind = try special(key, member.value, role: role)
                    if afterMulti {
                        switch kind {
                        case .drop: break
                        case .slots where isCCB && !sawSlots: break
                        default: throw VWJSONGrammar.afterMulti
                        }
                    }
                    if role == .shared && sawSlots { guard case .drop = kind else { throw VWJSONGrammar.afterSlots } }
                    switch kind {
                    case .drop: continue
                    case .actionTag(let text):
                        writeKey(key, first: &first)
                        JSONQuoting.append(text, to: &output)
                    case .slotID(let id):
                        writeKey(key, first: &first)
                        if case .string(let text) = id { JSONQuoting.append(text, to: &output) } else { output.append(contentsOf: (id.numberText ?? "0").utf8) }
                        slots[slots.count - 1].id = id
                    case .included(let indices):
                        writeKey(key, first: &first)
                        output.append(UInt8(ascii: "["))
                        output.append(contentsOf: indices.map(String.init).joined(separator: ",").utf8)
                        output.append(UInt8(ascii: "]"))
                        slots[slots.count - 1].included = Set(indices)
                    case .slots(let elements):
                        sawSlots = true
                        writeKey(key, first: &first)
                        output.append(UInt8(ascii: "["))
                        for (offset, element) in elements.enumerated() {
                            guard case .object(let slot) = element else {
                                throw .invalidStructure("every element of \"_slots\" is a slot object, not \(element.kindName)")
                            }
                            if offset > 0 { output.append(UInt8(ascii: ",")) }
                            let tagged = slot.contains { $0.key == "_tag" }
                            slots.append((id: nil, included: nil, seeded: tagged || seedDigest != nil))
                            try writeObject(slot, namespace: VWTextSyntax.space, depth: depth + 2, role: .slot, seed: tagged ? nil : seedDigest)
                        }
                        output.append(UInt8(ascii: "]"))
                    case .text(let words):
                        writeKey(key, first: &first)
                        guard case .string(let text) = member.value else { preconditionFailure() }
                        JSONQuoting.append(text, to: &output)
                        try count(words, in: namespace)
                    case .multi(let elements):
                        writeKey(key, first: &first)
                        output.append(UInt8(ascii: "["))
                        for (offset, element) in elements.enumerated() {
                            guard case .object(let action) = element else {
                                throw .invalidStructure("every element of \"_multi\" is an action object, not \(element.kindName)")
                            }
                            if offset > 0 { output.append(UInt8(ascii: ",")) }
                            try writeObject(action, namespace: VWTextSyntax.space, depth: depth + 2, role: .action)
                            actions += 1
                        }
                        output.append(UInt8(ascii: "]"))
                    }
                    continue
                }
                if afterMulti { throw sawSlots ? VWJSONGrammar.afterSlots : VWJSONGrammar.afterMulti }
                switch member.value {
                case .null:
                    continue
                case .bool(let value):
                    writeKey(key, first: &first)
                    output.append(contentsOf: (value ? "true" : "false").utf8)
                    if value { try count(1, in: namespace) }
                case .number(let text):
                    try VWJSONGrammar.checkNumber(text, key: key)
                    writeKey(key, first: &first)
                    output.append(contentsOf: text.utf8)
                    try count(1, in: namespace)
                case .string(let text):
                    try VWJSONGrammar.checkText(text, what: "value of \"\(key)\"")
                    writeKey(key, first: &first)
                    JSONQuoting.append(text, to: &output)
                    try count(1, in: namespace)
                case .object(let inner):
                    try VWJSONGrammar.checkNamespace(head, key: key)
                    writeKey(key, first: &first)
                    try writeObject(inner, namespace: head, depth: depth + 1, role: .namespace)
                case .array(let elements):
                    try VWJSONGrammar.checkNamespace(head, key: key)
                    if depth + 1 > maxDepth { throw .invalidInstance("objects nested deeper than \(maxDepth)") }
                    writeKey(key, first: &first)
                    output.append(UInt8(ascii: "["))
                    if case .object? = elements.first {
                        try writeObjects(elements, key: key, namespace: head, depth: depth + 2)
                        output.append(UInt8(ascii: "]"))
                        continue
                    }
                    var written = 0
                    for element in elements {
                        switch element {
                        case .null: continue
                        case .number(let text):
                            try VWJSONGrammar.checkNumber(text, key: key)
                            if written > 0 { output.append(UInt8(ascii: ",")) }
                            output.append(contentsOf: text.utf8)
                            written += 1
                        default:
                            throw .invalidInstance("array \"\(key)\" holds \(element.kindName); VW reads arrays of numbers only")
                        }
                    }
                    output.append(UInt8(ascii: "]"))
                    try count(written, in: head)
                }
                if output.count > limits.maxLineBytes { throw .lineTooLong(limit: limits.maxLineBytes) }
            }
            output.append(UInt8(ascii: "}"))
        }

        /// Writes the elements of an array of objects (the form of Personalizer's contexts, SPEC §9): VW reads each
        /// object's members as if they were in the array's namespace object (`"j": [{"x": 1}]` is the feature `j^x`).
        mutating func writeObjects(_ elements: [JSONValue], key: String, namespace: UInt8, depth: Int) throws(ExampleProblem) {
            for (offset, element) in elements.enumerated() {
                guard case .object(let members) = element else {
                    throw .invalidInstance("array \"\(key)\" mixes objects with \(element.kindName); VW reads arrays of numbers or of objects")
                }
                if offset > 0 { output.append(UInt8(ascii: ",")) }
                try writeObject(members, namespace: namespace, depth: depth, role: .namespace)
            }
        }

        enum Special {
            case drop
            case actionTag(String)
            /// A ccb slot's `_id`, `_inc`; the example's `_slots`.
            case slotID(JSONValue)
            case included([Int])
            case slots([JSONValue])
            case text(words: Int)
            case multi([JSONValue])
        }

        /// Classifies a member whose key starts with `_`, as VW's `DefaultState::Key` does.
        mutating func special(_ key: String, _ value: JSONValue, role: Role) throws(ExampleProblem) -> Special {
            if key == "_text" {
                guard case .string(let text) = value else { throw .invalidInstance("\"_text\" is a string, not \(value.kindName)") }
                try VWJSONGrammar.checkText(text, what: "\"_text\"")
                var words = 0
                var inWord = false
                for byte in text.utf8 {
                    if byte == VWTextSyntax.space || byte == VWTextSyntax.tab { inWord = false } else if !inWord { inWord = true; words += 1 }
                }
                return .text(words: words)
            }
            if key == "_multi" {
                guard role == .shared else {
                    throw .invalidStructure(role == .single ? "\"_multi\" is for ADF models only" : "\"_multi\" belongs at the top level of the example, once")
                }
                guard !sawMulti else { throw .invalidStructure("\"_multi\" appears twice (vw stops on a nested _multi)") }
                sawMulti = true
                guard case .array(let elements) = value else { throw .invalidStructure("\"_multi\" is an array of action objects, not \(value.kindName)") }
                guard !elements.isEmpty else { throw .invalidStructure("\"_multi\" is empty (vw prints nothing for it)") }
                return .multi(elements)
            }
            if key == "_slots" {
                guard isCCB, role == .shared else {
                    throw .invalidStructure(isCCB ? "\"_slots\" belongs at the top level of the example, once" : "\"_slots\" is for ccb models (--ccb_explore_adf) only")
                }
                guard sawMulti else { throw .invalidStructure("\"_slots\" comes right after \"_multi\" (vw reads the actions first)") }
                guard case .array(let elements) = value else { throw .invalidStructure("\"_slots\" is an array of slot objects, not \(value.kindName)") }
                guard !elements.isEmpty else { throw .invalidStructure("\"_slots\" is empty (a ccb example needs at least one slot)") }
                return .slots(elements)
            }
            if role == .slot && key == "_id" {
                switch value {
                case .string(let text):
                    try VWJSONGrammar.checkText(text, what: "\"_id\"")
                    return .slotID(value)
                case .number(let text) where UInt32(text) != nil:
                    return .slotID(value)
                default:
                    throw .invalidInstance("a slot's \"_id\" is a string or a non-negative integer, not \(value.kindName)")
                }
            }
            if role == .slot && key == "_inc" {
                guard case .array(let elements) = value, !elements.isEmpty else {
                    throw .invalidStructure("a slot's \"_inc\" is a non-empty array of action indices")
                }
                var indices: [Int] = []
                for element in elements {
                    guard let text = element.numberText, let index = Int(text), index >= 0, index < actions else {
                        throw .invalidStructure("a slot's \"_inc\" holds \(element.numberText ?? element.kindName); action indices are 0..<\(actions)")
                    }
                    guard !indices.contains(index) else { throw .invalidStructure("a slot's \"_inc\" names action \(index) twice") }
                    indices.append(index)
                }
                return .included(indices)
            }
            let lower = VWJSONGrammar.lowercased(key)
            if lower == "_tag" {
                if (role == .action || role == .slot) && key == "_tag" {
                    // An action's own tag (Personalizer's action id): vw keeps it on the action, the answer line is unchanged.
                    // A slot's tag (`seed=...`) seeds that slot's draw; a ccb answer carries no tag.
                    guard case .string(let text) = value else { throw .invalidInstance("\"_tag\" is a string, not \(value.kindName)") }
                    if role == .slot {
                        guard CanonicalSeed.isSeedTag(text.utf8), text.utf8.count <= 5 + 256 else {
                            throw .invalidInstance("a slot's \"_tag\" is the seed of its draw: seed=<1 to 256 bytes>")
                        }
                    }
                    try VWJSONGrammar.checkText(text, what: "\"_tag\"")
                    // vw reads a tag starting with `save` as its model-save command.
                    if text.utf8.starts(with: "save".utf8) { throw .saveTag }
                    return .actionTag(text)
                }
                guard role == .single || role == .shared else {
                    throw .invalidInstance("\"_tag\" belongs at the top level of the example or of an action or slot (as \"_tag\")")
                }
                guard case .string(let text) = value else { throw .invalidInstance("\"_tag\" is a string, not \(value.kindName)") }
                try VWJSONGrammar.checkText(text, what: "\"_tag\"")
                return .drop
            }
            if key == "_label" || key.hasPrefix("_label_") || lower == "_labelindex" {
                try VWJSONGrammar.checkLabel(key, value)
                return .drop
            }
            throw .invalidInstance("unsupported key \"\(key)\" (VW skips or reads specially keys starting with '_')")
        }
    }

    // MARK: - Checks

    /// After `_multi`, VW's `--json` reader is in its decision-service state: it skips the shared
    /// example's remaining members, or reads some (`c`, `a`, `p`, `o`, `_label_*`, ...) as
    /// decision-service fields.
    static let afterSlots = ExampleProblem.invalidStructure("\"_slots\" must be the example's last member")
    static let afterMulti = ExampleProblem.invalidStructure("\"_multi\" must be the example's last member (VW ignores the members after it, or reads some, like \"c\", as decision-service fields)")

    /// Labels are dropped, but a simple label's initial value changes a `-t` prediction: refused.
    static func checkLabel(_ key: String, _ value: JSONValue) throws(ExampleProblem) {
        let lower = lowercased(key)
        if lower == "_label_initial" { throw .invalidLabel("a label's initial value changes the prediction; send it as a feature instead") }
        switch value {
        case .object(let members):
            guard key == "_label" else { throw .invalidLabel("\"\(key)\" is not an object") }
            for member in members where lowercased(member.key) == "initial" {
                throw .invalidLabel("a label's initial value changes the prediction; send it as a feature instead")
            }
        case .string(let text):
            try checkText(text, what: "\"\(key)\"")
            var words = 0
            var inWord = false
            for byte in text.utf8 {
                if byte == VWTextSyntax.space || byte == VWTextSyntax.tab { inWord = false } else if !inWord { inWord = true; words += 1 }
            }
            if key == "_label" && words > 2 { throw .invalidLabel("a label's initial value changes the prediction; send it as a feature instead") }
        case .number, .bool, .null: break
        case .array: throw .invalidLabel("\"\(key)\" is not an array")
        }
    }

    /// Strings reach vw as bytes: no control characters but TAB (NUL cuts VW's in-place strings).
    static func checkText(_ text: String, what: String) throws(ExampleProblem) {
        for byte in text.utf8 where (byte < 0x20 && byte != VWTextSyntax.tab) || byte == 0x7F {
            throw .invalidInstance("control character 0x\(String(byte, radix: 16)) in \(what)")
        }
    }

    /// A namespace's index is the first byte of its name: printable ASCII, not a space (bytes ≥ 0x80 can be VW's internal namespaces).
    static func checkNamespace(_ head: UInt8, key: String) throws(ExampleProblem) {
        guard head > 0x20, head < 0x7F else {
            throw .invalidInstance("namespace \"\(key)\" must start with a printable ASCII character")
        }
    }

    /// A number vw reads as a finite float: rapidjson reads a double (beyond its range: an error that
    /// stops vw), which VW narrows to a float (beyond its range: inf).
    static func checkNumber(_ text: String, key: String) throws(ExampleProblem) {
        guard JSONParser.isNumber(text), let double = Double(text), double.isFinite, Float(double).isFinite else {
            throw .invalidInstance("value of \"\(key)\" is not a finite 32-bit float: \(text)")
        }
    }

    static func lowercased(_ key: String) -> String {
        String(decoding: key.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}

/// One client example accepted by ``VWJSONGrammar``, in canonical form.
public struct VWJSONExample: Sendable {
    /// Whether the example is an ADF one (shared object with `_multi`).
    public let isADF: Bool
    /// The number of action objects in `_multi` (0 for a non-ADF example).
    public let actions: Int
    /// The number of slot objects in `_slots` (a ccb example's; 0 otherwise).
    public let slots: Int
    /// Each slot's `_inc` (the actions it is offered), nil for a slot offered every action.
    public let includedActions: [Set<Int>?]
    /// Features per namespace index, summed over the shared object and the actions.
    public let featureCounts: FeatureCounts
    /// The canonical object, without a tag and without the final newline.
    let body: [UInt8]

    init(isADF: Bool, actions: Int, includedActions: [Set<Int>?] = [], featureCounts: FeatureCounts, body: [UInt8]) {
        self.isADF = isADF
        self.actions = actions
        self.slots = includedActions.count
        self.includedActions = includedActions
        self.featureCounts = featureCounts
        self.body = body
    }

    /// The examples vw builds from this one: the shared example and its actions for ADF, else 1
    /// (the `lines` of ``InteractionCost/features(of:lines:)``, as ``ParsedExample/lineCount`` for text).
    public var lineCount: Int { isADF ? 1 + actions + slots : 1 }
    /// How many answer lines vw prints for this example, before the blank line an ADF answer ends with: 1, or one
    /// per slot for a ccb example.
    public var answerLines: Int { slots > 0 ? slots : 1 }
    /// Whether vw prints a blank line after the answer line because the example is multiline (ADF);
    /// single-line `--cb`/`--cb_explore` models add one too, a model detail as for VW text.
    public var endsWithBlankLine: Bool { isADF }
    /// Whether vw prints the example's `_tag` after the prediction on its answer line (` tag`): always but for ccb.
    public var answersCarryTags: Bool { slots == 0 }

    /// Appends the canonical line, ending in "\n", with `serverTag` as the example's `_tag` (the
    /// client's never reaches vw). An empty `serverTag` writes no tag; a non-empty one must pass
    /// ``ParsedExample/isValidServerTag(_:)``.
    public func write(serverTag: [UInt8], into payload: inout [UInt8]) {
        precondition(serverTag.isEmpty || ParsedExample.isValidServerTag(serverTag), "server tag must be [A-Za-z0-9_]{1,64} and not start with 'save'")
        if serverTag.isEmpty {
            payload.append(contentsOf: body)
        } else {
            payload.append(UInt8(ascii: "{"))
            payload.append(contentsOf: "\"_tag\":\"".utf8)
            payload.append(contentsOf: serverTag)
            payload.append(UInt8(ascii: "\""))
            if body.count > 2 { payload.append(UInt8(ascii: ",")) }
            payload.append(contentsOf: body[1...])
        }
        payload.append(VWTextSyntax.newline)
    }

    /// The canonical line, as ``write(serverTag:into:)`` writes it.
    public func canonicalText(serverTag: String = "") -> String {
        var payload: [UInt8] = []
        write(serverTag: Array(serverTag.utf8), into: &payload)
        return String(decoding: payload, as: UTF8.self)
    }
}

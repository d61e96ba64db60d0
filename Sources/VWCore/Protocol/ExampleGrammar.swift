// Over 400 lines on purpose: one grammar (VW's text format per reduction family) read in one pass; its rules are
// checked against VW's parser side by side.
/// VW's text format, strictly, per reduction family: parses a client's example and gives it back in
/// a canonical form, so vw only ever reads bytes written by the server (never the client's).
///
/// A line is `[label words] [tag]|namespace[:value] feature[:value] ...|namespace ...`, read the way
/// VW reads it (`parse_example_text.cc`): the label section is everything before the first `|`;
/// when it holds a TAB, VW ignores everything up to and including that TAB; its words are split
/// on spaces; the last word is the tag when it ends right at the `|` or starts with `'`.
///
/// The canonical line is `[label] ['serverTag ]|ns[:v] f[:v] ... |ns ...\n`: the label as the
/// family keeps it (below), the server's tag in place of the client's, feature tokens joined by
/// single spaces with a space before every `|` but the first, no CR. Numbers are the client's
/// validated tokens, so vw reads the same values it would have read from the client.
///
/// ## Bytes and features (every family)
///
/// | rule | rejected with | what VW would do |
/// |---|---|---|
/// | a BOM (EF BB BF) anywhere | `byteOrderMark` | strip it at the start of a line, so a `save_/path\|` behind it became a tag that saves the model to a path |
/// | a byte < 0x20 other than TAB, or 0x7F (one CR ending the line is dropped) | `controlCharacter` / `newlineInSingleLineExample` | NUL cuts the line, LF/CR split or end it, 0x7F is VW's history namespace |
/// | invalid UTF-8 (cannot be in a Swift string; checked on the bytes all the same) | `notUTF8` | a namespace starting with bytes 0x80–0x8D lands in VW's internal namespaces (constant, affix, ccb ids...) |
/// | a tag starting with `save` | `saveTag` | VW saves its model (to the path after `save_`); harmless here, since the client's tag never reaches vw, but refused as SPEC §5 says |
/// | no `\|` | `missingBar` | the whole line is a label: an example without features, or a label parser abort |
/// | empty / blank line | `empty`, `whitespaceOnly`, `blankLineInMultilineExample` | skipped, or ends a multiline example early: answers shift between requests |
/// | a second TAB in the label section | `invalidLabel` | words joined by a TAB become one label word |
/// | `\|:`, a value not followed by space, `\|` or the end, `a:`, `a:1x`, `a: 1` | `malformedFeatures` | a warning, and the rest of the line silently dropped |
/// | a number VW reads only in part (`1x`, `1..2`), or as inf or NaN (`inf`, `nan`, `1e39`, `1e-130`); any number VW reads whole and finite is accepted (`+1`, `.5`, `5.`, `1E+2`, `0x10`), by VW's own rules (`VWTextSyntax.reading`) | `malformedFeatures`, `invalidLabel` | a label read silently as its prefix; a feature value with a warning and the rest of the line dropped; inf answers, NaN replaced by 0 or 1 |
/// | a feature value neither read whole as a number nor a string value (VW reads no number from it: `a:red`, `a:+x`), or a string value holding `:` or `\|` | `malformedFeatures` | `a:x\|b c` hides namespace `b` |
/// | more than `limits.maxFeatures` feature tokens or `limits.maxLineBytes` bytes on a line | `tooManyFeatures`, `lineTooLong` | unbounded work for one request |
///
/// ## Labels, per family (what is kept is re-written from the validated tokens)
///
/// | family | accepted label | written to vw | why |
/// |---|---|---|---|
/// | simple | `[label [importance [initial]]]`, floats | all of it | the initial value is added to the prediction even under `-t` (VW's `houses` test: `0 1 0.5 \| price:.53 ...` predicts 0.527994) |
/// | multiclass | `[class [importance]]` | nothing | cannot change a `-t` prediction; a class vw cannot read (`x` without `--named_labels`) stops vw |
/// | multilabel | `[class,class,...]`, unsigned integers | nothing | cannot change a `-t` prediction |
/// | costSensitive | `class[:[cost]] ...`, class any word but `shared`/`label`, not starting with `'` | all of it | the classes listed are the only ones `--csoaa` predicts from (`2: 3: \| x` can predict 3 where `\| x` predicts 1) |
/// | contextualBandit | `action[:cost[:probability]] ...`, action an unsigned integer | nothing | checked against vw: cannot change a `-t` prediction |
/// | cbADF | `shared` (first line only), or one `action[:cost[:probability]]` | `shared` | action labels cannot change a `-t` prediction; `0:1:0.5:7` stops vw |
/// | csoaaLDF | `shared` (first line only), or one `class[:[cost]]` on every other line | all of it | vw prints each line's class; an unlabelled line crashes vw (SIGSEGV); two costs abort it |
/// | ccb | `ccb shared`, `ccb action`, `ccb slot [action:cost:prob[,action:prob...]] [action,...]` | the explicit included actions | they restrict the slot's choice; the outcome cannot change a `-t` prediction and aborts vw unless its probabilities sum to 1 |
/// | slates | `slates shared [cost]`, `slates action <slot>`, `slates slot [action:prob,...]` | `slates action <slot>` | the slot id is structure; cost and probabilities cannot change a `-t` prediction |
///
/// ## Structure of multiline examples (checked against vw 9.11)
///
/// | family | rule | what VW would do otherwise |
/// |---|---|---|
/// | cbADF | optional `shared` first, then ≥ 1 action line | shared-only: SIGSEGV (`--cb_adf`) or an extra blank line (`--cb_explore_adf`); a second `shared` is read as an action |
/// | csoaaLDF | optional `shared` first, then ≥ 1 labelled line | an unlabelled line: SIGSEGV |
/// | ccb | `ccb shared` first (exactly once), then ≥ 1 `ccb action`, then ≥ 1 `ccb slot`; slots ≤ actions; included actions < actions; a slot's included actions number more than the slots before it | no shared line: SIGSEGV; more slots than actions: abort; `ccb slot 5` or an included action taken by an earlier slot: an empty answer line |
/// | slates | `slates shared` first (exactly once), then ≥ 1 `slates action <slot>`, then ≥ 1 `slates slot`; every slot id < slots; every slot has an action | no shared line: SIGSEGV; `slates action 5` or a slot without an action: abort |
///
/// vw prints per example (checked against vw 9.11 with the tests in `ExampleGrammarVWTests` and
/// `ExampleGrammarVWFuzzTests`): 1 line (single-line families, cbADF), one line per non-`shared`
/// line (csoaaLDF, each with its line's tag), one line per slot (ccb, slates, without tags), then a
/// blank line for multiline families. Model-dependent details a framer must know: `--cb` and
/// `--cb_explore` (single-line, without `--cb_force_legacy`) print a blank line after each answer;
/// `--bootstrap` prints `prediction tag bag1 bag2 ...` (the tag is not last); `--multilabel_oaa`
/// ends its classes with a space and answers an empty class set with a line holding one space.
public struct ExampleGrammar: Sendable {
    public let family: ExampleFamily
    public let limits: ExampleLimits
    /// Writes every validated label word of a single-line example (for training: `:learn`), not only
    /// those that change a `-t` prediction.
    public let keepsLabels: Bool

    public init(family: ExampleFamily, limits: ExampleLimits = ExampleLimits(), keepsLabels: Bool = false) {
        self.family = family
        self.limits = limits
        self.keepsLabels = keepsLabels
    }

    /// Parses one example (exactly one line for single-line families, ≥ 1 for multiline ones) and
    /// returns it in canonical form. Throws the first problem found.
    public func parse(lines: [Substring]) throws(ExampleProblem) -> ParsedExample {
        guard let firstSource = lines.first else { throw .empty }
        var counts = FeatureCounts()
        if !family.isMultiline {
            guard lines.count == 1 else { throw .newlineInSingleLineExample }
            let parsed = try parseLine(firstSource, counts: &counts)
            return ParsedExample(family: family, answerLines: 1, featureCounts: counts, first: CanonicalLine(source: firstSource, layout: parsed.layout), rest: [])
        }
        var structure = Structure(family: family, lineCount: lines.count)
        var first: CanonicalLine? = nil
        var rest: [CanonicalLine] = []
        rest.reserveCapacity(lines.count - 1)
        for source in lines {
            let parsed: ParsedLine
            do throws(ExampleProblem) {
                parsed = try parseLine(source, counts: &counts)
            } catch {
                switch error {
                case .empty, .whitespaceOnly: throw .blankLineInMultilineExample
                default: throw error
                }
            }
            try structure.add(parsed)
            let line = CanonicalLine(source: source, layout: parsed.layout)
            if first == nil { first = line } else { rest.append(line) }
        }
        let answerLines = try structure.finish()
        return ParsedExample(family: family, answerLines: answerLines, featureCounts: counts, first: first!, rest: rest)
    }

    // MARK: - One line

    /// What a line's label says about the example's structure.
    enum Role {
        case single
        case shared
        case action
        /// A ccb or slates slot, with ccb's explicit included actions when given.
        case slot(included: IncludedActions?)
        /// A slates action and the slot it belongs to.
        case slatesAction(slot: Int)
    }

    /// A ccb slot's explicit included actions.
    struct IncludedActions {
        var distinct: Int
        var largest: Int
    }

    struct ParsedLine {
        var layout: LineLayout
        var role: Role
    }

    private func parseLine(_ source: Substring, counts: inout FeatureCounts) throws(ExampleProblem) -> ParsedLine {
        let utf8 = source.utf8
        let length = utf8.count
        if length > limits.maxLineBytes { throw .lineTooLong(limit: limits.maxLineBytes) }
        if length == 0 { throw .empty }
        // The problem leaves the closure through a variable: a plain `ParsedLine?` result copies cheaply.
        var problem: ExampleProblem? = nil
        let parsed: ParsedLine?? = utf8.withContiguousStorageIfAvailable { bytes in
            do throws(ExampleProblem) { return try parseLine(bytes: bytes, counts: &counts) } catch { problem = error; return nil }
        }
        if let problem { throw problem }
        if let parsed, let parsed { return parsed }
        let copy = Array(utf8)
        let copied: ParsedLine? = copy.withUnsafeBufferPointer { bytes in
            do throws(ExampleProblem) { return try parseLine(bytes: bytes, counts: &counts) } catch { problem = error; return nil }
        }
        if let problem { throw problem }
        return copied!
    }

    private func parseLine(bytes: UnsafeBufferPointer<UInt8>, counts: inout FeatureCounts) throws(ExampleProblem) -> ParsedLine {
        var end = bytes.count
        if bytes[end - 1] == VWTextSyntax.carriageReturn { end -= 1 }

        // The label section: up to the first `|`.
        var index = 0
        var bar = -1
        var firstTab = -1
        var blank = true
        while index < end {
            let byte = bytes[index]
            if byte >= 0x80 {
                index = try VWTextSyntax.skipMultibyte(bytes, at: index, end: end)
                blank = false
                continue
            }
            if byte == VWTextSyntax.bar { bar = index; break }
            if byte < 0x20 || byte == 0x7F {
                if byte == VWTextSyntax.tab {
                    if firstTab < 0 { firstTab = index } else { throw .invalidLabel("more than one TAB before the first '|'") }
                } else if byte == VWTextSyntax.newline || byte == VWTextSyntax.carriageReturn {
                    throw .newlineInSingleLineExample
                } else {
                    throw .controlCharacter(byte)
                }
            } else if byte != VWTextSyntax.space {
                blank = false
            }
            index += 1
        }
        if bar < 0 { throw blank ? (end == 0 ? .empty : .whitespaceOnly) : .missingBar }

        // VW ignores the label section up to and including its first TAB.
        let labelStart = firstTab >= 0 ? firstTab + 1 : 0
        var labelEnd = bar
        var tag = bar..<bar
        var wordEnd = bar
        while wordEnd > labelStart && bytes[wordEnd - 1] == VWTextSyntax.space { wordEnd -= 1 }
        var wordStart = wordEnd
        while wordStart > labelStart && bytes[wordStart - 1] != VWTextSyntax.space { wordStart -= 1 }
        if wordStart < wordEnd && (wordEnd == bar || bytes[wordStart] == VWTextSyntax.quote) {
            tag = (bytes[wordStart] == VWTextSyntax.quote ? wordStart + 1 : wordStart)..<wordEnd
            labelEnd = wordStart
            // The client's tag never reaches vw, but SPEC §5 refuses VW's model-save command outright.
            if bytes[tag].starts(with: "save".utf8) { throw .saveTag }
        }

        var (keyword, kept, role) = try parseLabel(bytes, labelStart..<labelEnd)
        if case .slot = role, CanonicalSeed.isSeedTag(bytes[tag]) {
            // The only client tag that reaches vw: a ccb/slates slot's sampling seed (see ``CanonicalSeed``).
            guard CanonicalSeed.isValidSeedTag(bytes[tag]) else { throw .seedTag }
        }
        if keepsLabels && !family.isMultiline {
            let label = labelStart..<labelEnd
            kept = bytes[label].contains(where: { $0 != VWTextSyntax.space }) ? label : labelEnd..<labelEnd
        }
        let canonical = try parseFeatures(bytes, from: bar, to: end, counts: &counts)
        return ParsedLine(layout: LineLayout(keyword: keyword, label: kept, tag: tag, features: bar..<end, featuresAreCanonical: canonical), role: role)
    }

    // MARK: - Features

    /// Parses `|namespace[:value] feature[:value] ...` from the `|` at `start`; returns whether the
    /// text is already canonical.
    private func parseFeatures(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, counts: inout FeatureCounts) throws(ExampleProblem) -> Bool {
        var canonical = true
        var index = start
        var lineFeatures = 0
        while index < end {
            // At a `|`: a namespace.
            if index > start && bytes[index - 1] != VWTextSyntax.space { canonical = false }
            index += 1
            var namespace = VWTextSyntax.space
            if index < end, !VWTextSyntax.isSeparator(bytes[index]), bytes[index] != VWTextSyntax.bar {
                let nameStart = index
                namespace = bytes[index]
                if namespace == VWTextSyntax.colon { throw .malformedFeatures("a namespace name must follow '|', not ':'") }
                index = try scanName(bytes, from: index, to: end)
                if index < end && bytes[index] == VWTextSyntax.colon {
                    let valueEnd = numberEnd(bytes, from: index + 1, to: end)
                    let reading = VWTextSyntax.reading(bytes, index + 1, valueEnd, beforeBar: valueEnd < end && bytes[valueEnd] == VWTextSyntax.bar)
                    guard reading == .finite else {
                        throw .malformedFeatures("namespace \(VWTextSyntax.quoted(bytes, nameStart, valueEnd)) has a value that \(reading.problem)")
                    }
                    index = valueEnd
                }
            }
            var namespaceFeatures = 0
            // Features up to the next `|`.
            while index < end {
                let byte = bytes[index]
                if byte == VWTextSyntax.bar { break }
                if VWTextSyntax.isSeparator(byte) {
                    if byte == VWTextSyntax.tab || index + 1 == end || VWTextSyntax.isSeparator(bytes[index + 1]) { canonical = false }
                    index += 1
                    continue
                }
                let nameStart = index
                // The common case inline: ASCII name bytes; anything else in the general scanner.
                while index < end && VWTextSyntax.isNameByte(bytes[index]) { index += 1 }
                if index < end && !isTokenEnd(bytes[index]) && bytes[index] != VWTextSyntax.colon {
                    index = try scanName(bytes, from: index, to: end)
                }
                if index < end && bytes[index] == VWTextSyntax.colon {
                    let valueStart = index + 1
                    let valueEnd = numberEnd(bytes, from: valueStart, to: end)
                    let reading = VWTextSyntax.reading(bytes, valueStart, valueEnd, beforeBar: valueEnd < end && bytes[valueEnd] == VWTextSyntax.bar)
                    switch reading {
                    case .finite:
                        index = valueEnd
                    case .notFinite, .partial, .exponentWraps:
                        throw .malformedFeatures("feature \(VWTextSyntax.quoted(bytes, nameStart, valueEnd)) has a value that \(reading.problem)")
                    case .none:
                        // A string value (hashed by VW with the name): up to whitespace, as VW reads it.
                        var stringEnd = valueStart
                        var plain = true
                        while stringEnd < end, !VWTextSyntax.isSeparator(bytes[stringEnd]) {
                            let byte = bytes[stringEnd]
                            if byte >= 0x80 {
                                stringEnd = try VWTextSyntax.skipMultibyte(bytes, at: stringEnd, end: end)
                                continue
                            }
                            try checkByte(byte)
                            if byte == VWTextSyntax.colon || byte == VWTextSyntax.bar { plain = false }
                            stringEnd += 1
                        }
                        // `:` or `|` in it would hide a value or a namespace (`a:x|b c`); `:red` has no name.
                        guard nameStart < index, valueStart < stringEnd, plain else {
                            throw .malformedFeatures("feature \(VWTextSyntax.quoted(bytes, nameStart, stringEnd)) has a value that is neither a number nor a string value")
                        }
                        index = stringEnd
                    }
                }
                namespaceFeatures += 1
            }
            lineFeatures += namespaceFeatures
            if lineFeatures > limits.maxFeatures { throw .tooManyFeatures(limit: limits.maxFeatures) }
            counts.add(namespaceFeatures, to: namespace)
        }
        return canonical
    }

    @inline(__always) private func isTokenEnd(_ byte: UInt8) -> Bool {
        byte == VWTextSyntax.space || byte == VWTextSyntax.tab || byte == VWTextSyntax.bar
    }

    /// The end of a value token: the first space, TAB or `|` from `start`, or `end`.
    @inline(__always) private func numberEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int {
        var index = start
        while index < end && !isTokenEnd(bytes[index]) { index += 1 }
        return index
    }

    /// Scans a name (namespace or feature): any bytes but whitespace, `|` and `:`; returns the offset past it.
    private func scanName(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) throws(ExampleProblem) -> Int {
        var index = start
        while index < end {
            let byte = bytes[index]
            if VWTextSyntax.isNameByte(byte) { index += 1; continue }
            if byte >= 0x80 {
                index = try VWTextSyntax.skipMultibyte(bytes, at: index, end: end)
                continue
            }
            if byte == VWTextSyntax.space || byte == VWTextSyntax.bar || byte == VWTextSyntax.colon || byte == VWTextSyntax.tab { break }
            try checkByte(byte)
            index += 1
        }
        return index
    }

    @inline(__always) private func checkByte(_ byte: UInt8) throws(ExampleProblem) {
        if byte < 0x20 || byte == 0x7F {
            if byte == VWTextSyntax.newline || byte == VWTextSyntax.carriageReturn { throw .newlineInSingleLineExample }
            throw .controlCharacter(byte)
        }
    }

    // MARK: - Labels

    /// Splits a label section on spaces, as VW's `tokenize(' ', ...)` does (no empty words).
    struct Words {
        let bytes: UnsafeBufferPointer<UInt8>
        var index: Int
        let end: Int

        init(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
            self.bytes = bytes
            index = range.lowerBound
            end = range.upperBound
        }

        mutating func next() -> Range<Int>? {
            while index < end && bytes[index] == VWTextSyntax.space { index += 1 }
            guard index < end else { return nil }
            let start = index
            while index < end && bytes[index] != VWTextSyntax.space { index += 1 }
            return start..<index
        }
    }

    private func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ text: StaticString) -> Bool {
        guard range.count == text.utf8CodeUnitCount else { return false }
        let pointer = text.utf8Start
        for offset in 0..<range.count where bytes[range.lowerBound + offset] != pointer[offset] { return false }
        return true
    }

    private func invalid(_ what: String, _ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> ExampleProblem {
        .invalidLabel("\(what): \(VWTextSyntax.quoted(bytes, range.lowerBound, range.upperBound))")
    }

    /// Checks that `word` is a number VW reads whole and finite.
    private func checkNumber(_ what: String, _ bytes: UnsafeBufferPointer<UInt8>, _ word: Range<Int>) throws(ExampleProblem) {
        let reading = VWTextSyntax.reading(bytes, word.lowerBound, word.upperBound)
        guard reading == .finite else { throw invalid("\(what) \(reading.problem)", bytes, word) }
    }

    /// Checks the label words (tag excluded) for the family; returns the keyword and words written to vw.
    private func parseLabel(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) throws(ExampleProblem) -> (LabelKeyword, Range<Int>, Role) {
        var words = Words(bytes, range)
        let none = range.upperBound..<range.upperBound
        switch family {
        case .simple:
            var count = 0
            while let word = words.next() {
                count += 1
                guard count <= 3 else { throw invalid("a simple label is at most 'label importance initial'", bytes, range) }
                try checkNumber("label word", bytes, word)
            }
            return (.none, count == 0 ? none : range, .single)
        case .multiclass:
            guard let classWord = words.next() else { return (.none, none, .single) }
            if bytes[classWord.lowerBound] == VWTextSyntax.quote { throw invalid("class starts with a quote", bytes, classWord) }
            if let weight = words.next() {
                try checkNumber("importance", bytes, weight)
                guard words.next() == nil else { throw invalid("a multiclass label is at most 'class importance'", bytes, range) }
            }
            return (.none, none, .single)
        case .multilabel:
            guard let classes = words.next() else { return (.none, none, .single) }
            guard words.next() == nil else { throw invalid("a multilabel label is one word 'class,class,...'", bytes, range) }
            _ = try integerList(bytes, classes)
            return (.none, none, .single)
        case .costSensitive:
            var any = false
            while let word = words.next() {
                any = true
                try checkClassCost(bytes, word)
            }
            return (.none, any ? range : none, .single)
        case .contextualBandit:
            while let word = words.next() { try checkBanditLabel(bytes, word) }
            return (.none, none, .single)
        case .cbADF:
            guard let word = words.next() else { return (.none, none, .action) }
            guard words.next() == nil else { throw invalid("a cb_adf line has at most one label word", bytes, range) }
            if equals(bytes, word, "shared") { return (.shared, none, .shared) }
            try checkBanditLabel(bytes, word)
            return (.none, none, .action)
        case .csoaaLDF:
            guard let word = words.next() else {
                throw .invalidLabel("every line of a csoaa_ldf/wap_ldf example needs a label 'class[:cost]' or 'shared' (vw crashes on an unlabelled line)")
            }
            guard words.next() == nil else { throw invalid("a csoaa_ldf line has exactly one label word", bytes, range) }
            if equals(bytes, word, "shared") { return (.shared, none, .shared) }
            try checkClassCost(bytes, word)
            return (.none, word, .action)
        case .ccb:
            guard let head = words.next(), equals(bytes, head, "ccb"), let type = words.next() else {
                throw .invalidLabel("every line of a ccb example starts with 'ccb shared', 'ccb action' or 'ccb slot'")
            }
            if equals(bytes, type, "shared") || equals(bytes, type, "action") {
                guard words.next() == nil else { throw invalid("ccb shared and action lines take no label words", bytes, range) }
                return equals(bytes, type, "shared") ? (.ccbShared, none, .shared) : (.ccbAction, none, .action)
            }
            guard equals(bytes, type, "slot") else { throw invalid("unknown ccb line type", bytes, type) }
            var outcome: Range<Int>? = nil
            var includes: Range<Int>? = nil
            var included: IncludedActions? = nil
            while let word = words.next() {
                if bytes[word].contains(VWTextSyntax.colon) {
                    guard outcome == nil else { throw invalid("a ccb slot has at most one outcome", bytes, range) }
                    try checkCCBOutcome(bytes, word)
                    outcome = word
                } else {
                    guard includes == nil else { throw invalid("a ccb slot has at most one list of included actions", bytes, range) }
                    included = try integerList(bytes, word)
                    includes = word
                }
            }
            return (.ccbSlot, includes ?? none, .slot(included: included))
        case .slates:
            guard let head = words.next(), equals(bytes, head, "slates"), let type = words.next() else {
                throw .invalidLabel("every line of a slates example starts with 'slates shared', 'slates action <slot>' or 'slates slot'")
            }
            if equals(bytes, type, "shared") {
                if let cost = words.next(), !VWTextSyntax.isFloat(bytes, cost.lowerBound, cost.upperBound) { throw invalid("slates shared cost is not a number", bytes, cost) }
                guard words.next() == nil else { throw invalid("a slates shared label is 'slates shared [cost]'", bytes, range) }
                return (.slatesShared, none, .shared)
            }
            if equals(bytes, type, "action") {
                guard let slotWord = words.next(), words.next() == nil else { throw invalid("a slates action label is 'slates action <slot>'", bytes, range) }
                guard let slot = VWTextSyntax.unsignedInteger(bytes, slotWord.lowerBound, slotWord.upperBound) else { throw invalid("slot id is not an unsigned integer", bytes, slotWord) }
                return (.slatesAction, slotWord, .slatesAction(slot: slot))
            }
            guard equals(bytes, type, "slot") else { throw invalid("unknown slates line type", bytes, type) }
            if let scores = words.next() {
                guard words.next() == nil else { throw invalid("a slates slot label is 'slates slot [action:probability,...]'", bytes, range) }
                try checkActionScores(bytes, scores)
            }
            return (.slatesSlot, none, .slot(included: nil))
        }
    }

    /// `class`, `class:` or `class:cost`: class any word without `:` that VW does not read as `shared`/`label`.
    private func checkClassCost(_ bytes: UnsafeBufferPointer<UInt8>, _ word: Range<Int>) throws(ExampleProblem) {
        var colon = word.upperBound
        for index in word where bytes[index] == VWTextSyntax.colon { colon = index; break }
        let name = word.lowerBound..<colon
        guard !name.isEmpty else { throw invalid("class name missing", bytes, word) }
        if bytes[name.lowerBound] == VWTextSyntax.quote { throw invalid("class starts with a quote", bytes, word) }
        if equals(bytes, name, "shared") || equals(bytes, name, "label") || equals(bytes, name, "***shared***") || equals(bytes, name, "***label***") {
            throw invalid("reserved class name", bytes, word)
        }
        if colon < word.upperBound, colon + 1 < word.upperBound, !VWTextSyntax.isFloat(bytes, colon + 1, word.upperBound) {
            throw invalid("cost is not a number", bytes, word)
        }
    }

    /// `action[:cost[:probability]]`, action an unsigned integer.
    private func checkBanditLabel(_ bytes: UnsafeBufferPointer<UInt8>, _ word: Range<Int>) throws(ExampleProblem) {
        var parts = 0
        var start = word.lowerBound
        var index = word.lowerBound
        while index <= word.upperBound {
            if index == word.upperBound || bytes[index] == VWTextSyntax.colon {
                parts += 1
                let ok = parts == 1 ? VWTextSyntax.unsignedInteger(bytes, start, index) != nil : (parts <= 3 && VWTextSyntax.isFloat(bytes, start, index))
                guard ok else { throw invalid("a bandit label is 'action[:cost[:probability]]'", bytes, word) }
                start = index + 1
            }
            index += 1
        }
    }

    /// `action:cost:probability[,action:probability...]`.
    private func checkCCBOutcome(_ bytes: UnsafeBufferPointer<UInt8>, _ word: Range<Int>) throws(ExampleProblem) {
        var itemStart = word.lowerBound
        var first = true
        var index = word.lowerBound
        while index <= word.upperBound {
            if index == word.upperBound || bytes[index] == VWTextSyntax.comma {
                guard checkColonFields(bytes, itemStart..<index, floats: first ? 2 : 1) else {
                    throw invalid("a ccb outcome is 'action:cost:probability[,action:probability...]'", bytes, word)
                }
                first = false
                itemStart = index + 1
            }
            index += 1
        }
    }

    /// `action:probability[,action:probability...]`.
    private func checkActionScores(_ bytes: UnsafeBufferPointer<UInt8>, _ word: Range<Int>) throws(ExampleProblem) {
        var itemStart = word.lowerBound
        var index = word.lowerBound
        while index <= word.upperBound {
            if index == word.upperBound || bytes[index] == VWTextSyntax.comma {
                guard checkColonFields(bytes, itemStart..<index, floats: 1) else {
                    throw invalid("a slot label is 'action:probability[,action:probability...]'", bytes, word)
                }
                itemStart = index + 1
            }
            index += 1
        }
    }

    /// Whether `range` is `integer(:float){floats}`.
    private func checkColonFields(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, floats: Int) -> Bool {
        var fields = 0
        var start = range.lowerBound
        var index = range.lowerBound
        while index <= range.upperBound {
            if index == range.upperBound || bytes[index] == VWTextSyntax.colon {
                let ok = fields == 0 ? VWTextSyntax.unsignedInteger(bytes, start, index) != nil : VWTextSyntax.isFloat(bytes, start, index)
                guard ok else { return false }
                fields += 1
                start = index + 1
            }
            index += 1
        }
        return fields == floats + 1
    }

    /// `n,n,...` of unsigned integers: how many distinct values, and the largest.
    private func integerList(_ bytes: UnsafeBufferPointer<UInt8>, _ word: Range<Int>) throws(ExampleProblem) -> IncludedActions {
        var values: [Int] = []
        var start = word.lowerBound
        var index = word.lowerBound
        while index <= word.upperBound {
            if index == word.upperBound || bytes[index] == VWTextSyntax.comma {
                guard let value = VWTextSyntax.unsignedInteger(bytes, start, index) else {
                    throw invalid("expected unsigned integers separated by ','", bytes, word)
                }
                values.append(value)
                start = index + 1
            }
            index += 1
        }
        values.sort()
        var distinct = 0
        for (offset, value) in values.enumerated() where offset == 0 || values[offset - 1] != value { distinct += 1 }
        return IncludedActions(distinct: distinct, largest: values.last ?? 0)
    }

    // MARK: - Structure

    /// The order and counts of a multiline example's lines.
    struct Structure {
        let family: ExampleFamily
        let lineCount: Int
        var position = 0
        var shared = false
        var actions = 0
        var slots = 0
        /// slates: which slot ids have an action.
        var slotHasAction: [Bool] = []

        init(family: ExampleFamily, lineCount: Int) {
            self.family = family
            self.lineCount = lineCount
        }

        mutating func add(_ parsed: ParsedLine) throws(ExampleProblem) {
            defer { position += 1 }
            var name: String { family.lineName }
            switch parsed.role {
            case .single:
                preconditionFailure("single-line role in a multiline example")
            case .shared:
                guard position == 0 else { throw .invalidStructure("a \(name) 'shared' line must be the first line, and only one") }
                shared = true
            case .action:
                if position == 0 && (family == .ccb) { throw .invalidStructure("a ccb example starts with its 'ccb shared' line (vw crashes without it)") }
                guard slots == 0 else { throw .invalidStructure("\(name) action lines come before slot lines") }
                actions += 1
            case .slatesAction(let slot):
                if position == 0 { throw .invalidStructure("a slates example starts with its 'slates shared' line (vw crashes without it)") }
                guard slots == 0 else { throw .invalidStructure("slates action lines come before slot lines") }
                guard slot < lineCount else { throw .invalidStructure("slot id \(slot) is not one of the example's slots") }
                if slotHasAction.count <= slot { slotHasAction.append(contentsOf: repeatElement(false, count: slot + 1 - slotHasAction.count)) }
                slotHasAction[slot] = true
                actions += 1
            case .slot(let included):
                if position == 0 { throw .invalidStructure("a \(name) example starts with its shared line (vw crashes without it)") }
                guard actions > 0 else { throw .invalidStructure("a \(name) slot needs action lines before it") }
                if let included {
                    guard included.largest < actions else {
                        throw .invalidStructure("included action \(included.largest) is not one of the \(actions) actions")
                    }
                    // Earlier slots each take one action; this slot must still have one to choose.
                    guard included.distinct > slots else {
                        throw .invalidStructure("slot \(slots) includes \(included.distinct) action(s), fewer than it needs after \(slots) earlier slot(s)")
                    }
                }
                slots += 1
            }
        }

        /// Checks the whole example; returns how many answer lines vw prints for it.
        func finish() throws(ExampleProblem) -> Int {
            var name: String { family.lineName }
            guard actions > 0 else { throw .invalidStructure("a \(name) example needs at least one action line besides 'shared'") }
            switch family {
            case .cbADF: return 1
            case .csoaaLDF: return actions
            case .ccb:
                guard shared else { throw .invalidStructure("a ccb example starts with its 'ccb shared' line (vw crashes without it)") }
                guard slots > 0 else { throw .invalidStructure("a ccb example needs at least one 'ccb slot' line") }
                guard slots <= actions else { throw .invalidStructure("a ccb example has more slots (\(slots)) than actions (\(actions))") }
                return slots
            case .slates:
                guard shared else { throw .invalidStructure("a slates example starts with its 'slates shared' line (vw crashes without it)") }
                guard slots > 0 else { throw .invalidStructure("a slates example needs at least one 'slates slot' line") }
                guard slotHasAction.count <= slots else { throw .invalidStructure("slot id \(slotHasAction.count - 1) is not one of the \(slots) slots") }
                guard slotHasAction.count == slots, !slotHasAction.contains(false) else {
                    throw .invalidStructure("every slates slot needs at least one 'slates action <slot>' line")
                }
                return slots
            case .simple, .multiclass, .multilabel, .costSensitive, .contextualBandit: return 1
            }
        }
    }
}

extension ExampleFamily {
    /// The name used in error messages.
    var lineName: String {
        switch self {
        case .cbADF: "cb_adf"
        case .csoaaLDF: "csoaa_ldf"
        case .ccb: "ccb"
        case .slates: "slates"
        case .simple: "simple"
        case .multiclass: "multiclass"
        case .multilabel: "multilabel"
        case .costSensitive: "cost-sensitive"
        case .contextualBandit: "cb"
        }
    }
}

/// Why a JSON predict request cannot be served, before any of it reaches vw.
public enum PredictRequestError: Error, Equatable, Sendable {
    /// 400: invalid JSON, not an object, no "instances" array.
    case malformed(String)
    /// 413: more instances than the model or server allows.
    case tooManyInstances(count: Int, limit: Int)
    /// 400: one instance cannot be written as VW text; names its index.
    case invalidInstance(InvalidExample)
}

/// Turns a KServe-V1 style `{"instances": [...]}` body (or `{"inputs": [...]}`, KServe V1's
/// synonym) into VW text lines, one array of lines per instance.
///
/// Structured instances are checked name by name, because VW's text format has no escaping:
/// a space, `|` or `:` in a name would silently turn into other features.
public struct PredictRequestDecoder: Sendable {
    public let multiline: Bool
    public let maxInstances: Int
    /// Most JSON values (objects, strings, numbers, ...) in one instance: the tree of one instance
    /// is the most that is ever built at once.
    public let maxValuesPerInstance: Int

    /// The member that holds the instances: `instances`, or `inputs` as KServe V1 also reads it.
    public static let instancesKeys: Set<String> = ["instances", "inputs"]

    public init(multiline: Bool, maxInstances: Int, maxValuesPerInstance: Int = 1 << 17) {
        self.multiline = multiline
        self.maxInstances = maxInstances
        self.maxValuesPerInstance = maxValuesPerInstance
    }

    /// Decodes `{"instances": [...]}` into one array of VW text lines per instance.
    ///
    /// The body is read as a stream: each instance is parsed, turned into VW text and dropped
    /// before the next one, and instances past the limit (or after an invalid one) are only
    /// checked, never built, so memory follows the accepted instances, not the body's shape.
    /// Errors keep their precedence: invalid JSON anywhere, then the shape of the document, then
    /// too many instances, then the first invalid instance.
    public func decode(_ body: [UInt8], maxDepth: Int = 32) throws(PredictRequestError) -> [[Substring]] {
        var built = 0
        return try decode(body, maxDepth: maxDepth, builtInstances: &built)
    }

    /// `decode`, also counting the instances whose JSON tree was built (for tests: the rest were only checked).
    func decode(_ body: [UInt8], maxDepth: Int, builtInstances: inout Int) throws(PredictRequestError) -> [[Substring]] {
        var stream = JSONStream(bytes: body, maxDepth: maxDepth)
        var shapeError: String?
        var instanceError: InvalidExample?
        var count = 0
        var sawInstances = false
        var result: [[Substring]] = []
        do {
            if stream.nextKind != "an object" {
                let kind = stream.nextKind
                try stream.skip(depth: 0)
                try stream.finish()
                throw PredictRequestError.malformed(
                    "the request body must be a JSON object with an \"instances\" array, not \(kind ?? "nothing")")
            }
            try stream.enter(UInt8(ascii: "{"), depth: 0)
            var firstMember = true
            while let key = try stream.nextKey(first: firstMember) {
                firstMember = false
                let isInstances = Self.instancesKeys.contains(key)
                if !isInstances || sawInstances {
                    if isInstances { shapeError = shapeError ?? "give \"instances\" (or its synonym \"inputs\") once" }
                    try stream.skip(depth: 1)
                    continue
                }
                sawInstances = true
                guard stream.nextKind == "an array" else {
                    shapeError = "\"\(key)\" must be an array, not \(stream.nextKind ?? "nothing")"
                    try stream.skip(depth: 1)
                    continue
                }
                try stream.enter(UInt8(ascii: "["), depth: 1)
                var firstElement = true
                while try stream.nextElement(first: firstElement) {
                    firstElement = false
                    count += 1
                    if count > maxInstances || instanceError != nil || shapeError != nil {
                        try stream.skip(depth: 2)
                        continue
                    }
                    let instance = try stream.value(depth: 2, maxValues: maxValuesPerInstance)
                    builtInstances += 1
                    do {
                        result.append(try lines(of: instance))
                    } catch {
                        instanceError = InvalidExample(index: count - 1, problem: error)
                    }
                }
            }
            try stream.finish()
        } catch let error as PredictRequestError {
            throw error
        } catch let error as JSONError {
            if stream.outOfValues {
                throw .invalidInstance(InvalidExample(
                    index: count - 1, problem: .invalidInstance("more than \(maxValuesPerInstance) JSON values in one instance")))
            }
            throw .malformed(error.message)
        } catch {
            throw .malformed("\(error)")
        }
        if let shapeError { throw .malformed(shapeError) }
        guard sawInstances else { throw .malformed("the request has no \"instances\" array") }
        guard count <= maxInstances else { throw .tooManyInstances(count: count, limit: maxInstances) }
        if let instanceError { throw .invalidInstance(instanceError) }
        return result
    }

    /// The VW text lines of one example given as a string: a multiline example's lines are joined
    /// by `\n` (one trailing `\n` is fine); a single-line example is one line, checked later.
    public static func lines(ofText text: String, multiline: Bool) -> [Substring] {
        guard multiline else { return [Substring(text)] }
        var parts = text.split(separator: "\n", omittingEmptySubsequences: false)
        if parts.count > 1, parts.last?.isEmpty == true { parts.removeLast() }
        return parts
    }

    /// The VW text lines of one instance.
    private func lines(of instance: JSONValue) throws(ExampleProblem) -> [Substring] {
        switch instance {
        case .string(let text):
            return Self.lines(ofText: text, multiline: multiline)
        case .array(let elements):
            guard multiline else { throw .invalidInstance("an array of lines needs a multiline model") }
            guard !elements.isEmpty else { throw .empty }
            var lines: [Substring] = []
            lines.reserveCapacity(elements.count)
            for (k, element) in elements.enumerated() {
                guard case .string(let line) = element else {
                    throw .invalidInstance("line \(k) is \(element.kindName), not a string")
                }
                if line.utf8.contains(0x0A) { throw .invalidInstance("line \(k) contains a newline") }
                lines.append(Substring(line))
            }
            return lines
        case .object(let members):
            return multiline ? try adfLines(members) : [Substring(try singleLine(members))]
        case .null, .bool, .number:
            throw .invalidInstance("an instance must be a string, an array of lines or an object, not \(instance.kindName)")
        }
    }

    /// `{"label": "0 1 0.5", "features": {...}, "tag": "t"}` as one line: `0 1 0.5 't |ns f:1.5 g=red h`.
    /// The label is written as VW's label section: an initial value in it changes the prediction
    /// even under `-t` (VW's `houses` test), so it must never be left out.
    private func singleLine(_ members: [(key: String, value: JSONValue)]) throws(ExampleProblem) -> String {
        guard let features = try Self.member("features", of: members) else {
            throw ExampleProblem.invalidInstance("\"features\" is missing")
        }
        var line = try Self.label(of: members) ?? ""
        if let tag = try Self.tag(of: members) {
            if !line.isEmpty { line.append(" ") }
            line.append("'"); line.append(tag)
        }
        try Self.appendNamespaces(features, named: "\"features\"", to: &line)
        return line
    }

    /// `{"shared": {...}, "actions": [{...}, ...], "tag": "t"}` as an ADF example's lines.
    private func adfLines(_ members: [(key: String, value: JSONValue)]) throws(ExampleProblem) -> [Substring] {
        guard let actionsValue = try Self.member("actions", of: members) else {
            throw ExampleProblem.invalidInstance("\"actions\" is missing (a multiline model needs {\"shared\": ..., \"actions\": [...]})")
        }
        guard case .array(let actions) = actionsValue else {
            throw ExampleProblem.invalidInstance("\"actions\" must be an array, not \(actionsValue.kindName)")
        }
        guard !actions.isEmpty else { throw ExampleProblem.invalidInstance("\"actions\" is empty") }
        if try Self.member("label", of: members) != nil {
            throw ExampleProblem.invalidInstance("\"label\" is for single-line models (give a multiline example's labels as VW text lines)")
        }
        let tag = try Self.tag(of: members)
        var lines: [Substring] = []
        lines.reserveCapacity(actions.count + 1)
        // VW reads the tag from the first line's label section: `shared 't |...`, or `'t |...` on the first action.
        var pendingTag = tag.map { "'" + $0 }
        if let shared = try Self.member("shared", of: members) {
            var line = "shared"
            if let t = pendingTag { line += " " + t }
            pendingTag = nil
            try Self.appendNamespaces(shared, named: "\"shared\"", to: &line)
            lines.append(Substring(line))
        }
        for (k, action) in actions.enumerated() {
            var line = pendingTag ?? ""
            pendingTag = nil
            try Self.appendNamespaces(action, named: "action \(k)", to: &line)
            lines.append(Substring(line))
        }
        return lines
    }

    /// Whether VW reads the JSON number `text` whole as a finite float (``VWTextSyntax/reading(_:_:_:beforeBar:)``).
    private static func readsAsFiniteFloat(_ text: String) -> Bool {
        Array(text.utf8).withUnsafeBufferPointer { VWTextSyntax.reading($0, 0, $0.count) == .finite }
    }

    /// The label words: a JSON number (`1`), or a string of VW label words (`"0 1 0.5"`: label,
    /// importance, initial value), then checked by the model's grammar like a text example's label.
    private static func label(of members: [(key: String, value: JSONValue)]) throws(ExampleProblem) -> String? {
        guard let value = try member("label", of: members) else { return nil }
        switch value {
        case .number(let text):
            guard readsAsFiniteFloat(text) else {
                throw ExampleProblem.invalidLabel("\"label\" \(text.prefix(40)) is not a number VW reads as a finite float")
            }
            return text
        case .string(let text):
            for byte in text.utf8 where byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "|") || byte == UInt8(ascii: "'") {
                throw ExampleProblem.invalidInstance("invalid label \(quoted(text)): contains a control character, '|' or \"'\"")
            }
            guard text.utf8.contains(where: { $0 != UInt8(ascii: " ") }) else { throw ExampleProblem.invalidInstance("\"label\" is empty") }
            return text
        case .null, .bool, .array, .object:
            throw ExampleProblem.invalidInstance("\"label\" must be a number or a string of VW label words, not \(value.kindName)")
        }
    }

    /// The tag's text, checked so VW reads it as one tag and not as a command.
    private static func tag(of members: [(key: String, value: JSONValue)]) throws(ExampleProblem) -> String? {
        guard let value = try member("tag", of: members) else { return nil }
        guard case .string(let tag) = value else {
            throw ExampleProblem.invalidInstance("\"tag\" must be a string, not \(value.kindName)")
        }
        if let why = problem(in: tag, allowEmpty: false) { throw ExampleProblem.invalidInstance("invalid tag \(quoted(tag)): \(why)") }
        if tag.utf8.contains(UInt8(ascii: "'")) { throw ExampleProblem.invalidInstance("invalid tag \(quoted(tag)): contains \"'\"") }
        // Bytes, as vw compares them: "save\u{301}" does not have the Character prefix "save".
        if tag.utf8.starts(with: "save".utf8) { throw .saveTag }
        return tag
    }

    /// Appends ` |ns f:1.5 g=red h` for each namespace of `namespaces`; an object without namespaces gives ` |`.
    private static func appendNamespaces(_ namespaces: JSONValue, named owner: String, to line: inout String) throws(ExampleProblem) {
        guard case .object(let spaces) = namespaces else {
            throw ExampleProblem.invalidInstance("\(owner) must be an object of namespaces, not \(namespaces.kindName)")
        }
        if spaces.isEmpty {
            line += line.isEmpty ? "|" : " |"
            return
        }
        for (namespace, features) in spaces {
            if let why = problem(in: namespace, allowEmpty: true) {
                throw ExampleProblem.invalidInstance("invalid namespace name \(quoted(namespace)) in \(owner): \(why)")
            }
            guard case .object(let featureMembers) = features else {
                throw ExampleProblem.invalidInstance("namespace \(quoted(namespace)) in \(owner) must be an object of features, not \(features.kindName)")
            }
            line.append(line.isEmpty ? "|" : " |")
            line.append(namespace)
            for (name, value) in featureMembers {
                if let why = problem(in: name, allowEmpty: false) {
                    throw ExampleProblem.invalidInstance("invalid feature name \(quoted(name)) in namespace \(quoted(namespace)): \(why)")
                }
                switch value {
                case .number(let text):
                    // A JSON number VW would read as inf, NaN or another value (1e39, 1e200) is refused here, not
                    // written into a line the grammar then refuses.
                    guard readsAsFiniteFloat(text) else {
                        throw ExampleProblem.invalidInstance("feature \(quoted(name)) in namespace \(quoted(namespace)) has the value "
                            + "\(text.prefix(40)), which VW does not read as a finite float")
                    }
                    line.append(" "); line.append(name); line.append(":"); line.append(text)
                case .string(let text):
                    if let why = problem(in: text, allowEmpty: false) {
                        throw ExampleProblem.invalidInstance("invalid value \(quoted(text)) of feature \(quoted(name)) in namespace \(quoted(namespace)): \(why)")
                    }
                    line.append(" "); line.append(name); line.append("="); line.append(text)
                case .bool(true):
                    line.append(" "); line.append(name)
                case .bool(false), .null:
                    continue
                case .array, .object:
                    throw ExampleProblem.invalidInstance("feature \(quoted(name)) in namespace \(quoted(namespace)) has \(value.kindName) value (expected a number, string, boolean or null)")
                }
            }
        }
    }

    /// Why `text` cannot be a VW name, tag or value, or nil when it can.
    private static func problem(in text: String, allowEmpty: Bool) -> String? {
        if text.isEmpty { return allowEmpty ? nil : "is empty" }
        var ascii = true
        for byte in text.utf8 {
            switch byte {
            case 0x80...: ascii = false
            case UInt8(ascii: " "), 0x09...0x0D: return "contains whitespace"
            case ..<0x20, 0x7F: return "contains a control character"
            case UInt8(ascii: "|"): return "contains '|'"
            case UInt8(ascii: ":"): return "contains ':'"
            default: continue
            }
        }
        if ascii { return nil }
        for scalar in text.unicodeScalars {
            if scalar.properties.isWhitespace { return "contains whitespace" }
            if scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value <= 0x9F) { return "contains a control character" }
            if scalar == "|" { return "contains '|'" }
            if scalar == ":" { return "contains ':'" }
        }
        return nil
    }

    /// `text` in double quotes, for error messages.
    private static func quoted(_ text: String) -> String { "\"" + text + "\"" }

    /// The value of the only member named `key`, nil when absent; a repeated key is an error, not a guess.
    private static func member(_ key: String, of members: [(key: String, value: JSONValue)]) throws(ExampleProblem) -> JSONValue? {
        var found: JSONValue?
        for member in members where member.key == key {
            if found != nil { throw ExampleProblem.invalidInstance("duplicate key \(quoted(key))") }
            found = member.value
        }
        return found
    }
}

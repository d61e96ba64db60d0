/// The one JSON serialiser, writing straight into bytes: the HTTP answers, the JSON log lines, the event log's
/// lines and the join state (strings quoted by `JSONQuoting`).
///
/// Callers write objects with `key(_:)` before each member value; commas are placed automatically.
/// Numbers given as `Double` should be finite (JSON has no NaN or infinity): a non-finite one is written as `null`.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Per open container: whether the next element needs a comma first.
    private var needsComma: [Bool] = []
    /// Set by `key`, so the value that follows takes no comma.
    private var afterKey = false

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    private mutating func separate() {
        if afterKey {
            afterKey = false
            return
        }
        if let last = needsComma.last {
            if last { bytes.append(UInt8(ascii: ",")) }
            needsComma[needsComma.count - 1] = true
        }
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma.append(false)
    }

    public mutating func endObject() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "}"))
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma.append(false)
    }

    public mutating func endArray() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "]"))
    }

    /// A member name; the next call writes its value.
    public mutating func key(_ name: String) {
        separate()
        JSONQuoting.append(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    public mutating func string(_ value: String) {
        separate()
        JSONQuoting.append(value, to: &bytes)
    }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    public mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
    }

    /// A string, or `null` for nil.
    public mutating func string(orNull value: String?) {
        if let value { string(value) } else { null() }
    }

    /// An integer, or `null` for nil.
    public mutating func int(orNull value: Int?) {
        if let value { int(value) } else { null() }
    }

    /// A double (see ``double(_:)``), or `null` for nil.
    public mutating func double(orNull value: Double?) {
        if let value { double(value) } else { null() }
    }

    public mutating func int(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A finite double in Swift's shortest round-trip form (`0.5`, `1e-05`), which is valid JSON. JSON has no NaN
    /// or infinity: callers clip or refuse such values first; one that gets here anyway is written as `null`
    /// (never a trap: the values come from clients and files).
    public mutating func double(_ value: Double) {
        separate()
        guard value.isFinite else {
            bytes.append(contentsOf: "null".utf8)
            return
        }
        // -0.0 would read back as 0 anyway; write it plainly.
        bytes.append(contentsOf: (value == 0 ? "0.0" : value.description).utf8)
    }

    /// Hands what was written so far to `body` and empties the buffer, the open containers kept: a long document is
    /// written in pieces, never held whole.
    public mutating func flush<E: Error>(_ body: ([UInt8]) throws(E) -> Void) throws(E) {
        try body(bytes)
        bytes.removeAll(keepingCapacity: true)
    }

    /// Bytes that already are one valid JSON value (validated by the caller), written verbatim.
    public mutating func raw(_ json: some Collection<UInt8>) {
        separate()
        bytes.append(contentsOf: json)
    }

    /// A parsed value, written compactly; numbers keep their source text.
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: raw("null".utf8)
        case .bool(let b): bool(b)
        case .number(let text): raw(text.utf8)
        case .string(let s): string(s)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let members):
            beginObject()
            for member in members {
                key(member.key)
                self.value(member.value)
            }
            endObject()
        }
    }
}

extension JSONValue {
    /// The member `name` of an object (the first if repeated), nil for other kinds.
    public subscript(member name: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == name }?.value
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The source text of a number.
    public var numberText: String? {
        if case .number(let text) = self { return text }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}

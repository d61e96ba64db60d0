// Over 400 lines on purpose: one strict RFC 8259 parser; its byte-level rules are reviewed together.
/// A strict RFC 8259 parser working on raw bytes, built to never trap on hostile input.
public enum JSONParser {
    /// Parses a whole document; rejects trailing garbage, invalid UTF-8, unpaired surrogates, nesting deeper than maxDepth (message says "nesting deeper than 32").
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 32) throws(JSONError) -> JSONValue {
        var reader = JSONByteReader(bytes: bytes, maxDepth: maxDepth)
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        if reader.index < bytes.count {
            throw JSONError("unexpected \(reader.describeByte(at: reader.index)) after the document", at: reader.index)
        }
        return value
    }

    /// Whether `text` is a number as RFC 8259 writes it (no leading zeros, no `+`, no `nan`/`inf`).
    public static func isNumber(_ text: some StringProtocol) -> Bool {
        // Read in place: this runs for every prediction of a JSON reply.
        if let answer = text.utf8.withContiguousStorageIfAvailable({ numberEnd(in: $0, from: 0) == $0.count && !$0.isEmpty }) {
            return answer
        }
        let utf8 = Array(text.utf8)
        return numberEnd(in: utf8, from: 0) == utf8.count && !utf8.isEmpty
    }

    /// The index just past the number starting at `start`, or nil when no valid number starts there.
    public static func numberEnd<Bytes: RandomAccessCollection<UInt8>>(in bytes: Bytes, from start: Int) -> Int? where Bytes.Index == Int {
        var i = start
        let n = bytes.endIndex
        if i < n, bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < n else { return nil }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else if bytes[i] >= UInt8(ascii: "1"), bytes[i] <= UInt8(ascii: "9") {
            i += 1
            while i < n, isDigit(bytes[i]) { i += 1 }
        } else {
            return nil
        }
        if i < n, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard i < n, isDigit(bytes[i]) else { return nil }
            while i < n, isDigit(bytes[i]) { i += 1 }
        }
        if i < n, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < n, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < n, isDigit(bytes[i]) else { return nil }
            while i < n, isDigit(bytes[i]) { i += 1 }
        }
        return i
    }

    @inline(__always)
    public static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}

/// The cursor of one parse: every read is bounds-checked and recursion stops at `maxDepth`.
fileprivate struct JSONByteReader {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0
    /// Values `parseValue` may still build; below zero the parse stops with `outOfValues` set.
    var valuesLeft = Int.max
    var outOfValues = false

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    func describeByte(at i: Int) -> String {
        guard i < bytes.count else { return "end of input" }
        let b = bytes[i]
        if b > 0x20, b < 0x7F { return "character '\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x\(b < 0x10 ? "0" : "")\(String(b, radix: 16, uppercase: true))"
    }

    /// Parses the value at `index`; `depth` counts the containers around it.
    mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard index < bytes.count else { throw JSONError("unexpected end of input", at: index) }
        valuesLeft -= 1
        if valuesLeft < 0 {
            outOfValues = true
            throw JSONError("too many values", at: index)
        }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            guard let end = JSONParser.numberEnd(in: bytes, from: index) else {
                throw JSONError("invalid number", at: index)
            }
            let text = String(decoding: bytes[index..<end], as: UTF8.self)
            index = end
            return .number(text)
        default:
            throw JSONError("unexpected \(describeByte(at: index))", at: index)
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONError) {
        let start = index
        let matches = literal.withUTF8Buffer { lit -> Bool in
            guard bytes.count - start >= lit.count else { return false }
            for k in 0..<lit.count where bytes[start + k] != lit[k] { return false }
            return true
        }
        guard matches else { throw JSONError("invalid literal (expected '\(literal)')", at: start) }
        index += literal.utf8CodeUnitCount
    }

    mutating func checkDepth(_ depth: Int) throws(JSONError) {
        if depth > maxDepth { throw JSONError("nesting deeper than \(maxDepth)", at: index) }
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        try checkDepth(depth)
        index += 1  // '['
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw JSONError("unexpected end of input (expected ',' or ']')", at: index) }
            switch bytes[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return .array(elements)
            default: throw JSONError("expected ',' or ']'", at: index)
            }
        }
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSONValue {
        try checkDepth(depth)
        index += 1  // '{'
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw JSONError("expected a string key", at: index)
            }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                throw JSONError("expected ':'", at: index)
            }
            index += 1
            skipWhitespace()
            members.append((key: key, value: try parseValue(depth: depth)))
            skipWhitespace()
            guard index < bytes.count else { throw JSONError("unexpected end of input (expected ',' or '}')", at: index) }
            switch bytes[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): index += 1; return .object(members)
            default: throw JSONError("expected ',' or '}'", at: index)
            }
        }
    }

    /// Checks the value at `index` as `parseValue` does, building nothing that outlives the call.
    mutating func skipValue(depth: Int) throws(JSONError) {
        guard index < bytes.count else { throw JSONError("unexpected end of input", at: index) }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            try checkDepth(depth + 1)
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw JSONError("expected a string key", at: index)
                }
                _ = try parseString()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw JSONError("expected ':'", at: index) }
                index += 1
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard index < bytes.count else { throw JSONError("unexpected end of input (expected ',' or '}')", at: index) }
                switch bytes[index] {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"): index += 1; return
                default: throw JSONError("expected ',' or '}'", at: index)
                }
            }
        case UInt8(ascii: "["):
            try checkDepth(depth + 1)
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return }
            while true {
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard index < bytes.count else { throw JSONError("unexpected end of input (expected ',' or ']')", at: index) }
                switch bytes[index] {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"): index += 1; return
                default: throw JSONError("expected ',' or ']'", at: index)
                }
            }
        case UInt8(ascii: "\""): _ = try parseString()
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            guard let end = JSONParser.numberEnd(in: bytes, from: index) else { throw JSONError("invalid number", at: index) }
            index = end
        default:
            throw JSONError("unexpected \(describeByte(at: index))", at: index)
        }
    }

    /// Parses the string at `index` (on its opening quote); escape-free strings are one copy of the slice.
    mutating func parseString() throws(JSONError) -> String {
        let quoteAt = index
        let start = index + 1
        var (i, ascii) = Self.skipPlainWords(bytes, from: start)
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                index = i + 1
                if ascii { return String(decoding: bytes[start..<i], as: UTF8.self) }
                guard let s = String(validating: bytes[start..<i], as: UTF8.self) else {
                    throw JSONError("invalid UTF-8 in string", at: firstInvalidUTF8(from: start, to: i))
                }
                return s
            }
            if b == UInt8(ascii: "\\") { return try parseEscapedString(start: start, escapeAt: i) }
            if b < 0x20 { throw JSONError("unescaped control character in string", at: i) }
            if b >= 0x80 { ascii = false }
            i += 1
        }
        throw JSONError("unterminated string", at: quoteAt)
    }

    /// Skips 8 bytes at a time while none is a quote, a backslash or a control character (bit tricks on one
    /// 64-bit word, exact as a yes/no: a word that may hold one is left to the byte loop); returns where the byte
    /// loop goes on and whether the bytes skipped were all ASCII.
    @inline(__always)
    static func skipPlainWords(_ bytes: [UInt8], from start: Int) -> (Int, Bool) {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return (start, true) }
            let ones: UInt64 = 0x0101_0101_0101_0101
            let highs: UInt64 = 0x8080_8080_8080_8080
            var i = start
            var high: UInt64 = 0
            while i + 8 <= buffer.count {
                let word = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                let quote = word ^ (ones &* 0x22)
                let backslash = word ^ (ones &* 0x5C)
                // A zero byte in `quote` or `backslash`, or a byte of `word` below 0x20 (valid as a yes/no for n <= 0x80).
                let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word)
                if special & highs != 0 { break }
                high |= word
                i += 8
            }
            return (i, high & highs == 0)
        }
    }

    /// The slow path of `parseString`, taken at the first backslash.
    private mutating func parseEscapedString(start: Int, escapeAt: Int) throws(JSONError) -> String {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(escapeAt - start + 16)
        buffer.append(contentsOf: bytes[start..<escapeAt])
        var i = escapeAt
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                index = i + 1
                guard let s = String(validating: buffer, as: UTF8.self) else {
                    throw JSONError("invalid UTF-8 in string", at: firstInvalidUTF8(from: start, to: i))
                }
                return s
            }
            if b < 0x20 { throw JSONError("unescaped control character in string", at: i) }
            if b != UInt8(ascii: "\\") {
                buffer.append(b)
                i += 1
                continue
            }
            guard i + 1 < bytes.count else { break }
            let escaped = bytes[i + 1]
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(escaped)
            case UInt8(ascii: "b"): buffer.append(0x08)
            case UInt8(ascii: "f"): buffer.append(0x0C)
            case UInt8(ascii: "n"): buffer.append(0x0A)
            case UInt8(ascii: "r"): buffer.append(0x0D)
            case UInt8(ascii: "t"): buffer.append(0x09)
            case UInt8(ascii: "u"):
                let unit = try hex4(at: i + 2)
                var scalarValue = UInt32(unit)
                var consumed = 6
                if unit >= 0xD800, unit <= 0xDBFF {
                    guard i + 7 < bytes.count, bytes[i + 6] == UInt8(ascii: "\\"), bytes[i + 7] == UInt8(ascii: "u") else {
                        throw JSONError("unpaired surrogate \\u\(String(unit, radix: 16, uppercase: true))", at: i)
                    }
                    let low = try hex4(at: i + 8)
                    guard low >= 0xDC00, low <= 0xDFFF else {
                        throw JSONError("unpaired surrogate \\u\(String(unit, radix: 16, uppercase: true))", at: i)
                    }
                    scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                    consumed = 12
                } else if unit >= 0xDC00, unit <= 0xDFFF {
                    throw JSONError("unpaired surrogate \\u\(String(unit, radix: 16, uppercase: true))", at: i)
                }
                guard let scalar = Unicode.Scalar(scalarValue) else {
                    throw JSONError("invalid \\u escape", at: i)
                }
                UTF8.encode(scalar) { buffer.append($0) }
                i += consumed
                continue
            default:
                throw JSONError("invalid escape sequence", at: i)
            }
            i += 2
        }
        throw JSONError("unterminated string", at: start - 1)
    }

    /// Reads four hex digits at `at` as one UTF-16 code unit.
    private func hex4(at: Int) throws(JSONError) -> UInt16 {
        guard at + 4 <= bytes.count else { throw JSONError("truncated \\u escape", at: at - 2) }
        var value: UInt16 = 0
        for k in at..<(at + 4) {
            let b = bytes[k]
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: throw JSONError("invalid \\u escape", at: at - 2)
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    /// The offset of the first byte that breaks UTF-8 in `from..<to` (escapes are ASCII, so raw bytes decide).
    private func firstInvalidUTF8(from: Int, to: Int) -> Int {
        var i = from
        while i < to {
            if bytes[i] < 0x80 {
                i += 1
                continue
            }
            guard let length = UTF8Validation.sequenceLength(bytes, at: i, end: to) else { return i }
            i += length
        }
        return from
    }
}

/// Reads a document piece by piece, so a caller can act on each element of a large array and
/// drop it before the next one is read (the whole tree is never built). Same rules and messages
/// as `JSONParser.parse`.
public struct JSONStream {
    fileprivate var reader: JSONByteReader

    public init(bytes: [UInt8], maxDepth: Int = 32) {
        self.init(bytes: bytes, maxDepth: maxDepth, from: 0)
    }

    /// Reads on from `offset`, a position an earlier read of the same bytes reported (``offset``):
    /// a second pass over a part of a document the first pass checked.
    public init(bytes: [UInt8], maxDepth: Int = 32, from offset: Int) {
        reader = JSONByteReader(bytes: bytes, maxDepth: maxDepth)
        reader.index = min(max(offset, 0), bytes.count)
        reader.skipWhitespace()
    }

    /// Where the cursor is, in bytes from the start of the document.
    public var offset: Int { reader.index }

    /// The kind of the next value (`JSONValue.kindName`), nil when no value starts there.
    public var nextKind: String? {
        guard reader.index < reader.bytes.count else { return nil }
        switch reader.bytes[reader.index] {
        case UInt8(ascii: "{"): return "an object"
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "\""): return "a string"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return "a number"
        default: return nil
        }
    }

    /// Enters the object or array that starts here (`depth` is the number of containers around it).
    public mutating func enter(_ opening: UInt8, depth: Int) throws(JSONError) {
        try reader.checkDepth(depth + 1)
        reader.index += 1
        reader.skipWhitespace()
        _ = opening
    }

    /// In an object just entered or after a member: the next key (the cursor then on its value), or nil at `}`.
    public mutating func nextKey(first: Bool) throws(JSONError) -> String? {
        guard try continues(first: first, closing: UInt8(ascii: "}")) else { return nil }
        guard reader.index < reader.bytes.count, reader.bytes[reader.index] == UInt8(ascii: "\"") else {
            throw JSONError("expected a string key", at: reader.index)
        }
        let key = try reader.parseString()
        reader.skipWhitespace()
        guard reader.index < reader.bytes.count, reader.bytes[reader.index] == UInt8(ascii: ":") else {
            throw JSONError("expected ':'", at: reader.index)
        }
        reader.index += 1
        reader.skipWhitespace()
        return key
    }

    /// In an array just entered or after an element: true when another element follows (the cursor on it), false at `]`.
    public mutating func nextElement(first: Bool) throws(JSONError) -> Bool {
        try continues(first: first, closing: UInt8(ascii: "]"))
    }

    /// In a container just entered or after an item: consumes `,` (true, the cursor then on the next
    /// item) or `closing` (false); a first item needs no comma.
    private mutating func continues(first: Bool, closing: UInt8) throws(JSONError) -> Bool {
        let close = Character(UnicodeScalar(closing))
        if !first {
            reader.skipWhitespace()
            guard reader.index < reader.bytes.count else {
                throw JSONError("unexpected end of input (expected ',' or '\(close)')", at: reader.index)
            }
            switch reader.bytes[reader.index] {
            case UInt8(ascii: ","): reader.index += 1
            case closing: reader.index += 1; return false
            default: throw JSONError("expected ',' or '\(close)'", at: reader.index)
            }
        } else if reader.index < reader.bytes.count, reader.bytes[reader.index] == closing {
            reader.index += 1
            return false
        }
        reader.skipWhitespace()
        return true
    }

    /// Builds the value here, of at most `maxValues` JSON values; beyond them throws with `outOfValues` true.
    public mutating func value(depth: Int, maxValues: Int) throws(JSONError) -> JSONValue {
        reader.valuesLeft = maxValues
        reader.outOfValues = false
        defer { reader.valuesLeft = Int.max }
        return try reader.parseValue(depth: depth)
    }

    /// Whether the last `value(depth:maxValues:)` stopped at its budget.
    public var outOfValues: Bool { reader.outOfValues }

    /// Checks the value here and moves past it, building nothing.
    public mutating func skip(depth: Int) throws(JSONError) {
        try reader.skipValue(depth: depth)
    }

    /// Checks that nothing but whitespace follows the document.
    public mutating func finish() throws(JSONError) {
        reader.skipWhitespace()
        if reader.index < reader.bytes.count {
            throw JSONError("unexpected \(reader.describeByte(at: reader.index)) after the document", at: reader.index)
        }
    }
}

import Glibc

/// The lexical pieces of VW's text format, checked on raw bytes.
///
/// Numbers are read exactly as VW's own parser reads them (`parse_primitives.h`: its fast path and its
/// `strtof` fallback), so a token accepted here is read by vw whole, as one finite value.
enum VWTextSyntax {
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let bar: UInt8 = 0x7C  // |
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C
    static let quote: UInt8 = 0x27  // '
    static let carriageReturn: UInt8 = 0x0D
    static let newline: UInt8 = 0x0A

    @inline(__always) static func isDigit(_ byte: UInt8) -> Bool { byte &- 0x30 < 10 }

    /// Whether an ASCII byte may be part of a name: printable, not space, `:` or `|` (one bit test).
    @inline(__always) static func isNameByte(_ byte: UInt8) -> Bool {
        // Bits 0x21...0x3F but 0x3A, and 0x40...0x7E but 0x7C.
        let mask: UInt64 = byte < 0x40 ? 0xFBFF_FFFE_0000_0000 : 0x6FFF_FFFF_FFFF_FFFF
        return byte < 0x80 && (mask >> UInt64(byte & 0x3F)) & 1 == 1
    }

    @inline(__always) static func isSeparator(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    /// How VW's `parse_float` (`parse_primitives.h`) reads the token `start..<end`: how many bytes
    /// it consumes (0: none, so a feature value is a string) and the value it gets.
    ///
    /// Its own fast path reads `-?digits[.digits][(e|E)[-]digits]` when a space, TAB or the end of the
    /// token follows (`atTerminator`; a `|` is not one): a float accumulator, at most 35 fraction digits,
    /// and `fast_pow10` of the exponent taken as an `int8_t`. Anything else goes to `strtof`, which
    /// also reads `+1`, `1e+5`, hex, `inf` and `nan`. Both are reproduced exactly, so the caller can
    /// tell a number VW reads whole and finite from one it reads in part, as inf or as NaN.
    /// `wrapped`: the fast path's power of ten wrapped around its `int8_t` and the value differs from
    /// strtof's (`1e200` is read as 0, `1e999` as 1e-25; `0e200` is 0 all the same).
    static func vwFloat(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, atTerminator: Bool = true) -> (consumed: Int, value: Float, wrapped: Bool) {
        var index = start
        var sign: Float = 1
        if index < end && bytes[index] == UInt8(ascii: "-") { sign = -1; index += 1 }
        var accumulator: Float = 0
        while index < end, isDigit(bytes[index]) {
            // `acc * 10 + *p++ - '0'`: the character code is added, then 48 taken away, each in float.
            accumulator = accumulator * 10 + Float(bytes[index]) - 48
            index += 1
        }
        var decimals: Int32 = 0
        if index < end && bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < end, isDigit(bytes[index]) {
                if decimals < 35 {
                    accumulator = accumulator * 10 + Float(bytes[index] &- 0x30)
                    decimals += 1
                }
                index += 1
            }
        }
        var exponent: Int32 = 0
        var wideExponent = 0
        if index < end && bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            var negative = false
            if index < end && bytes[index] == UInt8(ascii: "-") { negative = true; index += 1 }
            while index < end, isDigit(bytes[index]) {
                exponent = exponent &* 10 &+ Int32(bytes[index] &- 0x30)
                wideExponent = min(wideExponent * 10 + Int(bytes[index] &- 0x30), 1 << 40)
                index += 1
            }
            if negative { exponent = 0 &- exponent; wideExponent = -wideExponent }
        }
        if index == end && atTerminator {
            let power = wideExponent - Int(decimals)
            let value = sign * (accumulator * fastPow10(Int8(truncatingIfNeeded: exponent &- decimals)))
            let wrapped = power != Int(Int8(truncatingIfNeeded: power)) && value != strtofReading(bytes, start, end).value
            return (end - start, value, wrapped)
        }
        let reading = strtofReading(bytes, start, end)
        return (reading.consumed, reading.value, false)
    }

    /// VW's `fast_pow10`: 10^exponent from tables built by repeated float multiplication and division.
    private static func fastPow10(_ exponent: Int8) -> Float {
        if exponent > 38 { return .infinity }
        if exponent < -37 { return 0 }
        return exponent >= 0 ? positivePowersOf10[Int(exponent)] : negativePowersOf10[Int(-exponent)]
    }

    private static let positivePowersOf10: [Float] = {
        var powers: [Float] = [1]
        for _ in 1...38 { powers.append(10 * powers.last!) }
        return powers
    }()

    private static let negativePowersOf10: [Float] = {
        var powers: [Float] = [1]
        for _ in 1...37 { powers.append(powers.last! / 10) }
        return powers
    }()

    /// What `strtof` (C locale) reads from the token, as VW's fallback does.
    private static func strtofReading(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> (consumed: Int, value: Float) {
        // strtof reads nothing unless a digit, `.`, `i` (inf) or `n` (nan) follows an optional sign:
        // most string values (`red`) are told apart without a copy.
        var first = start
        if first < end && (bytes[first] == UInt8(ascii: "+") || bytes[first] == UInt8(ascii: "-")) { first += 1 }
        guard first < end else { return (0, 0) }
        let lead = bytes[first] | 0x20
        guard isDigit(bytes[first]) || lead == UInt8(ascii: ".") || lead == UInt8(ascii: "i") || lead == UInt8(ascii: "n") else { return (0, 0) }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: end - start + 1) { text in
            for offset in 0..<(end - start) { text[offset] = CChar(bitPattern: bytes[start + offset]) }
            text[end - start] = 0
            var stop: UnsafeMutablePointer<CChar>? = nil
            let value = strtof(text.baseAddress!, &stop)
            return (stop.map { $0 - text.baseAddress! } ?? 0, value)
        }
    }

    /// How VW reads a value token.
    enum NumberReading: Equatable {
        /// Whole, as a finite number.
        case finite
        /// Not at all: a feature value is then a string value.
        case none
        /// Only its first bytes (`1x`, `1..2`): a label silently, a feature value with a warning and
        /// the rest of the line dropped.
        case partial
        /// Whole, as inf or NaN (`inf`, `nan`, `1e39`).
        case notFinite
        /// Whole, but VW's power of ten wrapped around its `int8_t`: `1e200` is read as 0, `1e999` as 1e-25.
        case exponentWraps
    }

    /// How VW reads the token `start..<end`, with its fast path or `strtof` alike: `+1`, `.5`, `5.`,
    /// `1e-3`, `1E+2`, `0x10` are finite numbers, and so is what VW's fast path reads as 0 (`.`, `-`,
    /// `e5`) or stops early on (`1e` is 1).
    ///
    /// `beforeBar`: the token is a feature value directly followed by `|`, which VW reads with
    /// `strtof` while the canonical line (a space before `|`) goes through its fast path: it is a
    /// number only when both read it whole and finite.
    static func reading(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, beforeBar: Bool = false) -> NumberReading {
        guard start < end else { return .none }
        func classify(_ reading: (consumed: Int, value: Float, wrapped: Bool)) -> NumberReading {
            if reading.consumed == 0 { return .none }
            if reading.consumed < end - start { return .partial }
            if !reading.value.isFinite { return .notFinite }
            return reading.wrapped ? .exponentWraps : .finite
        }
        let fast = classify(vwFloat(bytes, start, end))
        guard beforeBar, fast == .finite else { return fast }
        let slow = classify(vwFloat(bytes, start, end, atTerminator: false))
        return slow == .none ? .partial : slow
    }

    /// Whether `start..<end` is one number that VW reads whole and finite (``reading(_:_:_:beforeBar:)``).
    static func isFloat(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        reading(bytes, start, end) == .finite
    }

    /// Whether `start..<end` is an unsigned decimal integer of at most 9 digits (no sign, no
    /// leading zero), returning its value.
    static func unsignedInteger(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int? {
        let count = end - start
        guard count > 0, count <= 9 else { return nil }
        if count > 1 && bytes[start] == 0x30 { return nil }
        var value = 0
        for index in start..<end {
            guard isDigit(bytes[index]) else { return nil }
            value = value * 10 + Int(bytes[index] &- 0x30)
        }
        return value
    }

    /// Checks the UTF-8 sequence whose lead byte (>= 0x80) is at `index` and returns the offset
    /// past it; throws on invalid UTF-8 and on U+FEFF (the byte order mark vw strips).
    @inline(__always)
    static func skipMultibyte(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int, end: Int) throws(ExampleProblem) -> Int {
        guard let length = UTF8Validation.sequenceLength(bytes, at: index, end: end) else { throw .notUTF8 }
        if bytes[index] == 0xEF && bytes[index + 1] == 0xBB && bytes[index + 2] == 0xBF { throw .byteOrderMark }
        return index + length
    }

    /// A token for an error message: at most 40 bytes, decoded lossily.
    static func quoted(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> String {
        let cut = min(end, start + 40)
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<cut]), as: UTF8.self)
        return "'" + text + (cut < end ? "…'" : "'")
    }
}

extension VWTextSyntax.NumberReading {
    /// What is wrong with a value read this way, for an error message (`"label word " + problem`).
    var problem: String {
        switch self {
        case .finite: "is a number"
        case .none: "is not a number"
        case .partial: "is not a number (VW would read only its first characters)"
        case .notFinite: "is not a finite number (VW reads inf or NaN)"
        case .exponentWraps: "has an exponent out of VW's range (VW's parser would read another number)"
        }
    }
}

/// The lexical pieces of VW's text format, checked on raw bytes.
///
/// Every rule is stricter than VW's own parser (`parse_example_text.cc`, `parse_primitives.h`), so
/// a token accepted here is read by vw as exactly one value, the same on every code path
/// (VW's hand-written float parser and its `strtof` fallback).
enum VWTextSyntax {
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let bar: UInt8 = 0x7C  // |
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C
    static let quote: UInt8 = 0x27  // '
    static let carriageReturn: UInt8 = 0x0D
    static let newline: UInt8 = 0x0A

    /// The largest decimal exponent (of the value, and of a positive exponent written) accepted: every
    /// accepted number is below 10^38 < FLT_MAX, and VW's `fast_pow10(int8_t)` never overflows.
    static let maxDecimalExponent = 38

    @inline(__always) static func isDigit(_ byte: UInt8) -> Bool { byte &- 0x30 < 10 }

    /// Whether an ASCII byte may be part of a name: printable, not space, `:` or `|` (one bit test).
    @inline(__always) static func isNameByte(_ byte: UInt8) -> Bool {
        // Bits 0x21...0x3F but 0x3A, and 0x40...0x7E but 0x7C.
        let mask: UInt64 = byte < 0x40 ? 0xFBFF_FFFE_0000_0000 : 0x6FFF_FFFF_FFFF_FFFF
        return byte < 0x80 && (mask >> UInt64(byte & 0x3F)) & 1 == 1
    }

    @inline(__always) static func isSeparator(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    /// Scans a number at `start` in VW's documented syntax: `-?(digits[.digits*]|.digits)([eE][+-]?digits)?`,
    /// finite as a 32-bit float. Returns the offset just past it, or nil when there is no such number.
    ///
    /// Refused although VW would read something: `+1` (strtof only), `inf`, `nan`, hex, a value or
    /// positive exponent past 10^38 (VW reads inf, or a NaN from `0 × inf`), more than 38 significant
    /// digits (VW's accumulator overflows), exponents of 3 digits, and negative exponents that with the
    /// fraction digits overflow VW's `int8_t` power of ten (`1.5e-99` would become 10^122).
    @inline(__always)
    static func scanFloat(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int? {
        var index = start
        if index < end && bytes[index] == UInt8(ascii: "-") { index += 1 }
        var digits = 0
        var significant = 0
        var integerSignificant = 0
        while index < end, isDigit(bytes[index]) {
            if significant > 0 || bytes[index] != 0x30 { significant += 1; integerSignificant += 1 }
            digits += 1
            index += 1
        }
        var fractionDigits = 0
        if index < end && bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < end, isDigit(bytes[index]) {
                if significant > 0 || bytes[index] != 0x30 { significant += 1 }
                digits += 1
                fractionDigits += 1
                index += 1
            }
        }
        guard digits > 0, significant <= maxDecimalExponent else { return nil }
        if index < end && (bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E")) {
            index += 1
            var negative = false
            if index < end && (bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+")) {
                negative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            var exponent = 0
            var exponentDigits = 0
            while index < end, isDigit(bytes[index]) {
                exponent = exponent * 10 + Int(bytes[index] &- 0x30)
                exponentDigits += 1
                if exponentDigits > 2 { return nil }
                index += 1
            }
            guard exponentDigits > 0 else { return nil }
            if negative {
                // VW computes 10^(exponent - fraction digits (at most 35)) through an int8_t: keep it in range.
                if exponent + min(fractionDigits, 35) > 127 { return nil }
            } else if exponent > maxDecimalExponent || integerSignificant + exponent > maxDecimalExponent {
                return nil
            }
        }
        return index
    }

    /// Whether `start..<end` is exactly one number of ``scanFloat(_:from:to:)``.
    static func isFloat(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        scanFloat(bytes, from: start, to: end) == end
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

    /// Whether `start..<end` is a feature's string value (`name:value`, hashed by VW with its name)
    /// that VW cannot read as a number: not starting with a digit, `.`, `+`, `-`, `inf` or `nan`
    /// in any case (strtof reads those), nor with `e`/`E` followed by a digit or `-` (VW's float
    /// parser reads `e5` as 0), and without `:` or `|` (VW reads a string value up to whitespace,
    /// which would hide a namespace).
    static func isStringValue(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        guard start < end else { return false }
        let first = bytes[start]
        if isDigit(first) || first == UInt8(ascii: ".") || first == UInt8(ascii: "+") || first == UInt8(ascii: "-") { return false }
        if first | 0x20 == UInt8(ascii: "e") {
            guard end - start >= 2 else { return false }
            let second = bytes[start + 1]
            if isDigit(second) || second == UInt8(ascii: "-") || second == UInt8(ascii: "+") { return false }
        }
        if end - start >= 3 {
            let prefix = (bytes[start] | 0x20, bytes[start + 1] | 0x20, bytes[start + 2] | 0x20)
            if prefix == (0x69, 0x6E, 0x66) || prefix == (0x6E, 0x61, 0x6E) { return false }  // inf, nan
        }
        for index in start..<end where bytes[index] == colon || bytes[index] == bar { return false }
        return true
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

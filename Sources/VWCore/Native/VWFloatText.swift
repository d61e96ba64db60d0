import Glibc

/// VW's own reading and printing of floats, reproduced operation for operation: `parse_float`
/// (`parse_primitives.h`, a home-made strtof whose rounding differs from strtof's) with its
/// `fast_pow10` tables, and the `-p` format of `print_result_by_ref` (`global_data.cc`).
enum VWFloatText {
    /// `POW_10_POSITIVE_LOOKUP_TABLE`: 10^0 ... 10^38, each the float product of the one before and 10.
    static let positivePowers: [Float] = {
        var table: [Float] = [1]
        for _ in 1...38 { table.append(10 * table.last!) }
        return table
    }()

    /// `POW_10_NEGATIVE_LOOKUP_TABLE`: entry i is 10^-(37-i), 1 divided by 10 (37-i) times in float.
    static let negativePowers: [Float] = {
        var byExponent: [Float] = [1]
        for _ in 1...37 { byExponent.append(byExponent.last! / 10) }
        return (0..<37).map { byExponent[37 - $0] }
    }()

    /// `fast_pow10`.
    static func pow10(_ exponent: Int8) -> Float {
        if exponent > 38 { return .infinity }
        if exponent < -37 { return 0 }
        return exponent >= 0 ? positivePowers[Int(exponent)] : negativePowers[Int(exponent) + 37]
    }

    /// What `parse_float` reads from `bytes[start..<end]` when it takes its own ("easy") path:
    /// the value and the index after it; nil when VW would hand the text to strtof instead.
    @inline(__always)
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> (value: Float, end: Int)? {
        // Bytes past `end` are VW's line terminator, which is never a digit, '.', 'e' or '-'.
        @inline(__always) func at(_ index: Int) -> UInt8 { index < end ? bytes[index] : 0x0A }
        guard start < end, bytes[start] != 0 else { return nil }
        var p = start
        var sign: Float = 1
        while at(p) == 0x20 { p += 1 }
        if at(p) == UInt8(ascii: "-") {
            sign = -1
            p += 1
        }
        var acc: Float = 0
        while p < end, bytes[p] &- 0x30 < 10 {
            // `acc * 10 + *p++ - '0'`: the character is added, then '0' subtracted, each in float.
            acc = acc * 10 + Float(bytes[p]) - 48
            p += 1
        }
        var decimals = 0
        if at(p) == UInt8(ascii: ".") {
            p += 1
            while p < end, bytes[p] &- 0x30 < 10 {
                if decimals < 35 {
                    acc = acc * 10 + Float(bytes[p] - 0x30)
                    decimals += 1
                }
                p += 1
            }
        }
        var exponent = 0
        if p < end, bytes[p] | 0x20 == UInt8(ascii: "e") {
            p += 1
            var exponentSign = 1
            if p < end, bytes[p] == UInt8(ascii: "-") {
                exponentSign = -1
                p += 1
            }
            while p < end, bytes[p] &- 0x30 < 10 {
                exponent = exponent &* 10 &+ Int(bytes[p] - 0x30)
                p += 1
            }
            exponent *= exponentSign
        }
        guard p == end || bytes[p] == 0x20 || bytes[p] == 0x0A || bytes[p] == 0x09 else { return nil }
        // `static_cast<int8_t>(exp_acc - num_dec)`: wraps as in C.
        acc *= pow10(Int8(truncatingIfNeeded: Int32(truncatingIfNeeded: exponent - decimals)))
        return (sign * acc, p)
    }

    /// `parse_float`'s fallback: strtof over the token `bytes[start..<end]` (copied with a NUL);
    /// the value and how many bytes it read.
    static func strtof(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> (value: Float, count: Int) {
        var copy = Array(bytes[start..<end])
        copy.append(0)
        return copy.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                var stop: UnsafeMutablePointer<CChar>? = nil
                let value = Glibc.strtof(chars.baseAddress!, &stop)
                return (value, stop.map { $0 - UnsafeMutablePointer(mutating: chars.baseAddress!) } ?? 0)
            }
        }
    }

    /// Appends what `vw -p` prints for a scalar: `%.0f` when the value is a whole number (or
    /// infinite), else `%.6f` (iostream `std::fixed` at its default precision). Computed exactly
    /// in integers (a float times 10^6 fits in 64 bits), rounding ties to even as glibc's printf
    /// does; values too large for that go through vsnprintf itself.
    static func appendPrediction(_ value: Float, to output: inout [UInt8]) {
        if value.sign == .minus { output.append(UInt8(ascii: "-")) }
        let magnitude = value.magnitude
        if magnitude.isInfinite {
            output.append(contentsOf: "inf".utf8)
            return
        }
        let whole = floorf(value) == value
        if whole, magnitude < 9.2e18 {
            appendDecimal(UInt64(magnitude), to: &output)
            return
        }
        // magnitude = significand × 2^exponent, the significand < 2^24.
        let normal = magnitude.exponentBitPattern != 0
        let significand = UInt64(magnitude.significandBitPattern) | (normal ? 1 << 23 : 0)
        let exponent = (normal ? Int(magnitude.exponentBitPattern) : 1) - 127 - 23
        guard !whole, exponent < 0 else {
            appendPrintf(magnitude, whole: whole, to: &output)
            return
        }
        let scaled = significand * 1_000_000  // < 2^44
        let shift = -exponent
        var micros: UInt64 = 0
        if shift < 64 {
            micros = scaled >> UInt64(shift)
            let remainder = scaled & ((1 << UInt64(shift)) - 1)
            let half: UInt64 = 1 << UInt64(shift - 1)
            if remainder > half || (remainder == half && micros & 1 == 1) { micros += 1 }
        }
        appendDecimal(micros / 1_000_000, to: &output)
        output.append(UInt8(ascii: "."))
        let fraction = micros % 1_000_000
        var divisor: UInt64 = 100_000
        while divisor > 0 {
            output.append(0x30 + UInt8((fraction / divisor) % 10))
            divisor /= 10
        }
    }

    /// `VW::fmt_float(value, 6)` (`action_score.cc`'s lists): `{:.6f}`, then trailing zeros and a
    /// trailing '.' removed. fmt's exact digits are printf's, so this is the `-p` format trimmed.
    static func appendShortFixed(_ value: Float, to output: inout [UInt8]) {
        let start = output.count
        appendPrediction(value, to: &output)
        guard output[start...].contains(UInt8(ascii: ".")) else { return }
        while output.last == 0x30 { output.removeLast() }
        if output.last == UInt8(ascii: ".") { output.removeLast() }
    }

    static func appendDecimal(_ value: UInt64, to output: inout [UInt8]) {
        if value >= 10 { appendDecimal(value / 10, to: &output) }
        output.append(0x30 + UInt8(value % 10))
    }

    /// `%.0f` or `%.6f` by vsnprintf, for a non-negative value.
    static func appendPrintf(_ value: Float, whole: Bool, to output: inout [UInt8]) {
        // %.0f of the largest float is 39 digits; 64 bytes hold every answer.
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { chars in
            let count = withVaList([Double(value)]) { Int(vsnprintf(chars.baseAddress!, 64, whole ? "%.0f" : "%.6f", $0)) }
            for index in 0..<min(count, 63) { output.append(UInt8(bitPattern: chars[index])) }
        }
    }
}

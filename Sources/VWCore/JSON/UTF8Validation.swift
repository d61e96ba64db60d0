/// UTF-8 as RFC 3629 allows it (no overlong forms, no surrogates, nothing past U+10FFFF): the one
/// check behind the JSON parser's and the VW text grammar's.
enum UTF8Validation {
    /// The length (2–4) of the valid sequence whose lead byte, at `index`, is >= 0x80 and which ends
    /// before `end`; nil when the bytes there are not valid UTF-8.
    @inline(__always)
    static func sequenceLength<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, at index: Int, end: Int) -> Int?
    where Bytes.Index == Int {
        let length: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch bytes[index] {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; upper = 0x9F
        case 0xF0: length = 4; lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; upper = 0x8F
        default: return nil
        }
        guard index + length <= end else { return nil }
        let second = bytes[index + 1]
        guard second >= lower && second <= upper else { return nil }
        for offset in 2..<length where bytes[index + offset] & 0xC0 != 0x80 { return nil }
        return length
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension EventLine {
    /// Milliseconds since the epoch of a UTC time as the logs write it (`2026-11-30T19:21:23.123Z`), or of a
    /// date (`2026-11-30`, midnight UTC); seconds and the fraction are optional. Nil when malformed.
    public static func milliseconds(timestamp text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int32? {
            guard range.upperBound <= bytes.count, bytes[range].allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
            return bytes[range].reduce(0) { $0 * 10 + Int32($1 - 0x30) }
        }
        guard bytes.count >= 10, let year = number(0..<4), bytes[4] == 0x2D, let month = number(5..<7), bytes[7] == 0x2D,
              let day = number(8..<10), (1...12).contains(month), (1...31).contains(day) else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        var milliseconds: Int64 = 0
        if bytes.count > 10 {
            guard bytes.count >= 17, bytes[10] == 0x54 || bytes[10] == 0x20, bytes.last == 0x5A, let hour = number(11..<13),
                  bytes[13] == 0x3A, let minute = number(14..<16), hour < 24, minute < 60 else { return nil }
            parts.tm_hour = hour
            parts.tm_min = minute
            var index = 16
            if bytes[index] == 0x3A {
                guard let second = number(17..<19), second < 61 else { return nil }
                parts.tm_sec = second
                index = 19
            }
            if bytes[index] == 0x2E {
                let digits = bytes[(index + 1)...].prefix { (0x30...0x39).contains($0) }
                guard !digits.isEmpty else { return nil }
                let padded = (Array(digits.prefix(3)) + [0x30, 0x30, 0x30]).prefix(3)
                milliseconds = Int64(padded.reduce(0) { $0 * 10 + Int($1 - 0x30) })
                index += 1 + digits.count
            }
            guard index == bytes.count - 1 else { return nil }
        }
        return Int64(timegm(&parts)) * 1000 + milliseconds
    }
}

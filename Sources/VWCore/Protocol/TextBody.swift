#if canImport(Glibc)
import Glibc
#endif

/// Splits a text/plain request body into examples (each an array of lines).
public enum TextBody {
    /// Returns the examples of `body`, their lines not yet validated; reports the blank lines and encoding problems a body can have.
    ///
    /// A single-line body has one example per line (one trailing newline allowed); a multiline body
    /// separates examples by one or more blank lines. "\r\n" line endings are accepted.
    public static func examples(in body: [UInt8], multiline: Bool) throws(InvalidExample) -> [[Substring]] {
        guard let text = String(validating: body, as: UTF8.self) else {
            throw InvalidExample(index: 0, problem: .notUTF8)
        }
        var lines = splitLines(text, bytes: body)
        if multiline {
            var examples: [[Substring]] = []
            var current: [Substring] = []
            for line in lines {
                if isBlank(line) {
                    if !current.isEmpty { examples.append(current); current = [] }
                } else {
                    current.append(line)
                }
            }
            if !current.isEmpty { examples.append(current) }
            return examples
        }
        if text.utf8.last == 0x0A { lines.removeLast() }
        var examples: [[Substring]] = []
        examples.reserveCapacity(lines.count)
        for (index, line) in lines.enumerated() {
            if line.isEmpty { throw InvalidExample(index: index, problem: .empty) }
            if isBlank(line) { throw InvalidExample(index: index, problem: .whitespaceOnly) }
            examples.append([line])
        }
        return examples
    }

    /// Splits on "\n", dropping one "\r" before each "\n"; an empty text has no lines. `bytes` are `text`'s UTF-8
    /// (it was validated from them, unchanged).
    ///
    /// Scans the bytes with `memchr` and makes each line from byte offsets: stepping a `String.UTF8View` index
    /// byte by byte cost an eighth of a 100-example request's CPU.
    private static func splitLines(_ text: String, bytes: [UInt8]) -> [Substring] {
        let ranges: [Range<Int>] = bytes.withUnsafeBufferPointer { bytes in
            var ranges: [Range<Int>] = []
            guard let origin = bytes.baseAddress, !bytes.isEmpty else { return ranges }
            var start = 0
            while true {
                let rest = bytes.count - start
                guard rest > 0, let found = memchr(origin + start, 0x0A, rest) else {
                    ranges.append(start..<bytes.count)
                    return ranges
                }
                let newline = UnsafeRawPointer(found).assumingMemoryBound(to: UInt8.self) - origin
                var end = newline
                if end > start && bytes[end - 1] == 0x0D { end -= 1 }
                ranges.append(start..<end)
                start = newline + 1
            }
        }
        // `text` is native UTF-8 (made from bytes), so a byte offset indexes it in O(1).
        let view = text.utf8
        return ranges.map { range in
            let lower = view.index(view.startIndex, offsetBy: range.lowerBound)
            let upper = view.index(lower, offsetBy: range.count)
            return text[lower..<upper]
        }
    }

    /// Whether a line is empty or holds only spaces and tabs.
    private static func isBlank(_ line: Substring) -> Bool {
        line.utf8.allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }
}

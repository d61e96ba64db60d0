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
        var lines = splitLines(text)
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

    /// Splits on "\n", dropping one "\r" before each "\n"; an empty text has no lines.
    private static func splitLines(_ text: String) -> [Substring] {
        let bytes = text.utf8
        guard !bytes.isEmpty else { return [] }
        var lines: [Substring] = []
        var start = bytes.startIndex
        var index = start
        while index != bytes.endIndex {
            if bytes[index] == 0x0A {
                var end = index
                if end != start {
                    let previous = bytes.index(before: end)
                    if bytes[previous] == 0x0D { end = previous }
                }
                lines.append(text[start..<end])
                start = bytes.index(after: index)
            }
            bytes.formIndex(after: &index)
        }
        lines.append(text[start..<bytes.endIndex])
        return lines
    }

    /// Whether a line is empty or holds only spaces and tabs.
    private static func isBlank(_ line: Substring) -> Bool {
        line.utf8.allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }
}

import VWCore

/// Appends JSON text to a byte buffer.
struct JSONWriter {
    var bytes: [UInt8]

    init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Appends `s` unchanged; the caller guarantees it is valid JSON text.
    mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Appends `s` unchanged; the caller guarantees it is valid JSON text.
    mutating func raw(_ s: String) {
        bytes.append(contentsOf: s.utf8)
    }

    /// Appends `n` as a JSON integer.
    mutating func integer(_ n: Int) {
        raw(String(n))
    }

    /// Appends `s` as a quoted JSON string, escaping quotes, backslashes and control characters.
    mutating func string(_ s: some StringProtocol) {
        JSONQuoting.append(s, to: &bytes)
    }
}

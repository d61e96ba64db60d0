#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import VWCore

/// One JSON object per line on stderr: `{"ts","level","label","msg",...metadata}`.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    private static let writeLock = Mutex(())

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var writer = JSONWriter(capacity: 256)
        writer.beginObject()
        writer.key("ts"); writer.string(timestamp())
        writer.key("level"); writer.string(event.level.rawValue)
        writer.key("label"); writer.string(label)
        writer.key("msg"); writer.string(event.message.description)
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            writer.key(key); writer.string(value.description)
        }
        writer.endObject()
        var line = writer.bytes
        line.append(UInt8(ascii: "\n"))
        Self.writeLock.withLock { _ in
            line.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = write(2, raw.baseAddress! + offset, raw.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }

    private func timestamp() -> String { Timestamp.now() }
}

/// Makes every log line safe to write whatever a client sent: metadata values (request ids,
/// paths, reasons) have control characters, backslashes and non-ASCII bytes escaped as `\xHH`,
/// so a client cannot start a new log line or forge fields, and `request_id` is capped. For the
/// text format (`key=value ...`), a value with a space, `=` or `"` is also put in double quotes
/// (`"` inside escaped), so `X-Request-Id: x status=200` cannot add a `status` field.
struct SanitizingLogHandler: LogHandler {
    var inner: any LogHandler
    /// Whether values are quoted as the text format needs (the JSON format quotes every value itself).
    var quotesValues = false

    /// Longest `request_id` logged, in bytes (after escaping).
    static let maxRequestIDBytes = 128

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if let metadata = event.metadata {
            var clean: Logger.Metadata = [:]
            for (key, value) in metadata {
                let text = Self.clean("\(value)", limit: key == "request_id" ? Self.maxRequestIDBytes : nil)
                clean[key] = .string(quotesValues ? Self.quotedIfNeeded(text) : text)
            }
            event.metadata = clean
        }
        inner.log(event: event)
    }

    /// `text` in double quotes (each `"` in it as `\"`) when it holds a space, `=` or `"`, or is empty.
    static func quotedIfNeeded(_ text: String) -> String {
        guard text.isEmpty || text.utf8.contains(where: { $0 == 0x20 || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\"") }) else { return text }
        var out = "\""
        for character in text.unicodeScalars {
            if character == "\"" { out.append("\\") }
            out.unicodeScalars.append(character)
        }
        return out + "\""
    }

    /// Printable ASCII as is (a backslash doubled), every other byte as `\xHH`; cut at `limit` bytes.
    static func clean(_ text: String, limit: Int? = nil) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            var piece: [UInt8]
            if byte == UInt8(ascii: "\\") {
                piece = [byte, byte]
            } else if byte >= 0x20 && byte < 0x7f {
                piece = [byte]
            } else {
                piece = [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 0xf)]]
            }
            if let limit, out.count + piece.count > limit { break }
            out.append(contentsOf: piece)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

import Logging
import Synchronization
import Testing
@testable import VWFCGI

/// Records what reaches the wrapped handler.
private struct RecordingHandler: LogHandler {
    let box: Box
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        box.events.withLock { $0.append(event.metadata ?? [:]) }
    }
}

private final class Box: Sendable {
    let events = Mutex<[Logger.Metadata]>([])
}

struct LogSanitizingTests {
    @Test func controlAndNonASCIIBytesAreEscaped() {
        #expect(SanitizingLogHandler.clean("abc-123_X") == "abc-123_X")
        #expect(SanitizingLogHandler.clean("a\r\nlevel=error msg=forged") == "a\\x0d\\x0alevel=error msg=forged")
        #expect(SanitizingLogHandler.clean("tab\there\u{0}\u{1b}[31m") == "tab\\x09here\\x00\\x1b[31m")
        #expect(SanitizingLogHandler.clean("é") == "\\xc3\\xa9")
        #expect(SanitizingLogHandler.clean("back\\slash") == "back\\\\slash")
        #expect(SanitizingLogHandler.clean("\u{7f}") == "\\x7f")
    }

    @Test func requestIDIsCappedAt128Bytes() {
        let box = Box()
        var logger = Logger(label: "t") { _ in SanitizingLogHandler(inner: RecordingHandler(box: box)) }
        logger.logLevel = .trace
        let long = String(repeating: "a", count: 1000)
        logger.warning("request failed", metadata: ["request_id": "\(long)", "path": "/x\ny"])
        logger.warning("request failed", metadata: ["request_id": "\(String(repeating: "\n", count: 100))"])
        let events = box.events.withLock { $0 }
        #expect(events.count == 2)
        #expect(events[0]["request_id"]?.description == String(repeating: "a", count: 128))
        #expect(events[0]["path"]?.description == "/x\\x0ay")
        let escaped = events[1]["request_id"]?.description ?? ""
        #expect(escaped.utf8.count <= 128 && escaped.utf8.count == 128 && !escaped.contains("\n"))
    }

    @Test func textFormatQuotesValuesThatWouldForgeFields() {
        let box = Box()
        var logger = Logger(label: "t") { _ in SanitizingLogHandler(inner: RecordingHandler(box: box), quotesValues: true) }
        logger.logLevel = .trace
        logger.info("request", metadata: ["request_id": "x status=200 path=/healthz", "path": "/v1/models", "q": "say \"hi\"", "e": ""])
        let event = box.events.withLock { $0[0] }
        #expect(event["request_id"]?.description == #""x status=200 path=/healthz""#)
        #expect(event["path"]?.description == "/v1/models")
        #expect(event["q"]?.description == #""say \"hi\"""#)
        #expect(event["e"]?.description == #""""#)
        // The JSON format quotes every value itself: nothing added.
        let jsonBox = Box()
        var json = Logger(label: "t") { _ in SanitizingLogHandler(inner: RecordingHandler(box: jsonBox)) }
        json.logLevel = .trace
        json.info("request", metadata: ["request_id": "x status=200"])
        #expect(jsonBox.events.withLock { $0[0] }["request_id"]?.description == "x status=200")
    }
}

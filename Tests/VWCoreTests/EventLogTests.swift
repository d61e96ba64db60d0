#if canImport(Glibc)
import Glibc
#endif
import Testing
import Synchronization
@testable import VWCore

/// A fresh directory under /tmp, removed by `remove()`.
struct ScratchDirectory {
    let path: String

    init() {
        var template = Array("/tmp/vwfcgi-loop-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    func remove() { _ = system("rm -rf '\(path)'") }
}

func readText(_ path: String) -> String {
    String(decoding: (try? LoopFiles.read(path)) ?? [], as: UTF8.self)
}

func appendRaw(_ text: String, to path: String) {
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    _ = text.withCString { write(fd, $0, strlen($0)) }
    close(fd)
}

struct EventLineTests {
    @Test func decisionRewardActivationLines() {
        let context = Array(#"{"User":{"id":"a"},"_multi":[{"A":{"t":"x"}},{"A":{"t":"y"}}]}"#.utf8)
        let decision = EventLine.decision(eventId: "e-1", timestampMilliseconds: 1_764_530_483_123, actions: [2, 1],
                                          probabilities: [0.75, 0.25], context: context, modelVersion: "abc", deferred: true)
        #expect(String(decoding: decision, as: UTF8.self)
            == #"{"EventId":"e-1","Timestamp":"2025-11-30T19:21:23.123Z","Version":"1","a":[2,1],"c":{"User":{"id":"a"},"_multi":[{"A":{"t":"x"}},{"A":{"t":"y"}}]},"p":[0.75,0.25],"VWState":{"m":"abc"},"DeferredAction":true}"#)
        #expect(String(decoding: EventLine.reward(eventId: "e\"1", value: -2, timestampMilliseconds: 5), as: UTF8.self)
            == #"{"EventId":"e\"1","v":-2.0,"Timestamp":"1970-01-01T00:00:00.005Z"}"#)
        #expect(String(decoding: EventLine.activation(eventId: "e", timestampMilliseconds: 0), as: UTF8.self)
            == #"{"EventId":"e","ActionTaken":true,"Timestamp":"1970-01-01T00:00:00.000Z"}"#)
        // Every builder's output is valid JSON.
        #expect((try? JSONParser.parse(decision)) != nil)
    }
}

struct EventLogTests {
    @Test func groupCommitWritesEveryLineOnceWithFewerFsyncs() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "pod-1")
        let threads = 8, perThread = 25
        // Hold the first leader until every thread has queued an append, so batching is certain, not timing luck.
        // (Enqueueing signals nothing the test can wait on, so the hook polls, bounded.)
        let held = Mutex(false)
        log.setBeforeBatch {
            let first = held.withLock { wasHeld in
                defer { wasHeld = true }
                return !wasHeld
            }
            if first {
                let deadline = Deadline.after(.seconds(10))
                let pause = Condition()
                while log.appendsQueued < threads && !deadline.hasPassed { pause.wait(until: .after(.milliseconds(1))) { false } }
            }
        }
        let done = Condition()
        nonisolated(unsafe) var finished = 0
        nonisolated(unsafe) var errors = 0
        for t in 0..<threads {
            DetachedThread.start(name: "append-\(t)") {
                for i in 0..<perThread {
                    var lines = [EventLine.reward(eventId: "t\(t)-\(i)", value: Double(i), timestampMilliseconds: 0)]
                    if i % 5 == 0 { lines.append(EventLine.activation(eventId: "t\(t)-\(i)", timestampMilliseconds: 0)) }
                    do { try log.append(lines: lines) } catch { done.broadcast { errors += 1 } }
                }
                done.broadcast { finished += 1 }
            }
        }
        #expect(done.wait(until: .after(.seconds(30))) { finished == threads })
        #expect(errors == 0)
        var reader = try LogReader(logDirectory: scratch.path + "/m/log")
        let (records, skipped) = try reader.readNew()
        #expect(skipped.isEmpty)
        var counts: [String: Int] = [:]
        for record in records { counts[String(decoding: record.line, as: UTF8.self), default: 0] += 1 }
        #expect(records.count == threads * perThread + threads * perThread / 5)
        #expect(counts.count == records.count, "a line appears twice")
        for t in 0..<threads {
            for i in 0..<perThread {
                let line = String(decoding: EventLine.reward(eventId: "t\(t)-\(i)", value: Double(i), timestampMilliseconds: 0), as: UTF8.self)
                #expect(counts[line] == 1)
            }
        }
        #expect(log.fsyncCount <= threads * perThread - (threads - 2))
        #expect(log.fsyncCount >= 2)
    }

    @Test func rotatesBySizeAndAgeAndNumbersSegmentsAsNumbers() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let line = EventLine.reward(eventId: "e", value: 1, timestampMilliseconds: 0)  // 61 bytes + "\n"
        let bySize = try EventLog(stateDirectory: scratch.path, name: "s", instance: "a", maxSegmentBytes: 130)
        for _ in 0..<5 { try bySize.append(lines: [line]) }
        let sizeNames = LoopFiles.list(scratch.path + "/s/log").sorted()
        #expect(sizeNames == ["a-1.dsjson", "a-2.dsjson", "a-3.dsjson"])
        #expect(readText(scratch.path + "/s/log/a-1.dsjson").utf8.count == 2 * (line.count + 1))

        let byAge = try EventLog(stateDirectory: scratch.path, name: "t", instance: "a", maxSegmentAge: .zero)
        for i in 1...11 { try byAge.append(lines: [EventLine.reward(eventId: "e\(i)", value: 1, timestampMilliseconds: 0)]) }
        #expect(byAge.currentSegment == SegmentName(instance: "a", seq: 11))
        // Reopening starts a new segment after the highest; reading follows numeric order (9, 10, 11, 12).
        let reopened = try EventLog(stateDirectory: scratch.path, name: "t", instance: "a")
        try reopened.append(lines: [EventLine.reward(eventId: "e12", value: 1, timestampMilliseconds: 0)])
        #expect(reopened.currentSegment.seq == 12)
        var reader = try LogReader(logDirectory: scratch.path + "/t/log")
        let ids = try reader.readNew().records.map(\.eventId)
        #expect(ids == (1...12).map { "e\($0)" })
    }

    @Test func unwritableDirectoryThrowsAClearError() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        // A directory where the segment should be: creating it fails like an unwritable directory would.
        mkdir(scratch.path + "/m/log/a-1.dsjson", 0o755)
        #expect(throws: EventLogError.self) { try log.append(lines: [Array("{\"EventId\":\"x\"}".utf8)]) }
        // The log moves on to the next segment and works again.
        try log.append(lines: [Array("{\"EventId\":\"x\"}".utf8)])
        #expect(readText(scratch.path + "/m/log/a-2.dsjson") == "{\"EventId\":\"x\"}\n")
        #expect(throws: EventLogError.self) { try log.append(lines: [Array("a\nb".utf8)]) }
        let blocked = scratch.path + "/file"
        appendRaw("", to: blocked)
        _ = creat(blocked, 0o644)
        #expect(throws: EventLogError.self) { _ = try EventLog(stateDirectory: blocked, name: "m", instance: "a") }
    }
}

struct LogReaderTests {
    @Test func tornLastLineIsSkippedAndReportedOnceTheWriterMovedOn() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let log = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        try log.append(lines: [EventLine.reward(eventId: "e1", value: 1, timestampMilliseconds: 0),
                               EventLine.reward(eventId: "e2", value: 1, timestampMilliseconds: 0)])
        let segment = scratch.path + "/m/log/a-1.dsjson"
        appendRaw("{\"EventId\":\"e3\",\"v\":", to: segment)  // kill -9 mid-line
        var reader = try LogReader(logDirectory: scratch.path + "/m/log")
        var batch = try reader.readNew()
        #expect(batch.records.map(\.eventId) == ["e1", "e2"])
        #expect(batch.skipped.isEmpty)  // newest segment: its writer may still finish the line
        let clean = reader.offsets["a-1.dsjson"]!
        // A restarted writer opens a new segment; the torn tail is now final.
        log.close()
        let restarted = try EventLog(stateDirectory: scratch.path, name: "m", instance: "a")
        try restarted.append(lines: [EventLine.reward(eventId: "e4", value: 1, timestampMilliseconds: 0)])
        appendRaw("not json\n", to: scratch.path + "/m/log/a-2.dsjson")
        try restarted.append(lines: [EventLine.reward(eventId: "e5", value: 1, timestampMilliseconds: 0)])
        batch = try reader.readNew()
        #expect(batch.records.map(\.eventId) == ["e4", "e5"])
        #expect(batch.skipped.count == 2)
        #expect(batch.skipped.first == SkippedLine(segment: SegmentName(instance: "a", seq: 1), offset: clean, length: 20,
                                                  reason: "torn last line (no final newline)", kind: .torn))
        #expect(batch.skipped.last?.segment.seq == 2)
        // Resumes: nothing new, nothing reported twice.
        batch = try reader.readNew()
        #expect(batch.records.isEmpty && batch.skipped.isEmpty)
        // A new reader from the saved offsets sees nothing either; from scratch, everything once more.
        var resumed = LogReader(directory: reader.directory, offsets: reader.offsets)
        #expect(try resumed.readNew().records.isEmpty)
        var fresh = LogReader(directory: reader.directory)
        #expect(try fresh.readNew().records.count == 4)
    }
}

// libFuzzer target: the join's restore and step path (Joiner, JoinState, LogReader, StateDirectory) on
// arbitrary state files and log segments, next to a segment of valid, acknowledged events.
//
// Input: 4 header bytes, then parts separated by the line "~~~\n" (a part keeps its own final "\n";
// a part without one ends in a torn line):
//
//   part 0       join-state.json     written when flags bit 0 is set
//   part 1       join-journal.jsonl  written when flags bit 1 is set
//   parts 2...4  log segment bodies  fz-1, fz-2, fz-3.dsjson (one instance: the older ones' torn tails are
//                                    torn), or aa-1, fz-1, zz-1.dsjson (three instances, read around ack-1)
//
//   byte 0 flags: 1 snapshot, 2 journal, 4 restarts (a new Joiner on the same directory) before an
//                 intermediate step and between the far-future steps, 8 the far-future steps run with
//                 writersStopped, 16 aggregation earliest, 32 small caps (byte 3), 64 fuzzed segments in three
//                 instances, 128 fuzzed segments appear only after the first step
//   byte 1       bits 0-1: intermediate steps - 1; bits 2-3: the intermediate step the first restart comes before;
//                bit 4: each restart follows a crash after the last step's joined file was written but before its
//                journal record landed (the record is cut off the journal)
//   byte 2       time between intermediate steps, in units of 20 ms (the reward wait is 1 s)
//   byte 3       bits 0-2: max_pending - 1, bits 3-5: max_orphans - 1 (with flag 32);
//                64: reward range ±1e308; 128: reward wait 0
//
// Before the fuzzed files, the target writes log/ack-1.dsjson itself: valid lines of acknowledged events
// (decisions, rewards before and after their decision, deferred decisions activated by an activation or a
// reward, a :learn line, a decision with a probability below min_probability, a deferred decision never
// activated). It runs the intermediate steps (times from byte 2), maybe restarts, then two steps 200 days
// later (everything due, waiting orphans and deferred decisions expired). Checks:
//
// * the Joiner never traps and never throws (the disk is fine);
// * every step's joined file holds exactly the step's `joined` ids, each line a JSON object with a string
//   EventId; the joined files together hold as many lines as all steps joined, and no temporary is left;
// * "at most once": no acknowledged event id is joined twice;
// * when the join starts from no saved state, or from one the Joiner rejected (`restoreProblem`) and moved
//   aside: joined files are numbered 1...n; a restart restores the Joiner's own state without a problem and
//   with the same counts (joined, pending, orphans); and, unless small caps drop the oldest, "exactly once":
//   every acknowledged event that must be joined is, once. A syntactically valid fuzzed state is trusted (it
//   may claim offsets past events, or pending decisions that never come due), so then only "at most once"
//   holds.
//
// Acknowledged ids that a fuzzed segment also uses in a decision (`"c"`) or `:learn` line are left out of the
// checks: the log itself then holds two events under one id.
//
// The scratch directory is mkdtemp'd under $TMPDIR (default /tmp) and removed after each input (not after a
// failure: it is named in the message). FUZZ_JOIN_SEED_OUT=<file> writes, after the intermediate steps, a
// new input with the Joiner's own snapshot and journal as parts 0 and 1 (how the seed corpus was made);
// FUZZ_JOIN_VERBOSE=1 prints what each input did (whose state, how many joined, the acknowledged counts).
#if canImport(Glibc)
import Glibc
#endif
@testable import VWCore

let separator: [UInt8] = Array("~~~\n".utf8)
let ackSegment = "ack-1.dsjson"
let start: Int64 = 1_000_000
let farFuture: Int64 = start + 200 * 86_400_000

/// The acknowledged events: the lines of log/ack-1.dsjson, the ids that must be joined exactly once, and the one
/// that may be joined (a deferred decision activated only by a fuzzed line).
struct Acknowledged {
    let segment: [UInt8]
    let mustJoin: [String]
    let mayJoin: [String]

    static let shared = Acknowledged()

    private init() {
        let context = Array(#"{"User":{"id":"u"},"_multi":[{"Action":{"t":"a"}},{"Action":{"t":"b"}},{"Action":{"t":"c"}}]}"#.utf8)
        func decision(_ id: String, deferred: Bool = false, probabilities: [Double] = [0.8, 0.1, 0.1]) -> [UInt8] {
            EventLine.decision(eventId: id, timestampMilliseconds: 1_764_530_483_000, actions: [2, 1, 3], probabilities: probabilities,
                               context: context, modelVersion: "v1", deferred: deferred)
        }
        func reward(_ id: String, _ value: Double) -> [UInt8] {
            EventLine.reward(eventId: id, value: value, timestampMilliseconds: 1_764_530_484_000)
        }
        let lines: [[UInt8]] = [
            reward("ack.reward-first", 0.5),
            decision("ack.plain"),
            decision("ack.rewarded"),
            reward("ack.rewarded", 0.25),
            reward("ack.rewarded", 2),
            decision("ack.reward-first"),
            decision("ack.deferred-activated", deferred: true),
            decision("ack.deferred-rewarded", deferred: true),
            decision("ack.deferred-never", deferred: true),
            EventLine.activation(eventId: "ack.deferred-activated", timestampMilliseconds: 1_764_530_485_000),
            reward("ack.deferred-rewarded", -1),
            EventLine.learn(eventId: "ack.learn", example: "1 | x:1", timestampMilliseconds: 1_764_530_486_000),
            decision("ack.low-probability", probabilities: [0.00001, 0.5, 0.49999]),
            EventLine.activation(eventId: "ack.plain", timestampMilliseconds: 1_764_530_487_000),
            // A multislot decision, one slot's reward before it and one after (waiting under their slot's key).
            EventLine.slotReward(eventId: "ack.multislot", slotId: "top", value: 1, timestampMilliseconds: 1_764_530_483_000),
            EventLine.slotsDecision(eventId: "ack.multislot", timestampMilliseconds: 1_764_530_483_000,
                                    slots: [(id: "top", actions: [1, 0], probabilities: [0.9, 0.1]), (id: "side", actions: [0], probabilities: [1])],
                                    context: Array(#"{"U":{"id":"u"},"_multi":[{"A":{"t":"a"}},{"A":{"t":"b"}}],"_slots":[{"_id":"top"},{"_id":"side"}]}"#.utf8),
                                    modelVersion: "v1"),
            EventLine.slotReward(eventId: "ack.multislot", slotId: "side", value: 0.5, timestampMilliseconds: 1_764_530_484_000),
        ]
        segment = lines.flatMap { $0 + [0x0A] }
        mustJoin = ["ack.plain", "ack.rewarded", "ack.reward-first", "ack.deferred-activated", "ack.deferred-rewarded", "ack.learn",
                    "ack.low-probability", "ack.multislot"]
        mayJoin = ["ack.deferred-never"]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 4 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var run = JoinRun(header: Array(bytes[0..<4]), parts: split(bytes[4...]))
    run.run()
    return 0
}

func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}

/// `bytes` cut at every `separator`.
func split(_ bytes: ArraySlice<UInt8>) -> [[UInt8]] {
    var parts: [[UInt8]] = []
    var current: [UInt8] = []
    var index = bytes.startIndex
    while index < bytes.endIndex {
        if bytes[index...].starts(with: separator) {
            parts.append(current)
            current = []
            index += separator.count
        } else {
            current.append(bytes[index])
            index += 1
        }
    }
    parts.append(current)
    return parts
}

struct JoinRun {
    let flags: UInt8
    let header: [UInt8]
    let snapshot: [UInt8]?
    let journal: [UInt8]?
    let segments: [(name: String, body: [UInt8])]
    let settings: JoinSettings
    let steps: Int
    let restartBefore: Int?
    let crash: Bool
    let delta: Int64
    let scratch: String
    let model: String

    /// Event ids joined, over all steps of all joiners, with how often.
    var joinedCounts: [String: Int] = [:]
    var joinedLines = 0
    /// The journal's size before the last step (where a crash before its record leaves it).
    var journalBeforeLastStep: Int?
    /// Restarts after a journal record was cut off.
    var crashes = 0

    init(header: [UInt8], parts: [[UInt8]]) {
        self.header = header
        flags = header[0]
        snapshot = flags & 1 != 0 ? parts[0] : nil
        journal = flags & 2 != 0 && parts.count > 1 ? parts[1] : nil
        let names = flags & 64 != 0 ? ["aa-1.dsjson", "fz-1.dsjson", "zz-1.dsjson"] : ["fz-1.dsjson", "fz-2.dsjson", "fz-3.dsjson"]
        segments = parts.dropFirst(2).prefix(3).enumerated().map { (names[$0.offset], $0.element) }
        var settings = JoinSettings(rewardWait: header[3] & 128 != 0 ? .zero : .seconds(1))
        if flags & 16 != 0 { settings.aggregation = .earliest }
        if flags & 32 != 0 {
            settings.maxPending = 1 + Int(header[3] & 7)
            settings.maxOrphans = 1 + Int(header[3] >> 3 & 7)
        }
        if header[3] & 64 != 0 { settings.rewardRange = -1e308...1e308 }
        self.settings = settings
        steps = 1 + Int(header[1] & 3)
        restartBefore = flags & 4 != 0 ? Int(header[1] >> 2 & 3) : nil
        crash = header[1] & 16 != 0
        delta = Int64(header[2]) * 20

        let temporary = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((temporary + "/vwfcgi-fuzzjoin.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("FuzzJoin: mkdtemp failed: \(String(cString: strerror(errno)))") }
        scratch = String(cString: made)
        model = scratch + "/m"
    }

    mutating func run() {
        makeDirectory(model)
        makeDirectory(model + "/log")
        write(model + "/log/" + ackSegment, Acknowledged.shared.segment)
        if let snapshot { write(model + "/" + Joiner.snapshotName, snapshot) }
        if let journal { write(model + "/" + Joiner.journalName, journal) }
        let lateSegments = flags & 128 != 0
        if !lateSegments { writeSegments() }

        var joiner = open()
        let restoreProblem = joiner.restoreProblem
        // The join's state is the Joiner's own: none was given, or it was rejected and moved aside.
        let own = (snapshot == nil && !(journal ?? []).contains(0x0A)) || restoreProblem != nil
        var now = start
        for index in 0..<steps {
            if restartBefore == index { joiner = restart(joiner, strict: own) }
            step(joiner, now: now, writersStopped: false)
            if index == 0 && lateSegments { writeSegments() }
            now += delta
        }
        if let out = getenv("FUZZ_JOIN_SEED_OUT") { emitSeed(to: String(cString: out)) }
        let stopped = flags & 8 != 0
        step(joiner, now: farFuture, writersStopped: stopped)
        if restartBefore != nil { joiner = restart(joiner, strict: own) }
        step(joiner, now: farFuture + 1, writersStopped: stopped)
        step(joiner, now: farFuture + 2, writersStopped: stopped)
        checkJoinedFiles(strict: own)
        checkAcknowledged(exactlyOnce: own && flags & 32 == 0)
        if getenv("FUZZ_JOIN_VERBOSE") != nil {
            let acknowledged = Acknowledged.shared.mustJoin.map { "\($0)=\(joinedCounts[$0, default: 0])" }
            print("FuzzJoin: \(own ? "own state" : "fuzzed state trusted")\(restoreProblem.map { " (\($0))" } ?? ""), "
                  + "\(crashes) crashes, \(joinedLines) lines joined, pending \(joiner.pendingCount), orphans \(joiner.orphanCount); \(acknowledged.joined(separator: " "))")
        }
        removeTree(scratch)
    }

    // MARK: Steps

    func open() -> Joiner {
        do {
            return try Joiner(stateDirectory: scratch, name: "m", settings: settings)
        } catch {
            fatalError("invariant broken: Joiner(stateDirectory:) threw: \(error.message) (scratch \(scratch))")
        }
    }

    /// A new Joiner on the state the old one left (with `crash`, less the last step's journal record); from the
    /// Joiner's own state, it restores without a problem and, without a crash, nothing changes. (A trusted fuzzed
    /// journal may be inconsistent across records, e.g. a later record lowering next_order below a pending
    /// decision's order: the Joiner's next record then fails `apply`'s checks and the restart moves the state
    /// aside, which is its documented recovery.)
    mutating func restart(_ old: Joiner, strict: Bool) -> Joiner {
        let counts = (old.joinedCount, old.pendingCount, old.orphanCount)
        var crashed = false
        if crash, let size = journalBeforeLastStep, let now = fileSize(model + "/" + Joiner.journalName), now > size {
            if truncate(model + "/" + Joiner.journalName, off_t(size)) != 0 {
                fatalError("FuzzJoin: truncate the journal: \(String(cString: strerror(errno)))")
            }
            crashed = true
            crashes += 1
        }
        let new = open()
        if strict {
            check(new.restoreProblem == nil, "the Joiner cannot restore the state it wrote: \(new.restoreProblem!) (scratch \(scratch))")
        }
        if strict && !crashed {
            check((new.joinedCount, new.pendingCount, new.orphanCount) == counts,
                  "restart changed (joined, pending, orphans) from \(counts) to \((new.joinedCount, new.pendingCount, new.orphanCount)) (scratch \(scratch))")
        }
        return new
    }

    mutating func step(_ joiner: Joiner, now: Int64, writersStopped: Bool) {
        journalBeforeLastStep = fileSize(model + "/" + Joiner.journalName)
        let result: JoinStep
        do {
            result = try joiner.step(nowMilliseconds: now, writersStopped: writersStopped)
        } catch {
            fatalError("invariant broken: step(nowMilliseconds: \(now)) threw: \(error.message) (scratch \(scratch))")
        }
        guard let file = result.file else {
            check(result.joined.isEmpty, "step joined \(result.joined.count) events without a file")
            return
        }
        check(!result.joined.isEmpty, "step wrote \(file) without joining anything")
        let ids = joinedIDs(joiner.joinedDirectory + "/" + file)
        check(ids == result.joined, "\(file) holds \(ids), the step joined \(result.joined) (scratch \(scratch))")
        for id in ids { joinedCounts[id, default: 0] += 1 }
        joinedLines += ids.count
    }

    // MARK: Checks

    /// The event ids of a joined file's lines, each checked to be a JSON object with a string EventId.
    func joinedIDs(_ path: String) -> [String] {
        guard let bytes = read(path) else { fatalError("invariant broken: joined file \(path) is missing") }
        check(bytes.last == 0x0A, "joined file \(path) does not end with a newline")
        return bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map { line in
            guard let value = try? JSONParser.parse(Array(line), maxDepth: 64), case .object = value,
                  let id = value[member: "EventId"]?.stringValue else {
                fatalError("invariant broken: joined line is not an event: \(String(decoding: line, as: UTF8.self)) (scratch \(scratch))")
            }
            return id
        }
    }

    func checkJoinedFiles(strict: Bool) {
        let names = LoopFiles.list(model + "/joined")
        check(!names.contains { $0.hasPrefix(".") }, "a temporary joined file was left: \(names) (scratch \(scratch))")
        var lines = 0
        for name in names { lines += joinedIDs(model + "/joined/" + name).count }
        check(lines == joinedLines, "the joined files hold \(lines) lines, the steps joined \(joinedLines) (scratch \(scratch))")
        if strict {
            let numbers = Joiner.joinedFiles(in: model + "/joined")
            check(numbers == Array(1..<(numbers.count + 1)) && numbers.count == names.count,
                  "joined files are not 1...n: \(names.sorted()) (scratch \(scratch))")
        }
    }

    func checkAcknowledged(exactlyOnce: Bool) {
        let acknowledged = Acknowledged.shared
        let reused = reusedIDs()
        for id in acknowledged.mustJoin + acknowledged.mayJoin where !reused.contains(id) {
            let count = joinedCounts[id, default: 0]
            check(count <= 1, "acknowledged event \(id) joined \(count) times (scratch \(scratch))")
            if exactlyOnce && acknowledged.mustJoin.contains(id) {
                check(count == 1, "acknowledged event \(id) was never joined (scratch \(scratch))")
            }
        }
    }

    /// Acknowledged ids a fuzzed segment's line uses for a decision or `:learn` line.
    func reusedIDs() -> Set<String> {
        var ids: Set<String> = []
        for (_, body) in segments {
            for line in body.split(separator: 0x0A) {
                guard let value = try? JSONParser.parse(Array(line), maxDepth: 64), let id = value[member: "EventId"]?.stringValue,
                      value[member: "c"] != nil || value[member: "Learn"]?.stringValue != nil else { continue }
                ids.insert(id)
            }
        }
        return ids
    }

    // MARK: Files

    func writeSegments() {
        for (name, body) in segments { write(model + "/log/" + name, body) }
    }

    /// A new input: this one's header with the snapshot and journal flags, the Joiner's state files, the fuzzed segments.
    func emitSeed(to path: String) {
        var input = header
        input[0] |= 3
        input += read(model + "/" + Joiner.snapshotName) ?? []
        input += separator + (read(model + "/" + Joiner.journalName) ?? [])
        for (_, body) in segments { input += separator + body }
        write(path, input)
    }

    func makeDirectory(_ path: String) {
        if mkdir(path, 0o755) != 0 { fatalError("FuzzJoin: mkdir \(path): \(String(cString: strerror(errno)))") }
    }

    func write(_ path: String, _ bytes: [UInt8]) {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { fatalError("FuzzJoin: create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        bytes.withUnsafeBytes { raw in
            do throws(FileIO.Failure) { try FileIO.writeAll(fd, raw) } catch { fatalError("FuzzJoin: write \(path): errno \(error.code)") }
        }
    }

    func fileSize(_ path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    func read(_ path: String) -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        return try? FileIO.readToEnd(fd)
    }
}

/// Removes `path` and everything under it (never following a symlink).
func removeTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if info.st_mode & S_IFMT == S_IFDIR {
        for name in LoopFiles.list(path) { removeTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

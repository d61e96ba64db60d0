// Over 400 lines on purpose: one type, the join's state machine and its crash-safe files, whose private state
// (pending, orphans, queues, carried, journal) is what keeps each acknowledged event joined exactly once.
#if canImport(Glibc)
import Glibc
#endif

/// Joins a model's logged decisions with their rewards into VW dsjson training lines (SPEC §8.5, §8.9).
///
/// ## Joined line
/// One line per decision, members in this order:
/// `{"_label_cost":C,"_label_probability":P,"_label_Action":A,"_labelIndex":A-1,"o":[...],"Timestamp","Version","EventId","a","c","p","VWState"}`
/// * `C` = -(the event's reward): its rewards, each clipped to the reward range and aggregated (added, or ignored
///   after the first) by the `aggregation` in force when it was read, the result clipped again; or -`defaultReward`
///   when none came (`0.0` written for zero).
/// * `A` = the chosen action, the first of `"a"` (1-based); `P` = the first of `"p"`, its source text, or
///   `minProbability` when it is below it (counted).
/// * `"o"`: `[{"v":r}, ...]`: the rewards read (clipped), at most ``RewardTally/keep`` of them; none for an event
///   with several when the model's pending decisions (or orphans) already list ``ListedRewards/budget``.
/// * The interaction members are copied from the decision line (`"Version"` is `"1"` when missing or not a string).
///
/// ## Bounded memory and writes
/// A pending decision is a reference into the log (segment, offset, length) with its reward tally; its line is
/// read back from the segment when it is joined (and must still parse with the same event id). An orphan (rewards
/// without a decision yet) is a tally under the 64-bit key of its event id. `maxPending`/`maxOrphans` cap both;
/// the oldest go first, counted. Due decisions are found in arrival order (``PendingTable``'s cursors, and a queue of
/// activated deferred decisions): a step costs what it reads and joins, not what is pending.
///
/// ## Files and crash safety (each event joined exactly once)
/// * `joined/<seq>.dsjson`: each step that joins anything writes one new, immutable file, `seq` increasing from 1:
///   written as `.<seq>.dsjson.tmp`, fsynced, renamed, directory fsynced.
/// * `join-journal.jsonl`: one record per step *after* its joined file is durable: the per-segment offsets that
///   moved and the current form of every pending decision and orphan the step touched (or their removal)
///   (``JoinState/record(offsets:keys:)``), fsynced. `join-state.json`: a snapshot of everything, written atomically
///   when the journal outgrows the last snapshot, as records of about 1 MiB (``JoinState/snapshot(piece:emit:)``:
///   never held whole, nor parsed whole); the journal is then emptied (records at or before the snapshot's step are
///   ignored, so a crash in between is harmless).
/// * Restore: the snapshot's records, then the journal's, in order, read 4 MiB at a time; a torn last journal
///   record (no "\n") is cut off, a snapshot must end with a complete one. A snapshot or
///   journal that cannot be used (corrupt, not a regular file) is moved aside as `*.corrupt-<unix time>`, reported
///   (`restoreProblem`), and the join starts over from the segments' beginnings: every event id found in a joined
///   file is then ignored when read again, so nothing acknowledged is lost and nothing is joined twice.
/// * Joined files numbered at or past the state's next seq were written by a step whose record never landed:
///   their event ids are remembered and ignored while the log is read again from the older offsets.
/// * A step whose joined file cannot be written (disk full) throws; its due decisions are kept and written by the
///   next step, and nothing is journaled until they are.
///
/// Not thread-safe: one joiner (thread) per model and state directory.
public final class Joiner {
    public let modelDirectory: String
    public let joinedDirectory: String
    public var settings: JoinSettings
    static let snapshotName = "join-state.json"
    static let journalName = "join-journal.jsonl"

    private let directory: StateDirectory
    private let joinedFiles: StateDirectory
    private var reader: LogReader
    private var state = JoinState()
    /// Activated deferred decisions by activation time (the others are found in `state.pending`'s arrival order).
    private var activatedQueue = KeyQueue()
    /// Due decisions whose joined file could not be written yet.
    private var carried: [(key: EventKey, decision: PendingDecision)] = []
    /// Keys and offsets changed since the last journal record.
    private var touched: Set<EventKey> = []
    /// Event ids found in joined files the persisted state did not know of (see Recovery); kept until the log is read to its end.
    private var recovered: Set<EventKey> = []
    private var journal: Int32 = -1
    private var journalBytes = 0
    private var snapshotBytes = 0
    /// Why the saved state could not be used (it was moved aside), nil when it was.
    public private(set) var restoreProblem: String?

    /// Joined lines so far (from the state, plus recovered files).
    public var joinedCount: Int { state.joined }
    /// Decisions waiting for their rewards, activation or time (or for their joined file to be written).
    public var pendingCount: Int { state.pending.count + carried.count }
    /// Event ids with rewards or activations but no decision yet.
    public var orphanCount: Int { state.orphans.count }
    /// Whether the last step read the log to its end (a step reads at most a few MB: the caller steps again at once
    /// while this is false).
    public var caughtUp: Bool { reader.caughtUp }
    /// Log bytes read so far.
    public var bytesRead: Int { reader.bytesRead }
    /// The next joined file's number (files below it are complete).
    var nextFileNumber: Int { state.nextFile }

    /// Segments a pending (or carried) decision still refers to: retention keeps them.
    func segmentsInUse() -> Set<String> {
        var used = Set<Int32>()
        state.pending.forEach { _, decision in used.insert(decision.segment) }
        for (_, decision) in carried { used.insert(decision.segment) }
        return Set(used.map { state.segments[Int($0)] })
    }

    /// How far the join has read `segment` (its recorded offset).
    func offset(of segment: String) -> Int? { state.offsets[segment] }

    /// Opens the join of model `name` under `stateDirectory`, recovering from any crash (see the type's notes).
    public convenience init(stateDirectory: String, name: String, settings: JoinSettings = JoinSettings()) throws(EventLogError) {
        try self.init(directory: try StateDirectory.root(stateDirectory).directory(name), settings: settings)
    }

    public init(directory: StateDirectory, settings: JoinSettings = JoinSettings()) throws(EventLogError) {
        self.directory = directory
        modelDirectory = directory.path
        joinedFiles = try directory.directory("joined")
        joinedDirectory = joinedFiles.path
        self.settings = settings
        reader = LogReader(directory: try directory.directory("log"))
        try restore()
    }

    deinit {
        if journal >= 0 { close(journal) }
    }

    /// Joined file seqs in the directory, ascending.
    public static func joinedFiles(in directory: String) -> [Int] {
        joinedNumbers(LoopFiles.list(directory))
    }

    static func joinedNumbers(_ names: [String]) -> [Int] {
        names.compactMap(joinedNumber).sorted()
    }

    /// The number of the joined file named `name` (`<seq>.dsjson`), nil for any other name.
    static func joinedNumber(_ name: String) -> Int? {
        guard name.hasSuffix(".dsjson") else { return nil }
        return LoopFiles.number(in: name.dropLast(".dsjson".count))
    }

    /// Reads the new log lines, joins every decision that is due into one new joined file, and records the step.
    /// Throws when the joined file or the record cannot be written (see the type's notes).
    @discardableResult
    public func step(nowMilliseconds now: Int64, writersStopped: Bool = false) throws(EventLogError) -> JoinStep {
        var result = JoinStep()
        let (records, skipped) = reader.readNew(writersStopped: writersStopped)
        result.skipped = skipped
        for record in records { absorb(record, now: now, into: &result) }
        if reader.caughtUp { recovered = [] }
        enforceCaps(into: &result)
        var due = carried + dueDecisions(now: now, into: &result)
        carried = []
        due.sort { $0.decision.order < $1.decision.order }
        if !due.isEmpty {
            var bytes: [UInt8] = []
            var joinedIDs: [String] = []
            var rewardSum = 0.0
            var decisionsJoined = 0
            for (key, decision) in due {
                switch joinedLine(key: key, decision, into: &bytes, result: &result) {
                case .decision(let id, let reward):
                    joinedIDs.append(id)
                    rewardSum += reward
                    decisionsJoined += 1
                case .learn(let id):
                    joinedIDs.append(id)
                case .skipped:
                    continue
                }
            }
            if !joinedIDs.isEmpty {
                let name = "\(state.nextFile).dsjson"
                do {
                    try writeJoined(bytes, name: name)
                } catch {
                    carried = due
                    throw error
                }
                state.nextFile += 1
                state.joined += joinedIDs.count
                result.file = name
                result.joined = joinedIDs
                result.rewardSum = rewardSum
                result.decisionsJoined = decisionsJoined
            }
            for (key, decision) in due where !decision.learn { touched.insert(key) }
        }
        result.wroteSnapshot = try record()
        return result
    }

    // MARK: - Events

    private func absorb(_ record: LogRecord, now: Int64, into result: inout JoinStep) {
        let value = record.value
        // A multislot reward (`"Index"`: its slot id) waits under its slot's key until its decision is joined.
        let slot: String? = value[member: "c"] == nil ? value[member: "Index"]?.stringValue : nil
        let key = slot.map { Self.slotKey(eventID: record.eventId, slot: $0) } ?? EventKey(record.eventId)
        if recovered.contains(key) { return }
        func skip(_ why: String, _ kind: SkipReason) {
            result.skipped.append(SkippedLine(segment: record.segment, offset: record.offset, length: record.line.count, reason: why, kind: kind))
        }
        if let slot {
            guard let rewardValue = value[member: "v"], let text = rewardValue.numberText, let number = Double(text), number.isFinite else {
                return skip("slot reward \"v\" is not a finite number", .reward)
            }
            result.rewardsRead += 1
            var orphan = state.orphans[key] ?? newOrphan(key, now: now)
            orphan.rewards.add(min(max(number, settings.rewardRange.lowerBound), settings.rewardRange.upperBound), settings.aggregation)
            state.orphans[key] = orphan
            touched.insert(key)
            // Like any reward, it activates its (deferred) decision.
            activation(EventKey(record.eventId), now: now)
            return
        }
        if value[member: "c"] != nil {
            guard EventID(record.eventId) != nil else { return skip("decision with an invalid event id", .decision) }
            if value[member: "_outcomes"] != nil {
                if case .failure(let problem) = LoggedSlotsDecision.check(value) { return skip(problem.why, .decision) }
            } else if case .failure(let problem) = LoggedDecision.check(value) {
                return skip(problem.why, .decision)
            }
            if state.pending[key] != nil {
                result.duplicateDecisions += 1
                return
            }
            result.decisionsRead += 1
            var decision = PendingDecision(
                order: state.nextOrder, seen: now, segment: state.segment(record.segment.fileName), offset: record.offset,
                length: Int32(record.line.count), deferred: value[member: "DeferredAction"] == .bool(true), learn: false, activated: nil
            )
            state.nextOrder += 1
            if let orphan = state.orphans.removeValue(forKey: key) {
                decision.rewards = orphan.rewards
                // Activated when its first reward or activation was read, or now if that was before the decision.
                if decision.deferred, orphan.activated != nil || orphan.rewards.count > 0 { decision.activated = now }
            }
            state.pending[key] = decision
            if decision.deferred && decision.activated != nil { activatedQueue.append(key, now) }
            touched.insert(key)
        } else if let rewardValue = value[member: "v"] {
            guard let text = rewardValue.numberText, let number = Double(text), number.isFinite else {
                return skip("reward \"v\" is not a finite number", .reward)
            }
            result.rewardsRead += 1
            let reward = min(max(number, settings.rewardRange.lowerBound), settings.rewardRange.upperBound)
            if var decision = state.pending[key] {
                decision.rewards.add(reward, settings.aggregation)
                activate(&decision, key: key, now: now)
                state.pending[key] = decision
            } else {
                var orphan = state.orphans[key] ?? newOrphan(key, now: now)
                orphan.rewards.add(reward, settings.aggregation)
                state.orphans[key] = orphan
            }
            touched.insert(key)
        } else if case .string? = value[member: "Learn"] {
            result.learnsRead += 1
            guard state.pending[key] == nil else {
                result.duplicateDecisions += 1
                return
            }
            // Joined in this step: pending only until the step's file is written.
            carried.append((key, PendingDecision(order: state.nextOrder, seen: now, segment: state.segment(record.segment.fileName),
                                                 offset: record.offset, length: Int32(record.line.count), deferred: false,
                                                 learn: true, activated: nil)))
            state.nextOrder += 1
        } else if value[member: "ActionTaken"] == .bool(true) {
            result.activationsRead += 1
            activation(key, now: now)
        } else {
            skip("neither a decision, a reward, an activation nor a :learn line", .invalid)
        }
    }

    /// An activation of `key`'s decision: now if it is pending, else remembered for it as an orphan.
    private func activation(_ key: EventKey, now: Int64) {
        if var decision = state.pending[key] {
            activate(&decision, key: key, now: now)
            state.pending[key] = decision
        } else {
            var orphan = state.orphans[key] ?? newOrphan(key, now: now)
            if orphan.activated == nil { orphan.activated = now }
            state.orphans[key] = orphan
        }
        touched.insert(key)
    }

    private func newOrphan(_ key: EventKey, now: Int64) -> OrphanEvent {
        OrphanEvent(seen: now, activated: nil)
    }

    private func activate(_ decision: inout PendingDecision, key: EventKey, now: Int64) {
        guard decision.activated == nil else { return }
        decision.activated = now
        if decision.deferred { activatedQueue.append(key, now) }
    }

    /// Drops the oldest pending decisions and orphans beyond the caps.
    private func enforceCaps(into result: inout JoinStep) {
        while state.pending.count > max(1, settings.maxPending), let key = state.pending.oldest() {
            state.pending[key] = nil
            touched.insert(key)
            result.droppedPendingOverCap += 1
        }
        while state.orphans.count > max(1, settings.maxOrphans), let oldest = state.orphans.oldest {
            state.orphans.removeValue(forKey: oldest.key)
            touched.insert(oldest.key)
            result.droppedOrphansOverCap += 1
        }
    }

    /// Removes and returns the decisions due now; drops expired deferred decisions and orphans.
    private func dueDecisions(now: Int64, into result: inout JoinStep) -> [(key: EventKey, decision: PendingDecision)] {
        let wait = Self.milliseconds(settings.rewardWait)
        var due: [(key: EventKey, decision: PendingDecision)] = []
        while let first = activatedQueue.first, now >= first.mark + wait {
            activatedQueue.removeFirst()
            if let decision = state.pending[first.key], decision.deferred, decision.activated == first.mark {
                state.pending[first.key] = nil
                due.append((first.key, decision))
            }
        }
        while let (key, decision) = state.pending.oldestPlain(), now >= decision.seen + wait {
            state.pending[key] = nil
            due.append((key, decision))
        }
        // Activated deferred decisions are the activation queue's (above).
        let deferredWait = Self.milliseconds(settings.deferredWait)
        while let (key, decision) = state.pending.oldestUnactivatedDeferred(), now >= decision.seen + deferredWait {
            state.pending[key] = nil
            touched.insert(key)
            result.droppedDeferred += 1
        }
        let orphanWait = Self.milliseconds(settings.orphanWait)
        while let (key, orphan) = state.orphans.oldest, now >= orphan.seen + orphanWait {
            state.orphans.removeValue(forKey: key)
            touched.insert(key)
            result.droppedOrphans += Int(orphan.rewards.count) + (orphan.activated == nil ? 0 : 1)
        }
        return due
    }

    private enum Joined {
        case decision(id: String, reward: Double)
        case learn(id: String)
        case skipped
    }

    /// Reads the decision's line back from its segment and appends its joined line (and "\n") to `bytes`.
    private func joinedLine(key: EventKey, _ decision: PendingDecision, into bytes: inout [UInt8], result: inout JoinStep) -> Joined {
        let segmentName = state.segments[Int(decision.segment)]
        let segment = SegmentName(fileName: segmentName) ?? SegmentName(instance: "unknown", seq: 0)
        func skip(_ why: String) -> Joined {
            result.skipped.append(SkippedLine(segment: segment, offset: decision.offset, length: Int(decision.length), reason: why, kind: .changed))
            return .skipped
        }
        guard let line = reader.line(in: segmentName, offset: decision.offset, length: Int(decision.length)),
              let value = try? JSONParser.parse(line, maxDepth: reader.maxDepth),
              let id = value[member: "EventId"]?.stringValue, EventKey(id) == key
        else { return skip("the logged line is gone or changed since it was read") }
        if decision.learn {
            guard case .string? = value[member: "Learn"] else { return skip("the logged :learn line changed since it was read") }
            bytes += line
            bytes.append(0x0A)
            return .learn(id: id)
        }
        if value[member: "_outcomes"] != nil {
            guard case .success(let logged) = LoggedSlotsDecision.check(value) else { return skip("the logged decision changed since it was read") }
            return slotsJoinedLine(id: id, value: value, logged: logged, into: &bytes, result: &result)
        }
        guard case .success(let logged) = LoggedDecision.check(value) else { return skip("the logged decision changed since it was read") }
        let reward = decision.rewards.value(range: settings.rewardRange, fallback: settings.defaultReward)
        var writer = JSONWriter(capacity: line.count + 160)
        writer.beginObject()
        writer.key("_label_cost"); writer.double(0 - reward)
        writer.key("_label_probability")
        if logged.chosenProbability < settings.minProbability {
            writer.double(settings.minProbability)
            result.clippedProbabilities += 1
        } else {
            writer.raw(logged.chosenProbabilityText.utf8)
        }
        writer.key("_label_Action"); writer.int(logged.chosen)
        writer.key("_labelIndex"); writer.int(logged.chosen - 1)
        writer.key("o")
        writer.beginArray()
        for r in decision.rewards.listed { writer.beginObject(); writer.key("v"); writer.double(r); writer.endObject() }
        writer.endArray()
        if case .string? = value[member: "Timestamp"] { writer.key("Timestamp"); writer.value(value[member: "Timestamp"]!) }
        writer.key("Version")
        if case .string? = value[member: "Version"] { writer.value(value[member: "Version"]!) } else { writer.string("1") }
        writer.key("EventId"); writer.string(id)
        writer.key("a"); writer.value(logged.actions)
        writer.key("c"); writer.value(logged.context)
        writer.key("p"); writer.value(logged.probabilities)
        if let state = logged.state { writer.key("VWState"); writer.value(state) }
        writer.endObject()
        bytes += writer.bytes
        bytes.append(0x0A)
        return .decision(id: id, reward: reward)
    }

    /// The key a multislot reward waits under: its event id and slot id (`/` is in no event id).
    static func slotKey(eventID: String, slot: String) -> EventKey {
        EventKey(eventID + "/" + slot)
    }

    /// A multislot decision's joined line, in VW's ccb dsjson form: each slot's outcome gets `_label_cost` = -(its
    /// rewards aggregated and clipped, or the default reward), `_o` its rewards; `_p[0]` below `min_probability` is
    /// written as it. The slot rewards are taken out of the orphans they waited in. Returns the event's reward: the
    /// average over its slots.
    private func slotsJoinedLine(id: String, value: JSONValue, logged: LoggedSlotsDecision, into bytes: inout [UInt8],
                                 result: inout JoinStep) -> Joined {
        var writer = JSONWriter(capacity: 256 + logged.slots.count * 96)
        writer.beginObject()
        if case .string? = value[member: "Timestamp"] { writer.key("Timestamp"); writer.value(value[member: "Timestamp"]!) }
        writer.key("Version")
        if case .string? = value[member: "Version"] { writer.value(value[member: "Version"]!) } else { writer.string("1") }
        writer.key("EventId"); writer.string(id)
        writer.key("c"); writer.value(logged.context)
        writer.key("_outcomes")
        writer.beginArray()
        var total = 0.0
        for slot in logged.slots {
            let key = Self.slotKey(eventID: id, slot: slot.id)
            let rewards = state.orphans.removeValue(forKey: key)?.rewards ?? RewardTally()
            touched.insert(key)
            let reward = rewards.value(range: settings.rewardRange, fallback: settings.defaultReward)
            total += reward
            writer.beginObject()
            writer.key("_id"); writer.string(slot.id)
            writer.key("_label_cost"); writer.double(0 - reward)
            writer.key("_a"); writer.beginArray(); for action in slot.actions { writer.int(action) }; writer.endArray()
            writer.key("_p")
            writer.beginArray()
            for (index, p) in slot.probabilityTexts.enumerated() {
                if index == 0 && slot.probabilities[0] < settings.minProbability {
                    writer.double(settings.minProbability)
                    result.clippedProbabilities += 1
                } else {
                    writer.raw(p.utf8)
                }
            }
            writer.endArray()
            writer.key("_o")
            writer.beginArray()
            for r in rewards.listed { writer.beginObject(); writer.key("v"); writer.double(r); writer.endObject() }
            writer.endArray()
            writer.endObject()
        }
        writer.endArray()
        if let state = logged.state { writer.key("VWState"); writer.value(state) }
        writer.endObject()
        bytes += writer.bytes
        bytes.append(0x0A)
        return .decision(id: id, reward: total / Double(logged.slots.count))
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    // MARK: - Files

    private func writeJoined(_ bytes: [UInt8], name: String) throws(EventLogError) {
        try joinedFiles.writeAtomically(bytes, to: name)
    }

    /// Appends this step's record to the journal (when anything changed), or writes a snapshot when the journal
    /// has outgrown the last one or could not be appended to.
    /// Returns whether it wrote a snapshot.
    private func record() throws(EventLogError) -> Bool {
        var moved: [String: Int] = [:]
        for (segment, offset) in reader.offsets where state.offsets[segment] != offset { moved[segment] = offset }
        guard !moved.isEmpty || !touched.isEmpty || journal < 0 else { return false }
        state.step += 1
        for (segment, offset) in moved { state.offsets[segment] = offset }
        if journal >= 0 && journalBytes <= max(8 << 20, snapshotBytes) {
            let bytes = state.record(offsets: moved, keys: touched)
            do {
                try LoopFiles.writeAll(journal, bytes, path: modelDirectory + "/" + Self.journalName)
                try LoopFiles.fsyncFile(journal, path: modelDirectory + "/" + Self.journalName)
                journalBytes += bytes.count
                touched = []
                return false
            } catch {
                // Cut the partial record off; the snapshot below holds everything anyway.
                if ftruncate(journal, off_t(journalBytes)) != 0 {
                    close(journal)
                    journal = -1
                }
                _ = error
            }
        }
        try snapshot()
        return true
    }

    /// Writes everything as `join-state.json`, then empties the journal.
    private func snapshot() throws(EventLogError) {
        // Offsets of segments that are gone (deleted by retention once joined) are forgotten.
        let present = Set(reader.directory.list())
        for segment in state.offsets.keys where !present.contains(segment) {
            state.offsets[segment] = nil
            reader.offsets[segment] = nil
        }
        var written = 0
        try directory.replace(Self.snapshotName) { file, path throws(EventLogError) in
            try state.snapshot { (piece: [UInt8]) throws(EventLogError) in
                try LoopFiles.writeAll(file, piece, path: path)
                written += piece.count
            }
        }
        snapshotBytes = written
        touched = []
        if journal < 0 {
            directory.remove(Self.journalName)
            journal = try directory.create(Self.journalName, flags: O_WRONLY | O_APPEND)
            try directory.sync()
        } else if ftruncate(journal, 0) != 0 {
            throw .system("truncate", modelDirectory + "/" + Self.journalName)
        }
        journalBytes = 0
    }

    // MARK: - Restore

    private func restore() throws(EventLogError) {
        for entry in joinedFiles.entries() where entry.name.hasPrefix(".") && entry.name.hasSuffix(".tmp") {
            joinedFiles.remove(entry.name)
        }
        directory.remove("." + Self.snapshotName + ".tmp")
        do {
            try load()
        } catch {
            restoreProblem = "join state unusable (\(error.message)); moved aside, joining again from the start of the log"
            let stamp = "corrupt-\(EventLine.nowMilliseconds() / 1000)"
            for name in [Self.snapshotName, Self.journalName] where StateDirectory.kind(at: directory.fd, name) != "missing" {
                try? directory.rename(name, to: name + "." + stamp)
            }
            state = JoinState()
            if journal >= 0 { close(journal) }
            journal = -1
        }
        reader.offsets = state.offsets
        try recover()
        // The activation queue from the restored state.
        var activated: [(key: EventKey, mark: Int64)] = []
        state.pending.forEach { key, decision in
            if decision.deferred, let time = decision.activated { activated.append((key, time)) }
        }
        activatedQueue = KeyQueue(activated)
        if journal < 0 { try snapshot() }
    }

    /// Reads the snapshot and replays the journal; throws when either is unusable.
    private func load() throws(EventLogError) {
        if let fd = try directory.openRegular(Self.snapshotName) {
            defer { close(fd) }
            var records = 0
            let end = try Self.forEachLine(fd, path: modelDirectory + "/" + Self.snapshotName) { line throws(EventLogError) in
                records += 1
                do throws(JoinStateError) { try state.apply(line) } catch { throw EventLogError("snapshot record \(records): \(error.message)") }
            }
            guard records > 0, end == lseek(fd, 0, SEEK_END) else { throw EventLogError("the snapshot does not end with a complete record") }
            snapshotBytes = end
        }
        guard let fd = try directory.openRegular(Self.journalName, flags: O_RDWR | O_APPEND) else { return }
        journal = fd
        var lineNumber = 0
        let end = try Self.forEachLine(fd, path: modelDirectory + "/" + Self.journalName) { line throws(EventLogError) in
            lineNumber += 1
            var peek = JoinState()
            do throws(JoinStateError) { try peek.apply(line) } catch { throw EventLogError("journal record \(lineNumber): \(error.message)") }
            if peek.step > state.step {
                do throws(JoinStateError) { try state.apply(line) } catch { throw EventLogError("journal record \(lineNumber): \(error.message)") }
            }
        }
        // A torn last record (no "\n") is cut off.
        if end < lseek(fd, 0, SEEK_END) && ftruncate(fd, off_t(end)) != 0 {
            throw .system("truncate", modelDirectory + "/" + Self.journalName)
        }
        journalBytes = end
    }

    /// Calls `body` with each complete line of `fd`, read 4 MiB at a time (a snapshot or journal is never held
    /// whole), and returns the offset after the last complete line. A line over 1 GiB is an error (a snapshot's
    /// records are about 1 MiB; a journal record lists one step's changes, which a step that expires millions of
    /// entries at once can make tens of MB).
    static func forEachLine(_ fd: Int32, path: String,
                                    _ body: (ArraySlice<UInt8>) throws(EventLogError) -> Void) throws(EventLogError) -> Int {
        var buffer: [UInt8] = []
        var consumed = 0
        while true {
            let chunk: [UInt8]
            do { chunk = try FileIO.read(fd, at: consumed + buffer.count, count: 4 << 20, path: path) } catch {
                throw .system("read", path, errno: error.code)
            }
            if chunk.isEmpty { return consumed }
            // Only the new bytes are searched: what is left in `buffer` holds no newline (a long record is not
            // rescanned at every chunk).
            var scan = buffer.count
            buffer += chunk
            var start = 0
            while let newline = buffer[scan...].firstIndex(of: 0x0A) {
                try body(buffer[start..<newline])
                start = newline + 1
                scan = start
            }
            buffer.removeFirst(start)
            consumed += start
            if buffer.count > 1 << 30 { throw EventLogError("a record is longer than 1 GiB") }
        }
    }

    /// Deletes unfinished joined files and accounts for joined files the persisted state does not know of.
    private func recover() throws(EventLogError) {
        for number in Self.joinedNumbers(joinedFiles.list()) where number >= state.nextFile {
            let name = "\(number).dsjson"
            let bytes: [UInt8]
            do {
                bytes = try joinedFiles.read(name) ?? []
            } catch {
                restoreProblem = (restoreProblem.map { $0 + "; " } ?? "") + error.message
                state.nextFile = number + 1
                continue
            }
            for line in bytes.split(separator: 0x0A) {
                // A line that is not an event cannot be matched: it is left to the trainer's checks.
                guard let value = try? JSONParser.parse(Array(line), maxDepth: reader.maxDepth),
                      let id = value[member: "EventId"]?.stringValue else { continue }
                let key = EventKey(id)
                recovered.insert(key)
                state.pending[key] = nil
                state.orphans[key] = nil
                state.joined += 1
                touched.insert(key)
                // A multislot decision's slot rewards were joined with it.
                for outcome in value[member: "_outcomes"]?.arrayValue ?? [] {
                    guard let slot = outcome[member: "_id"]?.stringValue else { continue }
                    let slotKey = Self.slotKey(eventID: id, slot: slot)
                    recovered.insert(slotKey)
                    state.orphans[slotKey] = nil
                    touched.insert(slotKey)
                }
            }
            state.nextFile = number + 1
        }
    }
}

/// The members of a logged decision line the join relies on, checked (SPEC §8.9): `a` distinct action ids ≥ 1,
/// `p` as many finite probabilities in [0, 1] summing to 1 ± 1e-3, the chosen one (first) above 0, `c` an object,
/// `VWState` absent or `{"m": "<version>"}`.
struct LoggedDecision {
    let actions: JSONValue
    let probabilities: JSONValue
    let context: JSONValue
    let state: JSONValue?
    let chosen: Int
    let actionIDs: [Int]
    let chosenProbability: Double
    let chosenProbabilityText: String

    struct Problem: Error {
        let why: String
    }

    static func check(_ value: JSONValue) -> Result<LoggedDecision, Problem> {
        guard let a = value[member: "a"], let actions = a.arrayValue, let p = value[member: "p"], let probabilities = p.arrayValue,
              !actions.isEmpty, actions.count == probabilities.count, actions.count <= 1 << 16 else {
            return .failure(Problem(why: "decision without valid \"a\" and \"p\" (as many of each, at least one)"))
        }
        var ids: [Int] = []
        var seen = Set<Int>()
        for action in actions {
            guard let id = action.numberText.flatMap({ Int($0) }), id >= 1, id <= 1 << 16, seen.insert(id).inserted else {
                return .failure(Problem(why: "decision \"a\" is not distinct action ids ≥ 1"))
            }
            ids.append(id)
        }
        var texts: [String] = []
        var sum = 0.0
        var values: [Double] = []
        for probability in probabilities {
            guard let d = probability.numberText.flatMap(Double.init), d.isFinite, d >= 0, d <= 1 else {
                return .failure(Problem(why: "decision \"p\" is not probabilities in [0, 1]"))
            }
            values.append(d)
            texts.append(probability.numberText ?? "")
            sum += d
        }
        guard abs(sum - 1) <= 1e-3 else { return .failure(Problem(why: "decision \"p\" sums to \(sum), not 1")) }
        guard values[0] > 0 else { return .failure(Problem(why: "decision's chosen action has probability 0")) }
        guard let context = value[member: "c"], case .object = context else { return .failure(Problem(why: "decision \"c\" is not an object")) }
        let state = value[member: "VWState"]
        if let state {
            guard case .object(let fields) = state, fields.count == 1, fields[0].key == "m", fields[0].value.stringValue != nil else {
                return .failure(Problem(why: "decision \"VWState\" is not {\"m\": version}"))
            }
        }
        return .success(LoggedDecision(actions: a, probabilities: p, context: context, state: state, chosen: ids[0], actionIDs: ids,
                                       chosenProbability: values[0], chosenProbabilityText: texts[0]))
    }
}

/// A logged multislot (`--ccb_explore_adf`) decision, checked (SPEC §8.9): `_outcomes` one object per slot,
/// `{"_id": <slot id>, "_a": [distinct 0-based action indices], "_p": [as many probabilities in [0, 1] summing to
/// 1 ± 1e-3, the first above 0]}` (the joined line adds `_label_cost` and `_o`), the slot ids distinct, no action
/// chosen by two slots; `c` an object; `VWState` absent or `{"m": "<version>"}`.
struct LoggedSlotsDecision {
    struct Slot {
        let id: String
        let actions: [Int]
        let probabilities: [Double]
        let probabilityTexts: [String]
    }

    let slots: [Slot]
    let context: JSONValue
    let state: JSONValue?

    typealias Problem = LoggedDecision.Problem

    /// `joined`: the members of a joined line's outcome are allowed too (`_label_cost`, `_o`).
    static func check(_ value: JSONValue, joined: Bool = false) -> Result<LoggedSlotsDecision, Problem> {
        guard let outcomes = value[member: "_outcomes"]?.arrayValue, !outcomes.isEmpty, outcomes.count <= 1 << 12 else {
            return .failure(Problem(why: "multislot decision without a non-empty \"_outcomes\" list"))
        }
        var slots: [Slot] = []
        var ids = Set<String>()
        var chosen = Set<Int>()
        let allowed: Set<String> = joined ? ["_id", "_a", "_p", "_label_cost", "_o"] : ["_id", "_a", "_p"]
        for (index, outcome) in outcomes.enumerated() {
            guard case .object(let fields) = outcome, fields.allSatisfy({ allowed.contains($0.key) }),
                  Set(fields.map(\.key)).count == fields.count else {
                return .failure(Problem(why: "outcome \(index) is not {\(allowed.sorted().joined(separator: ", "))}"))
            }
            guard let id = outcome[member: "_id"]?.stringValue, ids.insert(id).inserted else {
                return .failure(Problem(why: "outcome \(index) has no \"_id\" string, or one an earlier slot has"))
            }
            guard let a = outcome[member: "_a"]?.arrayValue, let p = outcome[member: "_p"]?.arrayValue, !a.isEmpty, a.count == p.count,
                  a.count <= 1 << 16 else {
                return .failure(Problem(why: "outcome \(index) without valid \"_a\" and \"_p\" (as many of each, at least one)"))
            }
            var actions: [Int] = []
            for action in a {
                guard let number = action.numberText.flatMap({ Int($0) }), number >= 0, number < 1 << 16, !actions.contains(number) else {
                    return .failure(Problem(why: "outcome \(index) \"_a\" is not distinct action indices ≥ 0"))
                }
                actions.append(number)
            }
            guard chosen.insert(actions[0]).inserted else {
                return .failure(Problem(why: "outcome \(index) chose action \(actions[0]), which an earlier slot took"))
            }
            var values: [Double] = []
            var texts: [String] = []
            for probability in p {
                guard let text = probability.numberText, let d = Double(text), d.isFinite, d >= 0, d <= 1 else {
                    return .failure(Problem(why: "outcome \(index) \"_p\" is not probabilities in [0, 1]"))
                }
                values.append(d)
                texts.append(text)
            }
            guard values[0] > 0 else { return .failure(Problem(why: "outcome \(index): the chosen action has probability 0")) }
            // A joined line's first probability may have been raised to min_probability (checked by the trainer).
            let sum = values.reduce(0, +)
            guard joined || abs(sum - 1) <= 1e-3 else { return .failure(Problem(why: "outcome \(index) \"_p\" sums to \(sum), not 1")) }
            slots.append(Slot(id: id, actions: actions, probabilities: values, probabilityTexts: texts))
        }
        guard let context = value[member: "c"], case .object = context else { return .failure(Problem(why: "decision \"c\" is not an object")) }
        let state = value[member: "VWState"]
        if let state {
            guard case .object(let fields) = state, fields.count == 1, fields[0].key == "m", fields[0].value.stringValue != nil else {
                return .failure(Problem(why: "decision \"VWState\" is not {\"m\": version}"))
            }
        }
        return .success(LoggedSlotsDecision(slots: slots, context: context, state: state))
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// The join's parameters (a model's `"loop"` object, SPEC §8.5–8.6).
public struct JoinSettings: Sendable {
    /// How long a decision waits for rewards after the joiner first reads it (a deferred one: after its activation).
    public var rewardWait: Duration
    /// The reward of a decision that got none (its cost is its negation).
    public var defaultReward: Double
    /// How long rewards and activations of an event id without a decision are kept waiting for it (its decision
    /// may be in another instance's log, shipped later); then they are dropped and counted.
    public var orphanWait: Duration
    /// How long a deferred decision that is never activated (no reward, no activation) is kept; then it is
    /// dropped without being joined, and counted.
    public var deferredWait: Duration

    public init(rewardWait: Duration = .seconds(10), defaultReward: Double = 0, orphanWait: Duration = .seconds(3600),
                deferredWait: Duration = .seconds(86_400)) {
        self.rewardWait = rewardWait
        self.defaultReward = defaultReward
        self.orphanWait = orphanWait
        self.deferredWait = deferredWait
    }
}

/// What one ``Joiner/step(nowMilliseconds:writersStopped:)`` did.
public struct JoinStep: Sendable {
    /// The event ids joined, in join order.
    public var joined: [String] = []
    /// The joined file written (`<seq>.dsjson`), nil when nothing was joined.
    public var file: String?
    /// Log lines skipped (torn by a crash, invalid, or decisions without valid `a`/`p`).
    public var skipped: [SkippedLine] = []
    /// Rewards and activations dropped because their decision never came within `orphanWait`.
    public var droppedOrphans = 0
    /// Deferred decisions dropped, never activated within `deferredWait`.
    public var droppedDeferred = 0
    /// Decisions whose event id was already pending (the later line is ignored).
    public var duplicateDecisions = 0
    /// New log lines read, by kind (for the loop status and metrics).
    public var decisionsRead = 0
    public var rewardsRead = 0
    public var activationsRead = 0
    public var learnsRead = 0
    /// Decisions among `joined` (the others are `:learn` lines).
    public var decisionsJoined = 0
    /// The sum of the joined decisions' rewards (their default reward when none came): the logged policy's.
    public var rewardSum = 0.0
}

/// Joins a model's logged decisions with their rewards into VW dsjson training lines (SPEC §8.5).
///
/// ## Joined line
/// One line per decision, members in this order:
/// `{"_label_cost":C,"_label_probability":P,"_label_Action":A,"_labelIndex":A-1,"o":[...],"Timestamp","Version","EventId","a","c","p","VWState"}`
/// * `C` = -(sum of the rewards), or -`defaultReward` when none came (`0.0` written for zero).
/// * `A` = the chosen action, the first of `"a"` (1-based); `P` = the first of `"p"`, its source text.
/// * `"o"`: `[]` without rewards; `[{"v":r}]` with one; `[{"v":first},{"v":last}]` with several (reward texts as logged).
/// * The interaction members are copied from the decision line (`"Version"` is `"1"` when missing); the
///   decision's `"DeferredAction"` is not copied.
///
/// ## Timing
/// A decision is joined in the first `step` at or after `rewardWait` from the step that first read it; a
/// deferred decision only once activated (an activation or a reward), `rewardWait` after the step that read
/// the activation. Times come from the caller (`nowMilliseconds`, a wall clock), so tests inject them.
/// A reward read after its decision was joined has no decision any more: it waits as an orphan and is dropped
/// after `orphanWait` (so is a second decision line with a joined event id: it is a new event).
///
/// ## Files and crash safety (each event joined exactly once)
/// * `<state>/<name>/joined/<seq>.dsjson`: each step that joins anything writes one new, immutable file,
///   `seq` increasing from 1: written as `.<seq>.dsjson.tmp`, fsynced, renamed, directory fsynced. A file with
///   a name is complete; a trainer can read name order (numbers as numbers) = join order.
/// * `<state>/<name>/join-state.json`: the join position: per-segment byte offsets, the pending decisions
///   (their log lines, rewards, times) and orphans, the next file seq. Replaced atomically (temp, fsync,
///   rename, fsync directory) *after* the joined file is durable.
/// * Recovery (in `init`): `.tmp` files are deleted (a crash before the rename: nothing was joined, the state
///   still holds those decisions). Joined files numbered at or past the state's next seq were written by a step
///   whose state never landed: their event ids are remembered, removed from the restored pending set, and the
///   next read of the log (which re-reads from the old offsets) ignores their decisions and rewards; the next
///   file seq moves past them. A crash after the log append but before the join: the decision is past no offset
///   and is read again. So no event is lost or joined twice, and no joined line is ever rewritten.
/// * A step that throws before its joined file is renamed into place (disk full, unwritable) is undone in memory;
///   the next step reads the same log lines again. After the rename, the step counts as done even if the
///   directory fsync or the state write then fails (the next step rewrites the state).
///
/// Not thread-safe: one joiner (thread) per model and state directory.
public final class Joiner {
    public let modelDirectory: String
    public let joinedDirectory: String
    public let settings: JoinSettings
    private var statePath: String { modelDirectory + "/join-state.json" }

    private struct Pending {
        var order: Int
        var seen: Int64
        var line: [UInt8]
        var deferred: Bool
        var activated: Int64?
        var rewards: [String]
        /// A `:learn` line: joined as it is, in the step that reads it (never pending across steps).
        var learn = false
    }

    private struct Orphan {
        var seen: Int64
        var activated: Int64?
        var rewards: [String]
    }

    private var reader: LogReader
    private var pending: [String: Pending] = [:]
    private var orphans: [String: Orphan] = [:]
    private var nextOrder = 0
    private var nextFile = 1
    /// Event ids found in joined files the persisted state did not know of (see Recovery); cleared by the first step.
    private var recovered: Set<String> = []
    /// Joined lines so far (from the state, plus recovered files).
    public private(set) var joinedCount = 0

    /// Decisions waiting for their rewards, activation or time.
    public var pendingCount: Int { pending.count }
    /// Event ids with rewards or activations but no decision yet.
    public var orphanCount: Int { orphans.count }

    /// Opens the join of model `name` under `stateDirectory`, recovering from any crash (see the type's notes).
    public init(stateDirectory: String, name: String, settings: JoinSettings = JoinSettings()) throws(EventLogError) {
        modelDirectory = stateDirectory + "/" + name
        joinedDirectory = modelDirectory + "/joined"
        self.settings = settings
        reader = LogReader(logDirectory: modelDirectory + "/log")
        try LoopFiles.makeDirectories(joinedDirectory)
        try LoopFiles.makeDirectories(reader.directory)
        if let bytes = try LoopFiles.read(statePath) { try restore(bytes) }
        try recover()
    }

    /// Joined file seqs in the directory, ascending.
    public static func joinedFiles(in directory: String) -> [Int] {
        LoopFiles.list(directory).compactMap { name -> Int? in
            guard name.hasSuffix(".dsjson") else { return nil }
            return LoopFiles.number(in: name.dropLast(".dsjson".count))
        }.sorted()
    }

    /// Reads the new log lines, joins every decision that is due, writes them durably, then persists the position.
    /// `writersStopped` treats a final line without "\n" as torn in every segment (offline join, no writer running).
    @discardableResult
    public func step(nowMilliseconds now: Int64, writersStopped: Bool = false) throws(EventLogError) -> JoinStep {
        var result = JoinStep()
        var reading = reader
        let (records, skipped) = try reading.readNew(writersStopped: writersStopped)
        result.skipped = skipped
        // Until the joined file is renamed into place, a failure undoes the step: the same lines are read again.
        let saved = (pending, orphans, nextOrder)
        func undo() { (pending, orphans, nextOrder) = saved }
        for record in records { absorb(record, now: now, into: &result) }

        let wait = Self.milliseconds(settings.rewardWait)
        var due: [(id: String, pending: Pending)] = []
        for (id, decision) in pending {
            if decision.deferred {
                if let activated = decision.activated {
                    if now >= activated + wait { due.append((id, decision)) }
                } else if now >= decision.seen + Self.milliseconds(settings.deferredWait) {
                    pending[id] = nil
                    result.droppedDeferred += 1
                }
            } else if decision.learn || now >= decision.seen + wait {
                due.append((id, decision))
            }
        }
        let orphanWait = Self.milliseconds(settings.orphanWait)
        for (id, orphan) in orphans where now >= orphan.seen + orphanWait {
            orphans[id] = nil
            result.droppedOrphans += orphan.rewards.count + (orphan.activated == nil ? 0 : 1)
        }
        due.sort { $0.pending.order < $1.pending.order }

        var fileNumber = nextFile
        if !due.isEmpty {
            var bytes: [UInt8] = []
            for (id, decision) in due {
                if decision.learn {
                    bytes.append(contentsOf: decision.line)
                } else {
                    bytes.append(contentsOf: joinedLine(decision))
                    result.rewardSum += reward(of: decision)
                    result.decisionsJoined += 1
                }
                bytes.append(0x0A)
                result.joined.append(id)
            }
            let name = "\(fileNumber).dsjson"
            let temporary = joinedDirectory + "/." + name + ".tmp"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd < 0 {
                let error = EventLogError.system("create", temporary)
                undo()
                throw error
            }
            do {
                try LoopFiles.writeAll(fd, bytes, path: temporary)
                try LoopFiles.fsyncFile(fd, path: temporary)
            } catch {
                close(fd)
                unlink(temporary)
                undo()
                throw error
            }
            close(fd)
            if rename(temporary, joinedDirectory + "/" + name) != 0 {
                let error = EventLogError.system("rename", temporary)
                unlink(temporary)
                undo()
                throw error
            }
            fileNumber += 1
            result.file = name
        }
        // The joined file exists: the in-memory state moves on whatever happens next. Should the directory fsync or
        // the state write fail, the next step writes the state again; a crash before that is what recovery handles.
        for (id, _) in due { pending[id] = nil }
        reader = reading
        nextFile = fileNumber
        joinedCount += due.count
        recovered = []
        if result.file != nil { try LoopFiles.fsyncDirectory(joinedDirectory) }
        try LoopFiles.writeAtomically(serializedState(), to: statePath)
        return result
    }

    // MARK: - Events

    private func absorb(_ record: LogRecord, now: Int64, into result: inout JoinStep) {
        let id = record.eventId
        let value = record.value
        if recovered.contains(id) { return }
        if value[member: "c"] != nil {
            guard let actions = value[member: "a"]?.arrayValue, let probabilities = value[member: "p"]?.arrayValue,
                  !actions.isEmpty, actions.count == probabilities.count,
                  actions.allSatisfy({ $0.numberText.flatMap { Int($0) }.map { $0 >= 1 } ?? false }),
                  probabilities.allSatisfy({ $0.numberText != nil }) else {
                result.skipped.append(SkippedLine(segment: record.segment, offset: record.offset, length: record.line.count,
                                                  reason: "decision without valid \"a\" and \"p\""))
                return
            }
            if pending[id] != nil {
                result.duplicateDecisions += 1
                return
            }
            result.decisionsRead += 1
            var decision = Pending(order: nextOrder, seen: now, line: record.line,
                                   deferred: value[member: "DeferredAction"] == .bool(true), activated: nil, rewards: [])
            nextOrder += 1
            if let orphan = orphans.removeValue(forKey: id) {
                decision.rewards = orphan.rewards
                // Activated when its first reward or activation was read, or now if that was before the decision.
                if decision.deferred, orphan.activated != nil || !orphan.rewards.isEmpty { decision.activated = now }
            }
            pending[id] = decision
        } else if let reward = value[member: "v"]?.numberText {
            result.rewardsRead += 1
            if pending[id] != nil {
                pending[id]!.rewards.append(reward)
                if pending[id]!.activated == nil { pending[id]!.activated = now }
            } else {
                orphans[id, default: Orphan(seen: now, activated: nil, rewards: [])].rewards.append(reward)
            }
        } else if case .string? = value[member: "Learn"] {
            result.learnsRead += 1
            guard pending[id] == nil else {
                result.duplicateDecisions += 1
                return
            }
            pending[id] = Pending(order: nextOrder, seen: 0, line: record.line, deferred: false, activated: nil, rewards: [], learn: true)
            nextOrder += 1
        } else if value[member: "ActionTaken"] == .bool(true) {
            result.activationsRead += 1
            if pending[id] != nil {
                if pending[id]!.activated == nil { pending[id]!.activated = now }
            } else {
                if orphans[id] == nil { orphans[id] = Orphan(seen: now, activated: now, rewards: []) }
                if orphans[id]!.activated == nil { orphans[id]!.activated = now }
            }
        } else {
            result.skipped.append(SkippedLine(segment: record.segment, offset: record.offset, length: record.line.count,
                                              reason: "neither a decision, a reward nor an activation"))
        }
    }

    /// The sum of a decision's rewards, or the default reward when none came.
    private func reward(of decision: Pending) -> Double {
        decision.rewards.isEmpty ? settings.defaultReward : decision.rewards.reduce(0.0) { $0 + (Double($1) ?? 0) }
    }

    private func joinedLine(_ decision: Pending) -> [UInt8] {
        // The line parsed when it was read; it cannot fail now.
        let value = (try? JSONParser.parse(decision.line, maxDepth: reader.maxDepth)) ?? .null
        let actions = value[member: "a"]!.arrayValue!
        let probabilities = value[member: "p"]!.arrayValue!
        let chosen = Int(actions[0].numberText!)!
        let reward = reward(of: decision)
        var writer = JSONLineWriter(capacity: decision.line.count + 160)
        writer.beginObject()
        writer.key("_label_cost"); writer.double(0 - reward)
        writer.key("_label_probability"); writer.raw(probabilities[0].numberText!.utf8)
        writer.key("_label_Action"); writer.int(chosen)
        writer.key("_labelIndex"); writer.int(chosen - 1)
        writer.key("o")
        writer.beginArray()
        for reward in decision.rewards.count > 1 ? [decision.rewards.first!, decision.rewards.last!] : decision.rewards {
            writer.beginObject(); writer.key("v"); writer.raw(reward.utf8); writer.endObject()
        }
        writer.endArray()
        if let timestamp = value[member: "Timestamp"] { writer.key("Timestamp"); writer.value(timestamp) }
        writer.key("Version"); writer.value(value[member: "Version"] ?? .string("1"))
        writer.key("EventId"); writer.value(value[member: "EventId"]!)
        writer.key("a"); writer.value(value[member: "a"]!)
        writer.key("c"); writer.value(value[member: "c"]!)
        writer.key("p"); writer.value(value[member: "p"]!)
        if let state = value[member: "VWState"] { writer.key("VWState"); writer.value(state) }
        writer.endObject()
        return writer.bytes
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    // MARK: - State

    /// `{"version":1,"next_file":N,"next_order":K,"joined":J,"offsets":{"<segment>":bytes,...},
    ///   "pending":[{"id","order","seen","line":"<decision line>","deferred","activated"(ms or null),"rewards":["<text>",...]}],
    ///   "orphans":[{"id","seen","activated","rewards"}]}`, times in milliseconds of the caller's clock.
    private func serializedState() -> [UInt8] {
        var writer = JSONLineWriter(capacity: 4096)
        writer.beginObject()
        writer.key("version"); writer.int(1)
        writer.key("next_file"); writer.int(nextFile)
        writer.key("next_order"); writer.int(nextOrder)
        writer.key("joined"); writer.int(joinedCount)
        writer.key("offsets")
        writer.beginObject()
        for (segment, offset) in reader.offsets.sorted(by: { $0.key < $1.key }) { writer.key(segment); writer.int(offset) }
        writer.endObject()
        func activation(_ value: Int64?) {
            if let value { writer.int(Int(value)) } else { writer.raw("null".utf8) }
        }
        func rewards(_ list: [String]) {
            writer.beginArray(); for reward in list { writer.raw(reward.utf8) }; writer.endArray()
        }
        writer.key("pending")
        writer.beginArray()
        for (id, decision) in pending.sorted(by: { $0.value.order < $1.value.order }) {
            writer.beginObject()
            writer.key("id"); writer.string(id)
            writer.key("order"); writer.int(decision.order)
            writer.key("seen"); writer.int(Int(decision.seen))
            writer.key("line"); writer.string(String(decoding: decision.line, as: UTF8.self))
            writer.key("deferred"); writer.bool(decision.deferred)
            writer.key("activated"); activation(decision.activated)
            writer.key("rewards"); rewards(decision.rewards)
            writer.endObject()
        }
        writer.endArray()
        writer.key("orphans")
        writer.beginArray()
        for (id, orphan) in orphans.sorted(by: { $0.key < $1.key }) {
            writer.beginObject()
            writer.key("id"); writer.string(id)
            writer.key("seen"); writer.int(Int(orphan.seen))
            writer.key("activated"); activation(orphan.activated)
            writer.key("rewards"); rewards(orphan.rewards)
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes + [0x0A]
    }

    private func restore(_ bytes: [UInt8]) throws(EventLogError) {
        let corrupt = EventLogError("join: \(statePath) is not a valid join state")
        let state: JSONValue
        do { state = try JSONParser.parse(bytes, maxDepth: 8) } catch { throw corrupt }
        func int(_ value: JSONValue?) throws(EventLogError) -> Int {
            guard let text = value?.numberText, let number = Int(text) else { throw corrupt }
            return number
        }
        func optionalInt(_ value: JSONValue?) throws(EventLogError) -> Int64? {
            value == .null ? nil : Int64(try int(value))
        }
        func rewards(_ value: JSONValue?) throws(EventLogError) -> [String] {
            guard let list = value?.arrayValue else { throw corrupt }
            var texts: [String] = []
            for element in list {
                guard let text = element.numberText else { throw corrupt }
                texts.append(text)
            }
            return texts
        }
        guard try int(state[member: "version"]) == 1, case .object(let offsets)? = state[member: "offsets"],
              let pendingList = state[member: "pending"]?.arrayValue, let orphanList = state[member: "orphans"]?.arrayValue
        else { throw corrupt }
        nextFile = try int(state[member: "next_file"])
        nextOrder = try int(state[member: "next_order"])
        joinedCount = try int(state[member: "joined"])
        for (segment, offset) in offsets { reader.offsets[segment] = try int(offset) }
        for entry in pendingList {
            guard let id = entry[member: "id"]?.stringValue, let line = entry[member: "line"]?.stringValue,
                  case .bool(let deferred)? = entry[member: "deferred"] else { throw corrupt }
            pending[id] = Pending(order: try int(entry[member: "order"]), seen: Int64(try int(entry[member: "seen"])),
                                  line: Array(line.utf8), deferred: deferred,
                                  activated: try optionalInt(entry[member: "activated"]), rewards: try rewards(entry[member: "rewards"]))
        }
        for entry in orphanList {
            guard let id = entry[member: "id"]?.stringValue else { throw corrupt }
            orphans[id] = Orphan(seen: Int64(try int(entry[member: "seen"])), activated: try optionalInt(entry[member: "activated"]),
                                 rewards: try rewards(entry[member: "rewards"]))
        }
    }

    /// Deletes unfinished joined files and accounts for joined files the persisted state does not know of.
    private func recover() throws(EventLogError) {
        for name in LoopFiles.list(joinedDirectory) where name.hasPrefix(".") && name.hasSuffix(".tmp") {
            unlink(joinedDirectory + "/" + name)
        }
        unlink(statePath + ".tmp")
        for number in Self.joinedFiles(in: joinedDirectory) where number >= nextFile {
            let path = joinedDirectory + "/\(number).dsjson"
            let bytes = try LoopFiles.read(path) ?? []
            for line in bytes.split(separator: 0x0A) {
                guard let value = try? JSONParser.parse(Array(line), maxDepth: reader.maxDepth),
                      let id = value[member: "EventId"]?.stringValue else { throw EventLogError("join: \(path) holds an invalid line") }
                recovered.insert(id)
                pending[id] = nil
                orphans[id] = nil
                joinedCount += 1
            }
            nextFile = number + 1
        }
    }
}

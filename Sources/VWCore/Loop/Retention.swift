#if canImport(Glibc)
import Glibc
#endif

/// The kinds of files a loop keeps (`vwfcgi_state_bytes{kind}`).
public enum StateKind: String, Sendable, CaseIterable {
    /// `personalizer`: the Personalizer evaluation and feature-importance documents (at most 100 of each kind per
    /// model, deleted by their client only): counted against the budget, never deleted by retention.
    case log, joined, learned, rejected, join, personalizer
}

/// A file retention may delete: where it is, how big, how old, and whether its retention age has passed.
struct StateFile {
    let directory: StateDirectory
    let name: String
    let kind: StateKind
    let bytes: Int
    /// Last modification, seconds since the epoch.
    let modified: Int
    /// Deletable now by its kind's retention; otherwise only to keep the state within its budget.
    let expired: Bool
}

/// What one model's state directory holds, and which of its files nothing needs any more (issue 24).
struct StateUsage {
    var bytes: [StateKind: Int] = [:]
    /// Files that may be deleted: needed by nothing (joined and, for a segment, past its offset; learned; not the
    /// serving or rollback model), oldest first.
    var deletable: [StateFile] = []
    /// More files are deletable than `deletable` holds (at most ``Retention/joinedPerPass`` joined files are offered a
    /// pass): a budget still exceeded after deleting them is no reason to refuse writes yet.
    var moreDeletable = false

    var total: Int { bytes.values.reduce(0, +) }
}

/// Keeps every loop's files within their retention and the state directory within its budget (issue 24).
///
/// Rules (a file is *deletable* when nothing needs it; it is *deleted* when its retention age has passed, or, oldest
/// first, while the state directory is over `--state-max-bytes`):
/// * a log segment: closed (its instance has a newer segment: its writer moved on; the newest segment of every
///   instance is kept, so sequence numbers never restart), read to its end by the join, and no pending decision
///   refers to it (on a serving instance of an externally trained model, which does not join: once the log
///   shipper has marked it shipped with `<segment>.shipped`, or deleted it itself);
/// * a joined file: learned (`learn-state.json`'s position is past it), or the model does not learn here;
/// * a learned model: neither the base, the serving one, nor one of the last `learned_versions` (handled by the
///   learner, which alone knows them); a rejected candidate: any.
/// When the budget is exceeded and nothing more is deletable, the loop's write routes answer 503 with the reason
/// (as on a full disk) until it is back under; `:predict` is unaffected.
enum Retention {
    /// The usage and deletable files of one model's state directory. `joiner` (when this process joins) says which
    /// segments the join still needs.
    /// In `vwfcgi train` the segments are copies pulled from a bucket: deleted here once joined, they are not pulled
    /// again (trainer-sync.sh records what it pulled), and a copy pulled again anyway would be read from the join's
    /// recorded offset (its end), never joined twice.
    /// Joined files offered for deletion in one pass, oldest first (the next pass offers the next ones): those past
    /// their retention, and at most `joinedPerPass / 64` more for the budget (about a thousand: a pass every 250 ms
    /// deletes 4,000 a second while over it, where a loop writes about 4; and a pass never builds millions).
    static let joinedPerPass = 65_536

    static func scan(model: StateDirectory, joiner: Joiner?, joined index: inout JoinedFileIndex, loop: LoopConfig, learns: Bool,
                     now: Int, joinedLimit: Int = joinedPerPass) -> StateUsage {
        var usage = StateUsage()
        func files(_ relative: String) -> (StateDirectory, [(name: String, bytes: Int, modified: Int)])? {
            guard let directory = try? model.directory(relative, create: false) else { return nil }
            var found: [(String, Int, Int)] = []
            for entry in directory.entries() where entry.regular {
                var info = stat()
                guard fstatat(directory.fd, entry.name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                found.append((entry.name, Int(info.st_size), Int(info.st_mtim.tv_sec)))
            }
            return (directory, found)
        }
        func seconds(_ d: Duration) -> Int { Int(d.components.seconds) }

        if let (log, entries) = files("log") {
            usage.bytes[.log] = entries.reduce(0) { $0 + $1.bytes }
            let names = Set(entries.map(\.name))
            var newest: [String: Int] = [:]
            for entry in entries { if let s = SegmentName(fileName: entry.name) { newest[s.instance] = max(newest[s.instance] ?? 0, s.seq) } }
            let needed = joiner?.segmentsInUse() ?? []
            for entry in entries {
                guard let segment = SegmentName(fileName: entry.name), segment.seq < (newest[segment.instance] ?? segment.seq) else { continue }
                let done: Bool
                if let joiner {
                    done = !needed.contains(entry.name) && joiner.offset(of: entry.name) == entry.bytes
                } else {
                    done = names.contains(entry.name + ".shipped")
                }
                guard done else { continue }
                usage.deletable.append(StateFile(directory: log, name: entry.name, kind: .log, bytes: entry.bytes, modified: entry.modified,
                                                 expired: now - entry.modified >= seconds(loop.retention.log)))
            }
            // Markers of segments gone.
            for entry in entries where entry.name.hasSuffix(".shipped") && !names.contains(String(entry.name.dropLast(".shipped".count))) {
                log.remove(entry.name)
            }
        }
        if let joined = try? model.directory("joined", create: false) {
            index.refresh(joined, upTo: joiner?.nextFileNumber, now: now)
            usage.bytes[.joined] = index.bytes
            let position = learns ? learnedPosition(model) : Int.max
            var offered = 0, notExpired = 0
            // Learned files come first in number order: the walk stops at the first one the learner still needs.
            index.forEach { file in
                guard file.number <= position, file.number < (joiner?.nextFileNumber ?? Int.max) else { return false }
                let expired = now - file.modified >= seconds(loop.retention.joined)
                guard offered < joinedLimit, expired || notExpired < max(1, joinedLimit / 64) else {
                    usage.moreDeletable = true
                    return false
                }
                offered += 1
                if !expired { notExpired += 1 }
                usage.deletable.append(StateFile(directory: joined, name: "\(file.number).dsjson", kind: .joined, bytes: file.bytes,
                                                 modified: file.modified, expired: expired))
                return true
            }
        }
        if let (_, entries) = files("learned") { usage.bytes[.learned] = entries.reduce(0) { $0 + $1.bytes } }
        if let (rejected, entries) = files("rejected") {
            usage.bytes[.rejected] = entries.reduce(0) { $0 + $1.bytes }
            for entry in entries {
                usage.deletable.append(StateFile(directory: rejected, name: entry.name, kind: .rejected, bytes: entry.bytes,
                                                 modified: entry.modified, expired: now - entry.modified >= seconds(loop.retention.rejected)))
            }
        }
        usage.bytes[.personalizer] = [PersonalizerJobKind.evaluations, .featureImportances].reduce(0) { sum, kind in
            sum + (files(kind.directory)?.1.reduce(0) { $0 + $1.bytes } ?? 0)
        }
        var join = 0
        for name in [Joiner.snapshotName, Joiner.journalName] {
            var info = stat()
            if fstatat(model.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 { join += Int(info.st_size) }
        }
        usage.bytes[.join] = join
        usage.deletable.sort { ($0.modified, $0.name) < ($1.modified, $1.name) }
        return usage
    }

    /// The joined file number the learner has learned up to (0 when nothing).
    static func learnedPosition(_ model: StateDirectory) -> Int {
        guard let bytes = try? model.read("learn-state.json", maxBytes: 1 << 20), let state = LearnState.parse(bytes) else { return 0 }
        return state.position
    }

    /// Bytes free on the file system of `directory` for an unprivileged writer (nil when unknown).
    static func freeBytes(_ directory: StateDirectory) -> Int? {
        var info = statvfs()
        guard fstatvfs(directory.fd, &info) == 0 else { return nil }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }
}

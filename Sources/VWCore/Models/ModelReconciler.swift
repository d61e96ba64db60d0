public import Logging
import Synchronization

/// Reads the model directory into each model's files, and decides which of them are settled enough to load.
///
/// A file is loaded once it is completely written: the kernel said it was closed or renamed into place,
/// or it was left alone long enough (see ``requiredQuietNanoseconds(for:files:finished:writing:settleAll:)``).
final class ModelReconciler: Sendable {
    /// What to do with the directory as read now.
    struct Plan: Equatable {
        /// The models whose files are settled, in name order (each loads unless its files were seen already).
        var settled: [String: ModelFiles] = [:]
        /// Every model with a `.vw` file: the others leave the store.
        var present: Set<String> = []
        /// A changed file was left for later because it may still be being written.
        var unsettled = false
    }

    /// How long a changed file must be left alone before it is loaded, unless the kernel said it was closed or renamed into place:
    /// 300 ms plus the time to write its size at 50 MB/s, so a large file copied slowly is not read while it grows.
    static let settleTime: Duration = .milliseconds(300)
    static let settleBytesPerSecond: Int64 = 50_000_000

    /// A file inotify saw being written and not yet closed loads only once closed, or once it was
    /// left alone this long (a writer that keeps it open).
    static let openWriterNanoseconds: Int64 = 30_000_000_000

    let directory: String
    private let logger: Logger
    private let reportedIgnored = Mutex<Set<String>>([])

    init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    static func settleNanoseconds(size: Int64) -> Int64 {
        300_000_000 + max(0, size) * 1_000_000_000 / settleBytesPerSecond
    }

    /// How long `name`'s files must have been left alone before they load.
    ///
    /// - Parameters:
    ///   - finished: file names known to be completely written (closed after writing, or renamed into place).
    ///   - writing: file names inotify saw modified and not yet closed (a writer has them open).
    ///   - settleAll: treat every file as completely written (at start, after a Kubernetes `..data` swap).
    static func requiredQuietNanoseconds(
        for name: String, files: ModelFiles, finished: Set<String>, writing: Set<String>, settleAll: Bool
    ) -> Int64 {
        let fileNames = [".vw", ".json", ".sha256"].map { name + $0 }
        let announced = settleAll || fileNames.contains { finished.contains($0) }
        let open = fileNames.contains { writing.contains($0) }
        let settle = settleNanoseconds(size: files.model?.size ?? 0)
        return open ? max(settle, openWriterNanoseconds) : announced ? 0 : settle
    }

    /// Each model's files in the directory (a model without a `.vw` file included), nil when it cannot be read.
    func scan() -> [String: ModelFiles]? {
        guard let files = ModelDirectory.entries(of: directory) else {
            logger.error("cannot read the model directory", metadata: ["dir": "\(directory)"])
            return nil
        }
        var found: [String: ModelFiles] = [:]
        for file in files {
            if ModelDirectory.isTransient(file) { continue }
            guard let (name, kind) = ModelDirectory.classify(file) else {
                let isNew = reportedIgnored.withLock { $0.insert(file).inserted }
                if isNew { logger.info("ignoring file in the model directory", metadata: ["file": "\(file)"]) }
                continue
            }
            let stamp = FileStamp(path: directory + "/" + file)
            var entry = found[String(name)] ?? ModelFiles()
            switch kind {
            case .model: entry.model = stamp
            case .config: entry.config = stamp
            case .checksum: entry.checksum = stamp
            }
            found[String(name)] = entry
        }
        return found
    }

    /// Which of `found`'s models to look at now; `isChanged` tells files that differ from the ones last seen.
    static func plan(
        _ found: [String: ModelFiles], now: Int64, finished: Set<String>, writing: Set<String>, settleAll: Bool,
        isChanged: (String, ModelFiles) -> Bool
    ) -> Plan {
        var plan = Plan()
        for (name, files) in found where files.model != nil {
            plan.present.insert(name)
            let wait = requiredQuietNanoseconds(for: name, files: files, finished: finished, writing: writing, settleAll: settleAll)
            if now - files.newestModification < wait && isChanged(name, files) {
                plan.unsettled = true
                continue
            }
            plan.settled[name] = files
        }
        return plan
    }
}

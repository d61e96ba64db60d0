import CoreMetrics
import Synchronization

/// One model of the directory: what serves, its latest load failure, and whether a load of it runs.
final class ModelEntry: Sendable {
    /// What is known of a model still in the directory.
    struct Record: Sendable {
        var current: ModelVersion?
        var lastError: LoadFailure?
        /// The files last looked at, so an unchanged directory costs only stat(2) calls.
        var seenFiles: ModelFiles?
    }

    /// The model's lifecycle: at most one load (of its files, or a learned model's publish) runs at a time.
    enum State: Sendable {
        case idle(Record)
        /// A load of this model runs on its own thread; it ends with `finishLoad`, `failLoad` or `endLoad`.
        case loading(Record)
        /// The model left the directory (or the server is stopping): a load that ends now is retired.
        case removed
    }

    /// How a file load's start went.
    enum LoadStart: Equatable {
        /// Started: the version serving now (the load may find the files unchanged from it).
        case started(current: String?)
        /// The files are the ones already looked at, or the model is gone.
        case unchanged
        /// An earlier load still runs: look again once it ends.
        case busy
    }

    let name: String
    private let state = Mutex(State.idle(Record()))
    /// `vwfcgi_model_ready{model}`: 1 while a version serves, removed with the model.
    let readyGauge: Gauge
    /// Runs the model's loads in order, on a thread of their own, so models load in parallel.
    let loads = LoadQueue()

    init(name: String) {
        self.name = name
        readyGauge = Gauge(label: "vwfcgi_model_ready", dimensions: [("model", name)])
        readyGauge.record(0)
    }

    /// The version that serves now, if any.
    var current: ModelVersion? {
        state.withLock { state in
            switch state {
            case .idle(let record), .loading(let record): record.current
            case .removed: nil
            }
        }
    }

    var status: ModelStatus {
        state.withLock { state in
            let record: Record
            switch state {
            case .idle(let r), .loading(let r): record = r
            case .removed: record = Record()
            }
            let current = record.current
            return ModelStatus(
                name: name, ready: current != nil, version: current?.version, loadedAt: current?.loadedAt,
                shards: current?.pool.status ?? [], vwArgs: current?.vwArgs ?? [], multiline: current?.multiline,
                lastError: record.lastError, origin: current?.origin,
                memoryEstimate: current.flatMap { ModelMemoryEstimate(options: $0.options, shards: $0.pool.status.count) }
            )
        }
    }

    /// Whether `files` differ from the ones last looked at.
    func isChanged(_ files: ModelFiles) -> Bool {
        state.withLock { state in
            switch state {
            case .idle(let record), .loading(let record): record.seenFiles != files
            case .removed: false
            }
        }
    }

    /// Starts a load of `files` unless they were looked at already or another load runs.
    func beginFileLoad(of files: ModelFiles) -> LoadStart {
        state.withLock { state in
            switch state {
            case .loading: return .busy
            case .removed: return .unchanged
            case .idle(let record):
                if record.seenFiles == files { return .unchanged }
                state = .loading(record)
                return .started(current: record.current?.version)
            }
        }
    }

    /// Starts a publish while `version` still serves and no other load runs.
    func beginPublish(replacing version: String) -> Bool {
        state.withLock { state in
            guard case .idle(let record) = state, record.current?.version == version else { return false }
            state = .loading(record)
            return true
        }
    }

    /// Ends a load: `loaded` serves from now on, unless the model was removed meanwhile.
    ///
    /// - Parameter files: the files it was loaded from (a file load: looked at, no failure), nil for a publish.
    /// - Returns: the version it replaces (to retire); `.failure` with `loaded` when the model was removed (retire it instead).
    func finishLoad(_ loaded: ModelVersion, files: ModelFiles?) -> Result<ModelVersion?, Removed> {
        state.withLock { state in
            guard case .loading(var record) = state else { return .failure(Removed()) }
            let previous = record.current
            record.current = loaded
            if let files {
                record.lastError = nil
                record.seenFiles = files
            }
            state = .idle(record)
            return .success(previous)
        }
    }

    /// The model was removed while its load ran.
    struct Removed: Error {}

    /// Ends a file load that failed with `failure`; returns whether a version still serves.
    func failLoad(files: ModelFiles, failure: LoadFailure) -> Bool {
        state.withLock { state in
            guard case .loading(var record) = state else { return false }
            record.lastError = failure
            record.seenFiles = files
            state = .idle(record)
            return record.current != nil
        }
    }

    /// Ends a load that changed nothing; with `files`, the files it found are those already serving.
    func endLoad(files: ModelFiles? = nil) {
        state.withLock { state in
            guard case .loading(var record) = state else { return }
            if let files {
                record.seenFiles = files
                record.lastError = nil
            }
            state = .idle(record)
        }
    }

    /// Marks the model removed; returns the version that served (to retire).
    func remove() -> ModelVersion? {
        state.withLock { state in
            defer { state = .removed }
            switch state {
            case .idle(let record), .loading(let record): return record.current
            case .removed: return nil
            }
        }
    }
}

/// Runs one model's loads in order on a thread of its own, which ends when no load is left.
///
/// A load may outlive its thread's work: the vw processes it starts are forked by the
/// spawner thread (`VWProcess.spawn`), so their parent-death signal does not follow this one.
final class LoadQueue: Sendable {
    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        var running = false
    }

    private let queue = Mutex(Queue())

    func submit(name: String, _ job: @escaping @Sendable () -> Void) {
        let start = queue.withLock { q in
            q.jobs.append(job)
            defer { q.running = true }
            return !q.running
        }
        if start { DetachedThread.start(name: "load-\(name.prefix(10))") { [self] in run() } }
    }

    private func run() {
        while let job = queue.withLock({ q -> (@Sendable () -> Void)? in
            if q.jobs.isEmpty {
                q.running = false
                return nil
            }
            return q.jobs.removeFirst()
        }) {
            job()
        }
    }
}

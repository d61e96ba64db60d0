import Synchronization

/// What serves, published as immutable snapshots that request threads read without taking a lock.
///
/// A request takes the version from its thread's cached snapshot, raises the version's in-flight
/// count, then checks the published generation again. A version retired meanwhile is unpublished
/// (a new generation) first, so the check sends the request to the new snapshot, and the old
/// version is stopped only once its in-flight count is zero.
public final class ServingTable: Sendable {
    /// One published state: each model's serving version, and the name of every model in the directory.
    final class Snapshot: Sendable {
        let generation: Int
        let versions: [String: ModelVersion]
        let names: Set<String>

        init(generation: Int, versions: [String: ModelVersion], names: Set<String>) {
            self.generation = generation
            self.versions = versions
            self.names = names
        }
    }

    /// A request thread's copy of the latest snapshot, refreshed when a new one is published.
    public struct ReaderCache: Sendable {
        var snapshot: Snapshot?
        /// Whether the thread may wait for a vw process; a FastCGI poller may not (a request that needs vw
        /// fails with ``PredictError/needsWorker`` and a thread that may wait answers it).
        public var mayWaitForVW = true

        public init() {}
    }

    private let published = Mutex(Snapshot(generation: 0, versions: [:], names: []))
    private let generation = Atomic<Int>(0)

    init() {}

    /// Publishes the state `current` reads; must happen before a replaced version is retired.
    ///
    /// `current` runs under the table's lock, so concurrent publishers cannot publish an older state over a newer one.
    func publish(_ current: () -> (versions: [String: ModelVersion], names: Set<String>)) {
        published.withLock { snapshot in
            let (versions, names) = current()
            snapshot = Snapshot(generation: snapshot.generation + 1, versions: versions, names: names)
            generation.store(snapshot.generation, ordering: .sequentiallyConsistent)
        }
    }

    /// The latest snapshot, from `cache` while no newer one was published.
    func snapshot(_ cache: inout ReaderCache) -> Snapshot {
        let latest = generation.load(ordering: .sequentiallyConsistent)
        if let snapshot = cache.snapshot, snapshot.generation == latest { return snapshot }
        let fresh = published.withLock { $0 }
        cache.snapshot = fresh
        return fresh
    }

    /// Whether the directory holds a model of this name (serving or not).
    func contains(_ name: String, cache: inout ReaderCache) -> Bool {
        snapshot(&cache).names.contains(name)
    }

    /// Runs `body` with the model's serving version, which stays alive until `body` returns.
    func withServingVersion<R>(
        of name: String, cache: inout ReaderCache, _ body: (ModelVersion) throws(PredictError) -> R
    ) throws(PredictError) -> R {
        while true {
            let snapshot = snapshot(&cache)
            guard let version = snapshot.versions[name] else {
                throw snapshot.names.contains(name) ? .modelNotReady(name) : .modelNotFound(name)
            }
            version.inflight.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if generation.load(ordering: .sequentiallyConsistent) != snapshot.generation {
                version.inflight.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                continue
            }
            defer { version.requestFinished() }
            return try body(version)
        }
    }
}

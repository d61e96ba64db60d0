/// A model's state for `GET /v1/models/<name>`.
public struct ModelStatus: Sendable {
    public let name: String
    public let ready: Bool
    public let version: String?
    public let loadedAt: String?
    public let shards: [ShardStatus]
    public let vwArgs: [String]
    public let multiline: Bool?
    public let lastError: LoadFailure?
    /// Where the serving version's bytes came from; nil when none serves.
    public let origin: ModelOrigin?
    /// The serving version's weights across its shards, estimated from its options (nil when none serves, or with
    /// `--sparse_weights`): what `--vw-memory-limit` is checked against.
    public let memoryEstimate: ModelMemoryEstimate?
}

/// The latest failure to load a model's current files.
public struct LoadFailure: Sendable, Equatable {
    public let time: String
    public let reason: String
}

/// When the server counts as ready (`GET /readyz`).
public enum ReadinessRule: String, Sendable {
    /// Once the start-up models were each tried, while at least one model serves (SPEC §5): one bad
    /// file dropped into every pod's directory must not take every model off the Service.
    case anyModel = "any"
    /// Only while every model of the directory serves (`--readiness all`).
    case allModels = "all"
}

/// Where the store is in the server's life, as `/readyz` sees it.
public enum StorePhase: Sendable, Equatable {
    /// The models present at start-up are still being tried.
    case starting
    /// Start-up is over: readiness follows the models.
    case serving
    /// The server is shutting down.
    case draining
}

/// What `GET /readyz` reports.
public struct Readiness: Sendable {
    public let isReady: Bool
    /// Why the server is not ready, nil when it is.
    public let reason: String?
    public let ready: [String]
    public let notReady: [String]

    /// Whether a server in `phase` with these models should receive traffic, per `rule` (SPEC §5).
    public init(phase: StorePhase, statuses: [ModelStatus], rule: ReadinessRule) {
        ready = statuses.filter(\.ready).map(\.name)
        notReady = statuses.filter { !$0.ready }.map(\.name)
        reason =
            switch phase {
            case .starting: "starting: the models present at start-up are still loading"
            case .draining: "draining: shutting down"
            case .serving:
                if ready.isEmpty {
                    statuses.isEmpty ? "no model is loaded" : "no model serves"
                } else if rule == .allModels && !notReady.isEmpty {
                    "models without a serving version"
                } else {
                    nil
                }
            }
        isReady = reason == nil
    }
}

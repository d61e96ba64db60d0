/// A route of the Open Inference Protocol (KServe V2) REST API, under `/v2`.
enum OpenInferenceRoute: Equatable {
    /// `GET /v2`: server metadata.
    case server
    /// `GET /v2/health/live`.
    case live
    /// `GET /v2/health/ready`: the rule of `/readyz`.
    case ready
    /// `GET /v2/models/<name>[/versions/<v>]`: model metadata.
    case model(name: String, version: String?)
    /// `GET /v2/models/<name>[/versions/<v>]/ready`.
    case modelReady(name: String, version: String?)
    /// `POST /v2/models/<name>[/versions/<v>]/infer`.
    case infer(name: String, version: String?)

    /// The route of `path`, or nil when it is not one of the protocol's.
    init?(path: String) {
        guard path == "/v2" || path.hasPrefix("/v2/") else { return nil }
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst(2)
        switch Array(parts) {
        case [], [""]: self = .server
        case ["health", "live"]: self = .live
        case ["health", "ready"]: self = .ready
        default:
            guard parts.count >= 2, parts.first == "models" else { return nil }
            let name = String(parts[parts.startIndex + 1])
            guard !name.isEmpty, !name.contains(":") else { return nil }
            parts = parts.dropFirst(2)
            var version: String?
            if parts.first == "versions" {
                guard parts.count >= 2, !parts[parts.startIndex + 1].isEmpty else { return nil }
                version = String(parts[parts.startIndex + 1])
                parts = parts.dropFirst(2)
            }
            switch Array(parts) {
            case []: self = .model(name: name, version: version)
            case ["ready"]: self = .modelReady(name: name, version: version)
            case ["infer"]: self = .infer(name: name, version: version)
            default: return nil
            }
        }
    }

    /// The `route` label of the request metrics.
    var label: String {
        switch self {
        case .server: "v2_server"
        case .live: "v2_live"
        case .ready: "v2_ready"
        case .model: "v2_model"
        case .modelReady: "v2_model_ready"
        case .infer: "v2_infer"
        }
    }
}

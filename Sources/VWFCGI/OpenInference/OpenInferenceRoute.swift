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
        // Matched segment by segment, without building arrays to compare: this runs for every V2 request.
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst(2)
        if parts.isEmpty || (parts.count == 1 && parts[parts.startIndex].isEmpty) {
            self = .server
            return
        }
        if parts.count == 2, parts[parts.startIndex] == "health" {
            switch parts[parts.startIndex + 1] {
            case "live": self = .live; return
            case "ready": self = .ready; return
            default: return nil
            }
        }
        guard parts.count >= 2, parts[parts.startIndex] == "models" else { return nil }
        let name = String(parts[parts.startIndex + 1])
        guard !name.isEmpty, !name.contains(":") else { return nil }
        parts = parts.dropFirst(2)
        var version: String?
        if parts.first == "versions" {
            guard parts.count >= 2, !parts[parts.startIndex + 1].isEmpty else { return nil }
            version = String(parts[parts.startIndex + 1])
            parts = parts.dropFirst(2)
        }
        switch parts.count {
        case 0: self = .model(name: name, version: version)
        case 1 where parts[parts.startIndex] == "ready": self = .modelReady(name: name, version: version)
        case 1 where parts[parts.startIndex] == "infer": self = .infer(name: name, version: version)
        default: return nil
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

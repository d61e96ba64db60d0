import VWCore

/// A path of the Personalizer-compatible API (SPEC §9): `{Endpoint}/personalizer/v1.0/<operation>` (the 0.1.1 SDK) or
/// `{Endpoint}/personalizer/<operation>?api-version=...` (the 1.0.0b1 SDK), where `{Endpoint}` is
/// `/loops/<model>` or the server root (the model of `--personalizer-model`). The query string is not read.
struct PersonalizerRoute: Equatable {
    enum Operation: Equatable {
        case rank
        case reward(eventID: String)
        case activate(eventID: String)
        /// `multislot/rank`, `multislot/events/{eventId}/reward|activate` (a `--ccb_explore_adf` model).
        case multiSlotRank
        case multiSlotReward(eventID: String)
        case multiSlotActivate(eventID: String)
        /// `configurations/service` (GET, PUT) and `configurations/policy` (GET, PUT, DELETE).
        case serviceConfiguration
        case policy
        /// `model` (GET export, PUT import) and `model/properties` (GET).
        case model
        case modelProperties
        /// `logs/properties` (GET).
        case logProperties
        /// `logs` (DELETE).
        case logs
        /// `evaluations` (GET: the list) and `evaluations/{id}` (PUT, GET, DELETE).
        case evaluations
        case evaluation(id: String)
        /// `configurations/applyFromEvaluation` (POST).
        case applyFromEvaluation
        /// `featureImportances` (GET: the list) and `featureImportances/{id}` (PUT, GET, DELETE).
        case featureImportances
        case featureImportance(id: String)
        /// An operation not served: 501, saying why.
        case notImplemented(String)
        /// A path under a Personalizer prefix that names no operation: 404.
        case unknown
    }

    let model: String
    let operation: Operation

    /// The route of `path`; nil for a path outside the Personalizer API.
    init?(path: String, defaultModel: String) {
        // Every request asks: most paths are rejected on their first bytes (an ASCII prefix matches as bytes exactly
        // when it matches as characters).
        guard path.utf8.starts(with: "/loops/".utf8) || path.utf8.starts(with: "/personalizer/".utf8) else { return nil }
        var rest = Substring(path)
        if rest.hasPrefix("/loops/") {
            rest = rest.dropFirst("/loops/".count)
            let name = rest.prefix { $0 != "/" }
            model = String(name)
            rest = rest.dropFirst(name.count)
        } else {
            model = defaultModel
        }
        guard rest.hasPrefix("/personalizer/") else {
            // `/loops/<model>` with another tail: still this API's namespace, so its error shape.
            guard path.hasPrefix("/loops/") else { return nil }
            operation = .unknown
            return
        }
        rest = rest.dropFirst("/personalizer/".count)
        if rest.hasPrefix("v1.0/") { rest = rest.dropFirst("v1.0/".count) }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        if let fixed = Self.fixedPaths[String(rest)] {
            operation = fixed
        } else if parts.count == 3 && parts[0] == "events" && parts[2] == "reward" {
            operation = .reward(eventID: String(parts[1]))
        } else if parts.count == 3 && parts[0] == "events" && parts[2] == "activate" {
            operation = .activate(eventID: String(parts[1]))
        } else if parts.count == 4 && parts[0] == "multislot" && parts[1] == "events" && parts[3] == "reward" {
            operation = .multiSlotReward(eventID: String(parts[2]))
        } else if parts.count == 4 && parts[0] == "multislot" && parts[1] == "events" && parts[3] == "activate" {
            operation = .multiSlotActivate(eventID: String(parts[2]))
        } else if parts.count == 2 && parts[0] == "evaluations" {
            operation = .evaluation(id: String(parts[1]))
        } else if parts.count == 2 && parts[0] == "featureImportances" {
            operation = .featureImportance(id: String(parts[1]))
        } else {
            let head = parts.first.map(String.init) ?? ""
            operation = Self.notServed.contains(head) ? .notImplemented(String(rest)) : .unknown
        }
        if model.isEmpty { return nil }
    }

    /// The operations whose path has no parameter, after `personalizer/[v1.0/]`.
    static let fixedPaths: [String: Operation] = [
        "rank": .rank, "multislot/rank": .multiSlotRank, "configurations/service": .serviceConfiguration, "configurations/policy": .policy, "model": .model,
        "model/properties": .modelProperties, "logs/properties": .logProperties, "logs": .logs, "evaluations": .evaluations,
        "featureImportances": .featureImportances,
        "configurations/applyFromEvaluation": .applyFromEvaluation,
    ]

    /// The Personalizer operations that exist but are not served by this version.
    static let notServed: Set<String> = ["configurations", "model", "logs"]

    /// The `route` label in the request metrics.
    var label: String {
        switch operation {
        case .rank, .multiSlotRank: "personalizer_rank"
        case .reward, .multiSlotReward: "personalizer_reward"
        case .activate, .multiSlotActivate: "personalizer_activate"
        case .serviceConfiguration, .policy, .applyFromEvaluation: "personalizer_configuration"
        case .model, .modelProperties: "personalizer_model"
        case .logProperties, .logs: "personalizer_logs"
        case .evaluations, .evaluation: "personalizer_evaluations"
        case .featureImportances, .featureImportance: "personalizer_feature_importances"
        case .notImplemented, .unknown: "personalizer_other"
        }
    }
}

/// Which engine answers a model's predictions (`--engine`, `"engine"` in the model's `.json`).
public enum EngineMode: String, Sendable, Equatable, CaseIterable {
    /// Always the vw pool.
    case vw
    /// The native scorer once it matched vw on the model's probe set; a model it cannot serve is logged as a warning.
    case native
    /// The native scorer where it matched vw on the probe set, quietly the vw pool elsewhere.
    case auto
}

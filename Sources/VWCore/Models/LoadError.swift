/// Why a model version could not be loaded.
public enum LoadError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(String)
    case invalidConfig(String)
    case checksumMismatch(expected: String, actual: String)
    case spawnFailed(String)
    case probeFailed(String)

    public var description: String {
        switch self {
        case .unreadable(let why): "cannot read model: \(why)"
        case .invalidConfig(let why): "invalid config: \(why)"
        case .checksumMismatch(let expected, let actual): "sha256 mismatch: expected \(expected), file has \(actual)"
        case .spawnFailed(let why): "cannot start vw: \(why)"
        case .probeFailed(let why): "vw failed the load probe: \(why)"
        }
    }
}

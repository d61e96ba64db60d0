/// Limits applied to every VW text line before it reaches vw.
public struct ExampleLimits: Sendable {
    /// The longest accepted line, in bytes.
    public var maxLineBytes: Int
    /// The most feature tokens accepted on one line.
    public var maxFeatures: Int

    public init(maxLineBytes: Int = 1 << 20, maxFeatures: Int = 65_536) {
        self.maxLineBytes = maxLineBytes
        self.maxFeatures = maxFeatures
    }
}

/// The memory a model's vw processes take for their weights when they serve it (`-t`), estimated
/// from the options stored in the model file before any process starts.
///
/// VW allocates its whole weight table at start-up, whatever the file's size: 2^b slots of
/// 2^stride_shift floats (a 231-byte `-b 26` model takes 256 MiB in every shard). The stride is the
/// base learner's: plain gradient descent keeps one float per slot under `-t` (its adaptive and
/// normalized state only when training), `--ftrl`/`--pistol` and `--bfgs`/`--conjugate_gradient`
/// four, `--coin`/`--freegrad` eight; `--bfgs` adds its `--mem` history (2 × mem floats per slot).
/// Checked against vw 9.11's address space in `ModelMemoryTests`. VW's own few MiB are not counted.
public struct ModelMemoryEstimate: Sendable, Equatable {
    /// Bytes of weights one vw process allocates.
    public let bytesPerShard: UInt64
    public let shards: Int

    /// Bytes of weights across the model's shards.
    public var totalBytes: UInt64 {
        let (total, overflow) = bytesPerShard.multipliedReportingOverflow(by: UInt64(max(shards, 0)))
        return overflow ? .max : total
    }

    /// The estimate for `options` served by `shards` processes; nil with `--sparse_weights`, whose
    /// weights are allocated as features are seen (no bound can be read from the file).
    public init?(options: ModelOptions, shards: Int) {
        let names = Set(options.options.map(\.name))
        guard !names.contains("sparse_weights") else { return nil }
        let bits = UInt64(min(max(options.bits ?? 18, 0), 62))
        var floatsPerSlot: UInt64 = 1
        if names.contains("coin") || names.contains("freegrad") {
            floatsPerSlot = 8
        } else if names.contains("ftrl") || names.contains("pistol") {
            floatsPerSlot = 4
        } else if names.contains("bfgs") || names.contains("conjugate_gradient") {
            let memory = options.options.first { $0.name == "mem" }?.values.first.flatMap { UInt64($0) } ?? 15
            floatsPerSlot = 4 + 2 * min(memory, 1 << 20)
        }
        let (bytes, overflow) = ((1 as UInt64) << bits).multipliedReportingOverflow(by: floatsPerSlot * 4)
        bytesPerShard = overflow ? .max : bytes
        self.shards = shards
    }

    /// Why the model must not start under `limit` (`--vw-memory-limit`): its weights across all
    /// shards are above it. Nil when they fit.
    public func problem(limit: UInt64) -> String? {
        guard totalBytes > limit else { return nil }
        return "the model's weights take about \(Self.describe(totalBytes)) (\(Self.describe(bytesPerShard)) per vw process × \(shards) shard(s): "
            + "2^b slots as stored in the model file), above --vw-memory-limit \(Self.describe(limit))"
    }

    /// `bytes` in whole MiB, or GiB with one decimal, for messages.
    static func describe(_ bytes: UInt64) -> String {
        guard bytes >= 1 << 30 else { return "\(bytes >> 20) MiB" }
        let tenths = bytes / ((1 << 30) / 10)
        return "\(tenths / 10).\(tenths % 10) GiB"
    }
}

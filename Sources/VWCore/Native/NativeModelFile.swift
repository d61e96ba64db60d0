/// Why the native scorer cannot read a model file (the model then stays on vw).
public enum NativeModelError: Error, Equatable, Sendable {
    /// The file ends inside a field or a weight record.
    case truncated(String)
    /// A field holds something VW would not have written.
    case malformed(String)
    /// Something the native scorer does not reproduce (an option, an old layout, a feature).
    case unsupported(String)

    public var reason: String {
        switch self {
        case .truncated(let what): "model file truncated: \(what)"
        case .malformed(let what): "malformed model file: \(what)"
        case .unsupported(let what): "not supported by the native scorer: \(what)"
        }
    }
}

/// The parts of a VW 9 model file that a `-t` prediction reads, for a `gd` (linear) model.
///
/// The layout (`save_load_header` in `parse_regressor.cc`, then gd's `save_load` in `gd.cc`):
/// version, model id, 'm', min and max label, bits, lda, n-grams, skips, the options string and
/// the header checksum; then a `resume` byte and, with `--save_resume` (VW 9's default), the
/// online state (which carries min and max label again, the l1 and l2 state), then weight records:
/// a uint32 index (< 2^bits) and one float, or 1–3 floats per record with the online state.
/// Every length and index is checked against the bytes present: nothing is read out of bounds.
public struct NativeModelFile: Sendable, Equatable {
    public var version: String
    public var bits: Int
    /// The labels the prediction is clipped to (the online state's when the file has one).
    public var minLabel: Float
    public var maxLabel: Float
    /// Whether the file holds the online state (`--save_resume`).
    public var resume: Bool
    /// The accumulated l1 and l2 state (`sd->gravity`, `sd->contraction`) VW applies to the weights under `-t`.
    public var gravity: Double
    public var contraction: Double
    /// Weight 0 of every slot, 2^bits of them, after VW's `sync_weights`.
    public var weights: [Float]

    /// The largest `-b` the native scorer loads (a dense table of 2^bits floats).
    public static let maxBits = 28

    /// Reads a model file; `floatsPerRecord(resume)` says how many floats each weight record of the
    /// online state has (1 + adaptive + normalized, from the options vw loads the model with);
    /// `reductionBytes` how many bytes the reductions above gd save before its state (`cb_adf`: its
    /// uint64 `event_sum` and `action_sum`, 16).
    public static func parse(
        _ bytes: [UInt8], floatsPerRecord: Int, reductionBytes: Int = 0, maxBits: Int = maxBits
    ) throws(NativeModelError) -> NativeModelFile {
        try bytes.withUnsafeBufferPointer { buffer throws(NativeModelError) in
            var reader = ModelFileReader(bytes: buffer)
            return try parse(&reader, floatsPerRecord: floatsPerRecord, reductionBytes: reductionBytes, maxBits: maxBits)
        }
    }

    private static func parse(
        _ reader: inout ModelFileReader, floatsPerRecord: Int, reductionBytes: Int, maxBits: Int
    ) throws(NativeModelError) -> NativeModelFile {
        let versionBytes = try reader.lengthPrefixed("version", limit: 32)
        guard versionBytes.last == 0 else { throw .malformed("version string without a NUL") }
        let version = String(decoding: versionBytes.dropLast(), as: UTF8.self)
        let parts = version.split(separator: ".").map { Int($0) ?? -1 }
        guard parts.count == 3, parts.allSatisfy({ $0 >= 0 }) else { throw .malformed("version \(version)") }
        guard parts[0] == 9 else { throw .unsupported("model files written by vw \(version) (only 9.x)") }
        _ = try reader.lengthPrefixed("model id", limit: 512)
        guard try reader.byte("'m' marker") == UInt8(ascii: "m") else { throw .malformed("no 'm' after the model id") }
        var minLabel = try reader.float("min label")
        var maxLabel = try reader.float("max label")
        let bits = Int(try reader.uint32("bits"))
        guard bits >= 1 && bits <= maxBits else { throw .unsupported("-b \(bits) (at most \(maxBits))") }
        guard try reader.uint32("lda") == 0 else { throw .unsupported("--lda") }
        for name in ["ngram", "skips"] {
            guard try reader.uint32(name) == 0 else { throw .unsupported("--\(name)") }
        }
        let options = try reader.lengthPrefixed("options", limit: 104_857_600)
        guard options.isEmpty || options.last == 0 else { throw .malformed("options string without a NUL") }
        // The checksum: a uint32 length (4) and the uint32 hash.
        guard try reader.lengthPrefixed("checksum", limit: 4).count == 4 else { throw .malformed("checksum is not 4 bytes") }
        try reader.skip(reductionBytes, "the reductions' state")

        let resumeByte = try reader.byte("resume flag")
        guard resumeByte <= 1 else { throw .malformed("resume flag \(resumeByte)") }
        let resume = resumeByte == 1
        var gravity = 0.0
        var contraction = 1.0
        var floats = 1
        if resume {
            _ = try reader.float("initial_t")
            try reader.skip(8 * 4, "normalizer, t, sum_loss, sum_loss_since_last_dump")
            _ = try reader.float("dump_interval")
            minLabel = try reader.float("min_label")
            maxLabel = try reader.float("max_label")
            try reader.skip(8 * 3 + 8 * 2 + 8 * 2 + 8, "example counters, total_weight, current_pass")
            gravity = try reader.double("l1_state")
            contraction = try reader.double("l2_state")
            floats = floatsPerRecord
        }
        let count = 1 << bits
        var weights = [Float](repeating: 0, count: count)
        let recordSize = 4 + 4 * floats
        guard reader.remaining % recordSize == 0 else {
            throw .truncated("\(reader.remaining) bytes of weights are not whole \(recordSize)-byte records")
        }
        while reader.remaining > 0 {
            let index = Int(try reader.uint32("weight index"))
            guard index < count else { throw .malformed("weight index \(index) ≥ 2^\(bits)") }
            weights[index] = try reader.float("weight")
            try reader.skip(4 * (floats - 1), "weight state")
        }
        if gravity != 0 || contraction != 1 {
            // `sync_weights`: under -t VW folds the l1 and l2 state into the weights once.
            let g = Float(gravity)
            let c = Float(contraction)
            for index in weights.indices {
                let w = weights[index]
                weights[index] = (g < abs(w) ? w - (w > 0 ? g : -g) : 0) * c
            }
        }
        return NativeModelFile(
            version: version, bits: bits, minLabel: minLabel, maxLabel: maxLabel, resume: resume,
            gravity: gravity, contraction: contraction, weights: weights
        )
    }
}

/// Reads little-endian fields from a model file's bytes, each checked against the end.
struct ModelFileReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    var remaining: Int { bytes.count - position }

    mutating func take(_ count: Int, _ what: String) throws(NativeModelError) -> UnsafeBufferPointer<UInt8> {
        guard count >= 0, count <= remaining else { throw .truncated(what) }
        defer { position += count }
        return UnsafeBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    mutating func skip(_ count: Int, _ what: String) throws(NativeModelError) { _ = try take(count, what) }

    mutating func byte(_ what: String) throws(NativeModelError) -> UInt8 { try take(1, what)[0] }

    mutating func uint32(_ what: String) throws(NativeModelError) -> UInt32 {
        try take(4, what).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func float(_ what: String) throws(NativeModelError) -> Float { Float(bitPattern: try uint32(what)) }

    mutating func double(_ what: String) throws(NativeModelError) -> Double {
        Double(bitPattern: try take(8, what).reversed().reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// A uint32 length and that many bytes (at most `limit`).
    mutating func lengthPrefixed(_ what: String, limit: Int) throws(NativeModelError) -> [UInt8] {
        let length = Int(try uint32("length of \(what)"))
        guard length <= limit else { throw .malformed("\(what) of \(length) bytes") }
        return Array(try take(length, what))
    }
}

/// The sampling seed of a ccb or slates slot, so that the answer depends on the example alone.
///
/// VW's `--ccb_explore_adf` (and `--slates`, which runs through it) draws each slot's action from
/// the slot's PMF with `cb_sample`, whose random state advances with every example a process
/// sees: the same example answered on another shard, after other clients' requests or after the
/// load probe gets another draw. Unless the slot's tag is `seed=<text>`: then the draw is seeded
/// with VW's hash of `<text>` and the state does not move (VW's `cb_sample.cc`, `tag_utils.cc`;
/// ccb hands the slot's tag to the draw).
///
/// So every slot line reaches vw with a seed tag: the client's own `seed=<text>` (1 to 64 of
/// `[A-Za-z0-9_.-]`, the only client tag that reaches vw), or else `seed=<digest>_<slot>`, where
/// `<digest>` is FNV-1a 64 of the example's canonical text without tags (its lines and final
/// blank line, as written to vw), in 16 lowercase hex digits, and `<slot>` the slot's index from 0.
/// Identical examples therefore get identical answers; a client that wants independent draws for
/// repeated contexts gives each slot its own seed (an event id, say).
public enum CanonicalSeed {
    static let prefix = Array("seed=".utf8)

    /// Whether a tag asks for a seed (VW reads any tag that starts with `seed=` as one).
    static func isSeedTag(_ tag: some Collection<UInt8>) -> Bool {
        tag.count > prefix.count && tag.starts(with: prefix)
    }

    /// Whether a seed tag's text is 1 to 64 of `[A-Za-z0-9_.-]`.
    static func isValidSeedTag(_ tag: some Collection<UInt8>) -> Bool {
        let text = tag.dropFirst(prefix.count)
        guard !text.isEmpty, text.count <= 64 else { return false }
        return text.allSatisfy { byte in
            let letter = byte | 0x20
            return (letter >= UInt8(ascii: "a") && letter <= UInt8(ascii: "z")) || VWTextSyntax.isDigit(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }

    /// FNV-1a 64 of `bytes`.
    public static func digest(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }

    /// Replaces `tag` with `seed=<digest, 16 hex digits>_<slot>`.
    static func write(digest: UInt64, slot: Int, into tag: inout [UInt8]) {
        tag.removeAll(keepingCapacity: true)
        tag.append(contentsOf: prefix)
        for shift in stride(from: 60, through: 0, by: -4) {
            let nibble = UInt8((digest >> UInt64(shift)) & 0xF)
            tag.append(nibble < 10 ? 0x30 + nibble : 0x57 + nibble)
        }
        tag.append(UInt8(ascii: "_"))
        tag.append(contentsOf: String(slot).utf8)
    }
}

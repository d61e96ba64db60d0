/// VW's feature hashing (`vw/common/hash.h`, `hashstring.h`): MurmurHash3 x86 32-bit, and the
/// `--hash strings` rule that reads a name made only of digits as the number it writes.
enum VWHash {
    /// `uniform_hash`: MurmurHash3_x86_32 of `bytes` with `seed`.
    static func murmur(_ bytes: UnsafeBufferPointer<UInt8>, seed: UInt32) -> UInt32 {
        let c1: UInt32 = 0xcc9e_2d51
        let c2: UInt32 = 0x1b87_3593
        var h1 = seed
        let blocks = bytes.count / 4
        var index = 0
        // Each block is a little-endian 32-bit word, as VW's `getblock` reads it on the little-endian machines it runs on.
        let raw = UnsafeRawBufferPointer(bytes)
        for _ in 0..<blocks {
            var k1 = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt32.self))
            index += 4
            k1 &*= c1
            k1 = k1 << 15 | k1 >> 17
            k1 &*= c2
            h1 ^= k1
            h1 = h1 << 13 | h1 >> 19
            h1 = h1 &* 5 &+ 0xe654_6b64
        }
        var k1: UInt32 = 0
        let tail = bytes.count & 3
        if tail == 3 { k1 ^= UInt32(bytes[index + 2]) << 16 }
        if tail >= 2 { k1 ^= UInt32(bytes[index + 1]) << 8 }
        if tail >= 1 {
            k1 ^= UInt32(bytes[index])
            k1 &*= c1
            k1 = k1 << 15 | k1 >> 17
            k1 &*= c2
            h1 ^= k1
        }
        h1 ^= UInt32(truncatingIfNeeded: bytes.count)
        h1 ^= h1 >> 16
        h1 &*= 0x85eb_ca6b
        h1 ^= h1 >> 13
        h1 &*= 0xc2b2_ae35
        h1 ^= h1 >> 16
        return h1
    }

    /// `hashstring` (`--hash strings`, VW's default): bytes ≤ 0x20 trimmed at both ends; a name
    /// made only of digits hashes to its value plus the seed (mod 2^32), any other to its MurmurHash.
    static func strings(_ bytes: UnsafeBufferPointer<UInt8>, seed: UInt32) -> UInt32 {
        var start = 0
        var end = bytes.count
        while start < end && bytes[start] <= 0x20 { start += 1 }
        while end > start && bytes[end - 1] <= 0x20 { end -= 1 }
        var value: UInt32 = 0
        for index in start..<end {
            let digit = bytes[index] &- 0x30
            guard digit < 10 else { return murmur(UnsafeBufferPointer(rebasing: bytes[start..<end]), seed: seed) }
            value = value &* 10 &+ UInt32(digit)
        }
        return value &+ seed
    }

    /// The hasher a model uses: `--hash all` hashes every name, `strings` applies the integer rule.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>, seed: UInt32, all: Bool) -> UInt32 {
        all ? murmur(bytes, seed: seed) : strings(bytes, seed: seed)
    }
}

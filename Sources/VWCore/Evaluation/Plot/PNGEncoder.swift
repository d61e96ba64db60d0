/// A PNG writer for 8-bit RGB images, with no dependency: the zlib stream is one fixed-Huffman deflate block whose only
/// matches are runs (distance 1), after each row is filtered with PNG's `Sub` filter, so a plot's flat backgrounds
/// become runs of zeros and compress well (RFC 1950, RFC 1951, PNG 1.2).
public enum PNGEncoder {
    /// The PNG file of `width × height` pixels, `rgb` holding 3 bytes per pixel row by row.
    public static func encode(width: Int, height: Int, rgb: [UInt8]) -> [UInt8] {
        precondition(width > 0 && height > 0 && rgb.count == width * height * 3)
        var filtered: [UInt8] = []
        filtered.reserveCapacity(height * (1 + width * 3))
        let stride = width * 3
        for y in 0..<height {
            filtered.append(1)  // Sub: each byte minus the same byte of the pixel to its left.
            let row = y * stride
            for x in 0..<stride {
                filtered.append(x < 3 ? rgb[row + x] : rgb[row + x] &- rgb[row + x - 3])
            }
        }
        var header: [UInt8] = []
        append32(UInt32(width), to: &header)
        append32(UInt32(height), to: &header)
        header += [8, 2, 0, 0, 0]  // 8 bits per sample, RGB, deflate, adaptive filtering, no interlace.
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        chunk("IHDR", header, into: &png)
        chunk("IDAT", zlib(filtered), into: &png)
        chunk("IEND", [], into: &png)
        return png
    }

    /// A zlib stream (RFC 1950) of `data`: header, one fixed-Huffman deflate block, Adler-32.
    public static func zlib(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]  // deflate, 32K window; check bits: 0x7801 % 31 == 0.
        out += deflate(data)
        append32(adler32(data), to: &out)
        return out
    }

    /// One final fixed-Huffman block (RFC 1951 §3.2.6): literals, and a run of ≥ 3 copies of the previous byte as a
    /// match at distance 1.
    static func deflate(_ data: [UInt8]) -> [UInt8] {
        var bits = BitWriter()
        bits.write(1, count: 1)  // BFINAL
        bits.write(1, count: 2)  // BTYPE 01: fixed Huffman codes
        var index = 0
        while index < data.count {
            var run = 0
            if index > 0 {
                let previous = data[index - 1]
                while run < 258, index + run < data.count, data[index + run] == previous { run += 1 }
            }
            if run >= 3 {
                writeLength(run, &bits)
                bits.writeCode(0, length: 5)  // distance code 0: distance 1, no extra bits
                index += run
            } else {
                writeSymbol(Int(data[index]), &bits)
                index += 1
            }
        }
        writeSymbol(256, &bits)
        return bits.finish()
    }

    private static let lengthBases = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtraBits = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]

    private static func writeLength(_ length: Int, _ bits: inout BitWriter) {
        var code = lengthBases.count - 1
        while lengthBases[code] > length { code -= 1 }
        writeSymbol(257 + code, &bits)
        bits.write(UInt32(length - lengthBases[code]), count: lengthExtraBits[code])
    }

    /// A literal/length symbol in the fixed code (RFC 1951 §3.2.6).
    private static func writeSymbol(_ symbol: Int, _ bits: inout BitWriter) {
        switch symbol {
        case 0...143: bits.writeCode(UInt32(0x30 + symbol), length: 8)
        case 144...255: bits.writeCode(UInt32(0x190 + symbol - 144), length: 9)
        case 256...279: bits.writeCode(UInt32(symbol - 256), length: 7)
        default: bits.writeCode(UInt32(0xC0 + symbol - 280), length: 8)
        }
    }

    /// CRC-32 (ISO 3309, as PNG and zlib use it): `crc32("123456789") == 0xCBF43926`.
    public static func crc32<Bytes: Sequence<UInt8>>(_ bytes: Bytes, initial: UInt32 = 0) -> UInt32 {
        var crc = ~initial
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return ~crc
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// Adler-32 (RFC 1950): `adler32("Wikipedia") == 0x11E60398`.
    public static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var index = 0
        while index < bytes.count {
            // 5552 bytes keep b below 2^32 before the modulo (zlib's NMAX).
            let end = min(index + 5552, bytes.count)
            for byte in bytes[index..<end] {
                a += UInt32(byte)
                b += a
            }
            a %= 65521
            b %= 65521
            index = end
        }
        return b << 16 | a
    }

    private static func chunk(_ type: String, _ data: [UInt8], into png: inout [UInt8]) {
        append32(UInt32(data.count), to: &png)
        let typed = Array(type.utf8) + data
        png += typed
        append32(crc32(typed), to: &png)
    }

    private static func append32(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
}

/// Deflate's bit order: values least-significant bit first, Huffman codes most-significant bit first.
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var buffer: UInt32 = 0
    private var used = 0

    mutating func write(_ value: UInt32, count: Int) {
        for bit in 0..<count {
            buffer |= ((value >> UInt32(bit)) & 1) << UInt32(used)
            used += 1
            if used == 8 {
                bytes.append(UInt8(buffer))
                buffer = 0
                used = 0
            }
        }
    }

    mutating func writeCode(_ code: UInt32, length: Int) {
        var reversed: UInt32 = 0
        for bit in 0..<length { reversed |= ((code >> UInt32(bit)) & 1) << UInt32(length - 1 - bit) }
        write(reversed, count: length)
    }

    mutating func finish() -> [UInt8] {
        if used > 0 { bytes.append(UInt8(buffer)) }
        buffer = 0
        used = 0
        return bytes
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VWCore

/// The PNG writer and the plot of `vwfcgi evaluate --plot` (decoded by Python's zlib in the e2e test).
@Suite struct EvaluationPlotTests {
    @Test func crc32AndAdler32HaveTheirKnownValues() {
        #expect(PNGEncoder.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(PNGEncoder.crc32([UInt8]()) == 0)
        #expect(PNGEncoder.crc32(Array("IEND".utf8)) == 0xAE42_6082)
        #expect(PNGEncoder.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
        #expect(PNGEncoder.adler32([]) == 1)
        // Past zlib's NMAX: the sums are reduced in time.
        let zeros = [UInt8](repeating: 0xFF, count: 100_000)
        var a: UInt64 = 1, b: UInt64 = 0
        for byte in zeros { a = (a + UInt64(byte)) % 65521; b = (b + a) % 65521 }
        #expect(PNGEncoder.adler32(zeros) == UInt32(b << 16 | a))
    }

    @Test func deflateWritesFixedHuffmanCodesAndRuns() {
        // RFC 1951 fixed block of "a": BFINAL 1, BTYPE 01, literal 0x61 (8 bits 0x91), end of block (7 zero bits).
        #expect(PNGEncoder.deflate(Array("a".utf8)) == [0x4B, 0x04, 0x00])
        // The same byte 1000 times: one literal and runs at distance 1, far shorter than the input.
        #expect(PNGEncoder.deflate([UInt8](repeating: 7, count: 1000)).count < 20)
        let stream = PNGEncoder.zlib([1, 2, 3])
        #expect(stream.prefix(2) == [0x78, 0x01] && stream.suffix(4) == [0x00, 0x0D, 0x00, 0x07])
    }

    /// Python's zlib (the reference inflater) decompresses what `PNGEncoder.zlib` writes, Adler-32 checked, to the
    /// same bytes: random bytes, runs shorter and longer than deflate's longest match (258), nothing; and decodes a
    /// tiny PNG to its pixels.
    @Test(.enabled(if: access("/usr/bin/python3", X_OK) == 0, "no /usr/bin/python3"))
    func pythonsZlibInflatesTheStreamAndThePNGBackToTheirBytes() throws {
        var generator = SystemRandomNumberGenerator()
        var data = (0..<3000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for length in [1, 2, 3, 4, 257, 258, 259, 1000] { data += [UInt8](repeating: UInt8(length & 0xFF), count: length) }
        data += (0..<500).map { UInt8($0 % 3) }
        var template = Array("/tmp/vwfcgi-png-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let directory = try StateDirectory.root(path)
        defer {
            for entry in directory.list() { directory.remove(entry) }
            rmdir(path)
        }
        let rgb: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9, 9, 9, 9, 9, 9, 9]  // 3×2: red green blue / grey
        try directory.writeAtomically(PNGEncoder.zlib(data), to: "data.zlib")
        try directory.writeAtomically(PNGEncoder.zlib([]), to: "empty.zlib")
        try directory.writeAtomically(PNGEncoder.encode(width: 3, height: 2, rgb: rgb), to: "tiny.png")
        let script = """
            import sys, zlib, struct
            d = sys.argv[1]
            open(d + '/data.out', 'wb').write(zlib.decompress(open(d + '/data.zlib', 'rb').read()))
            assert zlib.decompress(open(d + '/empty.zlib', 'rb').read()) == b''
            png = open(d + '/tiny.png', 'rb').read()
            w, h = struct.unpack('>II', png[16:24])
            raw = zlib.decompress(png[41:41 + struct.unpack('>I', png[33:37])[0]])
            rows = []
            for y in range(h):
                line = bytearray(raw[y * (3 * w + 1) + 1:(y + 1) * (3 * w + 1)])
                assert raw[y * (3 * w + 1)] == 1
                for x in range(3, 3 * w): line[x] = (line[x] + line[x - 3]) & 255
                rows.append(bytes(line))
            open(d + '/tiny.out', 'wb').write(bytes([w, h]) + b''.join(rows))
            """
        #expect(system("/usr/bin/python3 -c \"\(script)\" '\(path)'") == 0)
        #expect(try directory.read("data.out") == data)
        #expect(try directory.read("tiny.out") == [3, 2] + rgb)
    }

    @Test func aPNGHasItsSignatureHeaderAndCheckedChunks() {
        let png = PNGEncoder.encode(width: 2, height: 1, rgb: [255, 0, 0, 0, 0, 255])
        #expect(png.prefix(8) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(Array(png[12..<16]) == Array("IHDR".utf8))
        #expect(Array(png[16..<29]) == [0, 0, 0, 2, 0, 0, 0, 1, 8, 2, 0, 0, 0])
        #expect(Array(png[29..<33]) == bigEndian(PNGEncoder.crc32(png[12..<29])))
        #expect(Array(png.suffix(12)) == [0, 0, 0, 0] + Array("IEND".utf8) + [0xAE, 0x42, 0x60, 0x82])
    }

    @Test func thePlotDrawsEachPolicyInItsColourOnAWhiteBackground() throws {
        let estimate = try #require(OffPolicyEstimate(rewards: [1, 0, 1], weights: [1, 1, 1], maxWeight: 1))
        let window = WindowEstimate(start: "2026-12-01T00:00:00.000Z", end: "2026-12-01T01:00:00.000Z", estimate: estimate)
        let policies = (0..<3).map { index in
            var shifted = window
            shifted.estimate.ips += Double(index) / 10
            return PolicyResult(name: "P\(index)", source: .custom, arguments: "", summary: estimate, timeseries: [shifted, shifted, window])
        }
        let result = EvaluationResult(model: "m", events: 3, skipped: 0, skippedReasons: [], firstTimestamp: nil, lastTimestamp: nil,
                                      policies: policies)
        let canvas = EvaluationPlot.canvas(result)
        var colours: Set<RGB> = []
        for y in 0..<canvas.height { for x in 0..<canvas.width { colours.insert(canvas.pixel(x: x, y: y)) } }
        for index in 0..<3 { #expect(colours.contains(EvaluationPlot.palette[index])) }
        #expect(colours.contains(EvaluationPlot.background) && colours.count > 5)
    }

    @Test func tickLabelsAreRoundNumbers() {
        #expect(EvaluationPlot.niceStep(0.031) == 0.05)
        #expect(EvaluationPlot.niceStep(0.2) == 0.2)
        #expect(EvaluationPlot.fixed(0.25, 2) == "0.25" && EvaluationPlot.fixed(-0.05, 2) == "-0.05" && EvaluationPlot.fixed(3, 0) == "3")
        #expect(EvaluationPlot.fixed(-0.0001, 2) == "0.00")
        #expect(EvaluationPlot.shortTime("2026-12-01T10:05:00.000Z") == "12-01 10:05")
    }

    private func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
}

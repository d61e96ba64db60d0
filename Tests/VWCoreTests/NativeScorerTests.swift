#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VWCore

/// The native scorer's pure parts: VW's hash, VW's own float reading, the `-p` format, the model
/// file reader's bounds, and which options keep a model on vw.
struct NativeScorerTests {
    private func murmur(_ text: [UInt8], _ seed: UInt32) -> UInt32 {
        text.withUnsafeBufferPointer { VWHash.murmur($0, seed: seed) }
    }

    @Test func murmurHashMatchesMurmurHash3x86_32TestVectors() {
        #expect(murmur([], 0) == 0)
        #expect(murmur([], 1) == 0x514E_28B7)
        #expect(murmur([], 0xFFFF_FFFF) == 0x81F1_6F39)
        #expect(murmur([0, 0, 0, 0], 0) == 0x2362_F9DE)
        #expect(murmur(Array("aaaa".utf8), 0x9747_B28C) == 0x5A97_808A)
        #expect(murmur(Array("Hello, world!".utf8), 0x9747_B28C) == 0x2488_4CBA)
    }

    @Test func hashStringsReadsDigitOnlyNamesAsNumbersPlusTheSeed() {
        func strings(_ text: String, _ seed: UInt32) -> UInt32 {
            Array(text.utf8).withUnsafeBufferPointer { VWHash.strings($0, seed: seed) }
        }
        #expect(strings("1924", 7) == 1931)
        #expect(strings("007", 0) == 7)
        #expect(strings("4294967296", 0) == 0)  // wraps as VW's size_t truncated to uint32
        #expect(strings("12a", 3) == murmur(Array("12a".utf8), 3))
        #expect(strings("", 5) == 5)
    }

    private func parse(_ text: String) -> Float? {
        Array(text.utf8).withUnsafeBufferPointer { VWFloatText.parse($0, from: 0, to: $0.count)?.value }
    }

    @Test func parseFloatIsVWsOwnNotStrtof() {
        #expect(parse("0.5") == 0.5)
        #expect(parse("-2e-3") == -2 * VWFloatText.pow10(-3))
        // fast_pow10 is 0 below 10^-37: VW reads denormals (and 1e-38) as 0 where strtof would not.
        #expect(parse("1e-40") == 0)
        #expect(parse("1.4e-45") == 0)
        // At most 35 decimals are read.
        #expect(parse("0.000000000000000000000000000000000001") == 0)
        // A '+' in the exponent leaves the easy path: VW calls strtof.
        #expect(parse("1e+5") == nil)
        #expect(parse("1x") == nil)
        #expect(parse("-0")?.sign == .minus)
    }

    private func printed(_ value: Float) -> String {
        var output: [UInt8] = []
        VWFloatText.appendPrediction(value, to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    @Test func predictionsPrintAsVWPrintsThem() {
        #expect(printed(1) == "1")
        #expect(printed(0.5) == "0.500000")
        #expect(printed(-0.0) == "-0")
        #expect(printed(1e30) == "1000000015047466219876688855040")
        #expect(printed(.infinity) == "inf")
        #expect(printed(0.1234567) == "0.123457")
    }

    /// A VW 9.11 model file: header, `resume` 0, then weight records (index, weight).
    private func modelFile(bits: UInt32 = 4, version: String = "9.11.9", records: [(UInt32, Float)] = []) -> [UInt8] {
        func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        var bytes = u32(UInt32(version.utf8.count + 1)) + Array(version.utf8) + [0] + u32(1) + [0] + [UInt8(ascii: "m")]
        bytes += u32(Float(-1).bitPattern) + u32(Float(1).bitPattern) + u32(bits) + u32(0) + u32(0) + u32(0)
        bytes += u32(1) + [0] + u32(4) + u32(0x1234_5678) + [0]
        for (index, weight) in records { bytes += u32(index) + u32(weight.bitPattern) }
        return bytes
    }

    @Test func modelFileReaderReadsWeightsAndLabelBounds() throws {
        let file = try NativeModelFile.parse(modelFile(records: [(3, 0.5), (15, -2)]), floatsPerRecord: 3)
        #expect(file.bits == 4 && file.weights.count == 16)
        #expect(file.weights[3] == 0.5 && file.weights[15] == -2 && file.weights[0] == 0)
        #expect(file.minLabel == -1 && file.maxLabel == 1 && !file.resume)
    }

    @Test func modelFileReaderRefusesWhatItCannotTrust() {
        func error(_ bytes: [UInt8]) -> NativeModelError? {
            do { _ = try NativeModelFile.parse(bytes, floatsPerRecord: 3); return nil } catch { return error }
        }
        #expect(error(modelFile(records: [(16, 1)])) == .malformed("weight index 16 ≥ 2^4"))
        #expect(error(Array(modelFile(records: [(1, 1)]).dropLast())) != nil)
        #expect(error(Array(modelFile().prefix(20))) != nil)
        #expect(error(modelFile(bits: 30)) == .unsupported("-b 30 (at most 28)"))
        #expect(error(modelFile(version: "8.11.0")) == .unsupported("model files written by vw 8.11.0 (only 9.x)"))
        #expect(error([0xFF, 0xFF, 0xFF, 0xFF]) != nil)
    }

    @Test func interactionsTakeVWsOrder() throws {
        func order(_ written: [String]) throws -> [String] {
            try NativeConfiguration.vwOrder(written.map { Array($0.utf8) }).map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(try order(["ba"]) == ["ba"])
        #expect(try order(["ba", "ab"]) == ["ab"])
        #expect(try order(["aba"]) == ["aab"])
        #expect(try order(["abc", "ca", "cb"]) == ["ca", "cb", "abc"])
        #expect(throws: NativeModelError.self) { try order([":a"]) }
    }

    @Test func optionsTheScorerDoesNotKnowKeepTheModelOnVW() throws {
        for stored in [["--nn", "2"], ["--hash_seed", "x"], ["--link", "glf1"], ["--ngram", "2"], ["--affix", "+2a"]] {
            guard let options = try? ModelOptions.check(stored: stored, extra: []) else { continue }
            #expect(throws: NativeModelError.self) { try NativeConfiguration(options: options) }
        }
        let linear = try NativeConfiguration(options: ModelOptions.check(stored: ["--link", "logistic", "--hash", "all", "--quadratic", "ab"], extra: []))
        #expect(linear.logisticLink && linear.hashesAll && linear.interactions == [Array("ab".utf8)] && linear.floatsPerRecord == 3)
        let sgd = try NativeConfiguration(options: ModelOptions.check(stored: ["--sgd"], extra: []))
        #expect(sgd.floatsPerRecord == 1)
        let conflicting = try ModelOptions.check(stored: ["--link", "logistic"], extra: ["--link", "identity"])
        #expect(throws: NativeModelError.self) { try NativeConfiguration(options: conflicting) }
        let oaa = try NativeConfiguration(options: ModelOptions.check(stored: ["--oaa", "5", "--indexing", "0"], extra: []))
        #expect(oaa.classes == 5 && oaa.zeroBasedClasses)
    }
}

/// The `-p` format computed in integers equals glibc's printf on every kind of float.
struct NativeFormatTests {
    @Test func integerFormattingEqualsPrintf() {
        var random = SplitMix(state: 23)
        var values: [Float] = [0, -0.0, 1.0 / 128, 3.0 / 128, -5.0 / 128, 0.5e-6, 1e-7, 0.9999995, 0.0000005, 123456.7, 1e18, 1e19, 1e30, -1e30,
                               .leastNonzeroMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .infinity, -.infinity]
        for _ in 0..<300_000 {
            let bits = UInt32(truncatingIfNeeded: random.next())
            let value = Float(bitPattern: bits)
            if !value.isNaN { values.append(value) }
            values.append(Float(random.below(2_000_000)) / Float(1 << random.below(30)) * (random.chance(50) ? 1 : -1))
        }
        for value in values {
            var fast: [UInt8] = []
            VWFloatText.appendPrediction(value, to: &fast)
            var reference: [UInt8] = []
            if value.sign == .minus { reference.append(UInt8(ascii: "-")) }
            VWFloatText.appendPrintf(value.magnitude, whole: floorf(value) == value, to: &reference)
            if fast != reference {
                Issue.record("\(value) (bits \(String(value.bitPattern, radix: 16))): \(String(decoding: fast, as: UTF8.self)) vs printf \(String(decoding: reference, as: UTF8.self))")
                return
            }
        }
    }
}

/// The probe set a model must pass before it is served natively.
struct NativeProbeSetTests {
    @Test func probeSetCoversEveryInteractionNamespaceAndTheEdges() throws {
        let examples = NativeProbeSet.examples(interactions: [Array("ab".utf8), Array("xyz".utf8)], warmup: ["|w operator"])
        #expect(examples.first == "|w operator")
        for namespace in ["a", "b", "x", "y", "z"] {
            #expect(examples.contains("|\(namespace) x y:2 1924 :3 f:red"))
        }
        for edge in [":1e-40", ":1.4e-45", ":-9.9e37", ":red", ":99999999999999999999"] {
            #expect(examples.contains { $0.contains(edge) })
        }
        #expect(examples.contains { $0.split(separator: " ").count > 300 })
        let grammar = ExampleGrammar(family: .simple)
        let accepted = examples.filter { (try? grammar.parse(lines: [Substring($0)])) != nil }.count
        #expect(accepted * 10 >= examples.count * 9, "most probes reach the scorer: \(accepted) of \(examples.count)")
    }
}

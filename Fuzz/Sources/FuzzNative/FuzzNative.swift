// libFuzzer target: the native scorer's model-file reader and scorer on arbitrary bytes.
//
// Input: byte 0 picks the configuration (floats per weight record, --hash all, --noconstant,
// the logistic link, a set of interactions), byte 1's top bits `--oaa K` (K 0...7, 0 a scalar
// model) and, with byte 0's top bit, a valid VW 9 header (bits from byte 1's low bits)
// is put in front of the data; bytes 2...3 split the rest into the model file and the VW text
// scored with it. Checks:
//
// * the reader never traps nor reads out of bounds (ASan), whatever the lengths and indices say;
// * an accepted file has 2^bits weights, bits within the limit;
// * the scorer never traps on any line, and when it answers, it prints one line per input line,
//   each a number (or inf/-inf/nan never: VW's NaN becomes 0) and the line's tag; an oaa model's
//   answer is a class from 0 (or 1) to K.
@testable import VWCore

private let interactionSets: [[[UInt8]]] = [[], [Array("ab".utf8)], [Array("aab".utf8), Array("ba".utf8)], [Array("abca".utf8)]]

/// A VW 9.11 header for a model with `bits`, no options, then `resume` = 0.
private func header(bits: UInt8) -> [UInt8] {
    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    var bytes = u32(7) + Array("9.11.9".utf8) + [0] + u32(1) + [0] + [UInt8(ascii: "m")]
    bytes += u32(Float(-1).bitPattern) + u32(Float(1).bitPattern) + u32(UInt32(bits)) + u32(0) + u32(0) + u32(0)
    bytes += u32(1) + [0] + u32(4) + u32(0xdead_beef)
    return bytes
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 4 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let selector = bytes[0]
    let split = min(size - 4, Int(bytes[2]) | Int(bytes[3]) << 8)
    var file = Array(bytes[4..<(4 + split)])
    let text = Array(bytes[(4 + split)...])
    if selector & 0x80 != 0 { file = header(bits: 1 + bytes[1] % 18) + [selector & 0x40 != 0 ? 1 : 0] + file }
    var configuration = NativeConfiguration()
    configuration.floatsPerRecord = 1 + Int(selector % 3)
    configuration.hashesAll = selector & 4 != 0
    configuration.addsConstant = selector & 8 == 0
    configuration.logisticLink = selector & 16 != 0
    configuration.interactions = interactionSets[Int(selector >> 5) & 3]
    configuration.classes = Int(bytes[1] >> 5)
    configuration.zeroBasedClasses = bytes[1] & 0x10 != 0
    guard let model = try? NativeModelFile.parse(file, floatsPerRecord: configuration.floatsPerRecord, maxBits: 18) else { return 0 }
    check(model.bits >= 1 && model.bits <= 18 && model.weights.count == 1 << model.bits, "weights of an accepted file")
    let scorer = NativeScorer(file: model, configuration: configuration)
    var payload = text.filter { $0 != 0x0A }.prefix(4096) + [0x0A]
    payload += Array("1 1 0.5 'tag |a x:2 y |b 3 |c:0.5 :1 z:red\n".utf8)
    guard let printed = scorer.predict(payload: Array(payload)) else { return 0 }
    let lines = printed.split(separator: 0x0A, omittingEmptySubsequences: false)
    check(lines.count == 3 && lines[2].isEmpty, "one answer line per example")
    for line in lines.dropLast() {
        let number = line.prefix { $0 != 0x20 }
        if configuration.classes > 0, let value = Int(String(decoding: number, as: UTF8.self)) {
            let low = configuration.zeroBasedClasses ? 0 : 1
            check(value >= low && value < low + configuration.classes, "a class of the model")
        }
        check(!number.isEmpty && number.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D || $0 == 0x69 || $0 == 0x6E || $0 == 0x66 },
              "an answer starts with a number")
    }
    return 0
}

private func check(_ condition: Bool, _ what: String) {
    if !condition { fatalError("invariant broken: \(what)") }
}

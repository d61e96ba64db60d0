// libFuzzer target: the Open Inference Protocol (KServe V2) request decoder, `InferRequest.decode`,
// which reads a body as a stream (JSONStream) without building its tree.
//
// Input: byte 0 picks maxDepth (1...8), the rest is a body. The whole tree, built by
// JSONParser.parse, is the oracle for what the stream may conclude:
//
// * invalid JSON (at that depth) is a 400 with exactly the parser's message, whatever else is wrong;
// * only 400 malformedBody comes out, never another error;
// * a decoded request is an object whose single "inputs" array holds exactly one tensor, named
//   "examples", whose data (flat, or rows of one) are the examples, in order, as the second pass
//   reads them from the body; their count is announced, and their bytes are within `byteCount`.
@testable import VWCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let maxDepth = 1 + Int(bytes[0] & 7)
    let body = Array(bytes[1...])

    let decoded: Result<InferRequest, PredictError>
    do { decoded = .success(try InferRequest.decode(body, maxDepth: maxDepth)) } catch { decoded = .failure(error) }
    let tree: JSONValue
    do {
        tree = try JSONParser.parse(body, maxDepth: maxDepth)
    } catch {
        invariant(decoded == .failure(.malformedBody(error.message)), "invalid JSON not reported as the parser does: \(decoded)")
        return 0
    }
    switch decoded {
    case .failure(.malformedBody): break
    case .failure(let error): invariant(false, "only 400 malformedBody can come out: \(error)")
    case .success(let request): checkAgainstTree(request, tree)
    }
    return 0
}

/// A decoded request is exactly what the tree holds.
func checkAgainstTree(_ request: InferRequest, _ tree: JSONValue) {
    guard case .object(let members) = tree else { return invariant(false, "decoded a body that is not an object") }
    let ids = members.filter { $0.key == "id" }.map(\.value)
    invariant(ids.count <= 1 && ids.first.map { $0 == .string(request.id ?? "") } ?? (request.id == nil), "id \(String(describing: request.id)) vs \(ids)")
    let inputs = members.filter { $0.key == "inputs" }.map(\.value)
    guard inputs.count == 1, case .array(let tensors) = inputs[0], tensors.count == 1, case .object(let fields) = tensors[0] else {
        return invariant(false, "decoded without exactly one tensor in one inputs array: \(inputs)")
    }
    invariant(fields.filter { $0.key == "name" }.map(\.value) == [.string(InferRequest.inputName)], "the tensor is not named examples")
    guard case .array(let elements)? = fields.first(where: { $0.key == "data" })?.value else {
        return invariant(false, "decoded a tensor without a data array")
    }
    var strings: [String] = []
    for element in elements {
        switch element {
        case .string(let text): strings.append(text)
        case .array(let row):
            for case .string(let text) in row { strings.append(text) }
            invariant(row.allSatisfy { if case .string = $0 { true } else { false } }, "a row with a value that is not a string")
        default: invariant(false, "decoded data with an element that is not a string")
        }
    }
    invariant(strings == request.examples.strings, "examples \(request.examples.strings) vs the tree's \(strings)")
    invariant(request.examples.count == strings.count, "\(request.examples.count) examples announced for \(strings.count)")
    invariant(request.examples.byteCount >= strings.reduce(0) { $0 + $1.utf8.count }, "byteCount below the examples' bytes")
}

func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}

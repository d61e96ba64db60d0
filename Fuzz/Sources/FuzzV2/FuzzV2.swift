// libFuzzer target: the Open Inference Protocol (KServe V2) request decoder, `InferRequest.decode`,
// which reads a body as a stream (JSONStream) without building its tree.
//
// Input: byte 0 picks maxDepth (1...8) and maxExamples (0, 1, 3 or no limit), the rest is a body.
// The whole tree, built by JSONParser.parse, is the oracle for what the stream may conclude:
//
// * invalid JSON (at that depth) is a 400 with exactly the parser's message, whatever else is wrong;
// * a decoded request is an object whose single "inputs" array holds exactly one tensor, named
//   "examples", whose data (flat, or rows of one) are the examples, in order; `id` is the body's;
// * more examples than maxExamples is a 413 naming their count, never a decoded request;
// * the limit only changes a 413: under no limit the same body gives the same 400 or the same request.
@testable import VWCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let maxDepth = 1 + Int(bytes[0] & 7)
    let maxExamples = [0, 1, 3, Int.max][Int(bytes[0] >> 3) & 3]
    let body = Array(bytes[1...])

    let limited = decode(body, maxDepth: maxDepth, maxExamples: maxExamples)
    let unlimited = decode(body, maxDepth: maxDepth, maxExamples: .max)
    let tree: JSONValue
    do {
        tree = try JSONParser.parse(body, maxDepth: maxDepth)
    } catch {
        invariant(limited == .failure(.malformedBody(error.message)), "invalid JSON not reported as the parser does: \(limited)")
        return 0
    }
    switch (limited, unlimited) {
    case (.failure(.tooManyInstances(let count, let limit)), .success(let request)):
        invariant(limit == maxExamples && count > limit && count == request.examples.count, "413 \(count) > \(limit) for \(request.examples.count)")
    case (.failure(let error), .failure(let same)):
        invariant(error == same, "the limit changed a 400: \(error) vs \(same)")
        if case .malformedBody = error { return 0 }
        invariant(false, "only 400 malformedBody or 413 tooManyInstances can come out: \(error)")
    case (.success(let request), .success(let same)):
        invariant(request == same && request.examples.count <= maxExamples, "the limit changed a decoded request")
        checkAgainstTree(request, tree)
    default:
        invariant(false, "decoded with a limit and not without, or the reverse: \(limited) vs \(unlimited)")
    }
    return 0
}

func decode(_ body: [UInt8], maxDepth: Int, maxExamples: Int) -> Result<InferRequest, PredictError> {
    do { return .success(try InferRequest.decode(body, maxDepth: maxDepth, maxExamples: maxExamples)) } catch { return .failure(error) }
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
}

func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}

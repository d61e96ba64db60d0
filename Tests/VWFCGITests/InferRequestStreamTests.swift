import Testing
@testable import VWCore
@testable import VWFCGI

/// The V2 decoder as it was before it streamed (the whole tree built by `JSONParser.parse`): the
/// oracle that the streaming decoder must agree with, answer for answer and message for message.
private enum TreeInferRequest {

    /// Decodes and checks a request body; every problem is a 400 (`malformedBody`) naming the member.
    static func decode(_ body: [UInt8], maxDepth: Int) throws(PredictError) -> InferRequest {
        let members = try Engine.bodyObject(body, maxDepth: maxDepth, holding: "an \"inputs\" array")
        var id: String?
        switch try member("id", of: members) {
        case nil: break
        case .string(let text)?: id = text
        case let other?: throw .malformedBody("\"id\" must be a string, not \(other.kindName)")
        }
        if let outputs = try member("outputs", of: members) {
            try checkRequestedOutputs(outputs)
        }
        guard let inputs = try member("inputs", of: members) else {
            throw .malformedBody("the request has no \"inputs\" array")
        }
        guard case .array(let tensors) = inputs else {
            throw .malformedBody("\"inputs\" must be an array, not \(inputs.kindName)")
        }
        var examples: [String]?
        for (index, tensor) in tensors.enumerated() {
            guard case .object(let fields) = tensor else {
                throw .malformedBody("inputs[\(index)] must be an object, not \(tensor.kindName)")
            }
            guard case .string(let name)? = try member("name", of: fields) else {
                throw .malformedBody("inputs[\(index)] has no \"name\" string")
            }
            guard name == InferRequest.inputName else {
                throw .malformedBody("unknown input \"\(name)\": the only input is \"\(InferRequest.inputName)\" (BYTES, shape [n])")
            }
            guard examples == nil else { throw .malformedBody("input \"\(InferRequest.inputName)\" is given twice") }
            examples = try strings(of: fields)
        }
        guard let examples else {
            throw .malformedBody("the request has no input named \"\(InferRequest.inputName)\" (BYTES, shape [n])")
        }
        return InferRequest(id: id, examples: examples)
    }

    /// The elements of the `examples` tensor, after its datatype and shape are checked against them.
    private static func strings(of fields: [(key: String, value: JSONValue)]) throws(PredictError) -> [String] {
        let datatype = try member("datatype", of: fields)
        guard case .string("BYTES") = datatype else {
            let given = if case .string(let text)? = datatype { text } else { datatype?.kindName ?? "nothing" }
            throw .malformedBody("input \"\(InferRequest.inputName)\" must have datatype BYTES (VW examples as strings), not \(given)")
        }
        let shape = try self.shape(try member("shape", of: fields))
        guard let data = try member("data", of: fields) else {
            throw .malformedBody("input \"\(InferRequest.inputName)\" has no \"data\" (the binary tensor extension is not supported)")
        }
        guard case .array(let elements) = data else {
            throw .malformedBody("input \"\(InferRequest.inputName)\": \"data\" must be an array, not \(data.kindName)")
        }
        // Row-major data may come flat or nested as the shape says ([n, 1]: [[e0], [e1], ...]).
        var strings: [String] = []
        strings.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            switch element {
            case .string(let text):
                strings.append(text)
            case .array(let row) where shape.count == 2:
                for value in row {
                    guard case .string(let text) = value else { throw notAString(index, value) }
                    strings.append(text)
                }
            default:
                throw notAString(index, element)
            }
        }
        let expected = shape.reduce(1, *)
        guard expected == strings.count else {
            throw .malformedBody("input \"\(InferRequest.inputName)\" has shape \(shape) (\(expected) elements) but \(strings.count) in \"data\"")
        }
        return strings
    }

    private static func notAString(_ index: Int, _ value: JSONValue) -> PredictError {
        .malformedBody("input \"\(InferRequest.inputName)\": data[\(index)] must be a string (a VW example), not \(value.kindName)")
    }

    /// `[n]`, or `[n, 1]` (a column of examples); dimensions are non-negative integers.
    private static func shape(_ value: JSONValue?) throws(PredictError) -> [Int] {
        guard case .array(let dimensions)? = value else {
            throw .malformedBody("input \"\(InferRequest.inputName)\" must have a \"shape\" array ([n], n the number of examples)")
        }
        var shape: [Int] = []
        for dimension in dimensions {
            guard case .number(let text) = dimension, let size = Int(text), size >= 0 else {
                throw .malformedBody("input \"\(InferRequest.inputName)\": the dimensions of \"shape\" must be non-negative integers")
            }
            shape.append(size)
        }
        guard shape.count == 1 || (shape.count == 2 && shape[1] == 1) else {
            throw .malformedBody("input \"\(InferRequest.inputName)\" must have shape [n] or [n, 1], not \(shape)")
        }
        return shape
    }

    /// `outputs`, when given, may only ask for `predictions`.
    private static func checkRequestedOutputs(_ outputs: JSONValue) throws(PredictError) {
        guard case .array(let requested) = outputs else {
            throw .malformedBody("\"outputs\" must be an array, not \(outputs.kindName)")
        }
        for (index, output) in requested.enumerated() {
            guard case .object(let fields) = output, case .string(let name)? = try member("name", of: fields) else {
                throw .malformedBody("outputs[\(index)] must be an object with a \"name\" string")
            }
            guard name == InferRequest.outputName else {
                throw .malformedBody("unknown output \"\(name)\": the only output is \"\(InferRequest.outputName)\"")
            }
        }
    }

    /// The value of the only member named `key`, nil when absent; a repeated key is an error, not a guess.
    private static func member(_ key: String, of members: [(key: String, value: JSONValue)]) throws(PredictError) -> JSONValue? {
        var found: JSONValue?
        for member in members where member.key == key {
            if found != nil { throw .malformedBody("duplicate key \"\(key)\"") }
            found = member.value
        }
        return found
    }
}

/// Bodies that exercise each member, kind, duplicate and order: hand-written, then mutated.
private let seeds: [String] = [
    #"{"id": "r-1", "model_name": "m", "parameters": {"x": [1, {"y": null}]}, "inputs": [{"name": "examples", "datatype": "BYTES", "shape": [2], "data": ["|f a:1", "|f b"], "parameters": {"content_type": "str"}}], "outputs": [{"name": "predictions"}]}"#,
    #"{"inputs": [{"data": [["|a"], ["|b"]], "shape": [2, 1], "datatype": "BYTES", "name": "examples"}], "id": "x"}"#,
    #"{"outputs": [{"name": "predictions", "name": "p"}], "inputs": []}"#,
    #"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [3], "data": ["|a", 1, ["|b"]]}]}"#,
    #"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [2, 1], "data": ["|a", [2, "|c"], {"q": 1}]}]}"#,
    #"{"inputs": [{"name": "other", "data": ["|a"]}, {"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|a"]}]}"#,
    #"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|a"]}, {"name": "examples"}, 7]}"#,
    #"{"inputs": [{"name": "examples", "datatype": "BYTES", "datatype": "BYTES", "shape": [1, 2, 3, 4, 5, 6, 7], "data": []}]}"#,
    #"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [-1, 1.5, "2"], "data": "|a"}], "outputs": {}}"#,
    #"{"inputs": {"name": "examples"}, "id": ["a"], "outputs": [3, {"name": 1}]}"#,
    #"{"inputs": [{"name": "examples", "datatype": "FP32", "shape": [0], "data": [], "data": []}, []]}"#,
    #"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [2, 1], "shape": [2], "data": ["a\u00e9\n", "\ud83d\ude00"]}]}"#,
    #"[{"inputs": []}]"#, #""inputs""#, "", "  {} ", #"{"inputs": [], "inputs": []}"#, #"{"id": null, "id": "a", "inputs": []}"#,
    #"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [99999999999999999999], "data": []}]}"#,
    #"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["\x"]}]}"#,
    #"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|a"]}]} x"#,
]

/// Deterministic edits of a body (VWCore's `SplitMix`).
private struct Mutator {
    var random: SplitMix
    mutating func below(_ n: Int) -> Int { Int.random(in: 0..<n, using: &random) }

    /// One edit of `bytes`: a token swapped for another, a byte dropped or doubled, a span moved.
    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        let tokens = [#""examples""#, #""name""#, #""data""#, #""shape""#, #""datatype""#, #""BYTES""#, #""inputs""#,
                      #""outputs""#, #""id""#, "[", "]", "{", "}", ",", ":", "1", "0", "null", "true", #""|a""#, "[1]", "[2, 1]"]
        var out = bytes
        guard !out.isEmpty else { return Array(tokens[below(tokens.count)].utf8) }
        let at = below(out.count)
        switch below(4) {
        case 0: out.remove(at: at)
        case 1: out.insert(out[at], at: at)
        case 2: out.insert(contentsOf: Array(tokens[below(tokens.count)].utf8), at: at)
        default:
            let end = min(out.count, at + 1 + below(12))
            let span = Array(out[at..<end])
            out.removeSubrange(at..<end)
            out.insert(contentsOf: span, at: below(out.count + 1))
        }
        return out
    }
}

private func outcome(_ decode: () throws(PredictError) -> InferRequest) -> Result<InferRequest, PredictError> {
    do { return .success(try decode()) } catch { return .failure(error) }
}

@Suite struct InferRequestStreamTests {
    @Test func agreesWithTheTreeDecoderOnEveryBody() {
        var mutator = Mutator(random: SplitMix(seed: 18))
        var bodies = seeds.map { Array($0.utf8) }
        for seed in seeds {
            var body = Array(seed.utf8)
            for _ in 0..<300 {
                body = mutator.below(4) == 0 ? Array(seed.utf8) : mutator.mutate(body)
                bodies.append(body)
            }
        }
        var disagreements: [String] = []
        for body in bodies {
            for depth in [32, 4] {
                let tree = outcome { () throws(PredictError) in try TreeInferRequest.decode(body, maxDepth: depth) }
                let stream = outcome { () throws(PredictError) in try InferRequest.decode(body, maxDepth: depth) }
                if tree != stream, disagreements.count < 5 {
                    disagreements.append("\(String(decoding: body, as: UTF8.self)) depth \(depth): tree \(tree), stream \(stream)")
                }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
    }

    @Test func theExamplesAreReadFromTheBodyWhenTakenFlatOrInRows() throws {
        let body = Array(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [3, 1], "data": [["|a"], "|b \u00e9", ["|c"]]}], "id": "i"}"#.utf8)
        let request = try InferRequest.decode(body, maxDepth: 32)
        #expect(request.id == "i")
        #expect(request.examples.count == 3)
        #expect(request.examples.byteCount >= 3 + 5 + 2)
        var taken: [String] = []
        try request.examples.forEachExample { taken.append($0) }
        #expect(taken == ["|a", "|b \u{e9}", "|c"])
    }

    @Test func aLongShapeIsNamedByItsFirstDimensions() {
        let dims = (1...20).map(String.init).joined(separator: ",")
        let body = Array(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [\#(dims)], "data": []}]}"#.utf8)
        #expect(throws: PredictError.malformedBody(#"input "examples" must have shape [n] or [n, 1], not [1, 2, 3, 4, 5, 6, 7, 8, ...]"#)) {
            try InferRequest.decode(body, maxDepth: 32)
        }
    }
}

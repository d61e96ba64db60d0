import VWCore

/// An Open Inference Protocol (KServe V2) inference request, checked: the strings of its one input
/// tensor `examples` (BYTES, shape `[n]` or `[n, 1]`) and the `id` to echo.
///
/// Other members of the request (`model_name`, `parameters`, a tensor's `parameters`) are read
/// past, as the protocol allows; the binary tensor extension is not supported (no `data`: 400).
struct InferRequest: Equatable {
    /// The only input tensor: one example per element, VW text or (for `vw_json` models) a VW JSON object as text.
    static let inputName = "examples"
    /// The only output tensor.
    static let outputName = "predictions"

    var id: String?
    var examples: [String]

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
            guard name == inputName else {
                throw .malformedBody("unknown input \"\(name)\": the only input is \"\(inputName)\" (BYTES, shape [n])")
            }
            guard examples == nil else { throw .malformedBody("input \"\(inputName)\" is given twice") }
            examples = try strings(of: fields)
        }
        guard let examples else {
            throw .malformedBody("the request has no input named \"\(inputName)\" (BYTES, shape [n])")
        }
        return InferRequest(id: id, examples: examples)
    }

    /// The elements of the `examples` tensor, after its datatype and shape are checked against them.
    private static func strings(of fields: [(key: String, value: JSONValue)]) throws(PredictError) -> [String] {
        let datatype = try member("datatype", of: fields)
        guard case .string("BYTES") = datatype else {
            let given = if case .string(let text)? = datatype { text } else { datatype?.kindName ?? "nothing" }
            throw .malformedBody("input \"\(inputName)\" must have datatype BYTES (VW examples as strings), not \(given)")
        }
        let shape = try self.shape(try member("shape", of: fields))
        guard let data = try member("data", of: fields) else {
            throw .malformedBody("input \"\(inputName)\" has no \"data\" (the binary tensor extension is not supported)")
        }
        guard case .array(let elements) = data else {
            throw .malformedBody("input \"\(inputName)\": \"data\" must be an array, not \(data.kindName)")
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
            throw .malformedBody("input \"\(inputName)\" has shape \(shape) (\(expected) elements) but \(strings.count) in \"data\"")
        }
        return strings
    }

    private static func notAString(_ index: Int, _ value: JSONValue) -> PredictError {
        .malformedBody("input \"\(inputName)\": data[\(index)] must be a string (a VW example), not \(value.kindName)")
    }

    /// `[n]`, or `[n, 1]` (a column of examples); dimensions are non-negative integers.
    private static func shape(_ value: JSONValue?) throws(PredictError) -> [Int] {
        guard case .array(let dimensions)? = value else {
            throw .malformedBody("input \"\(inputName)\" must have a \"shape\" array ([n], n the number of examples)")
        }
        var shape: [Int] = []
        for dimension in dimensions {
            guard case .number(let text) = dimension, let size = Int(text), size >= 0 else {
                throw .malformedBody("input \"\(inputName)\": the dimensions of \"shape\" must be non-negative integers")
            }
            shape.append(size)
        }
        guard shape.count == 1 || (shape.count == 2 && shape[1] == 1) else {
            throw .malformedBody("input \"\(inputName)\" must have shape [n] or [n, 1], not \(shape)")
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
            guard name == outputName else {
                throw .malformedBody("unknown output \"\(name)\": the only output is \"\(outputName)\"")
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

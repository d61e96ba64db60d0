import VWCore

/// An Open Inference Protocol (KServe V2) inference request, checked: its one input tensor
/// `examples` (BYTES, shape `[n]` or `[n, 1]`, its strings read from the body when they are used)
/// and the `id` to echo.
///
/// Other members of the request (`model_name`, `parameters`, a tensor's `parameters`) are read
/// past, as the protocol allows; the binary tensor extension is not supported (no `data`: 400).
struct InferRequest: Equatable {
    /// The only input tensor: one example per element, VW text or (for `vw_json` models) a VW JSON object as text.
    static let inputName = "examples"
    /// The only output tensor.
    static let outputName = "predictions"

    var id: String?
    var examples: TensorExamples

    init(id: String?, examples: [String]) {
        self.id = id
        self.examples = TensorExamples(examples)
    }

    fileprivate init(id: String?, examples: TensorExamples) {
        self.id = id
        self.examples = examples
    }

    /// Decodes and checks a request body; every problem is a 400 (`malformedBody`) naming the member.
    ///
    /// The body is read as a stream (``JSONStream``), as V1's `PredictRequestDecoder` reads it, and
    /// nothing but `id` is built: the whole document is checked, every element of the `examples`
    /// tensor counted, and its strings are read again one at a time when the engine takes them
    /// (``TensorExamples``). Errors keep the precedence of a check of the whole document: invalid
    /// JSON anywhere, then `id`, `outputs`, `inputs`, each tensor in order.
    static func decode(_ body: [UInt8], maxDepth: Int) throws(PredictError) -> InferRequest {
        var reader = Reader(body: body, maxDepth: maxDepth)
        do {
            try reader.readDocument()
        } catch {
            throw .malformedBody(error.message)
        }
        return try reader.request()
    }
}

extension InferRequest {
    /// One member of an object as far as it was read: how often its key came, and its first value
    /// (or the kind of that value when it is not what was wanted).
    fileprivate struct Member<Value> {
        var count = 0
        var value: Value?
        var otherKind: String?

        /// `duplicate key "<key>"` once a key came twice (whatever its values), as `member(_:of:)` said it.
        func duplicate(_ key: String) -> String? { count > 1 ? "duplicate key \"\(key)\"" : nil }
    }

    /// The `shape` of a tensor: its dimensions (the first few, for messages) or why it is not one.
    private struct Shape {
        var dimensions: [Int] = []
        var rank = 0
        var notAnArray = false
        var badDimension = false
        static let kept = 8

        var text: String {
            let shown = dimensions.map(String.init).joined(separator: ", ")
            return "[" + shown + (rank > dimensions.count ? ", ...]" : "]")
        }
    }

    /// The `data` of a tensor: where it starts, how many strings it holds and the first element of each wrong kind.
    private struct TensorData {
        var offset = 0
        var byteCount = 0
        var count = 0
        var notAnArray: String?
        /// An element that is neither a string nor an array: (index, kind).
        var firstOther: (index: Int, kind: String)?
        /// The first element that is an array (a row, valid only for shape `[n, 1]`).
        var firstRow: Int?
        /// A row's value that is not a string: (index of the row, kind of the value).
        var firstBadInRow: (index: Int, kind: String)?
    }

    /// What one tensor of `inputs` said.
    private struct Tensor {
        var name = Member<String>()
        var datatype = Member<String>()
        var shape = Member<Shape>()
        var data = Member<TensorData>()
    }

    /// The reading of one body: it walks the document once and keeps the first problem of each
    /// part, so `request()` can report them in the order a check of the whole tree would.
    private struct Reader {
        let body: [UInt8]
        let maxDepth: Int
        var stream: JSONStream
        var notAnObject: String?
        var id = Member<String>()
        var outputs = Member<Void>()
        var outputProblem: String?
        var inputs = Member<Void>()
        var tensorProblem: String?
        var examples: TensorExamples?

        init(body: [UInt8], maxDepth: Int) {
            self.body = body
            self.maxDepth = maxDepth
            stream = JSONStream(bytes: body, maxDepth: maxDepth)
        }

        mutating func readDocument() throws(JSONError) {
            guard stream.nextKind == "an object" else {
                notAnObject = stream.nextKind
                try stream.skip(depth: 0)
                try stream.finish()
                return
            }
            try readObject(depth: 0) { reader, key throws(JSONError) in
                switch key {
                case "id":
                    try reader.stream.readString(into: &reader.id, depth: 1)
                case "outputs":
                    reader.outputs.count += 1
                    if reader.outputs.count == 1 { try reader.readOutputs() } else { try reader.stream.skip(depth: 1) }
                case "inputs":
                    reader.inputs.count += 1
                    if reader.inputs.count == 1 { try reader.readInputs() } else { try reader.stream.skip(depth: 1) }
                default:
                    try reader.stream.skip(depth: 1)
                }
            }
            try stream.finish()
        }

        /// The request, or the first problem in the order of the protocol's members.
        func request() throws(PredictError) -> InferRequest {
            if let notAnObject {
                throw .malformedBody("the request body must be a JSON object with an \"inputs\" array, not \(notAnObject)")
            }
            if let problem = id.duplicate("id") ?? id.otherKind.map({ "\"id\" must be a string, not \($0)" }) {
                throw .malformedBody(problem)
            }
            if let problem = outputs.duplicate("outputs") ?? outputProblem { throw .malformedBody(problem) }
            if let problem = inputs.duplicate("inputs") { throw .malformedBody(problem) }
            guard inputs.count > 0 else { throw .malformedBody("the request has no \"inputs\" array") }
            if let problem = inputs.otherKind.map({ "\"inputs\" must be an array, not \($0)" }) ?? tensorProblem {
                throw .malformedBody(problem)
            }
            guard let examples else {
                throw .malformedBody("the request has no input named \"\(inputName)\" (BYTES, shape [n])")
            }
            return InferRequest(id: id.value, examples: examples)
        }

        // MARK: members

        /// Reads the members of the object here, handing each key to `member`, which must consume its value.
        private mutating func readObject(depth: Int, _ member: (inout Reader, String) throws(JSONError) -> Void) throws(JSONError) {
            try stream.enter(UInt8(ascii: "{"), depth: depth)
            var first = true
            while let key = try stream.nextKey(first: first) {
                first = false
                try member(&self, key)
            }
        }

        /// Reads the elements of the array here, handing each index to `element`, which must consume it.
        private mutating func readArray(depth: Int, _ element: (inout Reader, Int) throws(JSONError) -> Void) throws(JSONError) {
            try stream.enter(UInt8(ascii: "["), depth: depth)
            var index = 0
            while try stream.nextElement(first: index == 0) {
                try element(&self, index)
                index += 1
            }
        }

        /// `outputs`, when given, may only ask for `predictions`.
        private mutating func readOutputs() throws(JSONError) {
            guard stream.nextKind == "an array" else {
                outputProblem = "\"outputs\" must be an array, not \(stream.nextKind ?? "nothing")"
                return try stream.skip(depth: 1)
            }
            try readArray(depth: 1) { reader, index throws(JSONError) in
                guard reader.outputProblem == nil, reader.stream.nextKind == "an object" else {
                    if reader.outputProblem == nil { reader.outputProblem = "outputs[\(index)] must be an object with a \"name\" string" }
                    return try reader.stream.skip(depth: 2)
                }
                var name = Member<String>()
                try reader.readObject(depth: 2) { reader, key throws(JSONError) in
                    if key == "name" { try reader.stream.readString(into: &name, depth: 3) } else { try reader.stream.skip(depth: 3) }
                }
                if let problem = name.duplicate("name") {
                    reader.outputProblem = problem
                } else if name.value == nil {
                    reader.outputProblem = "outputs[\(index)] must be an object with a \"name\" string"
                } else if let given = name.value, given != outputName {
                    reader.outputProblem = "unknown output \"\(given)\": the only output is \"\(outputName)\""
                }
            }
        }

        /// `inputs`: each tensor in order until the first problem; the rest are only checked.
        private mutating func readInputs() throws(JSONError) {
            guard stream.nextKind == "an array" else {
                inputs.otherKind = stream.nextKind ?? "nothing"
                return try stream.skip(depth: 1)
            }
            try readArray(depth: 1) { reader, index throws(JSONError) in
                guard reader.tensorProblem == nil else { return try reader.stream.skip(depth: 2) }
                guard reader.stream.nextKind == "an object" else {
                    reader.tensorProblem = "inputs[\(index)] must be an object, not \(reader.stream.nextKind ?? "nothing")"
                    return try reader.stream.skip(depth: 2)
                }
                var tensor = Tensor()
                try reader.readObject(depth: 2) { reader, key throws(JSONError) in
                    switch key {
                    case "name": try reader.stream.readString(into: &tensor.name, depth: 3)
                    case "datatype": try reader.stream.readString(into: &tensor.datatype, depth: 3)
                    case "shape": try reader.readShape(into: &tensor.shape)
                    case "data": try reader.readData(into: &tensor.data)
                    default: try reader.stream.skip(depth: 3)
                    }
                }
                switch reader.problem(of: tensor, at: index) {
                case let problem?: reader.tensorProblem = problem
                case nil:
                    let data = tensor.data.value ?? TensorData()
                    reader.examples = TensorExamples(
                        body: reader.body, dataAt: data.offset, maxDepth: reader.maxDepth,
                        count: data.count, byteCount: data.byteCount)
                }
            }
        }

        /// `[n]` or `[n, 1]`: dimensions are non-negative integers.
        private mutating func readShape(into member: inout Member<Shape>) throws(JSONError) {
            member.count += 1
            guard member.count == 1 else { return try stream.skip(depth: 3) }
            var shape = Shape()
            if stream.nextKind == "an array" {
                try readArray(depth: 3) { reader, _ throws(JSONError) in
                    shape.rank += 1
                    guard reader.stream.nextKind == "a number" else {
                        shape.badDimension = true
                        return try reader.stream.skip(depth: 4)
                    }
                    guard case .number(let text) = try reader.stream.value(depth: 4, maxValues: 1), let size = Int(text), size >= 0 else {
                        shape.badDimension = true
                        return
                    }
                    if shape.dimensions.count < Shape.kept { shape.dimensions.append(size) }
                }
            } else {
                shape.notAnArray = true
                try stream.skip(depth: 3)
            }
            member.value = shape
        }

        /// The elements of `data`, flat or in rows of one: counted and checked, not kept.
        private mutating func readData(into member: inout Member<TensorData>) throws(JSONError) {
            member.count += 1
            guard member.count == 1 else { return try stream.skip(depth: 3) }
            var data = TensorData()
            defer { member.value = data }
            guard stream.nextKind == "an array" else {
                data.notAnArray = stream.nextKind ?? "nothing"
                return try stream.skip(depth: 3)
            }
            data.offset = stream.offset
            try readArray(depth: 3) { reader, index throws(JSONError) in
                switch reader.stream.nextKind {
                case "a string":
                    data.count += 1
                    try reader.stream.skip(depth: 4)
                case "an array":
                    data.firstRow = data.firstRow ?? index
                    try reader.readArray(depth: 4) { reader, _ throws(JSONError) in
                        if reader.stream.nextKind == "a string" {
                            data.count += 1
                        } else {
                            data.firstBadInRow = data.firstBadInRow ?? (index, reader.stream.nextKind ?? "nothing")
                        }
                        try reader.stream.skip(depth: 5)
                    }
                default:
                    data.firstOther = data.firstOther ?? (index, reader.stream.nextKind ?? "nothing")
                    try reader.stream.skip(depth: 4)
                }
            }
            data.byteCount = stream.offset - data.offset
        }

        /// The first problem of a tensor, in the order its members are checked, or nil for the examples tensor.
        private func problem(of tensor: Tensor, at index: Int) -> String? {
            if let problem = tensor.name.duplicate("name") { return problem }
            guard let name = tensor.name.value else { return "inputs[\(index)] has no \"name\" string" }
            guard name == inputName else {
                return "unknown input \"\(name)\": the only input is \"\(inputName)\" (BYTES, shape [n])"
            }
            guard examples == nil else { return "input \"\(inputName)\" is given twice" }
            if let problem = tensor.datatype.duplicate("datatype") { return problem }
            guard tensor.datatype.value == "BYTES" else {
                let given = tensor.datatype.value ?? tensor.datatype.otherKind ?? "nothing"
                return "input \"\(inputName)\" must have datatype BYTES (VW examples as strings), not \(given)"
            }
            if let problem = tensor.shape.duplicate("shape") { return problem }
            guard let shape = tensor.shape.value, !shape.notAnArray else {
                return "input \"\(inputName)\" must have a \"shape\" array ([n], n the number of examples)"
            }
            if shape.badDimension { return "input \"\(inputName)\": the dimensions of \"shape\" must be non-negative integers" }
            guard shape.rank == 1 || (shape.rank == 2 && shape.dimensions[1] == 1) else {
                return "input \"\(inputName)\" must have shape [n] or [n, 1], not \(shape.text)"
            }
            if let problem = tensor.data.duplicate("data") { return problem }
            guard let data = tensor.data.value else {
                return "input \"\(inputName)\" has no \"data\" (the binary tensor extension is not supported)"
            }
            if let kind = data.notAnArray { return "input \"\(inputName)\": \"data\" must be an array, not \(kind)" }
            // The first wrong element: rows are elements only where the shape has them ([n, 1]).
            var wrong = data.firstOther
            let rowProblem = shape.rank == 2 ? data.firstBadInRow : data.firstRow.map { (index: $0, kind: "an array") }
            if let row = rowProblem, row.index < wrong?.index ?? .max { wrong = row }
            if let wrong {
                return "input \"\(inputName)\": data[\(wrong.index)] must be a string (a VW example), not \(wrong.kind)"
            }
            guard shape.dimensions[0] == data.count else {
                return "input \"\(inputName)\" has shape \(shape.text) (\(shape.dimensions[0]) elements) but \(data.count) in \"data\""
            }
            return nil
        }
    }
}

extension JSONStream {
    /// Reads a member that should be a string; anything else is only checked and its kind kept.
    fileprivate mutating func readString(into member: inout InferRequest.Member<String>, depth: Int) throws(JSONError) {
        member.count += 1
        guard member.count == 1 else { return try skip(depth: depth) }
        if nextKind == "a string", case .string(let text) = try value(depth: depth, maxValues: 1) {
            member.value = text
        } else {
            member.otherKind = nextKind ?? "nothing"
            try skip(depth: depth)
        }
    }
}

import VWCore

/// The strings of the `examples` tensor, read from the request body one at a time as the engine
/// takes them, so that a request never holds them all at once besides its body.
///
/// `InferRequest.decode` checked the whole body first (a first pass that built nothing); this is
/// the second pass over the tensor's `data` array only.
struct TensorExamples: ExampleStrings, Equatable, ExpressibleByArrayLiteral {
    private enum Storage {
        /// Strings given as such (tests, tools).
        case strings([String])
        /// The `data` array at `offset` of `body`: strings, or rows of one string (shape `[n, 1]`).
        case data(body: [UInt8], offset: Int, maxDepth: Int)
    }

    private let storage: Storage
    let count: Int
    let byteCount: Int

    init(_ strings: [String]) {
        storage = .strings(strings)
        count = strings.count
        byteCount = strings.byteCount
    }

    init(arrayLiteral strings: String...) {
        self.init(strings)
    }

    /// The `count` strings of the checked `data` array at `offset` of `body` (`byteCount`: its length in the body).
    init(body: [UInt8], dataAt offset: Int, maxDepth: Int, count: Int, byteCount: Int) {
        storage = .data(body: body, offset: offset, maxDepth: maxDepth)
        self.count = count
        self.byteCount = byteCount
    }

    func forEachExample(_ body: (String) throws(PredictError) -> Void) throws(PredictError) {
        switch storage {
        case .strings(let strings):
            try strings.forEachExample(body)
        case .data(let bytes, let offset, let maxDepth):
            var reader = DataReader(stream: JSONStream(bytes: bytes, maxDepth: maxDepth, from: offset))
            while true {
                let next: String?
                do {
                    next = try reader.next()
                } catch {
                    // Not reached: the first pass checked these bytes.
                    throw .malformedBody(error.message)
                }
                guard let next else { return }
                try body(next)
            }
        }
    }

    /// Every string, in order (tests, tools).
    var strings: [String] {
        var all: [String] = []
        all.reserveCapacity(count)
        try? forEachExample { all.append($0) }
        return all
    }

    static func == (lhs: TensorExamples, rhs: TensorExamples) -> Bool {
        lhs.count == rhs.count && lhs.strings == rhs.strings
    }

    /// The strings of a `data` array, flat or in rows, one per `next()`; the depths are those of
    /// `data` inside `{"inputs": [{"data": [...]}]}`.
    private struct DataReader {
        var stream: JSONStream
        var started = false
        var firstElement = true
        var inRow = false
        var firstInRow = false

        mutating func next() throws(JSONError) -> String? {
            if !started {
                try stream.enter(UInt8(ascii: "["), depth: 3)
                started = true
            }
            while true {
                if inRow {
                    if try stream.nextElement(first: firstInRow) {
                        firstInRow = false
                        return try string(depth: 5)
                    }
                    inRow = false
                    continue
                }
                guard try stream.nextElement(first: firstElement) else { return nil }
                firstElement = false
                guard stream.nextKind == "an array" else { return try string(depth: 4) }
                try stream.enter(UInt8(ascii: "["), depth: 4)
                inRow = true
                firstInRow = true
            }
        }

        private mutating func string(depth: Int) throws(JSONError) -> String {
            let at = stream.offset
            guard case .string(let text) = try stream.value(depth: depth, maxValues: 1) else {
                throw JSONError("expected a string", at: at)
            }
            return text
        }
    }
}

/// Examples given as strings, handed over one at a time: a source may read each from where it
/// lies (a request body) rather than hold them all.
public protocol ExampleStrings: Sendable {
    /// The number of examples.
    var count: Int { get }
    /// At least the UTF-8 bytes of all the examples together (sizes the batch).
    var byteCount: Int { get }
    /// Calls `body` with each example, in order.
    func forEachExample(_ body: (String) throws(PredictError) -> Void) throws(PredictError)
}

extension Array: ExampleStrings where Element == String {
    public var byteCount: Int { reduce(0) { $0 + $1.utf8.count } }

    public func forEachExample(_ body: (String) throws(PredictError) -> Void) throws(PredictError) {
        for example in self { try body(example) }
    }
}

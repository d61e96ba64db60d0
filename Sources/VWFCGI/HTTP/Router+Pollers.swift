import VWCore

/// What a FastCGI poller may answer by itself (it never waits for vw nor for the disk).
extension Router {
    /// Whether a FastCGI poller may try `request` (``answer(_:context:)`` with a context that may not wait for vw):
    /// a refused request, the health routes (V2's too), `/metrics`, the model list, a model's status document and
    /// V2's metadata (read from memory: a probe or a scrape answers while every other thread waits for vw), and a
    /// prediction (V1 or V2) of a model answered natively now, its body read. Everything else waits for vw or for
    /// the disk, and goes to a thread that may wait at once.
    func answersWithoutWaiting(_ request: HTTPRequest, context: inout ThreadContext) -> Bool {
        let path = request.path
        if request.rejection != nil || Self.answeredFromMemory.contains(path) || Self.isModelStatus(path) { return true }
        let v2 = path.utf8.starts(with: "/v2".utf8) ? OpenInferenceRoute(path: path) : nil
        let name: String
        switch v2 {
        case .infer(let model, _)?:
            name = model
        case .some:
            return true
        case nil:
            guard let model = Self.model(in: path, verb: ":predict") else { return false }
            name = model
        }
        return request.method == "POST" && engine.servesNatively(name, cache: &context.models)
    }

    /// The routes that only read the process's memory (``answersWithoutWaiting(_:context:)``).
    private static let answeredFromMemory: Set<String> = ["/healthz", "/", "/readyz", "/metrics", "/v1/models", "/v1/models/"]

    /// Whether `path` is `/v1/models/<name>`, a model's status document (a name without `/` nor `:`; checked on the
    /// bytes, without making a String: every request to a poller asks).
    static func isModelStatus(_ path: String) -> Bool {
        let prefix = "/v1/models/".utf8
        let utf8 = path.utf8
        return utf8.count > prefix.count && utf8.starts(with: prefix) && isPlainName(utf8.dropFirst(prefix.count))
    }

    /// Whether a model name cut from a path holds neither `/` nor `:` (else the path names no route).
    static func isPlainName(_ name: some Sequence<UInt8>) -> Bool {
        !name.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") }
    }

    static func isPlainName(_ name: String) -> Bool { isPlainName(name.utf8) }

    /// The model a `/v1/models/<name><verb>` path names (cut on its UTF-8 bytes), else nil.
    static func model(in path: String, verb: String) -> String? {
        let prefix = "/v1/models/"
        let utf8 = path.utf8
        guard utf8.count >= prefix.utf8.count + verb.utf8.count, utf8.starts(with: prefix.utf8), path.utf8Suffix(verb) else { return nil }
        let start = utf8.index(utf8.startIndex, offsetBy: prefix.utf8.count)
        let end = utf8.index(utf8.endIndex, offsetBy: -verb.utf8.count)
        return String(decoding: utf8[start..<end], as: UTF8.self)
    }
}

extension String {
    /// Whether the string's UTF-8 bytes end with `suffix`'s (for ASCII routes: `hasSuffix` without grapheme breaking).
    func utf8Suffix(_ suffix: String) -> Bool {
        let bytes = utf8
        let count = suffix.utf8.count
        guard bytes.count >= count else { return false }
        return bytes[bytes.index(bytes.endIndex, offsetBy: -count)...].elementsEqual(suffix.utf8)
    }
}

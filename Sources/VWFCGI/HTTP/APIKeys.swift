#if canImport(Glibc)
import Glibc
#endif
import VWCore

/// The keys of `--api-key-file` and the routes they guard (SPEC §8.9 "Keys"): a request to a
/// guarded route must present one of them as `Authorization: Bearer <key>` or
/// `Ocp-Apim-Subscription-Key: <key>`.
///
/// Keys are kept as SHA-256 digests and a presented key is compared with every one of them, all 32
/// bytes each, so the time a check takes says nothing about the keys: not where the first wrong
/// byte is, not their lengths, not which key matched.
struct APIKeys: Sendable {
    /// Which routes need a key.
    enum Scope: String, Sendable, CaseIterable {
        /// The learning loop's write routes: `:rank`, `:reward`, `:activate`, `:learn`, `loop:rollback`, `loop:rotate`
        /// and the Personalizer-compatible routes.
        case writes
        /// Every route but the probes and the metrics (`/healthz`, `/readyz`, `/metrics`, `/`).
        case all
    }

    /// Why a key file cannot be used; the message names the file.
    struct FileProblem: Error, CustomStringConvertible {
        let description: String
    }

    let scope: Scope
    /// Whether the file could be read by users other than its owner and group (said at start).
    private(set) var readableByOthers = false
    private let digests: [[UInt8]]

    /// The keys of a key file's contents: one per line, surrounding whitespace and blank lines ignored.
    init(fileContents: [UInt8], scope: Scope, path: String) throws(FileProblem) {
        var digests: [[UInt8]] = []
        for (index, rawLine) in fileContents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let line = Self.trimmed(rawLine)
            if line.isEmpty { continue }
            // A header value cannot carry them, so such a key could never be presented.
            if line.contains(where: { $0 < 0x21 || $0 == 0x7F }) {
                throw FileProblem(description: "\(path) line \(index + 1): a key may not contain whitespace or control characters")
            }
            digests.append(Self.digest(line))
        }
        guard !digests.isEmpty else { throw FileProblem(description: "\(path) holds no key (one key per line)") }
        self.digests = digests
        self.scope = scope
    }

    /// Reads `path` (at most 1 MiB) and its keys.
    static func load(path: String, scope: Scope) throws(FileProblem) -> APIKeys {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileProblem(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let contents: [UInt8]
        do {
            contents = try FileIO.readToEnd(fd, maxBytes: 1 << 20)
        } catch {
            throw FileProblem(description: "cannot read \(path): \(String(cString: strerror(error.code)))")
        }
        var keys = try APIKeys(fileContents: contents, scope: scope, path: path)
        var info = stat()
        keys.readableByOthers = fstat(fd, &info) == 0 && info.st_mode & S_IROTH != 0
        return keys
    }

    /// The number of keys.
    var count: Int { digests.count }

    /// Whether `path` needs a key under this scope.
    func guards(_ path: String) -> Bool {
        switch scope {
        case .all: !Self.openPaths.contains(path)
        case .writes: Self.isWriteRoute(path)
        }
    }

    /// Routes that answer without a key in every scope: liveness and readiness probes and Prometheus.
    static let openPaths: Set<String> = ["/healthz", "/readyz", "/metrics", "/"]

    /// The loop's write routes: the verbs that log or publish, and SPEC §9's Personalizer API.
    static func isWriteRoute(_ path: String) -> Bool {
        if path.hasPrefix("/personalizer/") || path.hasPrefix("/loops/") { return true }
        guard path.hasPrefix("/v1/models/") else { return false }
        return writeSuffixes.contains { path.hasSuffix($0) }
    }

    private static let writeSuffixes = [":rank", ":reward", ":activate", ":learn", "/loop:rollback", "/loop:rotate"]

    /// Whether the request presents one of the keys, in either header.
    func accepts(_ request: HTTPRequest) -> Bool {
        // Both are checked whatever the first says, so the time does not tell which header held a key.
        let bearer = request.authorization.flatMap(Self.bearerToken).map(accepts) ?? false
        let subscription = request.subscriptionKey.map { accepts(Self.trimmed($0.utf8)) } ?? false
        return bearer || subscription
    }

    /// Whether `presented` is one of the keys: its digest is compared with every key's, with no early exit.
    func accepts(_ presented: some Collection<UInt8>) -> Bool {
        guard !presented.isEmpty else { return false }
        let digest = Self.digest(presented)
        var matches: UInt8 = 0
        for key in digests {
            var difference: UInt8 = 0
            for index in 0..<32 { difference |= key[index] ^ digest[index] }
            // 1 when difference is 0, without a branch on it.
            matches |= UInt8(truncatingIfNeeded: (UInt16(difference) &- 1) >> 8) & 1
        }
        return matches != 0
    }

    /// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750), nil for another scheme.
    static func bearerToken(_ header: String) -> [UInt8]? {
        let bytes = trimmed(header.utf8)
        let scheme = Array("bearer".utf8)
        guard bytes.count > scheme.count,
              zip(bytes.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 }),
              isSpace(bytes[bytes.startIndex + scheme.count])
        else { return nil }
        return Array(trimmed(bytes.dropFirst(scheme.count)))
    }

    /// The 401 reply: `WWW-Authenticate: Bearer` tells a client which scheme to use.
    static func unauthorized(presented: Bool) -> HTTPResponse {
        .error(401, presented ? "the API key is not valid" : "this route needs an API key: Authorization: Bearer <key> or Ocp-Apim-Subscription-Key: <key>",
               headers: [("WWW-Authenticate", presented ? "Bearer error=\"invalid_token\"" : "Bearer")])
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }

    /// `bytes` without the spaces, tabs and carriage returns around them.
    private static func trimmed(_ bytes: some Collection<UInt8>) -> ArraySlice<UInt8> {
        var slice = ArraySlice(bytes)
        while let first = slice.first, isSpace(first) { slice.removeFirst() }
        while let last = slice.last, isSpace(last) { slice.removeLast() }
        return slice
    }

    private static func digest(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }
}

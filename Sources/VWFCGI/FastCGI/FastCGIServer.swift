#if canImport(Glibc)
import Glibc
#endif
import CFastCGI
import Logging
import Synchronization
import VWCore

/// Why the FastCGI socket could not be opened.
struct FastCGISocketError: Error, CustomStringConvertible {
    let description: String
}

/// T threads, each blocking in `FCGX_Accept_r` on the shared socket and serving one request at a time.
///
/// With `fastcgi_keep_conn on` a thread stays with its nginx connection between requests, so
/// nginx's idle keepalive connections (workers × keepalive) must stay below T.
///
/// A ``BackgroundService``: `run` starts the threads and, once stopped, stops accepting and waits up to `grace` for
/// the requests being served.
final class FastCGIServer: BackgroundService {
    /// Answers one request; the cache is the calling thread's own.
    typealias Handler = @Sendable (HTTPRequest, inout Router.ThreadContext) -> HTTPResponse

    let socketFD: Int32
    let threads: Int
    let maxBodyBytes: Int
    /// How long a stop waits for the requests being served.
    let grace: Duration
    let handler: Handler
    let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let inflight = Atomic<Int>(0)
    /// Woken by every finished request once stopping, so `stop` waits without polling; also the accept back-off's wait.
    private let drained = Condition()

    init(socketFD: Int32, threads: Int, maxBodyBytes: Int, grace: Duration, logger: Logger, handler: @escaping Handler) {
        self.socketFD = socketFD
        self.threads = threads
        self.maxBodyBytes = maxBodyBytes
        self.grace = grace
        self.logger = logger
        self.handler = handler
    }

    /// Opens a unix socket (mode 0660) or a loopback `host:port`, listening; the error names the
    /// path or address and the reason. (libfcgi's own `FCGX_OpenSocket` prints `bind/listen: <reason>`,
    /// without the path, and exits the process when it cannot bind.)
    static func openSocket(unixPath: String?, listen: String?, backlog: Int32 = 1024) throws -> Int32 {
        guard FCGX_Init() == 0 else { throw FastCGISocketError(description: "FCGX_Init failed") }
        if let unixPath {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            guard unixPath.utf8.count < capacity else {
                throw FastCGISocketError(description: "cannot listen on unix socket \(unixPath): the path is longer than \(capacity - 1) bytes")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: unixPath.utf8) }
            unlink(unixPath)
            let fd = try listening(AF_UNIX, address, backlog: backlog, naming: "unix socket \(unixPath)")
            chmod(unixPath, 0o660)
            return fd
        }
        guard let listen else { throw FastCGISocketError(description: "give --socket PATH or --listen 127.0.0.1:PORT") }
        let host = listen.split(separator: ":").dropLast().joined(separator: ":")
        guard ["127.0.0.1", "localhost", "[::1]", "::1"].contains(host) else {
            throw FastCGISocketError(description: "--listen must be a loopback address (127.0.0.1:PORT), not \(listen)")
        }
        guard let portText = listen.split(separator: ":").last, let port = UInt16(portText), port > 0 else {
            throw FastCGISocketError(description: "--listen needs a port (127.0.0.1:PORT), not \(listen)")
        }
        if host.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            address.sin6_addr = in6addr_loopback
            return try listening(AF_INET6, address, backlog: backlog, naming: listen)
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return try listening(AF_INET, address, backlog: backlog, naming: listen)
    }

    /// A close-on-exec stream socket of `family` bound to `address` and listening.
    private static func listening<Address>(_ family: Int32, _ address: Address, backlog: Int32, naming what: String) throws -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FastCGISocketError(description: "cannot listen on \(what): socket: \(String(cString: strerror(errno)))") }
        if family != AF_UNIX {
            var on: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = address
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<Address>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw FastCGISocketError(description: "cannot listen on \(what): \(reason)")
        }
        return fd
    }

    var serviceName: String { "fcgi" }

    /// Serves on `threads` threads until `stop` is asked, then drains (see ``drain()``).
    func run(until stop: StopToken) {
        for index in 0..<threads {
            DetachedThread.start(name: "fcgi-\(index)") { [self] in acceptLoop() }
        }
        stop.wait(until: .never)
        drain()
    }

    /// Stops accepting new connections and waits up to `grace` for requests being served.
    private func drain() {
        stopping.store(true, ordering: .releasing)
        shutdown(socketFD, Int32(SHUT_RDWR))
        drained.wait(until: .after(grace)) { inflight.load(ordering: .acquiring) == 0 }
    }

    private func acceptLoop() {
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        defer { request.deallocate() }
        FCGX_InitRequest(request, socketFD, 0)
        var context = Router.ThreadContext()
        while !stopping.load(ordering: .acquiring) {
            if FCGX_Accept_r(request) < 0 {
                if stopping.load(ordering: .acquiring) { break }
                // A failed accept (EMFILE, ...): back off before the next try, or less when stopping.
                drained.wait(until: .after(.milliseconds(1))) { stopping.load(ordering: .acquiring) }
                continue
            }
            inflight.wrappingAdd(1, ordering: .acquiring)
            let bodyBytes = serve(request, context: &context)
            FCGX_Finish_r(request)
            inflight.wrappingSubtract(1, ordering: .releasing)
            // The request's memory is freed by now; from 1 MiB on, malloc would otherwise keep it for good.
            if bodyBytes >= Self.trimAfterBodyBytes { MemoryTuning.returnFreedMemory() }
            if stopping.load(ordering: .acquiring) { drained.broadcast() }
        }
    }

    /// Bodies from this size on are followed by `MemoryTuning.returnFreedMemory()`.
    static let trimAfterBodyBytes = 1 << 20

    /// Answers one request; returns the size of its body.
    private func serve(_ request: UnsafeMutablePointer<FCGX_Request>, context: inout Router.ThreadContext) -> Int {
        var http = FastCGIParams.request(fromEnvironment: request.pointee.envp)
        if stopping.load(ordering: .acquiring) {
            // A request that arrived on a kept-alive connection while draining.
            http.rejection = .error(503, "vwfcgi is shutting down", headers: [("Retry-After", "1")])
        } else if let length = http.contentLength, length < 0 {
            http.rejection = .error(400, "invalid Content-Length")
        } else if let length = http.contentLength, length > maxBodyBytes {
            Self.discard(request.pointee.in)
            http.rejection = .error(413, "request body of \(length) bytes is larger than the limit of \(maxBodyBytes) bytes")
        } else {
            http.body = Self.readBody(request.pointee.in, expected: http.contentLength ?? 0, limit: maxBodyBytes)
            if http.body.count > maxBodyBytes {
                http.rejection = .error(413, "request body is larger than the limit of \(maxBodyBytes) bytes")
            }
        }
        let response = handler(http, &context)
        if response.status >= 500 {
            logger.warning("request failed", metadata: [
                "status": "\(response.status)", "path": "\(http.path)", "request_id": "\(http.requestID ?? "-")",
            ])
        }
        write(response, to: request.pointee.out)
        return http.body.count
    }

    /// Reads the body: `expected` bytes as announced, never more than `limit + 1`.
    static func readBody(_ stream: UnsafeMutablePointer<FCGX_Stream>?, expected: Int, limit: Int) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: min(expected, limit + 1))
        var filled = 0
        while filled < body.count {
            let n = body.withUnsafeMutableBytes { raw in
                FCGX_GetStr(raw.baseAddress!.assumingMemoryBound(to: CChar.self) + filled, Int32(min(raw.count - filled, 1 << 30)), stream)
            }
            if n <= 0 { break }
            filled += Int(n)
        }
        body.removeLast(body.count - filled)
        // Read up to the empty record that ends FCGI_STDIN: left unread, libfcgi would take it
        // for the next request on this kept-alive connection and close the connection.
        if filled <= limit { discard(stream) }
        return body
    }

    /// Reads and drops the rest of the body, up to its end record.
    ///
    /// Called for every request (most have nothing left but the end record): the scratch stays within the
    /// 1 KiB that Swift allocates on the stack, where 4 KiB was a heap allocation (and a malloc arena lock) each time.
    private static func discard(_ stream: UnsafeMutablePointer<FCGX_Stream>?) {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 1024) { scratch in
            while FCGX_GetStr(scratch.baseAddress, Int32(scratch.count), stream) > 0 {}
        }
    }

    private func write(_ response: HTTPResponse, to stream: UnsafeMutablePointer<FCGX_Stream>?) {
        let head = response.head()
        head.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { _ = FCGX_PutStr($0.baseAddress, Int32($0.count), stream) }
        }
        response.body.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                guard let base = chars.baseAddress else { return }
                _ = FCGX_PutStr(base, Int32(chars.count), stream)
            }
        }
    }
}

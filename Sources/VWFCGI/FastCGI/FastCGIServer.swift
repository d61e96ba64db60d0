#if canImport(Glibc)
import Glibc
#endif
import CFastCGI
import CSpawn
import Logging
import Synchronization
import VWCore

/// Why the FastCGI socket could not be opened.
struct FastCGISocketError: Error, CustomStringConvertible {
    let description: String
}

/// The FastCGI front: one epoll set of nginx's connections, polled by a few threads at a time (leader/followers).
///
/// Every connection is armed for one event at a time (EPOLLONESHOT): one thread owns a connection from its readable
/// event until its answer is written and the connection is armed again. At most `pollers` threads wait for events
/// (``Roles``). A poller reads the request (libfcgi, through the connection's own `FCGX_Request`) and answers it
/// itself when the answer waits for nothing (``Router/answersWithoutWaiting(_:context:)``: the health routes,
/// predictions of a natively served model), then polls again: under load it finds the next connection ready, so
/// such a request costs no thread wake-up (with a thread blocked reading each connection, every request woke one,
/// and that was half of vwfcgi's CPU). A request that waits (for vw, for the disk) stays on the thread that read
/// it, which first wakes a parked thread to poll in its place (that wake-up is off the request's path); with no
/// thread parked, the request is queued for the next thread that finishes one. After a waiting request the thread
/// follows its connection for the next requests (``follow(_:context:)``), as a thread per connection would,
/// so sustained vw traffic costs one wake-up per request, not two. Pollers never wait for vw, so the health routes
/// answer while every other thread does.
///
/// Connections are not pinned to threads: nginx may keep as many idle connections as it likes.
///
/// A ``BackgroundService``: `run` starts the threads and, once stopped, stops accepting and waits up to `grace` for
/// the requests being served.
final class FastCGIServer: BackgroundService {
    let socketFD: Int32
    /// How many threads poll at a time.
    let pollers: Int
    /// The other threads, for the requests that wait (one each at a time).
    let workers: Int
    let maxBodyBytes: Int
    /// How long a stop waits for the requests being served.
    let grace: Duration
    let router: Router
    let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let inflight = Atomic<Int>(0)
    /// Woken by every finished request once stopping, so `stop` waits without polling; also the accept back-off's wait.
    private let drained = Condition()
    private let roles: Roles
    /// The epoll set of the listening socket and the connections.
    private let poll = cspawn_poll_create()
    /// Connections open at most: past it the listening socket stays disarmed until one closes, so no client can
    /// take all of vwfcgi's descriptors (model files, vw's pipes, the state directory).
    let maxConnections: Int
    private let connections = Atomic<Int>(0)
    /// Whether the listening socket was left disarmed at `maxConnections`.
    private let listenerWaits = Atomic<Bool>(false)

    init(
        socketFD: Int32, pollers: Int, workers: Int, maxConnections: Int = FastCGIServer.connectionLimit(), maxBodyBytes: Int,
        grace: Duration, router: Router, logger: Logger
    ) {
        self.socketFD = socketFD
        self.maxConnections = maxConnections
        self.pollers = pollers
        self.workers = workers
        roles = Roles(pollers: pollers)
        self.maxBodyBytes = maxBodyBytes
        self.grace = grace
        self.router = router
        self.logger = logger
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

    /// 4,096 connections, or half the open-files limit (`RLIMIT_NOFILE`) when that is lower.
    static func connectionLimit() -> Int {
        let files = Int(cspawn_open_files_limit())
        return files < 0 ? 4096 : max(1, min(4096, files / 2))
    }

    /// Serves until `stop` is asked, then drains (see ``drain()``).
    func run(until stop: StopToken) {
        guard poll >= 0 else { fatalError("cannot create the FastCGI epoll set: \(String(cString: strerror(errno)))") }
        _ = fcntl(socketFD, F_SETFL, fcntl(socketFD, F_GETFL) | O_NONBLOCK)
        _ = cspawn_poll_arm(poll, socketFD, Self.listenerToken, 1)
        for index in 0..<(pollers + workers) {
            DetachedThread.start(name: "fcgi-\(index)") { [self] in serveLoop() }
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

    /// The listening socket's token in the epoll set; a connection's is the address of its `FCGX_Request`.
    private static let listenerToken: UInt64 = 0

    /// Largest body a poller reads before it gives its place away; a larger request waits (for its body).
    static let pollerBodyBytes = 256 << 10

    private func serveLoop() {
        var context = Router.ThreadContext()
        while true {
            switch roles.next() {
            case .poll: pollUntilAWaitingRequest(context: &context)
            case .serve(var request): answer(&request, context: &context)
            }
        }
    }

    /// Takes events and answers what waits for nothing, until a request waits and a parked thread takes this one's
    /// place: then answers that request and returns. With no thread parked, a request that waits is queued.
    private func pollUntilAWaitingRequest(context: inout Router.ThreadContext) {
        var token: UInt64 = 0
        while true {
            guard cspawn_poll_wait(poll, &token) == 1 else { continue }
            if token == Self.listenerToken {
                acceptConnections()
                continue
            }
            let connection = Connection(token: token)
            guard var request = begin(connection) else { continue }
            var bodyRead = false
            if (request.contentLength ?? 0) <= Self.pollerBodyBytes, router.answersWithoutWaiting(request, context: &context) {
                readBody(connection, into: &request)
                bodyRead = true
                context.models.mayWaitForVW = false
                if let response = router.answer(request, context: &context) {
                    if finish(connection, request, response) { arm(connection) }
                    continue
                }
            }
            var waiting = WaitingRequest(connection: connection, request: request, bodyRead: bodyRead)
            guard roles.handOverPolling() else {
                roles.queue(waiting)
                continue
            }
            answer(&waiting, context: &context)
            return
        }
    }

    /// Answers a request that may wait (for vw, for the disk), then follows its connection.
    private func answer(_ waiting: inout WaitingRequest, context: inout Router.ThreadContext) {
        if !waiting.bodyRead { readBody(waiting.connection, into: &waiting.request) }
        context.models.mayWaitForVW = true
        let response = router.handle(waiting.request, context: &context)
        if finish(waiting.connection, waiting.request, response) { follow(waiting.connection, context: &context) }
    }

    /// How long a thread that answered a waiting request waits for the next request on its connection.
    static let followMilliseconds: Int32 = 10

    /// Answers the next requests on `connection` while they wait (for vw, for the disk), come within
    /// ``followMilliseconds`` of each other and no request is queued, as a thread per connection would (a wake-up
    /// per request, where taking each through the pollers again would cost a second one, to replace the poller);
    /// then arms the connection in the epoll set.
    private func follow(_ connection: Connection, context: inout Router.ThreadContext) {
        while true {
            var readable = pollfd(fd: connection.request.pointee.ipcFd, events: Int16(POLLIN), revents: 0)
            guard roles.nothingQueued, Glibc.poll(&readable, 1, Self.followMilliseconds) == 1 else {
                arm(connection)
                return
            }
            guard var request = begin(connection) else { return }
            readBody(connection, into: &request)
            // A request a poller answers by itself ends the following: the connection goes back to the pollers,
            // or a busy connection of native predictions would keep a thread (a wake-up per request) forever.
            let waits = !router.answersWithoutWaiting(request, context: &context)
            let response = router.handle(request, context: &context)
            guard finish(connection, request, response) else { return }
            guard waits else {
                arm(connection)
                return
            }
        }
    }

    /// Accepts the connections waiting on the listening socket, each armed in the epoll set, then arms the socket
    /// again (unless it was shut down: the server is stopping; or `maxConnections` are open: the next to close arms it).
    private func acceptConnections() {
        while true {
            if connections.load(ordering: .sequentiallyConsistent) >= maxConnections {
                listenerWaits.store(true, ordering: .sequentiallyConsistent)
                // A connection that closed before the store found nothing to arm: go on accepting.
                guard connections.load(ordering: .sequentiallyConsistent) < maxConnections,
                      listenerWaits.exchange(false, ordering: .sequentiallyConsistent) else { return }
            }
            let fd = cspawn_accept(socketFD)
            if fd >= 0 {
                connections.wrappingAdd(1, ordering: .sequentiallyConsistent)
                let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
                // No listening socket of its own: libfcgi never accepts; a closed connection fails FCGX_Accept_r.
                FCGX_InitRequest(request, -1, 0)
                request.pointee.ipcFd = fd
                // Kept until nginx says otherwise: FCGX_Accept_r would otherwise close it before its first request.
                request.pointee.keepConnection = 1
                let connection = Connection(request: request)
                if cspawn_poll_arm(poll, fd, connection.token, 1) != 0 {
                    close(fd)
                    release(connection)
                }
                continue
            }
            let error = errno
            if error == EINTR || error == ECONNABORTED { continue }
            if error != EAGAIN {
                if stopping.load(ordering: .acquiring) { return }
                // EMFILE, ENFILE, ENOBUFS...: back off before the next try.
                drained.wait(until: .after(.milliseconds(1))) { stopping.load(ordering: .acquiring) }
                if stopping.load(ordering: .acquiring) { return }
            }
            _ = cspawn_poll_arm(poll, socketFD, Self.listenerToken, 0)
            return
        }
    }

    /// Reads the next request's params on `connection`; nil when nginx closed it (its state is then freed).
    private func begin(_ connection: Connection) -> HTTPRequest? {
        guard FCGX_Accept_r(connection.request) >= 0 else {
            // libfcgi closed the connection (end of file, or a protocol error).
            release(connection)
            return nil
        }
        inflight.wrappingAdd(1, ordering: .acquiring)
        var http = FastCGIParams.request(fromEnvironment: connection.request.pointee.envp)
        if stopping.load(ordering: .acquiring) {
            // A request that arrived on a kept-alive connection while draining.
            http.rejection = .error(503, "vwfcgi is shutting down", headers: [("Retry-After", "1")])
        } else if let length = http.contentLength, length < 0 {
            http.rejection = .error(400, "invalid Content-Length")
        }
        return http
    }

    /// Reads the body of `http` (or drops it, over the limit); nothing for a request already refused.
    private func readBody(_ connection: Connection, into http: inout HTTPRequest) {
        let stream = connection.request.pointee.in
        guard http.rejection == nil else { return }
        if let length = http.contentLength, length > maxBodyBytes {
            Self.discard(stream)
            http.rejection = .error(413, "request body of \(length) bytes is larger than the limit of \(maxBodyBytes) bytes")
            return
        }
        http.body = Self.readBody(stream, expected: http.contentLength ?? 0, limit: maxBodyBytes)
        if http.body.count > maxBodyBytes {
            http.rejection = .error(413, "request body is larger than the limit of \(maxBodyBytes) bytes")
        }
    }

    /// Writes the answer and ends the request; false when the connection is closed (and freed), true while nginx
    /// keeps it.
    private func finish(_ connection: Connection, _ http: HTTPRequest, _ response: HTTPResponse) -> Bool {
        if response.status >= 500 {
            logger.warning("request failed", metadata: [
                "status": "\(response.status)", "path": "\(http.path)", "request_id": "\(http.requestID ?? "-")",
            ])
        }
        let request = connection.request
        write(response, to: request.pointee.out)
        FCGX_Finish_r(request)
        inflight.wrappingSubtract(1, ordering: .releasing)
        // The request's memory is freed by now; from 1 MiB on, malloc would otherwise keep it for good.
        if http.body.count >= Self.trimAfterBodyBytes { MemoryTuning.returnFreedMemory() }
        if stopping.load(ordering: .acquiring) { drained.broadcast() }
        guard request.pointee.ipcFd >= 0 else {
            release(connection)
            return false
        }
        return true
    }

    /// Arms an open connection in the epoll set for its next request (closes and frees it if that fails).
    private func arm(_ connection: Connection) {
        let request = connection.request
        if cspawn_poll_arm(poll, request.pointee.ipcFd, connection.token, 0) != 0 {
            FCGX_Free(request, 1)
            release(connection)
        }
    }

    /// Frees a closed connection's state, and arms the listening socket if it waited for a connection to close.
    private func release(_ connection: Connection) {
        connection.request.deallocate()
        connections.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        if listenerWaits.exchange(false, ordering: .sequentiallyConsistent) {
            _ = cspawn_poll_arm(poll, socketFD, Self.listenerToken, 0)
        }
    }

    /// Bodies from this size on are followed by `MemoryTuning.returnFreedMemory()`.
    static let trimAfterBodyBytes = 1 << 20

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

#if canImport(Glibc)
import Glibc
#endif
import Logging
import VWCore

/// `GET /metrics` over plain HTTP for `vwfcgi train` (issue 20 item 9), which has no nginx in front: the trainer's
/// loop metrics (updates, failures, learned events, joined, pending, state bytes) in Prometheus's text format.
///
/// Deliberately small: one connection at a time (a scraper every few seconds), `Connection: close`, a request head
/// of at most 8 KiB read within 2 s, `GET /metrics` only (404 for another path, 405 for another method). Read-only,
/// so it may listen beyond loopback (`0.0.0.0:9102` in the trainer's pod, which admits only that port).
final class MetricsEndpoint: BackgroundService {
    let serviceName = "metrics"
    private let listenFD: Int32
    private let render: @Sendable () -> [UInt8]
    private let logger: Logger

    /// Listens on `address` (`host:port`, IPv4); throws a message naming the address and the reason.
    init(address: String, logger: Logger, render: @escaping @Sendable () -> [UInt8]) throws {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]), port > 0 else {
            throw MetricsEndpointError(description: "--metrics-listen needs host:port (0.0.0.0:9102), not \(address)")
        }
        var ip = in_addr()
        guard inet_pton(AF_INET, String(address[..<colon]), &ip) == 1 else {
            throw MetricsEndpointError(description: "--metrics-listen needs an IPv4 address (0.0.0.0 or 127.0.0.1), not \(address)")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MetricsEndpointError(description: "cannot listen on \(address): \(String(cString: strerror(errno)))") }
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr = ip
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MetricsEndpointError(description: "cannot listen on \(address): \(reason)")
        }
        listenFD = fd
        self.render = render
        self.logger = logger
    }

    deinit { close(listenFD) }

    func run(until stop: StopToken) {
        while !stop.isStopped {
            var entries = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: stop.descriptor, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&entries, 2, 1000)
            guard ready > 0, entries[0].revents != 0, !stop.isStopped else { continue }
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            answer(client)
            close(client)
        }
    }

    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        let end = Array("\r\n\r\n".utf8)
        while head.count < 8192 && !contains(head, end) {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            head.append(contentsOf: chunk[0..<n])
        }
        let line = head.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
        let words = line.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        let response: [UInt8]
        if words.count != 3 || !words[2].hasPrefix("HTTP/1.") {
            response = Self.response(400, "text/plain", Array("bad request\n".utf8))
        } else if words[0] != "GET" {
            response = Self.response(405, "text/plain", Array("only GET /metrics\n".utf8), extra: "Allow: GET\r\n")
        } else if words[1] != "/metrics" && !words[1].hasPrefix("/metrics?") {
            response = Self.response(404, "text/plain", Array("only GET /metrics\n".utf8))
        } else {
            response = Self.response(200, "text/plain; version=0.0.4; charset=utf-8", render())
        }
        response.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(client, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                offset += n
            }
        }
    }

    private func contains(_ bytes: [UInt8], _ pattern: [UInt8]) -> Bool {
        guard bytes.count >= pattern.count else { return false }
        for start in 0...(bytes.count - pattern.count) where bytes[start..<(start + pattern.count)].elementsEqual(pattern) { return true }
        return false
    }

    private static func response(_ status: Int, _ type: String, _ body: [UInt8], extra: String = "") -> [UInt8] {
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"][status] ?? "Error"
        let head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\n\(extra)Connection: close\r\n\r\n"
        return Array(head.utf8) + body
    }
}

struct MetricsEndpointError: Error, CustomStringConvertible {
    let description: String
}

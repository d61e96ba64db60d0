import VWCore
/// The parts of an HTTP request that vwfcgi routes on, as nginx passes them in FastCGI params.
struct HTTPRequest: Sendable {
    var method: String
    /// The path without the query string.
    var path: String
    var contentType: String?
    var contentLength: Int?
    var requestID: String?
    /// The `Authorization` header, and the `Ocp-Apim-Subscription-Key` header (API keys, `APIKeys`).
    var authorization: String?
    var subscriptionKey: String?
    var body: [UInt8] = []
    /// An answer decided while reading the request (bad Content-Length, body over the limit).
    var rejection: HTTPResponse?
}

/// A complete reply; vwfcgi never streams.
struct HTTPResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    init(status: Int, contentType: String = "application/json", headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = [("Content-Type", contentType)] + headers
        self.body = body
    }

    /// A JSON error reply `{"error": message}`.
    static func error(_ status: Int, _ message: String, headers: [(String, String)] = []) -> HTTPResponse {
        var writer = JSONWriter(capacity: message.utf8.count + 16)
        writer.beginObject()
        writer.key("error"); writer.string(message)
        writer.endObject()
        return HTTPResponse(status: status, headers: headers, body: writer.bytes)
    }

    static func json(_ writer: JSONWriter, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: headers, body: writer.bytes)
    }

    /// The CGI response head: `Status:` line, headers, blank line.
    func head() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128)
        func add(_ text: some StringProtocol) { bytes.append(contentsOf: text.utf8) }
        add("Status: ")
        add(String(status))
        add(" ")
        add(HTTPResponse.reason(status))
        add("\r\n")
        for (name, value) in headers {
            add(name)
            add(": ")
            add(value)
            add("\r\n")
        }
        add("Content-Length: ")
        add(String(body.count))
        add("\r\n\r\n")
        return bytes
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 413: "Payload Too Large"
        case 415: "Unsupported Media Type"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status"
        }
    }
}

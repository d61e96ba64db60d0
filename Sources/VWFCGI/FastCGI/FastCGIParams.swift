/// Reads the CGI variables nginx sends as FastCGI params into an `HTTPRequest` (without its body).
enum FastCGIParams {
    /// Decodes `NAME=value` entries; unknown names are ignored.
    static func request(from entries: some Sequence<Substring>) -> HTTPRequest {
        var request = HTTPRequest(method: "GET", path: "/")
        var documentURI: Substring?
        var requestURI: Substring?
        for entry in entries {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            let name = entry[..<equals]
            let value = entry[entry.index(after: equals)...]
            switch name {
            case "REQUEST_METHOD": request.method = String(value)
            case "DOCUMENT_URI": documentURI = value
            case "REQUEST_URI": requestURI = value
            case "CONTENT_TYPE": if !value.isEmpty { request.contentType = String(value) }
            case "CONTENT_LENGTH": request.contentLength = value.isEmpty ? nil : (Int(value) ?? -1)
            case "HTTP_X_REQUEST_ID": request.requestID = String(value)
            default: continue
            }
        }
        if let documentURI, !documentURI.isEmpty {
            request.path = String(documentURI)
        } else if let requestURI {
            request.path = String(requestURI.prefix { $0 != "?" })
        }
        return request
    }
}

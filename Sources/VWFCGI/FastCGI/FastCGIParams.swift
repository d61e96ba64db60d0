#if canImport(Glibc)
import Glibc
#endif

/// Reads the CGI variables nginx sends as FastCGI params into an `HTTPRequest` (without its body).
///
/// nginx sends about twenty params per request; only a handful matter, so entries are matched
/// on their bytes and Strings are made only for those.
enum FastCGIParams {
    private static let names: [(prefix: [UInt8], field: Field)] = [
        (Array("REQUEST_METHOD=".utf8), .method),
        (Array("DOCUMENT_URI=".utf8), .documentURI),
        (Array("REQUEST_URI=".utf8), .requestURI),
        (Array("CONTENT_TYPE=".utf8), .contentType),
        (Array("CONTENT_LENGTH=".utf8), .contentLength),
        (Array("HTTP_X_REQUEST_ID=".utf8), .requestID),
        (Array("HTTP_AUTHORIZATION=".utf8), .authorization),
        (Array("HTTP_OCP_APIM_SUBSCRIPTION_KEY=".utf8), .subscriptionKey),
    ]

    private enum Field { case method, documentURI, requestURI, contentType, contentLength, requestID, authorization, subscriptionKey }

    /// Decodes `NAME=value` entries; unknown names are ignored.
    static func request(from entries: some Sequence<String>) -> HTTPRequest {
        var decoder = Decoder()
        for var entry in entries {
            entry.withUTF8 { decoder.add(UnsafeRawBufferPointer($0)) }
        }
        return decoder.finish()
    }

    /// Decodes libfcgi's NULL-terminated array of C strings.
    static func request(fromEnvironment envp: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> HTTPRequest {
        var decoder = Decoder()
        guard var cursor = envp else { return decoder.finish() }
        while let entry = cursor.pointee {
            decoder.add(UnsafeRawBufferPointer(start: entry, count: strlen(entry)))
            cursor += 1
        }
        return decoder.finish()
    }

    private struct Decoder {
        var request = HTTPRequest(method: "GET", path: "/")
        var documentURI: String?
        var requestURI: String?

        mutating func add(_ entry: UnsafeRawBufferPointer) {
            guard let first = entry.first, [UInt8(ascii: "R"), UInt8(ascii: "D"), UInt8(ascii: "C"), UInt8(ascii: "H")].contains(first) else { return }
            for (prefix, field) in FastCGIParams.names where entry.count >= prefix.count {
                let matches = prefix.withUnsafeBytes { memcmp($0.baseAddress!, entry.baseAddress!, prefix.count) == 0 }
                guard matches else { continue }
                let value = UnsafeRawBufferPointer(rebasing: entry[prefix.count...])
                let text = String(decoding: value, as: UTF8.self)
                switch field {
                case .method: request.method = text
                case .documentURI: documentURI = text
                case .requestURI: requestURI = text
                case .contentType: request.contentType = text.isEmpty ? nil : text
                case .contentLength: request.contentLength = text.isEmpty ? nil : (Int(text) ?? -1)
                case .requestID: request.requestID = text
                // The first of a repeated header is kept.
                case .authorization: request.authorization = request.authorization ?? text
                case .subscriptionKey: request.subscriptionKey = request.subscriptionKey ?? text
                }
                return
            }
        }

        mutating func finish() -> HTTPRequest {
            if let documentURI, !documentURI.isEmpty {
                request.path = documentURI
            } else if let requestURI {
                request.path = String(requestURI.prefix { $0 != "?" })
            }
            return request
        }
    }
}

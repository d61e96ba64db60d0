// libFuzzer target: FastCGIParams, the decoding of the NAME=value params nginx sends.
//
// Input: entries separated by NUL bytes, given to the decoder as libfcgi gives them (a
// NULL-terminated array of C strings). Checks the decoder against an independent reading
// (the last entry of a name wins, unknown names are ignored, the path is DOCUMENT_URI or
// REQUEST_URI up to '?'), and that the String-based entry point agrees with the C one.
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let entries = bytes.split(separator: 0, omittingEmptySubsequences: true).map { Array($0) }

    // libfcgi's envp: NUL-terminated copies, then NULL.
    let envp = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: entries.count + 1)
    defer {
        for k in 0..<entries.count { envp[k]?.deallocate() }
        envp.deallocate()
    }
    for (k, entry) in entries.enumerated() {
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: entry.count + 1)
        entry.withUnsafeBufferPointer { src in
            for i in 0..<entry.count { copy[i] = CChar(bitPattern: src[i]) }
        }
        copy[entry.count] = 0
        envp[k] = copy
    }
    envp[entries.count] = nil

    let decoded = FastCGIParams.request(fromEnvironment: envp)
    let expected = reference(entries)
    check(decoded.method == expected.method, "method \(decoded.method) != \(expected.method)")
    check(decoded.path == expected.path, "path \(decoded.path) != \(expected.path)")
    check(decoded.contentType == expected.contentType, "content type \(String(describing: decoded.contentType))")
    check(decoded.contentLength == expected.contentLength, "content length \(String(describing: decoded.contentLength)) != \(String(describing: expected.contentLength))")
    check(decoded.requestID == expected.requestID, "request id")
    check(decoded.body.isEmpty && decoded.rejection == nil, "a body or rejection from params alone")

    if entries.allSatisfy({ String(validating: $0, as: UTF8.self) != nil }) {
        let fromStrings = FastCGIParams.request(from: entries.map { String(decoding: $0, as: UTF8.self) })
        check(fromStrings.method == decoded.method && fromStrings.path == decoded.path
              && fromStrings.contentType == decoded.contentType && fromStrings.contentLength == decoded.contentLength
              && fromStrings.requestID == decoded.requestID, "the String and C entry points disagree")
    }
    return 0
}

func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}

struct Expected {
    var method = "GET"
    var path = "/"
    var contentType: String?
    var contentLength: Int?
    var requestID: String?
}

func reference(_ entries: [[UInt8]]) -> Expected {
    var result = Expected()
    var documentURI: String?
    var requestURI: String?
    for entry in entries {
        guard let eq = entry.firstIndex(of: UInt8(ascii: "=")) else { continue }
        let name = String(decoding: entry[..<eq], as: UTF8.self)
        let value = String(decoding: entry[(eq + 1)...], as: UTF8.self)
        switch name {
        case "REQUEST_METHOD": result.method = value
        case "DOCUMENT_URI": documentURI = value
        case "REQUEST_URI": requestURI = value
        case "CONTENT_TYPE": result.contentType = value.isEmpty ? nil : value
        case "CONTENT_LENGTH": result.contentLength = value.isEmpty ? nil : (Int(value) ?? -1)
        case "HTTP_X_REQUEST_ID": result.requestID = value
        default: break
        }
    }
    if let documentURI, !documentURI.isEmpty {
        result.path = documentURI
    } else if let requestURI {
        result.path = String(requestURI.prefix { $0 != "?" })
    }
    return result
}

import Testing
@testable import VWFCGI

struct FastCGIParamsTests {
    @Test func decodesWhatNginxSends() {
        let request = FastCGIParams.request(from: [
            "REQUEST_METHOD=POST", "REQUEST_URI=/v1/models/m:predict?x=1", "DOCUMENT_URI=/v1/models/m:predict",
            "CONTENT_TYPE=text/plain; charset=utf-8", "CONTENT_LENGTH=42", "HTTP_X_REQUEST_ID=abc", "SERVER_PROTOCOL=HTTP/1.1",
        ])
        #expect(request.method == "POST")
        #expect(request.path == "/v1/models/m:predict")
        #expect(request.contentType == "text/plain; charset=utf-8")
        #expect(request.contentLength == 42)
        #expect(request.requestID == "abc")
    }

    @Test func pathFallsBackToRequestURIWithoutQuery() {
        let request = FastCGIParams.request(from: ["REQUEST_METHOD=GET", "REQUEST_URI=/healthz?verbose=1"])
        #expect(request.path == "/healthz")
    }

    @Test func valuesMayContainEqualsSigns() {
        let request = FastCGIParams.request(from: ["CONTENT_TYPE=text/plain; charset=utf-8", "HTTP_X_REQUEST_ID=a=b"])
        #expect(request.requestID == "a=b")
    }

    @Test func emptyAndInvalidContentLength() {
        #expect(FastCGIParams.request(from: ["CONTENT_LENGTH="]).contentLength == nil)
        #expect(FastCGIParams.request(from: ["CONTENT_LENGTH=7", "CONTENT_LENGTH_X=9"]).contentLength == 7)
        #expect(FastCGIParams.request(from: ["REQUEST_METHO=POST", "X=1", ""]).method == "GET")
        #expect(FastCGIParams.request(from: ["CONTENT_TYPE="]).contentType == nil)
        #expect(FastCGIParams.request(from: ["CONTENT_LENGTH=12x"]).contentLength == -1)
    }
}

struct BodyFormatTests {
    @Test func mediaTypes() throws {
        #expect(try BodyFormat.of(contentType: nil).get() == .json)
        #expect(try BodyFormat.of(contentType: "").get() == .json)
        #expect(try BodyFormat.of(contentType: "application/json").get() == .json)
        #expect(try BodyFormat.of(contentType: "Application/JSON; charset=utf-8").get() == .json)
        #expect(try BodyFormat.of(contentType: "text/plain").get() == .text)
        #expect(try BodyFormat.of(contentType: "text/plain; charset=UTF-8").get() == .text)
        #expect(try BodyFormat.of(contentType: "text/plain;charset=\"utf-8\"").get() == .text)
        #expect(throws: BodyFormat.Unsupported.self) { try BodyFormat.of(contentType: "text/plain; charset=latin1").get() }
        #expect(throws: BodyFormat.Unsupported.self) { try BodyFormat.of(contentType: "application/xml").get() }
        #expect(throws: BodyFormat.Unsupported.self) { try BodyFormat.of(contentType: "application/x-www-form-urlencoded").get() }
    }
}

struct HTTPResponseTests {
    @Test func headHasStatusHeadersAndLength() {
        let response = HTTPResponse.error(413, "too \"big\"")
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"error":"too \"big\""}"#)
        let head = String(decoding: response.head(), as: UTF8.self)
        #expect(head == "Status: 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: \(response.body.count)\r\n\r\n")
    }
}

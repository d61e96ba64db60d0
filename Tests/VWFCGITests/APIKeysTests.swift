import Testing
@testable import VWFCGI

struct APIKeysTests {
    static let file = Array("\n  alpha-key-0123  \r\n\n\tbeta\n".utf8)

    func keys(_ scope: APIKeys.Scope = .writes) throws -> APIKeys {
        try APIKeys(fileContents: Self.file, scope: scope, path: "keys")
    }

    @Test func everyKeyOfTheFileIsAcceptedWithoutItsSurroundingWhitespace() throws {
        let keys = try keys()
        #expect(keys.count == 2)
        #expect(keys.accepts(Array("alpha-key-0123".utf8)))
        #expect(keys.accepts(Array("beta".utf8)))
    }

    @Test func keysThatDifferInOneByteOrInLengthAreRefused() throws {
        let keys = try keys()
        for wrong in ["alpha-key-0124", "blpha-key-0123", "alpha-key-012", "alpha-key-01234", "bet", "betaa", "BETA", "", " beta", "alpha-key-0123beta"] {
            #expect(!keys.accepts(Array(wrong.utf8)), "\(wrong)")
        }
    }

    @Test func aFileWithoutKeysOrWithAKeyNoHeaderCanCarryIsRefused() {
        #expect(throws: APIKeys.FileProblem.self) { try APIKeys(fileContents: Array("\n \t\r\n".utf8), scope: .writes, path: "k") }
        #expect(throws: APIKeys.FileProblem.self) { try APIKeys(fileContents: [], scope: .writes, path: "k") }
        #expect(throws: APIKeys.FileProblem.self) { try APIKeys(fileContents: Array("ok\nnot ok\n".utf8), scope: .writes, path: "k") }
        #expect(throws: APIKeys.FileProblem.self) { try APIKeys(fileContents: [0x61, 0x00, 0x62], scope: .writes, path: "k") }
        #expect(throws: APIKeys.FileProblem.self) { try APIKeys.load(path: "/nonexistent/vwfcgi-keys", scope: .writes) }
    }

    @Test func bearerTokensAndSubscriptionKeysAreBothRead() throws {
        let keys = try keys()
        func request(authorization: String? = nil, subscription: String? = nil) -> HTTPRequest {
            var request = HTTPRequest(method: "POST", path: "/v1/models/m:rank")
            request.authorization = authorization
            request.subscriptionKey = subscription
            return request
        }
        #expect(keys.accepts(request(authorization: "Bearer beta")))
        #expect(keys.accepts(request(authorization: " bEaReR \t alpha-key-0123 ")))
        #expect(keys.accepts(request(subscription: " beta ")))
        #expect(keys.accepts(request(authorization: "Bearer wrong", subscription: "beta")))
        #expect(!keys.accepts(request()))
        #expect(!keys.accepts(request(authorization: "beta")))
        #expect(!keys.accepts(request(authorization: "Basic beta")))
        #expect(!keys.accepts(request(authorization: "Bearerbeta")))
        #expect(!keys.accepts(request(authorization: "Bearer ")))
        #expect(!keys.accepts(request(subscription: "")))
        #expect(APIKeys.bearerToken("Bearer  a b ") == Array("a b".utf8))
    }

    @Test func scopeWritesGuardsTheLoopsWriteRoutesOnly() throws {
        let keys = try keys(.writes)
        for path in ["/v1/models/cb:rank", "/v1/models/cb:reward", "/v1/models/cb:activate", "/v1/models/lin:learn",
                     "/v1/models/cb/loop:rollback", "/loops/cb/personalizer/v1.0/rank", "/personalizer/v1.0/rank"] {
            #expect(keys.guards(path), "\(path)")
        }
        for path in ["/v1/models/lin:predict", "/v2/models/lin/infer", "/v1/models", "/v1/models/cb", "/v1/models/cb/loop",
                     "/healthz", "/readyz", "/metrics", "/", "/v2/health/live"] {
            #expect(!keys.guards(path), "\(path)")
        }
    }

    @Test func scopeAllGuardsEverythingButProbesAndMetrics() throws {
        let keys = try keys(.all)
        for path in ["/v1/models/lin:predict", "/v2/models/lin/infer", "/v2", "/v2/health/ready", "/v1/models", "/v1/models/cb",
                     "/v1/models/cb/loop", "/v1/models/cb:rank", "/v1/models/cb/loop:rollback", "/other"] {
            #expect(keys.guards(path), "\(path)")
        }
        for path in ["/healthz", "/readyz", "/metrics", "/"] {
            #expect(!keys.guards(path), "\(path)")
        }
    }

    @Test func theReplyIs401JSONWithWWWAuthenticate() {
        for presented in [false, true] {
            let reply = APIKeys.unauthorized(presented: presented)
            #expect(reply.status == 401)
            #expect(reply.headers.contains { $0.0 == "WWW-Authenticate" && $0.1.hasPrefix("Bearer") })
            #expect(reply.headers.contains { $0 == ("Content-Type", "application/json") })
            #expect(String(decoding: reply.body, as: UTF8.self).hasPrefix("{\"error\":"))
        }
        #expect(HTTPResponse.reason(401) == "Unauthorized")
    }

    @Test func nginxParamsCarryBothHeaders() {
        let request = FastCGIParams.request(from: [
            "REQUEST_METHOD=POST", "HTTP_AUTHORIZATION=Bearer a=b", "HTTP_OCP_APIM_SUBSCRIPTION_KEY=k", "HTTP_AUTHORIZATION=Bearer second",
        ])
        #expect(request.authorization == "Bearer a=b")
        #expect(request.subscriptionKey == "k")
    }
}

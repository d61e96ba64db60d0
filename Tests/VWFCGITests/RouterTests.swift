import Logging
import Prometheus
import Testing
@testable import VWCore
@testable import VWFCGI
import VWTestSupport

/// A router over an engine and a store on a temporary model directory with the stand-in vw.
private struct RouterUnderTest {
    let folder = ModelFolder()
    let router: Router

    init() {
        let loops = LearningLoops(stateDirectory: folder.root + "/state", instance: "test", logger: Logger(label: "test"))
        let store = ModelStore(settings: folder.settings(), logger: Logger(label: "test"), learnedModels: loops)
        router = Router(engine: Engine(store: store, loops: loops), metrics: RequestMetrics(registry: PrometheusCollectorRegistry()))
    }

    func load() {
        router.store.reconcile()
        router.store.waitForLoads()
        router.store.finishStartup()
    }

    func request(_ method: String, _ path: String, contentType: String? = nil, body: String = "") -> (status: Int, body: String) {
        var context = Router.ThreadContext()
        let request = HTTPRequest(method: method, path: path, contentType: contentType, contentLength: body.utf8.count, body: Array(body.utf8))
        let response = router.handle(request, context: &context)
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    func tearDown() {
        router.store.shutdown()
        folder.destroy()
    }
}

@Suite(.serialized)
struct RouterTests {
    /// Routes are matched on the path's bytes: every label, the model a V1 verb names, and which paths are Personalizer's.
    @Test func pathsMapToTheirRoutesAndLabels() {
        let labels = [
            "/healthz": "healthz", "/": "root", "/readyz": "readyz", "/metrics": "metrics", "/v1/models": "models",
            "/v1/models/m:predict": "predict", "/v1/models/m:rank": "rank", "/v1/models/m:reward": "reward",
            "/v1/models/m:activate": "activate", "/v1/models/m:learn": "learn", "/v1/models/m/loop": "loop",
            "/v1/models/m/loop:rollback": "rollback", "/v1/models/m/loop:rotate": "rotate", "/v1/models/m": "model",
            "/v1/models/m:explain": "model", "/v2/models/m/infer": "v2_infer", "/v2x": "other", "/v1/model/m:predict": "other",
            "/predict": "other", "/v1/models/é:predict": "predict",
        ]
        for (path, label) in labels { #expect(Router.route(of: path) == label, "\(path)") }
        #expect(Router.model(in: "/v1/models/m.1:predict", verb: ":predict") == "m.1")
        #expect(Router.model(in: "/v1/models/é:rank", verb: ":rank") == "é")
        for path in ["/v1/models/:predict", "/v1/models/m:rank", "/v1/models/m:predictx", "/v1/modelsm:predict", "/v2/models/m:predict"] {
            #expect(Router.model(in: path, verb: ":predict") == (path == "/v1/models/:predict" ? "" : nil), "\(path)")
        }
        for (path, status) in ["/v1/models/m": true, "/v1/models/m.1": true, "/v1/models/": false, "/v1/models/m/loop": false,
                               "/v1/models/m:predict": false, "/v1/modelsm": false, "/v1/models": false] {
            #expect(Router.isModelStatus(path) == status, "\(path)")
        }
        #expect(PersonalizerRoute(path: "/personalizer/v1.0/rank", defaultModel: "p")?.model == "p")
        #expect(PersonalizerRoute(path: "/loops/m/personalizer/rank", defaultModel: "p") == PersonalizerRoute(path: "/personalizer/rank", defaultModel: "m"))
        #expect(PersonalizerRoute(path: "/loops/m/anything", defaultModel: "p")?.operation == .unknown)
        for path in ["/v1/models/m:predict", "/healthz", "/loop/m/personalizer/rank", "/Personalizer/rank", "/personalizer"] {
            #expect(PersonalizerRoute(path: path, defaultModel: "p") == nil, "\(path)")
        }
    }

    @Test func predictAnswersInTextAndJSON() {
        let test = RouterUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.load()
        let plain = test.request("POST", "/v1/models/m:predict", contentType: "text/plain", body: "|a x\n|b y\n")
        #expect(plain.status == 200 && plain.body == "0.5\n0.5\n")
        let json = test.request("POST", "/v1/models/m:predict", contentType: "application/json", body: #"{"instances": ["|a x"]}"#)
        #expect(json.status == 200)
        #expect(json.body.contains(#""predictions""#))
        #expect(test.request("GET", "/v1/models/m:predict").status == 405)
    }

    @Test func engineErrorsMapToStatuses() {
        let test = RouterUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.folder.write("garbage", model: "bad.vw")
        test.load()
        #expect(test.request("POST", "/v1/models/none:predict", contentType: "text/plain", body: "|a x\n").status == 404)
        #expect(test.request("POST", "/v1/models/bad:predict", contentType: "text/plain", body: "|a x\n").status == 503)
        #expect(test.request("POST", "/v1/models/m:predict", contentType: "text/plain", body: "not an example |\n").status == 400)
        #expect(test.request("POST", "/v1/models/m:rank", contentType: "application/json", body: #"{"context": {}}"#).status == 400)
    }

    @Test func statusAndReadinessFollowTheStore() {
        let test = RouterUnderTest()
        defer { test.tearDown() }
        #expect(test.request("GET", "/readyz").status == 503)
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.load()
        #expect(test.request("GET", "/readyz").status == 200)
        let model = test.request("GET", "/v1/models/m")
        #expect(model.status == 200 && model.body.contains(#""ready":true"#))
        #expect(test.request("GET", "/v1/models").body.contains(#""m""#))
        #expect(test.request("GET", "/v1/models/none").status == 404)
        // Names with `/` or `:` name no route (cut on bytes, as the pollers' check cuts them).
        for path in ["/v1/models/m/x", "/v1/models/m:x", "/v1/models/a:b/loop", "/v1/models/a/b/loop", "/v1/models/a:b/loop:rotate"] {
            let answer = test.request(path.hasSuffix(":rotate") ? "POST" : "GET", path)
            #expect(answer.status == 404 && answer.body.contains("no route"), "\(path)")
        }
        #expect(test.request("GET", "/v1/models/none/loop").status == 404)
        #expect(test.request("POST", "/v1/models/m/loop").status == 405)
    }

    @Test func openInferenceGoesThroughTheSameEngine() {
        let test = RouterUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.load()
        let version = test.router.store.status(of: "m")?.version ?? ""
        #expect(test.request("GET", "/v2/models/m/ready").status == 200)
        #expect(test.request("GET", "/v2/models/m/versions/000000000000/ready").status == 404)
        let metadata = test.request("GET", "/v2/models/m")
        #expect(metadata.status == 200 && metadata.body.contains(version))
        let infer = test.request("POST", "/v2/models/m/infer", contentType: "application/json", body: #"""
            {"inputs": [{"name": "examples", "shape": [1], "datatype": "BYTES", "data": ["|a x"]}]}
            """#)
        #expect(infer.status == 200, "\(infer.body)")
        #expect(infer.body.contains(version))
    }
}

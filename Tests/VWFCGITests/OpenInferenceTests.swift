import Testing
@testable import VWCore
@testable import VWFCGI

private func decode(_ json: String, maxDepth: Int = 32) throws(PredictError) -> InferRequest {
    try InferRequest.decode(Array(json.utf8), maxDepth: maxDepth)
}

/// The 400 message of a body that does not decode, nil when it decodes.
private func rejection(_ json: String, maxDepth: Int = 32) -> String? {
    do {
        _ = try decode(json, maxDepth: maxDepth)
        return nil
    } catch {
        guard case .malformedBody(let message) = error else { return "not a malformedBody: \(error)" }
        return message
    }
}

/// A result as the engine returns it: `lines` are what vw printed, one answer per example.
private func result(_ lines: [String], kind: PredictionKind = .plain, family: ExampleFamily = .simple) -> PredictResult {
    var text: [UInt8] = []
    var answers: [Range<Int>] = []
    for line in lines {
        let start = text.count
        text += Array(line.utf8)
        answers.append(start..<text.count)
        text.append(0x0A)
    }
    return PredictResult(model: "m", version: "0123456789ab", predictionKind: kind, family: family,
                         text: text, answers: answers, tags: lines.map { _ in "" })
}

private func json(_ writer: JSONWriter) -> String { String(decoding: writer.bytes, as: UTF8.self) }

@Suite struct OpenInferenceTests {
    // MARK: request envelope

    @Test func decodesTheExamplesTensorAndTheID() throws {
        let request = try decode(#"""
            {"id": "r-1", "model_name": "m", "parameters": {"x": 1},
             "inputs": [{"name": "examples", "datatype": "BYTES", "shape": [2], "data": ["|f a:1", "|f b"],
                         "parameters": {"content_type": "str"}}],
             "outputs": [{"name": "predictions"}]}
            """#)
        #expect(request == InferRequest(id: "r-1", examples: ["|f a:1", "|f b"]))
    }

    @Test func idIsOptional() throws {
        let request = try decode(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|f a"]}]}"#)
        #expect(request == InferRequest(id: nil, examples: ["|f a"]))
    }

    @Test func acceptsAColumnShapeFlatOrNested() throws {
        let flat = try decode(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [2, 1], "data": ["|a", "|b"]}]}"#)
        let nested = try decode(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [2, 1], "data": [["|a"], ["|b"]]}]}"#)
        #expect(flat.examples == ["|a", "|b"])
        #expect(nested.examples == ["|a", "|b"])
    }

    @Test func emptyTensorIsNoExamples() throws {
        #expect(try decode(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [0], "data": []}]}"#).examples == [])
    }

    @Test func wrongDatatypeIsRejected() {
        #expect(rejection(#"{"inputs": [{"name": "examples", "datatype": "FP32", "shape": [1], "data": [1.5]}]}"#)
            == "input \"examples\" must have datatype BYTES (VW examples as strings), not FP32")
        #expect(rejection(#"{"inputs": [{"name": "examples", "shape": [1], "data": ["|a"]}]}"#)
            == "input \"examples\" must have datatype BYTES (VW examples as strings), not nothing")
    }

    @Test func shapeMustMatchTheData() {
        #expect(rejection(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [3], "data": ["|a", "|b"]}]}"#)
            == "input \"examples\" has shape [3] (3 elements) but 2 in \"data\"")
        #expect(rejection(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [2, 2], "data": ["|a", "|b", "|c", "|d"]}]}"#)
            == "input \"examples\" must have shape [n] or [n, 1], not [2, 2]")
        #expect(rejection(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [-1], "data": ["|a"]}]}"#)
            == "input \"examples\": the dimensions of \"shape\" must be non-negative integers")
        #expect(rejection(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "data": ["|a"]}]}"#)
            == "input \"examples\" must have a \"shape\" array ([n], n the number of examples)")
        // Nesting only where the shape says so.
        #expect(rejection(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": [["|a"]]}]}"#)
            == "input \"examples\": data[0] must be a string (a VW example), not an array")
    }

    @Test func elementsMustBeStrings() {
        #expect(rejection(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": [{"a": 1}]}]}"#)
            == "input \"examples\": data[0] must be a string (a VW example), not an object")
    }

    @Test func theExamplesInputIsRequiredAndAlone() {
        #expect(rejection(#"{"inputs": []}"#) == "the request has no input named \"examples\" (BYTES, shape [n])")
        #expect(rejection(#"{"id": "x"}"#) == "the request has no \"inputs\" array")
        #expect(rejection(#"{"inputs": [{"name": "input-0", "datatype": "BYTES", "shape": [1], "data": ["|a"]}]}"#)
            == "unknown input \"input-0\": the only input is \"examples\" (BYTES, shape [n])")
        let twice = #"{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|a"]}"#
        #expect(rejection(#"{"inputs": [\#(twice), \#(twice)]}"#) == "input \"examples\" is given twice")
        #expect(rejection(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1]}]}"#)
            == "input \"examples\" has no \"data\" (the binary tensor extension is not supported)")
    }

    @Test func onlyThePredictionsOutputCanBeRequested() {
        #expect(rejection(#"{"inputs": [], "outputs": [{"name": "probabilities"}]}"#)
            == "unknown output \"probabilities\": the only output is \"predictions\"")
    }

    @Test func badJSONAndDepthAreMalformed() {
        #expect(rejection("not json")?.hasPrefix("invalid JSON at byte 0") == true)
        #expect(rejection(#"["|a"]"#) == "the request body must be a JSON object with an \"inputs\" array, not an array")
        #expect(rejection(#"{"id": 7, "inputs": []}"#) == "\"id\" must be a string, not a number")
        #expect(rejection(#"{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": [["|a"]]}]}"#, maxDepth: 3)?
            .hasPrefix("invalid JSON") == true)
        #expect(rejection(#"{"id": "a", "id": "b", "inputs": []}"#) == "duplicate key \"id\"")
    }

    // MARK: routes

    @Test func routesOfTheProtocol() {
        #expect(OpenInferenceRoute(path: "/v2") == .server)
        #expect(OpenInferenceRoute(path: "/v2/") == .server)
        #expect(OpenInferenceRoute(path: "/v2/health/live") == .live)
        #expect(OpenInferenceRoute(path: "/v2/health/ready") == .ready)
        #expect(OpenInferenceRoute(path: "/v2/models/m.1") == .model(name: "m.1", version: nil))
        #expect(OpenInferenceRoute(path: "/v2/models/m/ready") == .modelReady(name: "m", version: nil))
        #expect(OpenInferenceRoute(path: "/v2/models/m/infer") == .infer(name: "m", version: nil))
        #expect(OpenInferenceRoute(path: "/v2/models/m/versions/abc") == .model(name: "m", version: "abc"))
        #expect(OpenInferenceRoute(path: "/v2/models/m/versions/abc/ready") == .modelReady(name: "m", version: "abc"))
        #expect(OpenInferenceRoute(path: "/v2/models/m/versions/abc/infer") == .infer(name: "m", version: "abc"))
        for path in ["/v2x", "/v2/models", "/v2/models/", "/v2/models/m/versions", "/v2/models/m/versions//infer",
                     "/v2/models/m/predict", "/v2/health", "/v1/models/m", "/v2/models/m:predict"] {
            #expect(OpenInferenceRoute(path: path) == nil, "\(path)")
        }
        #expect(Router.route(of: "/v2/models/m/infer") == "v2_infer")
        #expect(Router.route(of: "/v2/health/ready") == "v2_ready")
        #expect(Router.route(of: "/") == "root")
    }

    // MARK: documents

    @Test func scalarPredictionsAreFP32() {
        let document = json(OpenInferenceDocument.inference(result(["0.25", "1", "-3.5e-05"]), id: "r-1"))
        #expect(document == #"{"model_name":"m","model_version":"0123456789ab","id":"r-1","outputs":[{"name":"predictions","datatype":"FP32","shape":[3],"data":[0.25,1,-3.5e-05]}]}"#)
    }

    @Test func classesAreINT64AndTheIDIsLeftOutWhenNotGiven() {
        let document = json(OpenInferenceDocument.inference(result(["2", "3"], family: .multiclass), id: nil))
        #expect(document == #"{"model_name":"m","model_version":"0123456789ab","outputs":[{"name":"predictions","datatype":"INT64","shape":[2],"data":[2,3]}]}"#)
    }

    @Test func actionProbabilitiesAreBytesOfTheV1List() {
        let document = json(OpenInferenceDocument.inference(
            result(["1:0.9,0:0.1"], kind: .actionProbabilities, family: .cbADF), id: nil))
        #expect(document == #"{"model_name":"m","model_version":"0123456789ab","outputs":[{"name":"predictions","datatype":"BYTES","shape":[1],"#
            + #""data":["[{\"action\":1,\"probability\":0.9},{\"action\":0,\"probability\":0.1}]"]}]}"#)
    }

    @Test func aValueThatDoesNotFitMakesTheTensorBytes() {
        let document = json(OpenInferenceDocument.inference(result(["0.5", "nan"]), id: nil))
        #expect(document.contains(#""datatype":"BYTES","shape":[2],"data":["0.5","nan"]"#))
        let labels = json(OpenInferenceDocument.inference(result(["1,2"], family: .multilabel), id: nil))
        #expect(labels.contains(#""datatype":"BYTES","shape":[1],"data":["1,2"]"#))
    }

    @Test func datatypeFollowsThePredictionKind() {
        #expect(TensorDatatype.of(kind: .plain, family: .simple) == .fp32)
        #expect(TensorDatatype.of(kind: .plain, family: .multiclass) == .int64)
        #expect(TensorDatatype.of(kind: .plain, family: .cbADF) == .int64)
        #expect(TensorDatatype.of(kind: .actionProbabilities, family: .cbADF) == .bytes)
        #expect(TensorDatatype.of(kind: .actionScores, family: .cbADF) == .bytes)
        #expect(TensorDatatype.of(kind: .plain, family: .multilabel) == .bytes)
    }

    @Test func metadataDocuments() {
        #expect(json(OpenInferenceDocument.server()) == #"{"name":"vwfcgi","version":"\#(vwfcgiVersion)","extensions":[]}"#)
        #expect(json(OpenInferenceDocument.model(name: "m", serving: (version: "0123456789ab", datatype: .int64)))
            == #"{"name":"m","versions":["0123456789ab"],"platform":"vowpal_wabbit","inputs":[{"name":"examples","datatype":"BYTES","shape":[-1]}],"#
            + #""outputs":[{"name":"predictions","datatype":"INT64","shape":[-1]}]}"#)
        #expect(json(OpenInferenceDocument.model(name: "m", serving: nil))
            == #"{"name":"m","versions":[],"platform":"vowpal_wabbit","inputs":[{"name":"examples","datatype":"BYTES","shape":[-1]}],"outputs":[]}"#)
        #expect(json(OpenInferenceDocument.flag("ready", false, name: "m")) == #"{"name":"m","ready":false}"#)
        #expect(json(OpenInferenceDocument.flag("live", true)) == #"{"live":true}"#)
    }
}

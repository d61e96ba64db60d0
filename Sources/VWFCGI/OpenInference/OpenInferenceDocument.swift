import VWCore

/// The datatype of the `predictions` tensor, from what the model prints.
enum TensorDatatype: String {
    /// Scalar predictions (regression, logistic, binary).
    case fp32 = "FP32"
    /// Classes and chosen actions (multiclass, cost-sensitive, `--cb`, `--cb_adf`).
    case int64 = "INT64"
    /// Anything else: each element the JSON text of the V1 prediction (action lists, multilabels, ...).
    case bytes = "BYTES"

    static func of(kind: PredictionKind, family: ExampleFamily) -> TensorDatatype {
        guard kind == .plain else { return .bytes }
        switch family {
        case .simple: return .fp32
        case .multiclass, .costSensitive, .contextualBandit, .cbADF, .csoaaLDF: return .int64
        case .multilabel, .ccb, .slates: return .bytes
        }
    }

    /// Whether `prediction` can be an element of a tensor of this datatype.
    func holds(_ prediction: Prediction) -> Bool {
        switch (self, prediction) {
        case (.bytes, _), (.int64, .integer), (.fp32, .integer): true
        case (.fp32, .number(let text)): JSONParser.isNumber(text)
        default: false
        }
    }
}

/// JSON documents of the Open Inference Protocol (KServe V2) REST routes.
enum OpenInferenceDocument {
    static let platform = "vowpal_wabbit"

    /// `GET /v2`.
    static func server() -> JSONWriter {
        var writer = JSONWriter(capacity: 64)
        writer.beginObject()
        writer.key("name"); writer.string("vwfcgi")
        writer.key("version"); writer.string(vwfcgiVersion)
        writer.key("extensions"); writer.beginArray(); writer.endArray()
        writer.endObject()
        return writer
    }

    /// `GET /v2/models/<name>`: `serving` is nil while the model has no serving version.
    static func model(name: String, serving: (version: String, datatype: TensorDatatype)?) -> JSONWriter {
        var writer = JSONWriter(capacity: 256)
        writer.beginObject()
        writer.key("name"); writer.string(name)
        writer.key("versions")
        writer.beginArray()
        if let serving { writer.string(serving.version) }
        writer.endArray()
        writer.key("platform"); writer.string(platform)
        writer.key("inputs")
        writer.beginArray()
        writer.tensorMetadata(name: InferRequest.inputName, datatype: "BYTES")
        writer.endArray()
        writer.key("outputs")
        writer.beginArray()
        if let serving { writer.tensorMetadata(name: InferRequest.outputName, datatype: serving.datatype.rawValue) }
        writer.endArray()
        writer.endObject()
        return writer
    }

    /// `GET /v2/health/live`, `/v2/health/ready` and `/v2/models/<name>/ready` bodies.
    static func flag(_ key: String, _ value: Bool, name: String? = nil) -> JSONWriter {
        var writer = JSONWriter(capacity: 64)
        writer.beginObject()
        if let name {
            writer.key("name"); writer.string(name)
        }
        writer.key(key); writer.bool(value)
        writer.endObject()
        return writer
    }

    /// The inference response: one `predictions` tensor of shape `[n]`.
    ///
    /// Its datatype is the model's (``TensorDatatype/of(kind:family:)``); should vw print a value
    /// that does not fit it (`nan` for a scalar), the whole tensor is sent as BYTES rather than
    /// altering the value.
    static func inference(_ result: PredictResult, id: String?) -> JSONWriter {
        // Two passes over the answers rather than an array of every prediction: the datatype first, then the data.
        let parser = PredictionParser(kind: result.predictionKind)
        var datatype = TensorDatatype.of(kind: result.predictionKind, family: result.family)
        var fits = true
        result.forEachPrediction(parser: parser) { fits = fits && datatype.holds($0) }
        if !fits { datatype = .bytes }

        var writer = JSONWriter(capacity: 160 + result.text.count * 2)
        writer.beginObject()
        writer.key("model_name"); writer.string(result.model)
        writer.key("model_version"); writer.string(result.version)
        if let id {
            writer.key("id"); writer.string(id)
        }
        writer.key("outputs")
        writer.beginArray()
        writer.beginObject()
        writer.key("name"); writer.string(InferRequest.outputName)
        writer.key("datatype"); writer.string(datatype.rawValue)
        writer.key("shape"); writer.beginArray(); writer.int(result.count); writer.endArray()
        writer.key("data")
        writer.beginArray()
        result.forEachPrediction(parser: parser) { prediction in writer.element(prediction, as: datatype) }
        writer.endArray()
        writer.endObject()
        writer.endArray()
        writer.endObject()
        return writer
    }
}

extension JSONWriter {
    /// One element of a tensor of `datatype`, which ``TensorDatatype/holds(_:)`` the prediction.
    mutating func element(_ prediction: Prediction, as datatype: TensorDatatype) {
        switch (datatype, prediction) {
        case (.bytes, .text(let text)):
            string(text)
        case (.bytes, _):
            var json = JSONWriter(capacity: 64)
            json.prediction(prediction)
            string(String(decoding: json.bytes, as: UTF8.self))
        case (_, .integer(let value)):
            int(value)
        case (_, .number(let text)):
            raw(text.utf8)
        default:
            // Not reached: `holds` let only integers and numbers into FP32 and INT64.
            self.prediction(prediction)
        }
    }
}

extension JSONWriter {
    /// `{"name": …, "datatype": …, "shape": [-1]}`: a tensor of any length.
    mutating func tensorMetadata(name: String, datatype: String) {
        beginObject()
        key("name"); string(name)
        key("datatype"); string(datatype)
        key("shape"); beginArray(); int(-1); endArray()
        endObject()
    }
}

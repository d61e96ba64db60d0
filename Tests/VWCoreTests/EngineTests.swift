import Logging
import Testing
@testable import VWCore
import VWTestSupport

/// An engine over a store on a temporary model directory (the stand-in vw unless told otherwise).
private struct EngineUnderTest {
    let folder = ModelFolder()
    let engine: Engine
    var store: ModelStore { engine.store }

    init(vwCommand: [String]? = nil, configure: (inout EngineSettings) -> Void = { _ in }) {
        var settings = folder.settings()
        if let vwCommand { settings.vwCommand = vwCommand }
        configure(&settings)
        let loops = LearningLoops(stateDirectory: folder.root + "/state", instance: "test", logger: Logger(label: "test"))
        engine = Engine(store: ModelStore(settings: settings, logger: Logger(label: "test"), learnedModels: loops), loops: loops)
    }

    func load() {
        store.reconcile()
        store.waitForLoads()
    }

    func predict(_ name: String, _ input: PredictInput) throws(PredictError) -> PredictResult {
        try engine.predict(model: name, input: input, deadline: .after(.seconds(5)))
    }

    func tearDown() {
        store.shutdown()
        folder.destroy()
    }
}

private func text(_ text: String) -> PredictInput { .text(Array(text.utf8)) }
private func json(_ text: String) -> PredictInput { .json(Array(text.utf8)) }

@Suite(.serialized)
struct EngineTests {
    @Test func everyInputFormGoesThroughTheSameBatch() throws {
        let test = EngineUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.load()
        let answers = ["0.5\n0.5\n", "0.5\n0.5\n", "0.5\n0.5\n"]
        let results = try [
            test.predict("m", text("|a x:1\n|b y\n")),
            test.predict("m", json(#"{"instances": ["|a x:1", "|b y"]}"#)),
            test.predict("m", .examples(["|a x:1", "|b y"])),
        ]
        #expect(results.map { String(decoding: $0.text, as: UTF8.self) } == answers)
        #expect(Set(results.map(\.version)).count == 1)
        var cache = ModelStore.ReaderCache()
        #expect(try test.engine.servingModel("m", cache: &cache).family == .simple)
    }

    @Test func limitsAreTheSameForEveryInputForm() throws {
        let test = EngineUnderTest { $0.maxInteractionFeatures = 3 }
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.folder.write(#"{"max_batch": 2}"#, model: "m.json")
        test.load()
        for input in [text("|a x\n|a y\n|a z\n"), json(#"{"instances": ["|a x", "|a y", "|a z"]}"#), .examples(["|a x", "|a y", "|a z"])] {
            #expect(throws: PredictError.tooManyInstances(count: 3, limit: 2)) { try test.predict("m", input) }
        }
        // The budget counts features over the whole request: the second example passes it.
        for input in [text("|a x y\n|a z w\n"), .examples(["|a x y", "|a z w"])] {
            do {
                _ = try test.predict("m", input)
                Issue.record("over the feature budget and answered")
            } catch {
                guard case .tooExpensive(let index, _, let limit) = error else { Issue.record("\(error)"); continue }
                #expect(index == 1 && limit == 3)
            }
        }
        do {
            _ = try test.predict("m", text("|a x\nnot an example |\n"))
            Issue.record("an invalid example was answered")
        } catch {
            guard case .invalidExample(let invalid) = error else { Issue.record("\(error)"); return }
            #expect(invalid.index == 1)
        }
    }

    @Test func poolErrorsMapOnceToTheAPIError() {
        #expect(PredictError(PoolError.overloaded(model: "m")) == .overloaded("m"))
        #expect(PredictError(PoolError.timedOut(model: "m")) == .timedOut("m"))
        #expect(PredictError(PoolError.shardFailed("exited")) == .shardFailed("exited"))
        #expect(PoolError.timedOut(model: "m").message == "model 'm': vw did not answer in time")
    }

    @Test func learnLogsLabelledExamplesOfAModelWithALoop() throws {
        let test = EngineUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.folder.write(#"{"loop": {}}"#, model: "m.json")
        test.folder.copy(fixture: "no_options.vw", to: "plain.vw")
        test.load()
        var cache = ModelStore.ReaderCache()
        #expect(try test.engine.learn(model: "m", body: Array("1 |a x\n0 |b y\n".utf8), isJSON: false, cache: &cache) == 2)
        #expect(try test.engine.learn(model: "m", body: Array(#"{"instances": ["1 |a x"]}"#.utf8), isJSON: true, cache: &cache) == 1)
        #expect(throws: PredictError.self) { try test.engine.learn(model: "m", body: Array("|a unlabelled\n".utf8), isJSON: false, cache: &cache) }
        #expect(throws: PredictError.self) { try test.engine.learn(model: "plain", body: Array("1 |a x\n".utf8), isJSON: false, cache: &cache) }
        #expect(test.engine.loopStatus(model: "m")?.learns == 3)
    }

    @Test func rankNeedsAVWJSONModelThatPrintsActionProbabilities() throws {
        let test = EngineUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.load()
        var cache = ModelStore.ReaderCache()
        let request = RankRequest(eventID: EventID.random(), context: .object([]), deferred: false)
        #expect(throws: PredictError.self) { try test.engine.rank(model: "m", request: request, deadline: .after(.seconds(5)), cache: &cache) }
        #expect(throws: PredictError.modelNotFound("none")) {
            try test.engine.rank(model: "none", request: request, deadline: .after(.seconds(5)), cache: &cache)
        }
    }

    @Test(.enabled(if: vwAvailable, "needs .venv with vowpalwabbit"))
    func rankDrawsAnActionFromVWsPMFAndLogsTheDecision() throws {
        let test = EngineUnderTest(vwCommand: [vwPath])
        defer { test.tearDown() }
        test.folder.copy(fixturesDirectory + "/families/cb_explore_adf.vw", to: test.folder.models + "/m.vw")
        test.folder.write(#"{"input": "vw_json"}"#, model: "m.json")
        test.load()
        var cache = ModelStore.ReaderCache()
        let context = try JSONParser.parse(Array(#"{"_multi": [{"a": {"x": 1}}, {"a": {"y": 1}}]}"#.utf8), maxDepth: 8)
        let result = try test.engine.rank(
            model: "m", request: RankRequest(eventID: EventID.random(), context: context, deferred: false), deadline: .after(.seconds(10)),
            cache: &cache
        )
        #expect(result.ranking.count == 2)
        #expect(result.version == test.store.status(of: "m")?.version)
        #expect(test.engine.loopStatus(model: "m")?.decisions == 1)
        // A context the grammar refuses is the request's fault, named as the context's.
        let bad = try JSONParser.parse(Array(#"{"_multi": 3}"#.utf8), maxDepth: 8)
        do {
            _ = try test.engine.rank(model: "m", request: RankRequest(eventID: EventID.random(), context: bad, deferred: false),
                                     deadline: .after(.seconds(10)), cache: &cache)
            Issue.record("a bad context was ranked")
        } catch {
            guard case .invalidRequest(let why) = error else { Issue.record("\(error)"); return }
            #expect(why.hasPrefix("context: "))
        }
    }
}

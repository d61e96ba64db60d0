import Logging
import Testing
@testable import VWCore
import VWTestSupport

/// A store on a temporary model directory with the stand-in vw, its models loaded once per change.
private struct StoreUnderTest {
    let folder = ModelFolder()
    let store: ModelStore

    init(learnedModels: (any LearnedModelSource)? = nil) {
        store = ModelStore(settings: folder.settings(), logger: Logger(label: "test"), learnedModels: learnedModels)
    }

    /// Reconciles the directory and waits for the loads it started.
    func reconcile() {
        store.reconcile()
        store.waitForLoads()
    }

    func predict(_ name: String, _ text: String = "|a x:1\n") throws(PredictError) -> PredictResult {
        let engine = Engine(store: store, loops: LearningLoops(stateDirectory: folder.root + "/state", instance: "test", logger: Logger(label: "test")))
        return try engine.predict(model: name, input: .text(Array(text.utf8)), deadline: .after(.seconds(5)))
    }

    func tearDown() {
        store.shutdown()
        folder.destroy()
    }
}

private final class FixedLearnedModel: LearnedModelSource {
    let path: String
    init(path: String) { self.path = path }
    func learnedModel(name: String, base: String, baseFile: String, loop: LoopConfig) -> LearnedModel? { LearnedModel(path: path, events: 7) }
}

@Suite(.serialized)
struct ModelStoreTests {
    @Test func droppedModelServesAndAnswers() throws {
        let test = StoreUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.reconcile()
        let status = try #require(test.store.status(of: "m"))
        #expect(status.ready)
        #expect(status.origin == .file)
        let result = try test.predict("m", "|a x:1\n|a y:2\n")
        #expect(result.version == status.version)
        #expect(result.count == 2)
        #expect(String(decoding: result.text, as: UTF8.self) == "0.5\n0.5\n")
    }

    @Test func changedConfigReloadsAndRetiresTheOldVersion() throws {
        let test = StoreUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.reconcile()
        let first = try #require(test.store.status(of: "m")?.version)
        test.folder.write(#"{"max_batch": 5}"#, model: "m.json")
        test.reconcile()
        let second = try #require(test.store.status(of: "m")?.version)
        #expect(second != first)
        #expect(try test.predict("m").version == second)
        // The old version's processes stop and its staged copy goes once it drained.
        #expect(eventually { test.folder.stagedModels.count == 1 })
        #expect(test.folder.stagedModels.first?.contains(second) == true)
    }

    @Test func unchangedFilesDoNotReload() throws {
        let test = StoreUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.reconcile()
        let loadedAt = test.store.status(of: "m")?.loadedAt
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")  // new inode, same bytes
        test.reconcile()
        #expect(test.store.status(of: "m")?.loadedAt == loadedAt)
        #expect(test.folder.stagedModels.count == 1)
    }

    @Test func fileThatFailsToLoadNeverReplacesTheServingVersion() throws {
        let test = StoreUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.reconcile()
        let serving = try #require(test.store.status(of: "m")?.version)

        test.folder.write("not a model", model: "m.vw")
        test.reconcile()
        var status = try #require(test.store.status(of: "m"))
        #expect(status.ready && status.version == serving)
        #expect(status.lastError?.reason.contains("not a VW model file") == true)

        // A probe that fails (vw exits at start) leaves it serving too.
        test.folder.failsToStart(true)
        test.folder.copy(fixture: "quadratic.vw", to: "m.vw")
        test.reconcile()
        status = try #require(test.store.status(of: "m"))
        #expect(status.version == serving)
        #expect(status.lastError?.reason.contains("probe") == true)
        #expect(try test.predict("m").version == serving)

        // Once a version of the current file loads, the error clears.
        test.folder.failsToStart(false)
        test.folder.write("{}", model: "m.json")
        test.reconcile()
        status = try #require(test.store.status(of: "m"))
        #expect(status.version != serving && status.lastError == nil)
    }

    @Test func modelWithoutAGoodVersionIsListedNotReady() throws {
        let test = StoreUnderTest()
        defer { test.tearDown() }
        test.folder.write("garbage", model: "bad.vw")
        test.folder.write("sha", model: "readme.txt")
        test.reconcile()
        test.store.finishStartup()
        #expect(test.store.modelNames == ["bad"])
        #expect(test.store.status(of: "bad")?.ready == false)
        #expect(throws: PredictError.modelNotReady("bad")) { try test.predict("bad") }
        #expect(throws: PredictError.modelNotFound("other")) { try test.predict("other") }
        let readiness = test.store.readiness()
        #expect(!readiness.isReady && readiness.reason == "no model serves" && readiness.notReady == ["bad"])
    }

    @Test func checksumMismatchIsRefused() throws {
        let test = StoreUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.folder.write(String(repeating: "0", count: 64) + "  m.vw\n", model: "m.sha256")
        test.reconcile()
        let status = try #require(test.store.status(of: "m"))
        #expect(!status.ready)
        #expect(status.lastError?.reason.hasPrefix("sha256 mismatch") == true)
    }

    @Test func removedModelIsUnloadedOnceItsRequestsFinish() throws {
        let test = StoreUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.reconcile()
        #expect(test.folder.stagedModels.count == 1)
        test.folder.removeModelFile("m.vw")
        test.reconcile()
        #expect(test.store.status(of: "m") == nil)
        #expect(throws: PredictError.modelNotFound("m")) { try test.predict("m") }
        #expect(eventually { test.folder.stagedModels.isEmpty })
    }

    @Test func publishedLearnedModelServesWhileItsBaseServes() throws {
        let test = StoreUnderTest()
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.reconcile()
        let base = try #require(test.store.status(of: "m")?.version)
        let learned = fixturesDirectory + "/quadratic.vw"

        var persisted: String?
        let published = try test.store.publishLearned(name: "m", path: learned, current: base, base: base, events: 3) { candidate in
            persisted = candidate.version
            return nil
        }
        #expect(persisted == published.version)
        #expect(test.store.status(of: "m")?.origin == .learned(base: base, events: 3))
        #expect(try test.predict("m").version == published.version)
        #expect(eventually { test.folder.stagedModels.count == 1 })

        // Learned from a version that no longer serves: superseded.
        #expect(throws: ModelStore.PublishError.self) {
            try test.store.publishLearned(name: "m", path: learned, current: base, base: base, events: 4) { _ in nil }
        }
        // Not persisted: not swapped in, and its processes stop.
        #expect(throws: ModelStore.PublishError.self) {
            try test.store.publishLearned(name: "m", path: learned, current: published.version, base: base, events: 5) { _ in "disk full" }
        }
        #expect(test.store.status(of: "m")?.version == published.version)
        #expect(eventually { test.folder.stagedModels.count == 1 })
        // A file that is no model: invalid, the learned version keeps serving.
        do {
            _ = try test.store.publishLearned(name: "m", path: test.folder.standInVW, current: published.version, base: base, events: 6) { _ in nil }
            Issue.record("an invalid learned model was published")
        } catch {
            guard case .invalid = error else { Issue.record("expected .invalid, got \(error)"); return }
        }
        #expect(test.store.status(of: "m")?.version == published.version)
    }

    @Test func learnedModelOfTheFileLoadsInItsPlace() throws {
        let test = StoreUnderTest(learnedModels: FixedLearnedModel(path: fixturesDirectory + "/quadratic.vw"))
        defer { test.tearDown() }
        test.folder.copy(fixture: "no_options.vw", to: "m.vw")
        test.folder.write(#"{"loop": {}}"#, model: "m.json")
        test.folder.copy(fixture: "no_options.vw", to: "plain.vw")
        test.reconcile()
        guard case .learned(_, let events)? = test.store.status(of: "m")?.origin else {
            Issue.record("the learned model does not serve: \(String(describing: test.store.status(of: "m")))")
            return
        }
        #expect(events == 7)
        // Without a "loop" in its .json, a model never asks for a learned model.
        #expect(test.store.status(of: "plain")?.origin == .file)
    }

    @Test func shutdownStopsEveryVersionAndDrains() throws {
        let test = StoreUnderTest()
        defer { test.folder.destroy() }
        test.folder.copy(fixture: "no_options.vw", to: "a.vw")
        test.folder.copy(fixture: "no_options.vw", to: "b.vw")
        test.reconcile()
        test.store.finishStartup()
        #expect(test.store.readiness().isReady)
        test.store.shutdown()
        #expect(test.folder.stagedModels.isEmpty)
        #expect(test.store.readiness().reason == "draining: shutting down")
        #expect(throws: PredictError.modelNotFound("a")) { try test.predict("a") }
    }
}

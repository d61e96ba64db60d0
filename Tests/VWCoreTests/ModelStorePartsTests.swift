import Testing
@testable import VWCore

/// The store's parts alone: settle rules, an entry's lifecycle, readiness.
struct ModelReconcilerTests {
    private func files(size: Int64, modified: Int64) -> ModelFiles {
        ModelFiles(model: FileStamp(device: 1, inode: 2, size: size, modified: modified))
    }

    private func plan(_ files: ModelFiles, now: Int64, finished: Set<String> = [], writing: Set<String> = [],
                      settleAll: Bool = false, changed: Bool = true) -> ModelReconciler.Plan {
        ModelReconciler.plan(["m": files], now: now, finished: finished, writing: writing, settleAll: settleAll) { _, _ in changed }
    }

    @Test func changedFileWaitsUntilLeftAloneForItsSettleTime() {
        let written = files(size: 50_000_000, modified: 0)  // 300 ms + 1 s at 50 MB/s
        #expect(plan(written, now: 1_000_000_000).unsettled)
        #expect(plan(written, now: 1_000_000_000).settled.isEmpty)
        #expect(plan(written, now: 1_300_000_000).settled == ["m": written])
    }

    @Test func fileClosedOrRenamedIntoPlaceLoadsAtOnce() {
        let written = files(size: 10, modified: 0)
        #expect(plan(written, now: 1, finished: ["m.json"]).settled == ["m": written])
        #expect(plan(written, now: 1, settleAll: true).settled == ["m": written])
    }

    @Test func fileAWriterHoldsOpenWaitsForTheOpenWriterTime() {
        let written = files(size: 10, modified: 0)
        #expect(plan(written, now: 29_000_000_000, writing: ["m.vw"]).unsettled)
        #expect(plan(written, now: 30_000_000_000, writing: ["m.vw"]).settled.count == 1)
    }

    @Test func unchangedFilesAreNeverLeftForLater() {
        let written = files(size: 10, modified: 0)
        let plan = plan(written, now: 1, changed: false)
        #expect(!plan.unsettled && plan.settled.count == 1)
    }

    @Test func modelWithoutAVWFileIsNotPresent() {
        let plan = ModelReconciler.plan(["m": ModelFiles()], now: 0, finished: [], writing: [], settleAll: true) { _, _ in true }
        #expect(plan.present.isEmpty && plan.settled.isEmpty)
    }
}

struct ModelEntryTests {
    private let files = ModelFiles(model: FileStamp(device: 1, inode: 2, size: 3, modified: 4))

    @Test func oneLoadAtATime() {
        let entry = ModelEntry(name: "m")
        #expect(entry.beginFileLoad(of: files) == .started(current: nil))
        #expect(entry.beginFileLoad(of: files) == .busy)
        #expect(!entry.beginPublish(replacing: "abc"))
        entry.endLoad(files: files)
        #expect(entry.beginFileLoad(of: files) == .unchanged)
        #expect(!entry.isChanged(files))
    }

    @Test func failedLoadRecordsTheErrorAndTheFiles() {
        let entry = ModelEntry(name: "m")
        _ = entry.beginFileLoad(of: files)
        #expect(!entry.failLoad(files: files, failure: LoadFailure(time: "t", reason: "bad")))
        #expect(entry.status.lastError?.reason == "bad")
        #expect(!entry.status.ready)
        #expect(entry.beginFileLoad(of: files) == .unchanged)
    }

    @Test func removedEntryTakesNoLoad() {
        let entry = ModelEntry(name: "m")
        _ = entry.beginFileLoad(of: files)
        #expect(entry.remove() == nil)
        entry.endLoad(files: files)  // a load ending after removal changes nothing
        #expect(entry.beginFileLoad(of: ModelFiles()) == .unchanged)
        #expect(entry.current == nil)
    }
}

struct ReadinessTests {
    private func status(_ name: String, ready: Bool) -> ModelStatus {
        ModelStatus(name: name, ready: ready, version: nil, loadedAt: nil, shards: [], vwArgs: [], multiline: nil, lastError: nil, origin: nil, memoryEstimate: nil)
    }

    @Test func phaseDecidesBeforeTheModels() {
        let all = [status("a", ready: true)]
        #expect(Readiness(phase: .starting, statuses: all, rule: .anyModel).reason?.hasPrefix("starting") == true)
        #expect(Readiness(phase: .draining, statuses: all, rule: .anyModel).reason == "draining: shutting down")
        #expect(Readiness(phase: .serving, statuses: all, rule: .anyModel).isReady)
    }

    @Test func ruleDecidesWhichModelsMustServe() {
        let all = [status("a", ready: true), status("b", ready: false)]
        #expect(Readiness(phase: .serving, statuses: all, rule: .anyModel).isReady)
        let strict = Readiness(phase: .serving, statuses: all, rule: .allModels)
        #expect(!strict.isReady && strict.notReady == ["b"] && strict.ready == ["a"])
        #expect(Readiness(phase: .serving, statuses: [], rule: .anyModel).reason == "no model is loaded")
    }
}

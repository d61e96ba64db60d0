import Logging
import Synchronization
import Testing
@testable import VWCore

/// A version that was never started: the serving table only hands it out and counts its requests.
private func version(_ name: String, _ id: String) -> ModelVersion {
    let pool = ShardPool(modelName: name, arguments: ["/bin/false"], count: 1, maxQueuedRequests: 1, logger: Logger(label: "test"))
    return ModelVersion(
        name: name, version: id, loadedAt: "now", vwArgs: [], framing: ExampleFraming(family: .simple, blankLineAfterEach: false),
        options: ModelOptions(stored: [], extra: []), baseFile: id, maxBatch: 1, pool: pool, stagedPath: "/nonexistent"
    )
}

struct ServingTableTests {
    @Test func readersSeeEachPublishedSnapshot() throws {
        let table = ServingTable()
        var cache = ServingTable.ReaderCache()
        #expect(throws: PredictError.modelNotFound("m")) { try table.withServingVersion(of: "m", cache: &cache) { _ in () } }
        table.publish { ([:], ["m"]) }
        #expect(table.contains("m", cache: &cache))
        #expect(throws: PredictError.modelNotReady("m")) { try table.withServingVersion(of: "m", cache: &cache) { _ in () } }
        let first = version("m", "aaa")
        table.publish { (["m": first], ["m"]) }
        #expect(try table.withServingVersion(of: "m", cache: &cache) { $0.version } == "aaa")
        table.publish { (["m": version("m", "bbb")], ["m"]) }
        #expect(try table.withServingVersion(of: "m", cache: &cache) { $0.version } == "bbb")
    }

    @Test func aVersionCountsItsRequestsWhileTheyRun() throws {
        let table = ServingTable()
        var cache = ServingTable.ReaderCache()
        let serving = version("m", "aaa")
        table.publish { (["m": serving], ["m"]) }
        let during = try table.withServingVersion(of: "m", cache: &cache) { $0.inflight.load(ordering: .relaxed) }
        #expect(during == 1)
        #expect(serving.inflight.load(ordering: .relaxed) == 0)
        // Unpublished, it drains at once: nothing holds it.
        table.publish { ([:], []) }
        serving.waitUntilDrained(by: .after(.seconds(1)))
        #expect(serving.inflight.load(ordering: .relaxed) == 0)
    }
}

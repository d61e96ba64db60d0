#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import Testing
@testable import VWCore

/// Shared state of the test services (a `Mutex` cannot be copied into a struct).
private final class Box<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func callAsFunction() -> Value { value.withLock { $0 } }
}

/// A service that records when it started and stopped into a shared journal, and waits on its token in between.
private struct Recorder: BackgroundService {
    let serviceName: String
    let journal: Box<[String]>
    let started: Condition

    func run(until stop: StopToken) {
        started.broadcast { journal.value.withLock { $0.append("start \(serviceName)") } }
        stop.wait(until: .never)
        journal.value.withLock { $0.append("stop \(serviceName)") }
    }
}

/// A service blocked in poll(2) on a descriptor that never becomes readable: only the token's descriptor ends it.
private struct Poller: BackgroundService {
    let serviceName = "poller"
    let returned: Box<Bool>

    func run(until stop: StopToken) {
        var ends: [Int32] = [-1, -1]
        _ = pipe(&ends)
        defer { close(ends[0]); close(ends[1]) }
        var entries = [pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0), pollfd(fd: stop.descriptor, events: Int16(POLLIN), revents: 0)]
        _ = poll(&entries, 2, -1)
        returned.value.withLock { $0 = true }
    }
}

struct ServiceGroupTests {
    @Test func servicesStopInTheReverseOrderOfTheirStart() {
        let journal = Box<[String]>([])
        let started = Condition()
        let group = ServiceGroup(logger: Logger(label: "test"))
        for name in ["a", "b", "c"] {
            group.start(Recorder(serviceName: name, journal: journal, started: started))
            #expect(started.wait(until: .after(.seconds(30))) { journal().contains("start \(name)") })
        }
        let late = group.stop(deadline: .after(.seconds(30)))
        #expect(late.isEmpty)
        #expect(journal() == ["start a", "start b", "start c", "stop c", "stop b", "stop a"])
        // Stopped once: a second stop has nothing left to stop.
        #expect(group.stop(deadline: .after(.seconds(1))).isEmpty)
    }

    @Test func aStopWakesAServiceBlockedInPoll() {
        let returned = Box(false)
        let group = ServiceGroup(logger: Logger(label: "test"))
        group.start(Poller(returned: returned))
        #expect(group.stop(deadline: .after(.seconds(30))).isEmpty)
        #expect(returned())
    }

    @Test func aTokenWaitReturnsWhetherItWasStopped() {
        let token = StopToken()
        #expect(!token.wait(until: .after(.milliseconds(1))))
        token.stop()
        #expect(token.wait(until: .never))
        #expect(token.isStopped)
    }
}

struct DurableWriteTests {
    @Test func replaceLeavesTheOldFileWhenFillingFailsAndNoTemporary() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let directory = try StateDirectory.root(scratch.path)
        try directory.writeAtomically(Array("old\n".utf8), to: "state.json")
        #expect(throws: EventLogError.self) {
            try directory.replace("state.json") { _, _ throws(EventLogError) in throw EventLogError("disk full") }
        }
        #expect(try directory.read("state.json") == Array("old\n".utf8))
        #expect(directory.list() == ["state.json"])
        try directory.writeAtomically(Array("new\n".utf8), to: "state.json")
        #expect(try directory.read("state.json") == Array("new\n".utf8))
        #expect(directory.list() == ["state.json"])
    }

    @Test func aPlantedTemporaryLinkIsNeverWrittenThrough() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let directory = try StateDirectory.root(scratch.path + "/d")
        let target = scratch.path + "/victim"
        try LoopFiles.writeAtomically(Array("keep\n".utf8), to: target)
        #expect(symlink(target, scratch.path + "/d/.state.json.tmp") == 0)
        try directory.writeAtomically(Array("mine\n".utf8), to: "state.json")
        #expect(try LoopFiles.read(target) == Array("keep\n".utf8))
        #expect(try directory.read("state.json") == Array("mine\n".utf8))
    }

    @Test func oneRuleForFileNames() {
        for good in ["m", "model-1.v2", "A_b"] { #expect(FileName.isSafe(good.utf8, alphanumericFirst: true)) }
        for bad in ["", ".hidden", "a/b", "a b", "é", String(repeating: "x", count: 129), "-x"] {
            #expect(!FileName.isSafe(bad.utf8, alphanumericFirst: true), "\(bad)")
        }
        #expect(FileName.isSafe("-pod_1".utf8))
        #expect(!FileName.isSafe(".pod".utf8))
    }

    @Test func timestampsAreRFC3339WithMilliseconds() {
        #expect(Timestamp.rfc3339(milliseconds: 1_764_530_483_123) == "2025-11-30T19:21:23.123Z")
        #expect(Timestamp.rfc3339(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
    }
}

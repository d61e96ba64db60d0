import Dispatch
import Glibc
import Logging
import Synchronization
import Testing
@testable import VWCore

/// A stand-in for vw that answers each line `'tag features` with `features tag`, as vw prints a
/// prediction and its tag, so misrouted answers show.
private let echoCommand = [
    "/bin/sh", "-c", "while IFS= read -r line; do tag=${line%% *}; printf '%s %s\\n' \"${line#* }\" \"${tag#?}\"; done", "fake-vw",
]

private func batch(_ lines: [String]) -> PreparedBatch {
    var builder = ExampleBatchBuilder(framing: ExampleFraming(family: .simple, blankLineAfterEach: false))
    for line in lines { try! builder.append(lines: [Substring(line)]) }
    return builder.finish()
}

private func makePool(shards: Int, maxQueued: Int = 1024) throws -> ShardPool {
    let pool = ShardPool(
        modelName: "echo", arguments: echoCommand, count: shards, maxQueuedRequests: maxQueued,
        logger: Logger(label: "test")
    )
    try pool.start(probe: batch(["|"]), timeout: .seconds(5))
    return pool
}

@Suite(.serialized)
struct ShardPoolTests {
    @Test func concurrentRequestsGetTheirOwnAnswersInOrder() throws {
        let pool = try makePool(shards: 2)
        defer { pool.stop(grace: .seconds(1)) }
        let mismatches = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { client in
            for request in 0..<100 {
                let lines = (0..<(1 + request % 5)).map { "|a c\(client)r\(request)e\($0)" }
                do {
                    let answer = try pool.predict(batch(lines), deadline: .after(.seconds(5)))
                    let got = answer.answers.map { String(decoding: answer.raw[$0], as: UTF8.self) }
                    if got != lines { mismatches.wrappingAdd(1, ordering: .relaxed) }
                } catch {
                    mismatches.wrappingAdd(1, ordering: .relaxed)
                }
            }
        }
        #expect(mismatches.load(ordering: .relaxed) == 0)
    }

    @Test func killedProcessIsRestartedAndServesAgain() throws {
        let pool = try makePool(shards: 1)
        defer { pool.stop(grace: .seconds(1)) }
        let firstPID = try #require(pool.status[0].pid)
        kill(firstPID, SIGKILL)
        var answered = false
        for _ in 0..<200 where !answered {
            if let answer = try? pool.predict(batch(["|a after"]), deadline: .after(.seconds(2))) {
                answered = String(decoding: answer.raw, as: UTF8.self) == "|a after\n"
            } else {
                usleep(10_000)
            }
        }
        #expect(answered)
        #expect(pool.status[0].restarts == 1)
        #expect(pool.status[0].pid != firstPID)
    }

    @Test func aProcessOutOfStepNeverDeliversAnotherRequestsAnswer() throws {
        // Prints one extra line for examples containing "evil", as vw did for a shared-only example.
        let outOfStep = [
            "/bin/sh", "-c",
            "while IFS= read -r line; do tag=${line%% *}; case \"$line\" in *evil*) echo 'extra';; esac; "
                + "printf '%s %s\\n' \"${line#* }\" \"${tag#?}\"; done", "fake-vw",
        ]
        let pool = ShardPool(modelName: "shifty", arguments: outOfStep, count: 2, maxQueuedRequests: 1024, logger: Logger(label: "test"))
        try pool.start(probe: batch(["|"]), timeout: .seconds(5))
        defer { pool.stop(grace: .seconds(1)) }
        let wrong = Atomic<Int>(0)
        let answered = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { client in
            for request in 0..<40 {
                let lines = (0..<3).map { "|a c\(client)r\(request)e\($0)" + (client == 0 && request % 10 == 0 ? " evil" : "") }
                guard let answer = try? pool.predict(batch(lines), deadline: .after(.seconds(5))) else { continue }
                answered.wrappingAdd(1, ordering: .relaxed)
                let got = answer.answers.map { String(decoding: answer.raw[$0], as: UTF8.self) }
                if got != lines { wrong.wrappingAdd(1, ordering: .relaxed) }
            }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(answered.load(ordering: .relaxed) > 100)
        #expect(pool.status.reduce(0) { $0 + $1.restarts } >= 1)
    }

    @Test func emptyBatchIsAnsweredWithoutVW() throws {
        let pool = try makePool(shards: 1)
        defer { pool.stop(grace: .seconds(1)) }
        let answer = try pool.predict(batch([]), deadline: .after(.seconds(1)))
        #expect(answer.answers.isEmpty)
        #expect(answer.raw.isEmpty)
        // An empty request must not take the next request's answer.
        let next = try pool.predict(batch(["|a next"]), deadline: .after(.seconds(2)))
        #expect(String(decoding: next.raw, as: UTF8.self) == "|a next\n")
    }

    @Test func aRequestOutOfTimeOnAHealthyShardFailsAloneAndTheShardLives() throws {
        // Answers each line after 0.3 s: later than the request's deadline, well within the hang timeout.
        let slow = [
            "/bin/sh", "-c",
            "while IFS= read -r line; do sleep 0.3; tag=${line%% *}; printf '%s %s\\n' \"${line#* }\" \"${tag#?}\"; done", "slow-vw",
        ]
        let pool = ShardPool(modelName: "slow", arguments: slow, count: 1, maxQueuedRequests: 16, hangTimeout: .seconds(5),
                             logger: Logger(label: "test"))
        try pool.start(probe: batch(["|"]), timeout: .seconds(5))
        defer { pool.stop(grace: .seconds(1)) }
        let pid = try #require(pool.status[0].pid)
        #expect(throws: PoolError.timedOut(model: "slow")) {
            try pool.predict(batch(["|a late"]), deadline: .after(.milliseconds(50)))
        }
        #expect(pool.status[0].pid == pid)
        // The late answer is dropped; the next request gets its own, from the same process.
        let next = try pool.predict(batch(["|a next"]), deadline: .after(.seconds(5)))
        #expect(String(decoding: next.raw, as: UTF8.self) == "|a next\n")
        #expect(pool.status[0].pid == pid)
        #expect(pool.status[0].restarts == 0)
    }

    @Test func aStoppedProcessIsKilledOnceItHeldARequestForTheTimeout() throws {
        let pool = ShardPool(modelName: "echo", arguments: echoCommand, count: 1, maxQueuedRequests: 16,
                             hangTimeout: .milliseconds(400), logger: Logger(label: "test"))
        try pool.start(probe: batch(["|"]), timeout: .seconds(5))
        defer { pool.stop(grace: .seconds(1)) }
        let pid = try #require(pool.status[0].pid)
        kill(pid, SIGSTOP)
        #expect(throws: PoolError.timedOut(model: "echo")) {
            try pool.predict(batch(["|a held"]), deadline: .after(.milliseconds(400)))
        }
        var restarted = false
        for _ in 0..<500 where !restarted {
            restarted = pool.status[0].restarts == 1 && pool.isReady
            if !restarted { usleep(10_000) }
        }
        #expect(restarted)
        #expect(pool.status[0].pid != pid)
        let answer = try pool.predict(batch(["|a after"]), deadline: .after(.seconds(5)))
        #expect(String(decoding: answer.raw, as: UTF8.self) == "|a after\n")
    }

    @Test func probeFailsWhenTheCommandExitsAtOnce() {
        let pool = ShardPool(
            modelName: "broken", arguments: ["/bin/sh", "-c", "echo 'cannot load model' >&2; exit 3", "x"], count: 1,
            maxQueuedRequests: 10, logger: Logger(label: "test")
        )
        #expect(throws: LoadError.self) { try pool.start(probe: batch(["|"]), timeout: .seconds(5)) }
        pool.stop(grace: .milliseconds(100))
    }
}

struct RestartDelayTests {
    @Test func firstCrashRestartsAtOnceThenBacksOffToACap() {
        #expect(Shard.restartDelay(afterCrashes: 0) == .zero)
        #expect(Shard.restartDelay(afterCrashes: 1) == .zero)
        #expect(Shard.restartDelay(afterCrashes: 2) == .milliseconds(100))
        #expect(Shard.restartDelay(afterCrashes: 3) == .milliseconds(200))
        #expect(Shard.restartDelay(afterCrashes: 7) == .milliseconds(3200))
        #expect(Shard.restartDelay(afterCrashes: 8) == .seconds(5))
        #expect(Shard.restartDelay(afterCrashes: 1000) == .seconds(5))
    }
}

struct ShardPoolStartTests {
    @Test func aCommandThatCannotStartFailsTheLoadAndStops() {
        let pool = ShardPool(
            modelName: "missing", arguments: ["/nonexistent/vw"], count: 2, maxQueuedRequests: 10,
            logger: Logger(label: "test")
        )
        #expect(throws: LoadError.self) { try pool.start(probe: batch(["|"]), timeout: .seconds(5)) }
        pool.stop(grace: .milliseconds(100))  // must return: the second shard never started
        #expect(!pool.isReady)
    }
}

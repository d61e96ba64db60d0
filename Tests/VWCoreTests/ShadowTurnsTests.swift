import Testing
@testable import VWCore

/// The shadow checks' schedule, and that a FastCGI poller's answers never take a check's turn.
struct ShadowTurnsTests {
    @Test func everyKthAnswerIsAShadowTurn() {
        let turns = ShadowTurns()
        let due = (1...9).map { _ in turns.take(every: 3) }
        #expect(due == [false, false, true, false, false, true, false, false, true])
        #expect((1...5).allSatisfy { _ in !ShadowTurns().take(every: 0) })
    }

    @Test func answersWithoutVWLeaveTheTurnToTheNextAnswerThatMayWait() {
        let turns = ShadowTurns()
        #expect(turns.takeUnlessDue(every: 3))
        #expect(turns.takeUnlessDue(every: 3))
        // The third answer is the turn: refused, not counted, however often it is asked.
        #expect(!turns.takeUnlessDue(every: 3))
        #expect(!turns.takeUnlessDue(every: 3))
        #expect(turns.take(every: 3))
        #expect(turns.takeUnlessDue(every: 3))
        #expect(turns.takeUnlessDue(every: 0))
    }

    @Test func concurrentAnswersKeepTheCadence() async {
        let turns = ShadowTurns()
        // 8 tasks × 1,000 answers that may wait and 1,000 that may not: every turn goes to one that may wait.
        let counts = await withTaskGroup(of: (Int, Int).self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var (checks, alone) = (0, 0)
                    for _ in 0..<1000 {
                        if turns.take(every: 7) { checks += 1 }
                        if turns.takeUnlessDue(every: 7) { alone += 1 }
                    }
                    return (checks, alone)
                }
            }
            return await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        }
        let total = 8000 + counts.1
        #expect(counts.0 == total / 7)
    }
}

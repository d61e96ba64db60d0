import Testing
@testable import VWCore

struct ActionSamplerTests {
    let pmf: [ActionSampler.Choice] = [
        .init(action: 2, probability: 0.7), .init(action: 0, probability: 0.2), .init(action: 1, probability: 0.1),
    ]

    @Test func theSameEventIDAlwaysGetsTheSameAction() {
        for id in ["e-42", "alice", "", "ü-1"] {
            let first = ActionSampler.draw(from: pmf, eventID: id)
            #expect(first != nil)
            for _ in 0..<5 { #expect(ActionSampler.draw(from: pmf, eventID: id) == first) }
        }
    }

    @Test func frequenciesOverManyEventIDsFollowThePMF() {
        // 20,000 fixed event ids: deterministic, and 0.7 ± 0.02 is over 6 standard deviations wide.
        var counts = [0, 0, 0]
        for n in 0..<20_000 { counts[ActionSampler.draw(from: pmf, eventID: "event-\(n)")!] += 1 }
        for (position, choice) in pmf.enumerated() {
            let frequency = Double(counts[position]) / 20_000
            #expect(abs(frequency - choice.probability) < 0.02, "action \(choice.action): \(frequency)")
        }
    }

    @Test func uniformIsInTheUnitInterval() {
        for n in 0..<1_000 {
            let u = ActionSampler.uniform("u\(n)")
            #expect(u >= 0 && u < 1)
        }
    }

    @Test func zeroProbabilitiesAreNeverDrawnAndEmptyPMFsDrawNothing() {
        let pmf: [ActionSampler.Choice] = [.init(action: 0, probability: 0), .init(action: 1, probability: 1)]
        for n in 0..<500 { #expect(ActionSampler.draw(from: pmf, eventID: "z\(n)") == 1) }
        #expect(ActionSampler.draw(from: [], eventID: "x") == nil)
        #expect(ActionSampler.draw(from: [.init(action: 0, probability: 0)], eventID: "x") == nil)
    }
}

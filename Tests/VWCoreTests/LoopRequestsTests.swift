import Testing
@testable import VWCore

private func rewards(_ json: String) throws(LoopRequestError) -> [RewardEvent] {
    try LoopRequests.rewards(Array(json.utf8))
}

private func problem(_ json: String) -> String? {
    do {
        _ = try rewards(json)
        return nil
    } catch {
        return error.message
    }
}

struct LoopRequestsTests {
    @Test func eventIDsFollowTheSPECsAlphabet() {
        #expect(EventID("e-42") != nil)
        #expect(EventID("A.b:c_d-9") != nil)
        #expect(EventID(String(repeating: "x", count: 128)) != nil)
        #expect(EventID(String(repeating: "x", count: 129)) == nil)
        #expect(EventID("") == nil)
        #expect(EventID("a b") == nil)
        #expect(EventID("ü") == nil)
        #expect(EventID("a/b") == nil)
    }

    @Test func randomEventIDsAreVersion4UUIDs() {
        let a = EventID.random().text, b = EventID.random().text
        #expect(a != b)
        #expect(a.utf8.count == 36)
        #expect(Array(a.utf8)[14] == UInt8(ascii: "4"))
        #expect(EventID(a) != nil)
    }

    @Test func oneRewardOrABatch() throws {
        #expect(try rewards(#"{"event_id": "e-1", "reward": 1.5}"#) == [RewardEvent(eventID: EventID("e-1")!, value: "1.5")])
        let batch = try rewards(#"{"rewards": [{"event_id": "a", "reward": 0}, {"reward": -2e1, "event_id": "b"}]}"#)
        #expect(batch.map(\.eventID.text) == ["a", "b"])
        #expect(batch.map(\.number) == [0, -20])
    }

    @Test func badRewardsNameTheReason() {
        #expect(problem(#"{"event_id": "e-1", "reward": "1"}"#)?.contains("finite number") == true)
        #expect(problem(#"{"event_id": "e-1", "reward": 1e999}"#)?.contains("finite number") == true)
        #expect(problem(#"{"event_id": "e-1"}"#)?.contains("\"reward\" is missing") == true)
        #expect(problem(#"{"reward": 1}"#)?.contains("\"event_id\" is missing") == true)
        #expect(problem(#"{"event_id": "a b", "reward": 1}"#)?.contains("[A-Za-z0-9_.:-]") == true)
        #expect(problem(#"{"event_id": "e", "reward": 1, "extra": 2}"#)?.contains("unknown member") == true)
        #expect(problem(#"{"event_id": "e", "reward": 1, "reward": 2}"#)?.contains("twice") == true)
        #expect(problem(#"{"rewards": []}"#)?.contains("non-empty") == true)
        #expect(problem(#"{"rewards": [{"event_id": "a", "reward": 1}, 3]}"#)?.hasPrefix("reward 1:") == true)
        #expect(problem(#"[1]"#)?.contains("JSON object") == true)
        #expect(problem(#"{"event_id": "e", "#) != nil)
    }

    @Test func activationNeedsAnEventID() throws {
        #expect(try LoopRequests.activation(Array(#"{"event_id": "e-7"}"#.utf8)) == EventID("e-7"))
        #expect(throws: LoopRequestError.self) { try LoopRequests.activation(Array("{}".utf8)) }
    }
}

// SPEC §9's multislot routes: a `--ccb_explore_adf` model decides every slot of an event, each slot's reward is
// logged on its own, and the join gives each slot its own cost.
extension Engine {
    /// `POST …/multislot/rank`: vw's answer for every slot (each drawn by vw with the slot's `seed=` tag), the decision
    /// on disk in VW's ccb dsjson form before the answer.
    public func rankMultiSlot(
        model name: String, request: PersonalizerMultiSlotRankRequest, deadline: Deadline, cache: inout ModelStore.ReaderCache
    ) throws(PredictError) -> MultiSlotRankResult {
        if let why = loops.refusal { throw .eventLogFailed(why) }
        let result = try store.withServingVersion(of: name, cache: &cache) { version throws(PredictError) -> MultiSlotRankResult in
            guard let grammar = version.jsonGrammar, grammar.isCCB else {
                throw .invalidRequest("model '\(name)' is not a --ccb_explore_adf model whose .json says \"input\": \"vw_json\" (multislot rank needs one)")
            }
            var batch = BatchPreparation(for: version, settings: store.settings)
            let example = try batch.append(context: request.context, grammar: grammar)
            let answer = try send(batch.finish(), to: version, deadline: deadline)
            let text = Substring(String(decoding: answer.raw[answer.answers[0]], as: UTF8.self))
            let lines: [Prediction]
            switch PredictionParser(kind: .actionProbabilities).parse(answer: text, tag: "") {
            case .lines(let each): lines = each
            case let one: lines = [one]
            }
            guard lines.count == request.slotIDs.count else {
                throw .shardFailed("vw printed \(lines.count) slot line(s) for \(request.slotIDs.count) slots: \(text)")
            }
            var slots: [(id: String, actions: [Int], probabilities: [Double])] = []
            for (index, line) in lines.enumerated() {
                guard case .actions(let pairs, _) = line, !pairs.isEmpty,
                      pairs.allSatisfy({ $0.action >= 0 && $0.action < request.actionIDs.count && Double($0.value) != nil }) else {
                    throw .shardFailed("vw printed no action probabilities for slot \(index): \(text)")
                }
                slots.append((id: request.slotIDs[index], actions: pairs.map(\.action), probabilities: pairs.map { Double($0.value) ?? 0 }))
            }
            // Apprentice (SPEC §9): each slot's baseline is served and logged with probability 1; the other actions
            // the slot could take after the earlier slots' baselines follow with 0.
            let apprentice = version.loop?.learningMode == .apprentice
            if apprentice {
                for index in slots.indices {
                    let baseline = request.baselines[index]
                    let taken = Set(request.baselines[..<index])
                    let others = request.offered[index].filter { $0 != baseline && !taken.contains($0) }
                    slots[index].actions = [baseline] + others
                    slots[index].probabilities = [1] + others.map { _ in 0 }
                }
            }
            let decision = EventLine.slotsDecision(
                eventId: request.eventID.text, timestampMilliseconds: EventLine.nowMilliseconds(), slots: slots,
                context: Array(example.canonicalText().utf8.dropLast()), modelVersion: version.version, deferred: request.deferred
            )
            let loop: ModelLoop
            do throws(EventLogError) {
                loop = try loops.loop(for: name)
                try loop.append([decision], kind: .decision)
            } catch {
                throw .eventLogFailed(error.message)
            }
            loop.recentSlots.remember(eventID: request.eventID.text, slots: request.slotIDs)
            return MultiSlotRankResult(
                model: name, version: version.version, eventID: request.eventID.text,
                slots: slots.map { (id: $0.id, actionID: request.actionIDs[$0.actions[0]]) }
            )
        }
        return result
    }

    /// `POST …/multislot/events/{eventId}/reward`: each slot's reward, checked against the reward range (and, for a
    /// decision this instance remembers, against its slot ids), on disk before the answer.
    public func rewardMultiSlot(model name: String, rewards: [SlotReward], cache: inout ModelStore.ReaderCache) throws(PredictError) {
        let config = try loopConfig(of: name, cache: &cache, rewards: .slot)
        var seen = Set<String>()
        for reward in rewards where !seen.insert(reward.slotID).inserted {
            throw .invalidRequest("slot \"\(reward.slotID)\" is rewarded twice in one request")
        }
        if let range = config?.rewardRange {
            for reward in rewards where !range.contains(reward.number) {
                throw .invalidRequest("slot \"\(reward.slotID)\": reward \(reward.value) is outside the model's reward_range [\(range.lowerBound), \(range.upperBound)]")
            }
        }
        if let why = loops.refusal { throw .eventLogFailed(why) }
        let loop: ModelLoop
        do throws(EventLogError) {
            loop = try loops.loop(for: name)
        } catch {
            throw .eventLogFailed(error.message)
        }
        if let eventID = rewards.first?.eventID.text, let slots = loop.recentSlots.slots(of: eventID) {
            for reward in rewards where !slots.contains(reward.slotID) {
                throw .invalidRequest("event \(eventID) has no slot \"\(reward.slotID)\" (its slots: \(slots.joined(separator: ", ")))")
            }
        }
        let now = EventLine.nowMilliseconds()
        let lines = rewards.map {
            EventLine.slotReward(eventId: $0.eventID.text, slotId: $0.slotID, value: $0.number, timestampMilliseconds: now)
        }
        do throws(EventLogError) {
            try loop.append(lines, kind: .reward, rewardSum: rewards.reduce(0) { $0 + $1.number })
        } catch {
            throw .eventLogFailed(error.message)
        }
    }
}

/// The answer of a multislot rank (SPEC §9).
public struct MultiSlotRankResult: Sendable {
    public let model: String
    public let version: String
    public let eventID: String
    /// Each slot's id and the id of the action it gets, in request order.
    public let slots: [(id: String, actionID: String)]
}

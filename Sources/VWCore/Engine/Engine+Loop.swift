import Logging

// The learning loop's routes (SPEC §8.2–8.6): decide, reward, activate, learn, and the loop's controls.
extension Engine {
    /// `POST /v1/models/<name>:rank`: the PMF from the model (vw, or its verified native scorer: SPEC §11), one action drawn for the event id, the decision on disk.
    public func rank(model name: String, body: [UInt8], deadline: Deadline, cache: inout ModelStore.ReaderCache) throws(PredictError) -> RankResult {
        try rank(model: name, request: RankRequest(body, maxDepth: maxJSONDepth), deadline: deadline, cache: &cache)
    }

    /// A decision for a request already decoded (`:rank`'s body, or a Personalizer rank mapped to VW JSON, SPEC §9).
    public func rank(model name: String, request: RankRequest, deadline: Deadline, cache: inout ModelStore.ReaderCache) throws(PredictError) -> RankResult {
        // Over the state budget with nothing left to delete: no decision can be logged, so none is made.
        if let why = loops.refusal { throw .eventLogFailed(why) }
        return try store.withServingVersion(of: name, cache: &cache) { version throws(PredictError) in
            guard let grammar = version.jsonGrammar else {
                throw .invalidRequest("model '\(name)' takes VW text; :rank needs a model whose .json says \"input\": \"vw_json\"")
            }
            guard !grammar.isCCB else {
                throw .invalidRequest("model '\(name)' is a --ccb_explore_adf model: it ranks the slots of an event with …/personalizer/multislot/rank")
            }
            guard version.predictionKind == .actionProbabilities else {
                throw .invalidRequest("model '\(name)' does not print action probabilities (:rank needs --cb_explore_adf or kin)")
            }
            var batch = BatchPreparation(for: version, settings: store.settings)
            let example = try batch.append(context: request.context, grammar: grammar)
            let answer = try send(batch.finish(), to: version, deadline: deadline)
            let line = Substring(String(decoding: answer.raw[answer.answers[0]], as: UTF8.self))
            guard case .actions(let ranking, _) = PredictionParser(kind: .actionProbabilities).parse(answer: line, tag: ""),
                  !ranking.isEmpty else {
                throw .shardFailed("vw printed no action probabilities: \(line)")
            }
            let pmf = ranking.map { ActionSampler.Choice(action: $0.action, probability: Double($0.value) ?? 0) }
            guard var chosen = ActionSampler.draw(from: pmf, eventID: request.eventID.text) else {
                throw .shardFailed("vw printed a PMF without probability: \(line)")
            }
            // Apprentice (SPEC §9): the baseline, the first action offered, is served and logged with probability 1.
            let apprentice = version.loop?.learningMode == .apprentice
            if apprentice, let baseline = ranking.firstIndex(where: { $0.action == 0 }) { chosen = baseline }
            let logged = apprentice ? pmf.indices.map { $0 == chosen ? 1.0 : 0.0 } : pmf.map(\.probability)
            // The log's `a` lists 1-based action ids, the chosen one first; `p` follows `a`.
            let order = [chosen] + ranking.indices.filter { $0 != chosen }
            let decision = EventLine.decision(
                eventId: request.eventID.text, timestampMilliseconds: EventLine.nowMilliseconds(),
                actions: order.map { ranking[$0].action + 1 }, probabilities: order.map { logged[$0] },
                // `c`: exactly what vw saw, without the server tag (the canonical line minus its "\n").
                context: Array(example.canonicalText().utf8.dropLast()), modelVersion: version.version, deferred: request.deferred
            )
            do throws(EventLogError) {
                try loops.loop(for: name).append([decision], kind: .decision)
            } catch {
                throw .eventLogFailed(error.message)
            }
            return RankResult(
                model: name, version: version.version, eventID: request.eventID.text,
                action: ranking[chosen].action, probability: apprentice ? "1" : ranking[chosen].value, ranking: ranking
            )
        }
    }

    /// `POST /v1/models/<name>:reward`: the rewards on disk; returns how many were accepted.
    public func reward(model name: String, body: [UInt8], cache: inout ModelStore.ReaderCache) throws(PredictError) -> Int {
        let config = try loopConfig(of: name, cache: &cache, rewards: .event)
        let rewards: [RewardEvent]
        do throws(LoopRequestError) {
            rewards = try LoopRequests.rewards(body, maxDepth: maxJSONDepth)
        } catch {
            throw .invalidRequest(error.message)
        }
        return try reward(model: name, rewards: rewards, config: config)
    }

    /// Rewards already decoded (a Personalizer reward, SPEC §9): checked against the reward range, then on disk.
    public func reward(model name: String, rewards: [RewardEvent], cache: inout ModelStore.ReaderCache) throws(PredictError) -> Int {
        try reward(model: name, rewards: rewards, config: loopConfig(of: name, cache: &cache, rewards: .event))
    }

    private func reward(model name: String, rewards: [RewardEvent], config: LoopConfig?) throws(PredictError) -> Int {
        // The serving version's range (a model not serving yet: any finite reward, clipped by the join to the range in force then).
        if let range = config?.rewardRange {
            for (index, reward) in rewards.enumerated() where !range.contains(reward.number) {
                let which = rewards.count > 1 ? "reward \(index): " : ""
                throw .invalidRequest("\(which)reward \(reward.value) is outside the model's reward_range [\(range.lowerBound), \(range.upperBound)]")
            }
        }
        let now = EventLine.nowMilliseconds()
        let lines = rewards.map { EventLine.reward(eventId: $0.eventID.text, value: $0.number, timestampMilliseconds: now) }
        try append(lines, kind: .reward, rewardSum: rewards.reduce(0) { $0 + $1.number }, model: name, config: config)
        return rewards.count
    }

    /// `POST /v1/models/<name>:activate`: a deferred decision will be joined (SPEC §8.2).
    public func activate(model name: String, body: [UInt8], cache: inout ModelStore.ReaderCache) throws(PredictError) {
        let config = try loopConfig(of: name, cache: &cache)
        let id: EventID
        do throws(LoopRequestError) {
            id = try LoopRequests.activation(body, maxDepth: maxJSONDepth)
        } catch {
            throw .invalidRequest(error.message)
        }
        try activate(model: name, eventID: id, config: config)
    }

    /// Activates the decision `id` (a Personalizer activate, SPEC §9).
    public func activate(model name: String, eventID id: EventID, cache: inout ModelStore.ReaderCache) throws(PredictError) {
        try activate(model: name, eventID: id, config: loopConfig(of: name, cache: &cache))
    }

    private func activate(model name: String, eventID id: EventID, config: LoopConfig?) throws(PredictError) {
        try append([EventLine.activation(eventId: id.text, timestampMilliseconds: EventLine.nowMilliseconds())],
                   kind: .activation, rewardSum: 0, model: name, config: config)
    }

    /// `POST /v1/models/<name>:learn`: labelled VW text examples on disk, learned at the next update (SPEC §8.6).
    ///
    /// For single-line VW text models with a `"loop"`. Each example passes the strict grammar, labels kept (and
    /// required), and is logged in canonical form, never as the client sent it. Returns how many were accepted.
    public func learn(model name: String, body: [UInt8], isJSON: Bool, cache: inout ModelStore.ReaderCache) throws(PredictError) -> Int {
        let (lines, config) = try store.withServingVersion(of: name, cache: &cache) { version throws(PredictError) -> ([[UInt8]], LoopConfig?) in
            guard version.loop != nil, version.jsonGrammar == nil, !version.multiline else {
                throw .invalidRequest("model '\(name)' cannot :learn: that needs a single-line VW text model whose .json has a \"loop\"")
            }
            let texts: [Substring]
            if isJSON {
                texts = try Self.instances(of: body, maxDepth: maxJSONDepth).enumerated().map { index, item throws(PredictError) in
                    guard case .string(let text) = item else {
                        throw .invalidRequest("instance \(index): a :learn instance is a labelled VW text line (a string), not \(item.kindName)")
                    }
                    return Substring(text)
                }
            } else {
                var split = String(decoding: body, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                if split.last == "" { split.removeLast() }
                texts = split
            }
            guard !texts.isEmpty else { throw .invalidRequest("no examples to learn") }
            try BatchPreparation.checkCount(texts.count, for: version)
            let grammar = ExampleGrammar(family: version.options.family, limits: store.settings.limits, keepsLabels: true)
            let bounds = version.loop.map(LearnBounds.init)
            var batch = BatchPreparation(for: version, settings: store.settings)
            let now = EventLine.nowMilliseconds()
            let lines = try texts.enumerated().map { index, text throws(PredictError) in
                let canonical = try batch.appendLabelled(text, index: index, grammar: grammar) { canonical in
                    bounds?.problem(in: canonical, family: version.options.family)
                }
                return EventLine.learn(eventId: EventID.random().text, example: canonical, timestampMilliseconds: now)
            }
            return (lines, version.loop)
        }
        try append(lines, kind: .learn, rewardSum: 0, model: name, config: config)
        return lines.count
    }

    /// Opens the loop of every model that has one on disk from an earlier run, so its pending
    /// decisions are joined after a restart without waiting for new traffic. Call once the
    /// start-up models were tried.
    public func resumeLoops() {
        var cache = ModelStore.ReaderCache()
        for name in store.modelNames where loops.hasState(name) {
            do throws(EventLogError) {
                _ = try loops.loop(for: name)
            } catch {
                store.logger.error("cannot resume the learning loop", metadata: ["model": "\(name)", "error": "\(error.message)"])
            }
        }
    }

    /// `POST /v1/models/<name>/loop:rollback`: the trainer publishes the version before the serving one (the previous
    /// learned version, or the base file) through the normal swap at its next tick (SPEC §8.9). The outcome shows
    /// in `/loop` (`learned_version`, `last_error`).
    public func rollback(model name: String) throws(PredictError) {
        var cache = ModelStore.ReaderCache()
        let learns = try store.withServingVersion(of: name, cache: &cache) { version throws(PredictError) in
            version.loop.map { $0.externalTrainer == loops.externalTrainer } ?? false
        }
        guard learns else {
            throw .invalidRequest("model '\(name)' is not learned by this instance (its .json has no \"loop\", or its trainer is external)")
        }
        do throws(EventLogError) {
            try loops.loop(for: name).learner.requestRollback()
        } catch {
            throw .eventLogFailed(error.message)
        }
    }

    /// `POST /v1/models/<name>/loop:rotate`: closes the model's current log segment on this instance (the next event
    /// starts a new one), so that a shipper can take it (issue 24).
    public func rotate(model name: String) throws(PredictError) {
        guard store.status(of: name) != nil else { throw .modelNotFound(name) }
        do throws(EventLogError) {
            try loops.loop(for: name).rotate()
        } catch {
            throw .eventLogFailed(error.message)
        }
    }

    /// `GET /v1/models/<name>/loop`; nil for an unknown model.
    public func loopStatus(model name: String) -> LoopStatus? {
        guard store.status(of: name) != nil else { return nil }
        var status = loops.existing(name)?.status
            ?? LoopStatus(decisions: 0, rewards: 0, activations: 0, learns: 0, joined: 0, pending: 0, rewardSum: 0, averageReward: nil,
                          learning: LearnStatus())
        // The settings in force: the serving version's (SPEC §8.9).
        status.settings = store.serving(name).map { $0.loop ?? LoopConfig() }
        return status
    }

    /// The loop settings of the serving version's .json, or the defaults when it has none (nil for a model not serving yet);
    /// throws for a model not in the directory (and a reward of the wrong kind). One lookup per request, taken before
    /// the body is read.
    ///
    /// `rewards` refuses rewards of the other kind than the serving model takes: a `--ccb_explore_adf` model's name
    /// their slot, any other model's name only their event (a reward of the wrong kind would never be joined).
    func loopConfig(of name: String, cache: inout ModelStore.ReaderCache, rewards: RewardKind? = nil) throws(PredictError) -> LoopConfig? {
        do throws(PredictError) {
            return try store.withServingVersion(of: name, cache: &cache) { version throws(PredictError) in
                let slotted = version.jsonGrammar?.isCCB == true
                switch rewards {
                case .event? where slotted:
                    throw .invalidRequest("model '\(name)' is a --ccb_explore_adf model: its rewards name their slot (…/personalizer/multislot/events/{eventId}/reward)")
                case .slot? where !slotted:
                    throw .invalidRequest("model '\(name)' is not a --ccb_explore_adf model whose .json says \"input\": \"vw_json\" (multislot rewards need one)")
                default:
                    return version.loop ?? LoopConfig()
                }
            }
        } catch {
            switch error {
            case .modelNotFound, .invalidRequest: throw error
            default: return nil
            }
        }
    }

    /// What a reward names: its event (`:reward`, Personalizer's reward), or one slot of its event (multislot).
    enum RewardKind {
        case event
        case slot
    }

    private func append(_ lines: [[UInt8]], kind: LoopMetrics.Kind, rewardSum: Double, model name: String,
                        config: LoopConfig?) throws(PredictError) {
        if let why = loops.refusal { throw .eventLogFailed(why) }
        do throws(EventLogError) {
            try loops.loop(for: name).append(lines, kind: kind, rewardSum: rewardSum)
        } catch {
            throw .eventLogFailed(error.message)
        }
    }
}

/// The answer of `:rank` (SPEC §8.2).
public struct RankResult: Sendable {
    public let model: String
    public let version: String
    public let eventID: String
    /// The chosen action: its index into the context's `_multi`.
    public let action: Int
    /// Its probability, as VW printed it.
    public let probability: String
    /// VW's PMF, in VW's order.
    public let ranking: [ActionValue]
}

/// `{"event_id"?, "context": {...}, "deferred"?: bool}`.
public struct RankRequest: Sendable {
    let eventID: EventID
    let context: JSONValue
    let deferred: Bool

    /// A decision for `context` (a VW JSON example, checked by the model's grammar when ranked).
    public init(eventID: EventID, context: JSONValue, deferred: Bool) {
        self.eventID = eventID
        self.context = context
        self.deferred = deferred
    }

    init(_ body: [UInt8], maxDepth: Int) throws(PredictError) {
        let members: [(key: String, value: JSONValue)]
        do throws(LoopRequestError) {
            members = try LoopRequests.object(body, maxDepth: maxDepth)
            for (key, _) in members where !["event_id", "context", "deferred"].contains(key) {
                throw LoopRequestError("unknown member \"\(key)\" (known: event_id, context, deferred)")
            }
            eventID = try LoopRequests.eventID(members, required: false) ?? EventID.random()
            guard let context = try LoopRequests.member("context", of: members) else {
                throw LoopRequestError("\"context\" is missing")
            }
            guard case .object = context else { throw LoopRequestError("\"context\" must be a VW JSON object, not \(context.kindName)") }
            self.context = context
            switch try LoopRequests.member("deferred", of: members) {
            case nil: deferred = false
            case .bool(let flag)?: deferred = flag
            case let other?: throw LoopRequestError("\"deferred\" must be true or false, not \(other.kindName)")
            }
        } catch {
            throw .invalidRequest(error.message)
        }
    }
}

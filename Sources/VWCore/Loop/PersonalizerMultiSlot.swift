/// A Personalizer multislot rank request (SPEC §9), decoded and mapped to the VW JSON context of a `--ccb_explore_adf`
/// model, as Microsoft's SDKs build it for their local inference (`DecisionContext` with `Slots`):
/// `{"FromUrl": [<context feature objects>], "_multi": [{"_tag": "<action id>", "j": [...]}, ...],
/// "_slots": [{"_id": "<slot id>", "_tag": "seed=<eventId>_<k>", "_inc": [<offered actions>], "sj": [<slot feature objects>]}, ...]}`.
///
/// Every action is in `_multi` (a slot's excluded actions are left out of its `_inc`, written only when it excludes
/// some). Slot `k`'s tag `seed=<eventId>_<k>` makes vw draw that slot from the hash of `<eventId>_<k>` instead of its
/// random state (`cb_sample`), so the same event id always gets the same answer, on any process.
public struct PersonalizerMultiSlotRankRequest: Sendable {
    /// Every action id of the request, in its order (`_multi`'s order).
    public let actionIDs: [String]
    /// The slot ids, in request order.
    public let slotIDs: [String]
    /// Each slot's baseline action (an index into `actionIDs`): Apprentice mode answers it.
    public let baselines: [Int]
    /// The actions each slot may take (indices into `actionIDs`, request order): all but its excluded ones.
    public let offered: [[Int]]
    public let eventID: EventID
    public let deferred: Bool
    /// The ccb context for the model's grammar.
    public let context: JSONValue

    public init(_ body: [UInt8], maxDepth: Int) throws(LoopRequestError) {
        let members = try PersonalizerRankRequest.object(body, known: ["contextFeatures", "actions", "slots", "eventId", "deferActivation"],
                                                         maxDepth: maxDepth)
        let contextFeatures = try PersonalizerRankRequest.featureObjects(LoopRequests.member("contextFeatures", of: members), what: "contextFeatures")
        let (ids, features) = try PersonalizerRankRequest.actions(members)
        let multi = zip(ids, features).map { id, features in
            JSONValue.object([(key: "_tag", value: .string(id)), (key: "j", value: .array(features))])
        }
        let eventID = try PersonalizerRankRequest.eventID(members)
        guard case .array(let slots)? = try LoopRequests.member("slots", of: members), !slots.isEmpty else {
            throw LoopRequestError("\"slots\" must be a non-empty array of {\"id\", \"baselineAction\", \"excludedActions\", \"features\"}")
        }
        guard slots.count <= ids.count else {
            throw LoopRequestError("\(slots.count) slots for \(ids.count) actions: each slot takes a different action")
        }
        var slotIDs: [String] = []
        var baselines: [Int] = []
        var slotObjects: [JSONValue] = []
        var offered: [[Int]] = []
        for (index, slot) in slots.enumerated() {
            guard case .object(let fields) = slot else { throw LoopRequestError("slots[\(index)] must be an object, not \(slot.kindName)") }
            let slotKeys = ["id", "baselineAction", "excludedActions", "features"]
            for (key, _) in fields where !slotKeys.contains(key) {
                throw LoopRequestError("slots[\(index)]: unknown member \"\(key)\" (known: \(slotKeys.joined(separator: ", ")))")
            }
            let id = try PersonalizerRankRequest.id(LoopRequests.member("id", of: fields), what: "slots[\(index)].id")
            if slotIDs.contains(id) { throw LoopRequestError("slot id \"\(id)\" is given twice") }
            let baselineID = try PersonalizerRankRequest.id(LoopRequests.member("baselineAction", of: fields), what: "slots[\(index)].baselineAction")
            guard let baseline = ids.firstIndex(of: baselineID) else {
                throw LoopRequestError("slots[\(index)].baselineAction \"\(baselineID)\" is not an action id of the request")
            }
            if let other = baselines.firstIndex(of: baseline) {
                throw LoopRequestError("slots[\(index)].baselineAction \"\(baselineID)\" is already the baseline of slot \"\(slotIDs[other])\" (each slot needs its own)")
            }
            var excluded: Set<Int> = []
            switch try LoopRequests.member("excludedActions", of: fields) {
            case nil, .null?: break
            case .array(let items)?:
                for (offset, item) in items.enumerated() {
                    let excludedID = try PersonalizerRankRequest.id(item, what: "slots[\(index)].excludedActions[\(offset)]")
                    guard let action = ids.firstIndex(of: excludedID) else {
                        throw LoopRequestError("slots[\(index)].excludedActions[\(offset)]: \"\(excludedID)\" is not an action id of the request")
                    }
                    excluded.insert(action)
                }
            case let other?:
                throw LoopRequestError("slots[\(index)].excludedActions must be an array of action ids, not \(other.kindName)")
            }
            if excluded.contains(baseline) {
                throw LoopRequestError("slots[\(index)].baselineAction \"\(baselineID)\" is also one of the slot's excludedActions")
            }
            let features = try PersonalizerRankRequest.featureObjects(LoopRequests.member("features", of: fields), what: "slots[\(index)].features")
            var object: [(key: String, value: JSONValue)] = [
                (key: "_id", value: .string(id)), (key: "_tag", value: .string(Self.seedTag(eventID: eventID, slot: index))),
            ]
            if !excluded.isEmpty {
                object.append((key: "_inc", value: .array(ids.indices.filter { !excluded.contains($0) }.map { .number(String($0)) })))
            }
            object.append((key: "sj", value: .array(features)))
            slotIDs.append(id)
            baselines.append(baseline)
            offered.append(ids.indices.filter { !excluded.contains($0) })
            slotObjects.append(.object(object))
        }
        let deferred = try PersonalizerRankRequest.deferred(members)
        self.actionIDs = ids
        self.slotIDs = slotIDs
        self.baselines = baselines
        self.offered = offered
        self.eventID = eventID
        self.deferred = deferred
        // An action id starting with "save" is refused by the model's grammar when ranked (vw's model-save command).
        self.context = .object([
            (key: "FromUrl", value: .array(contextFeatures)), (key: "_multi", value: .array(multi)), (key: "_slots", value: .array(slotObjects)),
        ])
    }

    /// The tag that seeds slot `slot`'s draw: vw hashes the text after `seed=` (`VW::uniform_hash`, seed 0).
    public static func seedTag(eventID: EventID, slot: Int) -> String {
        "seed=\(eventID.text)_\(slot)"
    }
}

/// A Personalizer multislot reward body, `{"reward": [{"slotId": "...", "value": number}, ...]}` (SPEC §9).
public enum PersonalizerMultiSlotReward {
    public static func decode(_ body: [UInt8], eventID: EventID, maxDepth: Int) throws(LoopRequestError) -> [SlotReward] {
        let members = try LoopRequests.object(body, maxDepth: maxDepth)
        for (key, _) in members where key != "reward" { throw LoopRequestError("unknown member \"\(key)\" (known: reward)") }
        guard case .array(let items)? = try LoopRequests.member("reward", of: members), !items.isEmpty else {
            throw LoopRequestError("\"reward\" must be a non-empty array of {\"slotId\", \"value\"}")
        }
        return try items.enumerated().map { index, item throws(LoopRequestError) in
            guard case .object(let fields) = item else { throw LoopRequestError("reward[\(index)] must be an object, not \(item.kindName)") }
            for (key, _) in fields where key != "slotId" && key != "value" {
                throw LoopRequestError("reward[\(index)]: unknown member \"\(key)\" (known: slotId, value)")
            }
            let slot = try PersonalizerRankRequest.id(LoopRequests.member("slotId", of: fields), what: "reward[\(index)].slotId")
            guard let value = try LoopRequests.member("value", of: fields) else { throw LoopRequestError("reward[\(index)].value is missing") }
            guard case .number(let text) = value, let number = Double(text), number.isFinite else {
                throw LoopRequestError("reward[\(index)].value must be a finite number, not \(value.kindName)")
            }
            return SlotReward(eventID: eventID, slotID: slot, value: text)
        }
    }
}

/// The reward of one slot of a multislot decision.
public struct SlotReward: Sendable, Equatable {
    public let eventID: EventID
    public let slotID: String
    /// A finite number, as the client's JSON text.
    public let value: String

    public var number: Double { Double(value) ?? 0 }

    public init(eventID: EventID, slotID: String, value: String) {
        self.eventID = eventID
        self.slotID = slotID
        self.value = value
    }
}

/// A Personalizer rank request (SPEC §9), decoded and mapped to the VW JSON context Microsoft's SDKs build for their
/// local inference (`DecisionContext`): `{"FromUrl": [<context feature objects>], "_multi": [{"_tag": "<id>", "j": [<action
/// feature objects>]}, ...]}`. Each top-level key of a feature object is a namespace; a non-object value is a feature of
/// `FromUrl` (context) or `j` (action). Ids are not features: an action's id is its `_tag`, which the log keeps in `c`.
/// Excluded actions are not offered to vw.
public struct PersonalizerRankRequest: Sendable {
    /// Every action id of the request, in its order.
    public let actionIDs: [String]
    /// The indices into `actionIDs` of the actions offered to vw (not excluded), in order: `_multi`'s order.
    public let offered: [Int]
    /// The request as `Engine.rank` takes it.
    public let rank: RankRequest

    /// The longest action id accepted (the SDKs' limit on event ids too).
    public static let maxIDLength = 256

    public init(_ body: [UInt8], maxDepth: Int) throws(LoopRequestError) {
        let members = try Self.object(body, known: ["contextFeatures", "actions", "excludedActions", "eventId", "deferActivation"],
                                      maxDepth: maxDepth)
        let contextFeatures = try Self.featureObjects(LoopRequests.member("contextFeatures", of: members), what: "contextFeatures")
        let (ids, features) = try Self.actions(members)
        var excluded: Set<String> = []
        switch try LoopRequests.member("excludedActions", of: members) {
        case nil, .null?: break
        case .array(let items)?:
            for (index, item) in items.enumerated() {
                let id = try Self.id(item, what: "excludedActions[\(index)]")
                guard ids.contains(id) else { throw LoopRequestError("excludedActions[\(index)]: \"\(id)\" is not an action id of the request") }
                excluded.insert(id)
            }
        case let other?:
            throw LoopRequestError("\"excludedActions\" must be an array of action ids, not \(other.kindName)")
        }
        let offered = ids.indices.filter { !excluded.contains(ids[$0]) }
        guard !offered.isEmpty else { throw LoopRequestError("every action is excluded: nothing to rank") }
        let eventID = try Self.eventID(members)
        let deferred = try Self.deferred(members)
        // An id starting with "save" is refused by the model's grammar when ranked (vw's model-save command).
        let multi = offered.map { index in
            JSONValue.object([(key: "_tag", value: .string(ids[index])), (key: "j", value: .array(features[index]))])
        }
        let context = JSONValue.object([(key: "FromUrl", value: .array(contextFeatures)), (key: "_multi", value: .array(multi))])
        self.actionIDs = ids
        self.offered = offered
        self.rank = RankRequest(eventID: eventID, context: context, deferred: deferred)
    }

    /// The ranking Personalizer answers: the offered actions in VW's order with VW's probabilities, then the excluded
    /// ones (probability 0) in request order; and the id of the drawn action.
    public func ranking(of result: RankResult) -> (ranking: [(id: String, probability: String)], rewardActionID: String) {
        var ranking = result.ranking.map { (id: actionIDs[offered[$0.action]], probability: $0.value) }
        let offeredSet = Set(offered)
        ranking += actionIDs.indices.filter { !offeredSet.contains($0) }.map { (id: actionIDs[$0], probability: "0") }
        return (ranking, actionIDs[offered[result.action]])
    }

    /// The request's members, each one of `known`.
    static func object(_ body: [UInt8], known: [String], maxDepth: Int) throws(LoopRequestError) -> [(key: String, value: JSONValue)] {
        let members = try LoopRequests.object(body, maxDepth: maxDepth)
        for (key, _) in members where !known.contains(key) {
            throw LoopRequestError("unknown member \"\(key)\" (known: \(known.joined(separator: ", ")))")
        }
        return members
    }

    /// `actions`: their ids (distinct) and each one's feature objects, in request order.
    static func actions(_ members: [(key: String, value: JSONValue)]) throws(LoopRequestError) -> (ids: [String], features: [[JSONValue]]) {
        guard case .array(let actions)? = try LoopRequests.member("actions", of: members), !actions.isEmpty else {
            throw LoopRequestError("\"actions\" must be a non-empty array of {\"id\", \"features\"}")
        }
        var ids: [String] = []
        var features: [[JSONValue]] = []
        for (index, action) in actions.enumerated() {
            guard case .object(let fields) = action else { throw LoopRequestError("actions[\(index)] must be an object, not \(action.kindName)") }
            for (key, _) in fields where key != "id" && key != "features" {
                throw LoopRequestError("actions[\(index)]: unknown member \"\(key)\" (known: id, features)")
            }
            let id = try Self.id(LoopRequests.member("id", of: fields), what: "actions[\(index)].id")
            if ids.contains(id) { throw LoopRequestError("action id \"\(id)\" is given twice") }
            ids.append(id)
            features.append(try Self.featureObjects(LoopRequests.member("features", of: fields), what: "actions[\(index)].features"))
        }
        return (ids, features)
    }

    /// `eventId`, or a new one when absent or null.
    static func eventID(_ members: [(key: String, value: JSONValue)]) throws(LoopRequestError) -> EventID {
        switch try LoopRequests.member("eventId", of: members) {
        case nil, .null?: return EventID.random()
        case .string(let text)?:
            guard let id = EventID(text) else { throw LoopRequestError("\"eventId\" must match [A-Za-z0-9_.:-]{1,128}") }
            return id
        case let other?: throw LoopRequestError("\"eventId\" must be a string, not \(other.kindName)")
        }
    }

    /// `deferActivation` (false when absent or null).
    static func deferred(_ members: [(key: String, value: JSONValue)]) throws(LoopRequestError) -> Bool {
        switch try LoopRequests.member("deferActivation", of: members) {
        case nil, .null?: return false
        case .bool(let flag)?: return flag
        case let other?: throw LoopRequestError("\"deferActivation\" must be true or false, not \(other.kindName)")
        }
    }

    /// A list of feature objects (`contextFeatures`, an action's `features`); absent or null is an empty list.
    static func featureObjects(_ value: JSONValue?, what: String) throws(LoopRequestError) -> [JSONValue] {
        switch value {
        case nil, .null?: return []
        case .array(let items)?:
            for (index, item) in items.enumerated() {
                guard case .object = item else { throw LoopRequestError("\(what)[\(index)] must be an object of features, not \(item.kindName)") }
            }
            return items
        case let other?:
            throw LoopRequestError("\"\(what)\" must be an array of feature objects, not \(other.kindName)")
        }
    }

    static func id(_ value: JSONValue?, what: String) throws(LoopRequestError) -> String {
        guard case .string(let text)? = value else { throw LoopRequestError("\(what) must be a string") }
        guard !text.isEmpty, text.utf8.count <= maxIDLength else { throw LoopRequestError("\(what) must have 1 to \(maxIDLength) bytes") }
        return text
    }
}

/// A Personalizer reward body, `{"value": number}` (SPEC §9).
public enum PersonalizerReward {
    public static func decode(_ body: [UInt8], eventID: EventID, maxDepth: Int) throws(LoopRequestError) -> RewardEvent {
        let members = try LoopRequests.object(body, maxDepth: maxDepth)
        for (key, _) in members where key != "value" { throw LoopRequestError("unknown member \"\(key)\" (known: value)") }
        guard let value = try LoopRequests.member("value", of: members) else { throw LoopRequestError("\"value\" is missing") }
        guard case .number(let text) = value, let number = Double(text), number.isFinite else {
            throw LoopRequestError("\"value\" must be a finite number, not \(value.kindName)")
        }
        return RewardEvent(eventID: eventID, value: text)
    }
}

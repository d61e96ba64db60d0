/// Why a decide, reward or activate request cannot be accepted (always a 400).
public struct LoopRequestError: Error, Equatable, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }
}

/// An event id as SPEC §8.2 allows it: `[A-Za-z0-9_.:-]{1,128}`.
public struct EventID: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    /// Checks `text`; nil when it is not a valid event id.
    public init?(_ text: String) {
        let bytes = text.utf8
        guard (1...128).contains(bytes.count), bytes.allSatisfy(Self.isAllowed) else { return nil }
        self.text = text
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    /// A random (version 4) UUID, for a decision that came without an event id.
    public static func random() -> EventID {
        // The system's CSPRNG (getrandom(2)).
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<2).flatMap { _ in withUnsafeBytes(of: generator.next() as UInt64) { Array($0) } }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for (index, byte) in bytes.enumerated() {
            if [4, 6, 8, 10].contains(index) { text.append(UInt8(ascii: "-")) }
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0xF)])
        }
        return EventID(String(decoding: text, as: UTF8.self))!
    }

    public var description: String { text }
}

/// One reward for an event (SPEC §8.3).
public struct RewardEvent: Sendable, Equatable {
    public let eventID: EventID
    /// A finite number, kept as the client's JSON text so the log holds exactly what was received.
    public let value: String

    /// `value` as a number.
    public var number: Double { Double(value) ?? 0 }

    /// A reward whose `value` is JSON number text (checked finite by the decoder that made it).
    public init(eventID: EventID, value: String) {
        self.eventID = eventID
        self.value = value
    }
}

/// Decodes the bodies of the learning-loop endpoints (SPEC §8.2, §8.3).
public enum LoopRequests {
    /// `{"event_id": "e-42", "reward": 1.0}` or `{"rewards": [{...}, ...]}`: at least one reward.
    public static func rewards(_ body: [UInt8], maxDepth: Int = 32, maxRewards: Int = 10_000) throws(LoopRequestError) -> [RewardEvent] {
        let members = try object(body, maxDepth: maxDepth)
        if let list = try member("rewards", of: members) {
            guard members.count == 1 else { throw LoopRequestError("a body with \"rewards\" has no other member") }
            guard case .array(let items) = list, !items.isEmpty else {
                throw LoopRequestError("\"rewards\" must be a non-empty array")
            }
            guard items.count <= maxRewards else {
                throw LoopRequestError("\(items.count) rewards, more than the limit of \(maxRewards)")
            }
            var rewards: [RewardEvent] = []
            rewards.reserveCapacity(items.count)
            for (index, item) in items.enumerated() {
                guard case .object(let fields) = item else { throw LoopRequestError("reward \(index): must be an object") }
                do {
                    rewards.append(try reward(fields))
                } catch {
                    throw LoopRequestError("reward \(index): \(error.message)")
                }
            }
            return rewards
        }
        return [try reward(members)]
    }

    /// `{"event_id": "e-42"}` of `:activate`.
    public static func activation(_ body: [UInt8], maxDepth: Int = 32) throws(LoopRequestError) -> EventID {
        let members = try object(body, maxDepth: maxDepth)
        for (key, _) in members where key != "event_id" { throw LoopRequestError("unknown member \"\(key)\" (known: event_id)") }
        return try eventID(members, required: true)!
    }

    private static func reward(_ fields: [(key: String, value: JSONValue)]) throws(LoopRequestError) -> RewardEvent {
        for (key, _) in fields where key != "event_id" && key != "reward" {
            throw LoopRequestError("unknown member \"\(key)\" (known: event_id, reward)")
        }
        let id = try eventID(fields, required: true)!
        guard let value = try member("reward", of: fields) else { throw LoopRequestError("\"reward\" is missing") }
        guard case .number(let text) = value, let number = Double(text), number.isFinite else {
            throw LoopRequestError("\"reward\" must be a finite number, not \(value.kindName)")
        }
        return RewardEvent(eventID: id, value: text)
    }

    /// The `event_id` member, checked; nil when absent and not required.
    static func eventID(_ fields: [(key: String, value: JSONValue)], required: Bool) throws(LoopRequestError) -> EventID? {
        guard let value = try member("event_id", of: fields) else {
            if required { throw LoopRequestError("\"event_id\" is missing") }
            return nil
        }
        guard case .string(let text) = value else { throw LoopRequestError("\"event_id\" must be a string, not \(value.kindName)") }
        guard let id = EventID(text) else {
            throw LoopRequestError("\"event_id\" must match [A-Za-z0-9_.:-]{1,128}")
        }
        return id
    }

    static func object(_ body: [UInt8], maxDepth: Int) throws(LoopRequestError) -> [(key: String, value: JSONValue)] {
        let document: JSONValue
        do {
            document = try JSONParser.parse(body, maxDepth: maxDepth)
        } catch {
            throw LoopRequestError(error.message)
        }
        guard case .object(let members) = document else {
            throw LoopRequestError("the request body must be a JSON object, not \(document.kindName)")
        }
        return members
    }

    /// The value of `key`; a key given twice is refused (which one would count?).
    static func member(_ key: String, of members: [(key: String, value: JSONValue)]) throws(LoopRequestError) -> JSONValue? {
        var found: JSONValue?
        for (name, value) in members where name == key {
            if found != nil { throw LoopRequestError("\"\(key)\" is given twice") }
            found = value
        }
        return found
    }
}

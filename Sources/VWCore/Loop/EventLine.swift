#if canImport(Glibc)
import Glibc
#endif

/// Builders of the event log's dsjson lines (SPEC §8.4), each one JSON object without the final "\n"
/// (``EventLog/append(lines:)`` adds it).
///
/// * Decision: `{"EventId","Timestamp","Version":"1","a":[chosen, others...],"c":<context>,"p":[...],"VWState":{"m":<version>}}`,
///   plus `"DeferredAction":true` (the name VW's reinforcement-learning client uses) when the reward may never come.
/// * Reward (observation): `{"EventId","v":<reward>,"Timestamp"}`.
/// * Activation of a deferred decision: `{"EventId","ActionTaken":true,"Timestamp"}` (as VW's joiner writes outcomes).
///
/// Timestamps are UTC, ISO 8601 with milliseconds: `2026-11-30T19:21:23.123Z`.
public enum EventLine {
    /// A decision line. `actions` are 1-based action ids with the chosen one first, `probabilities` in the same
    /// order; `context` is the already validated VW JSON object, written verbatim.
    public static func decision(eventId: String, timestampMilliseconds: Int64, actions: [Int], probabilities: [Double],
                                context: [UInt8], modelVersion: String, deferred: Bool = false) -> [UInt8] {
        precondition(!actions.isEmpty && actions.count == probabilities.count, "one probability per action")
        var writer = JSONWriter(capacity: context.count + 160)
        writer.beginObject()
        writer.key("EventId"); writer.string(eventId)
        writer.key("Timestamp"); writer.string(timestamp(milliseconds: timestampMilliseconds))
        writer.key("Version"); writer.string("1")
        writer.key("a"); writer.beginArray(); for action in actions { writer.int(action) }; writer.endArray()
        writer.key("c"); writer.raw(context)
        writer.key("p"); writer.beginArray(); for p in probabilities { writer.double(p) }; writer.endArray()
        writer.key("VWState"); writer.beginObject(); writer.key("m"); writer.string(modelVersion); writer.endObject()
        if deferred { writer.key("DeferredAction"); writer.bool(true) }
        writer.endObject()
        return writer.bytes
    }

    /// A multislot (`--ccb_explore_adf`) decision line in VW's ccb dsjson form: `{"EventId","Timestamp","Version":"1",
    /// "c":<context with _multi and _slots>,"_outcomes":[{"_id":<slot id>,"_a":[chosen, others...],"_p":[...]}, ...],
    /// "VWState":{"m":<version>}}` (+ `"DeferredAction":true`). `_a` holds 0-based indices into `_multi` (VW's ccb
    /// labels), one outcome per slot in `_slots` order; the joiner adds each slot's `_label_cost` and `_o`.
    public static func slotsDecision(eventId: String, timestampMilliseconds: Int64, slots: [(id: String, actions: [Int], probabilities: [Double])],
                                     context: [UInt8], modelVersion: String, deferred: Bool = false) -> [UInt8] {
        precondition(!slots.isEmpty && slots.allSatisfy { !$0.actions.isEmpty && $0.actions.count == $0.probabilities.count }, "one probability per action")
        var writer = JSONWriter(capacity: context.count + 160 + slots.count * 64)
        writer.beginObject()
        writer.key("EventId"); writer.string(eventId)
        writer.key("Timestamp"); writer.string(timestamp(milliseconds: timestampMilliseconds))
        writer.key("Version"); writer.string("1")
        writer.key("c"); writer.raw(context)
        writer.key("_outcomes")
        writer.beginArray()
        for slot in slots {
            writer.beginObject()
            writer.key("_id"); writer.string(slot.id)
            writer.key("_a"); writer.beginArray(); for action in slot.actions { writer.int(action) }; writer.endArray()
            writer.key("_p"); writer.beginArray(); for p in slot.probabilities { writer.double(p) }; writer.endArray()
            writer.endObject()
        }
        writer.endArray()
        writer.key("VWState"); writer.beginObject(); writer.key("m"); writer.string(modelVersion); writer.endObject()
        if deferred { writer.key("DeferredAction"); writer.bool(true) }
        writer.endObject()
        return writer.bytes
    }

    /// The reward of one slot of a multislot decision: `{"EventId","v","Index":<slot id>,"Timestamp"}` (`Index` as in
    /// VW's ccb outcomes).
    public static func slotReward(eventId: String, slotId: String, value: Double, timestampMilliseconds: Int64) -> [UInt8] {
        var writer = JSONWriter(capacity: 112 + slotId.utf8.count)
        writer.beginObject()
        writer.key("EventId"); writer.string(eventId)
        writer.key("v"); writer.double(value)
        writer.key("Index"); writer.string(slotId)
        writer.key("Timestamp"); writer.string(timestamp(milliseconds: timestampMilliseconds))
        writer.endObject()
        return writer.bytes
    }

    /// A reward line; `value` must be finite (the reward endpoint refuses others with 400).
    public static func reward(eventId: String, value: Double, timestampMilliseconds: Int64) -> [UInt8] {
        var writer = JSONWriter(capacity: 96)
        writer.beginObject()
        writer.key("EventId"); writer.string(eventId)
        writer.key("v"); writer.double(value)
        writer.key("Timestamp"); writer.string(timestamp(milliseconds: timestampMilliseconds))
        writer.endObject()
        return writer.bytes
    }

    /// A labelled example for a single-line model (`:learn`): `{"EventId","Learn":"<canonical VW text>","Timestamp"}`.
    /// The joiner passes it on at once; the trainer feeds its `"Learn"` text to vw.
    public static func learn(eventId: String, example: String, timestampMilliseconds: Int64) -> [UInt8] {
        var writer = JSONWriter(capacity: 96 + example.utf8.count)
        writer.beginObject()
        writer.key("EventId"); writer.string(eventId)
        writer.key("Learn"); writer.string(example)
        writer.key("Timestamp"); writer.string(timestamp(milliseconds: timestampMilliseconds))
        writer.endObject()
        return writer.bytes
    }

    /// An activation line (`:activate` of a deferred decision).
    public static func activation(eventId: String, timestampMilliseconds: Int64) -> [UInt8] {
        var writer = JSONWriter(capacity: 96)
        writer.beginObject()
        writer.key("EventId"); writer.string(eventId)
        writer.key("ActionTaken"); writer.bool(true)
        writer.key("Timestamp"); writer.string(timestamp(milliseconds: timestampMilliseconds))
        writer.endObject()
        return writer.bytes
    }

    /// The wall clock in milliseconds since the Unix epoch (``Timestamp/nowMilliseconds()``).
    public static func nowMilliseconds() -> Int64 { Timestamp.nowMilliseconds() }

    /// `2026-11-30T19:21:23.123Z` for `milliseconds` since the epoch (``Timestamp/rfc3339(milliseconds:)``).
    public static func timestamp(milliseconds: Int64) -> String { Timestamp.rfc3339(milliseconds: milliseconds) }
}

/// Publishes what the learner trained through the store's public publish entry (``ModelStore/publishLearned``),
/// its errors as the learner's: the loop depends on the store, never the other way round.
struct LearnedModelPublisher {
    let store: ModelStore

    /// Validates, persists (`persist`) and swaps in the model at `path` while `current` still serves.
    func publish(
        name: String, path: String, current: String, base: String, events: Int, persist: (ModelVersion) -> String?
    ) throws(LearnError) -> ModelVersion {
        do {
            return try store.publishLearned(name: name, path: path, current: current, base: base, events: events, persist: persist)
        } catch {
            switch error {
            case .superseded: throw .superseded
            case .invalid(let why): throw .failed("the learned model does not load: \(why)")
            case .notPersisted(let why): throw .failed(why)
            }
        }
    }
}

extension ModelStore {
    /// `publishLearned`, its errors as a learner's (the learner's call site; see ``LearnedModelPublisher``).
    func publishLearnedOrThrow(
        name: String, path: String, current: String, base: String, events: Int, persist: (ModelVersion) -> String?
    ) throws(LearnError) -> ModelVersion {
        try LearnedModelPublisher(store: self).publish(name: name, path: path, current: current, base: base, events: events, persist: persist)
    }
}

/// The learning loops find the model each learned from a file version (SPEC §8.6); the store asks through this.
extension LearningLoops: LearnedModelSource {}

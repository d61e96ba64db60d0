#if canImport(Glibc)
import Glibc
#endif

/// SPEC §9's configuration routes: the Personalizer settings read from and written into the model's `.json` in the
/// model directory (atomically), so that hot reload puts them in force as for any edit of the file.
extension Engine {
    /// Personalizer's documented default policy arguments, answered for a model whose `.json` has no policy or `vw_args`.
    public static let personalizerDefaultPolicy = "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::"

    /// `GET …/configurations/service`.
    public func personalizerServiceConfiguration(model name: String) throws(PredictError) -> [UInt8] {
        let config = try modelJSON(of: name)
        return try settingsCall { () throws(LoopRequestError) in try PersonalizerSettings.serviceConfiguration(of: config).jsonBytes }
    }

    /// `PUT …/configurations/service`: the model's `.json` rewritten; returns the configuration as it now reads.
    public func updatePersonalizerServiceConfiguration(model name: String, body: [UInt8]) throws(PredictError) -> [UInt8] {
        let document = try Self.document(body, maxDepth: maxJSONDepth)
        let config = try modelJSON(of: name)
        if PersonalizerSettings.member("explorationPercentage", of: document) != nil { try checkEpsilonGreedy(model: name) }
        let updated = try Self.applyServiceConfiguration(document, to: config, at: configPath(of: name), name: name)
        return try settingsCall { () throws(LoopRequestError) in try PersonalizerSettings.serviceConfiguration(of: updated).jsonBytes }
    }

    /// `GET …/configurations/policy`.
    public func personalizerPolicy(model name: String) throws(PredictError) -> [UInt8] {
        let config = try modelJSON(of: name)
        return PersonalizerSettings.policy(of: config, modelArguments: Self.arguments(of: config)).jsonBytes
    }

    /// `PUT …/configurations/policy` (`body` nil: `DELETE`, the stored policy removed).
    public func updatePersonalizerPolicy(model name: String, body: [UInt8]?) throws(PredictError) -> [UInt8] {
        let config = try modelJSON(of: name)
        let updated: PersonalizerSettings.Members
        if let body {
            let document = try Self.document(body, maxDepth: maxJSONDepth)
            updated = try settingsCall { () throws(LoopRequestError) in try PersonalizerSettings.applying(policy: document, to: config) }
        } else {
            updated = PersonalizerSettings.resettingPolicy(in: config)
        }
        try writeModelJSON(updated, of: name)
        return PersonalizerSettings.policy(of: updated, modelArguments: Self.arguments(of: updated)).jsonBytes
    }

    /// `explorationPercentage` becomes the served model's `--epsilon`: only for a model exploring epsilon-greedily.
    private func checkEpsilonGreedy(model name: String) throws(PredictError) {
        guard let version = store.serving(name) else { throw .modelNotReady(name) }
        let names = Set(version.options.options.map(\.name))
        guard names.contains("cb_explore_adf") || names.contains("cb_explore") else {
            throw .invalidRequest("\"explorationPercentage\" is the epsilon of --cb_explore_adf; model '\(name)' does not explore")
        }
        let explorers = ["cover", "bag", "softmax", "regcb", "regcbopt", "squarecb", "rnd", "first", "synthcover"]
        if let other = explorers.first(where: names.contains) {
            throw .invalidRequest("\"explorationPercentage\" is the epsilon of epsilon-greedy exploration; model '\(name)' explores with --\(other)")
        }
    }

    // MARK: The model's .json

    private func settingsCall<T>(_ body: () throws(LoopRequestError) -> T) throws(PredictError) -> T {
        try Self.settingsCall(body)
    }

    private static func settingsCall<T>(_ body: () throws(LoopRequestError) -> T) throws(PredictError) -> T {
        do throws(LoopRequestError) {
            return try body()
        } catch {
            throw .invalidRequest(error.message)
        }
    }

    /// A service configuration document applied to the `.json` members `config` and written to `path`: what
    /// `PUT …/configurations/service` does, and the trainer when apprentice mode switches to online.
    static func applyServiceConfiguration(_ document: JSONValue, to config: PersonalizerSettings.Members, at path: String, name: String)
        throws(PredictError)
        -> PersonalizerSettings.Members {
        let updated = try settingsCall { () throws(LoopRequestError) in
            try PersonalizerSettings.applying(serviceConfiguration: document, to: config)
        }
        try writeModelJSON(updated, at: path, name: name)
        return updated
    }

    private static func document(_ body: [UInt8], maxDepth: Int) throws(PredictError) -> JSONValue {
        do {
            return try JSONParser.parse(body, maxDepth: maxDepth)
        } catch {
            throw .malformedBody(error.message)
        }
    }

    private static func arguments(of config: PersonalizerSettings.Members) -> String {
        guard case .array(let items)? = PersonalizerSettings.member("vw_args", of: config) else { return personalizerDefaultPolicy }
        return items.compactMap { if case .string(let text) = $0 { text } else { nil } }.joined(separator: " ")
    }

    private func configPath(of name: String) throws(PredictError) -> String {
        guard store.status(of: name) != nil else { throw .modelNotFound(name) }
        return store.settings.modelDirectory + "/" + name + ".json"
    }

    /// The members of the model's `.json` (none when it has no file).
    func modelJSON(of name: String) throws(PredictError) -> PersonalizerSettings.Members {
        try Self.modelJSON(at: configPath(of: name), name: name)
    }

    /// The members of the `.json` at `path` (none when there is no file).
    static func modelJSON(at path: String, name: String) throws(PredictError) -> PersonalizerSettings.Members {
        guard access(path, F_OK) == 0 else { return [] }
        let bytes: [UInt8]
        do throws(LoadError) {
            bytes = try ModelDirectory.read(path)
        } catch {
            throw .eventLogFailed("\(error)")
        }
        guard case .object(let members)? = try? JSONParser.parse(bytes) else {
            throw .invalidRequest("the model's \(name).json is not a JSON object; fix the file first")
        }
        return members
    }

    /// Checks the new `.json` as a reload will, then replaces the file atomically (the watcher reloads the model).
    func writeModelJSON(_ members: PersonalizerSettings.Members, of name: String) throws(PredictError) {
        try Self.writeModelJSON(members, at: configPath(of: name), name: name)
    }

    static func writeModelJSON(_ members: PersonalizerSettings.Members, at path: String, name: String) throws(PredictError) {
        let bytes = JSONValue.object(members).jsonBytes + [UInt8(ascii: "\n")]
        do throws(LoadError) {
            _ = try ModelConfig.parse(bytes)
        } catch {
            throw .invalidRequest("the settings would make \(name).json invalid: \(error)")
        }
        do throws(EventLogError) {
            try LoopFiles.writeAtomically(bytes, to: path)
        } catch {
            throw .eventLogFailed(error.message)
        }
    }
}

/// SPEC §9's model routes: export the serving model's bytes, import a VW model file through the model directory.
extension Engine {
    /// `GET …/model`: the bytes of the model serving now (the file's, or the learned version's) and its version.
    public func personalizerModelExport(model name: String) throws(PredictError) -> (bytes: [UInt8], version: String) {
        guard store.status(of: name) != nil else { throw .modelNotFound(name) }
        guard let version = store.serving(name) else { throw .modelNotReady(name) }
        do throws(EventLogError) {
            guard let bytes = try LoopFiles.read(version.stagedPath) else { throw .system("open", version.stagedPath) }
            return (bytes, version.version)
        } catch {
            throw .eventLogFailed(error.message)
        }
    }

    /// `PUT …/model`: a VW model file (its header checked here) written into the model directory with its `.sha256`,
    /// each through a name the watcher ignores and renamed, so the watcher loads it exactly like a dropped file
    /// (probe, then the normal swap; a file the probe refuses leaves the serving version in place).
    public func importPersonalizerModel(model name: String, bytes: [UInt8]) throws(PredictError) {
        guard store.status(of: name) != nil else { throw .modelNotFound(name) }
        do throws(ModelHeaderError) {
            _ = try ModelHeader.parse(Array(bytes.prefix(ModelHeader.maxHeaderBytes)))
        } catch {
            throw .invalidRequest("the body is not a VW model file: \(error.reason)")
        }
        let directory = store.settings.modelDirectory
        let upload = directory + "/." + name + ".vw.import"
        defer { unlink(upload) }
        do throws(EventLogError) {
            try LoopFiles.writeAtomically(bytes, to: upload)
        } catch {
            throw .eventLogFailed(error.message)
        }
        if let why = ModelDirectory.publish(name: name, model: upload, into: directory) { throw .eventLogFailed(why) }
    }

    /// `GET …/model/properties`: when the serving version was loaded (Personalizer's creation and modification times).
    public func personalizerModelProperties(model name: String) throws(PredictError) -> [UInt8] {
        guard let status = store.status(of: name) else { throw .modelNotFound(name) }
        guard let loaded = status.loadedAt else { throw .modelNotReady(name) }
        return JSONValue.object([("creationTime", .string(loaded)), ("lastModifiedTime", .string(loaded))]).jsonBytes
    }
}

extension Engine {
    /// `GET …/logs/properties`: `{"dateRange": {"from", "to"}}` of the model's logged events (null ends without a log).
    public func personalizerLogProperties(model name: String) throws(PredictError) -> [UInt8] {
        guard store.status(of: name) != nil else { throw .modelNotFound(name) }
        let range = LogDateRange.of(directory: loops.stateDirectory + "/" + name + "/log")
        let from: JSONValue = range.from.map { .string($0) } ?? .null
        let to: JSONValue = range.to.map { .string($0) } ?? .null
        return JSONValue.object([("dateRange", .object([("from", from), ("to", to)]))]).jsonBytes
    }
}

/// SPEC §9's reset routes: `DELETE …/model` and `DELETE …/logs`.
extension Engine {
    /// `DELETE …/model`: a fresh model, made by vw (sandboxed, as the trainer's) from the current policy's arguments
    /// and no data, imported exactly like `PUT …/model`: probed, then served through the normal swap. As any file
    /// dropped into the model directory, it becomes the loop's new base (SPEC §8.6): learning continues from it with
    /// the events joined after the current join position.
    public func resetPersonalizerModel(model name: String) throws(PredictError) {
        let config = try modelJSON(of: name)
        guard case .object(let policy) = PersonalizerSettings.policy(of: config, modelArguments: Self.arguments(of: config)),
              case .string(let arguments)? = policy.last(where: { $0.key == "arguments" })?.value else {
            throw .invalidRequest("the model's stored policy has no \"arguments\" string; PUT …/configurations/policy first")
        }
        let tokens = VWOptions.split(arguments)
        do throws(VWOptionsError) {
            let options = try VWOptions.check(tokens)
            if let owned = options.first(where: { ["data", "initial_regressor", "final_regressor", "predictions"].contains($0.name) }) {
                throw VWOptionsError.malformed("option --\(owned.name) is set by the reset")
            }
        } catch {
            throw .invalidRequest("the policy arguments cannot make a model: \(error.reason)")
        }
        let work: StateDirectory
        do throws(EventLogError) {
            work = try StateDirectory.root(loops.stateDirectory).directory(name + "/reset")
            for entry in work.list() { work.remove(entry) }
        } catch {
            throw .eventLogFailed(error.message)
        }
        let result = VWProcess.runToEnd(
            arguments: store.settings.vwCommand + tokens + ["-f", work.path + "/fresh.vw", "--quiet"],
            memoryLimit: SandboxPolicy.defaultMemoryLimit, writableDirectory: WritableDirectory(work, maxFileBytes: 1 << 30),
            deadline: .after(.seconds(300))
        )
        defer { work.remove("fresh.vw") }
        guard result.exitStatus == 0, let bytes = (try? work.read("fresh.vw")) ?? nil else {
            let why = result.errorText.isEmpty ? "exit status \(result.exitStatus)" : result.errorText
            throw .invalidRequest("vw could not make a model from the policy arguments \"\(arguments)\": \(why)")
        }
        try importPersonalizerModel(model: name, bytes: bytes)
    }

    /// `DELETE …/logs`: the current log segment is closed, then every log segment and joined file the retention
    /// mechanism finds deletable is deleted now, whatever its age (issue 24's rules: a segment once the join has read
    /// it to its end and no pending decision refers to it; a joined file once it is learned, or always when the model
    /// does not learn here). Events still waiting for their rewards, and joined events not learned yet, are kept and
    /// go through the loop as usual. Returns the bytes deleted.
    @discardableResult
    public func deletePersonalizerLogs(model name: String) throws(PredictError) -> Int {
        guard store.status(of: name) != nil else { throw .modelNotFound(name) }
        let serving = store.serving(name)
        let config = serving?.loop ?? LoopConfig()
        let learns = serving.map { $0.loop.map { $0.externalTrainer == loops.externalTrainer } ?? false } ?? true
        let loop: ModelLoop
        do throws(EventLogError) {
            loop = try loops.loop(for: name)
        } catch {
            throw .eventLogFailed(error.message)
        }
        loop.rotate()
        var deleted = 0
        // A pass offers at most `Retention.joinedPerPass` joined files: passes until nothing more is deletable.
        var more = true
        while more, let usage = loop.scanState(config: config, learns: learns, now: Int(EventLine.nowMilliseconds() / 1000)) {
            for file in usage.deletable where file.kind == .log || file.kind == .joined {
                loop.delete(file)
                deleted += file.bytes
            }
            more = usage.moreDeletable
        }
        return deleted
    }
}

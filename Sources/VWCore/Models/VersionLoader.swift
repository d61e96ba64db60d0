#if canImport(Glibc)
import Glibc
#endif
public import Logging
import Synchronization

/// Turns a model's files, or a learned model file, into a started version: stage a private copy,
/// check it (checksum, header, allowlist, config, memory), start its shards and probe them.
///
/// It never publishes: the store decides what serves.
final class VersionLoader: Sendable {
    let settings: EngineSettings
    private let logger: Logger
    private let learnedModels: (any LearnedModelSource)?
    /// Makes every staged copy's name unique (A→B→A must not share a file with the retiring A).
    private let stagingSerial = Atomic<Int>(0)

    init(settings: EngineSettings, logger: Logger, learnedModels: (any LearnedModelSource)?) {
        self.settings = settings
        self.logger = logger
        self.learnedModels = learnedModels
    }

    /// A model file copied into the staging directory: the exact bytes a version starts from.
    struct StagedFile {
        var path: String
        var hash: SHA256
        var headerPrefix: [UInt8]
    }

    /// Loads the model's files into a new version, or returns nil when their content is `unlessVersion`.
    ///
    /// When the learning loop has a model learned from exactly this file (``LearnedModelSource``),
    /// that model is loaded instead, so a restart resumes the learned version (SPEC §8.6); if it does not
    /// load, the file is.
    func load(name: String, unlessVersion: String?) throws(LoadError) -> ModelVersion? {
        let base = settings.modelDirectory + "/" + name
        let staged = try stage(base + ".vw", name: name)
        var started = false
        defer { if !started { unlink(staged.path) } }
        let configBytes = try self.configBytes(of: name)
        let version = Self.versionName(staged, config: configBytes)
        let baseFile = Self.versionName(staged, config: nil)
        if FileStamp(path: base + ".sha256") != nil {
            let text = String(decoding: try ModelDirectory.read(base + ".sha256"), as: UTF8.self)
            let expected = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).first.map { $0.lowercased() } ?? ""
            var digest = staged.hash
            let actual = digest.finalize().hexString
            if expected != actual { throw .checksumMismatch(expected: expected, actual: actual) }
        } else if settings.requireChecksum {
            throw .unreadable("\(name).sha256 is missing (--require-checksum)")
        }
        let loop = try configBytes.map { bytes throws(LoadError) in try ModelConfig.parse(bytes) }?.loop
        if let loop, let learned = learnedModels?.learnedModel(name: name, base: version, baseFile: baseFile, loop: loop) {
            do {
                let learnedStaged = try stage(learned.path, name: name)
                var learnedStarted = false
                defer { if !learnedStarted { unlink(learnedStaged.path) } }
                let learnedVersion = Self.versionName(learnedStaged, config: configBytes)
                if learnedVersion == unlessVersion { return nil }
                let loaded = try start(
                    name: name, staged: learnedStaged, version: learnedVersion, configBytes: configBytes,
                    origin: .learned(base: version, events: learned.events), baseFile: baseFile
                )
                learnedStarted = true
                return loaded
            } catch {
                logger.error("the learned model does not load; serving the model file", metadata: [
                    "model": "\(name)", "learned": "\(learned.path)", "reason": "\(error.description)",
                ])
            }
        }
        if version == unlessVersion { return nil }
        let loaded = try start(name: name, staged: staged, version: version, configBytes: configBytes, origin: .file, baseFile: baseFile)
        started = true
        return loaded
    }

    /// Loads the model file at `path` (a learned model) with the model's current `.json`, as a dropped file would load;
    /// `baseFile` is the ``ModelVersion/baseFile`` of the version it was learned from.
    func load(name: String, path: String, origin: ModelOrigin, baseFile: String) throws(LoadError) -> ModelVersion {
        let configBytes = try self.configBytes(of: name)
        let staged = try stage(path, name: name)
        do {
            return try start(
                name: name, staged: staged, version: Self.versionName(staged, config: configBytes), configBytes: configBytes, origin: origin,
                baseFile: baseFile
            )
        } catch {
            unlink(staged.path)
            throw error
        }
    }

    private func configBytes(of name: String) throws(LoadError) -> [UInt8]? {
        let path = settings.modelDirectory + "/" + name + ".json"
        return FileStamp(path: path) != nil ? try ModelDirectory.read(path) : nil
    }

    /// Streams `source` into a private staged copy, hashing it and checking its header on the way
    /// (on the first 64 KiB, before anything else is read); never reads it whole into memory.
    private func stage(_ source: String, name: String) throws(LoadError) -> StagedFile {
        let serial = String(stagingSerial.add(1, ordering: .relaxed).newValue)
        let staged = settings.stagingDirectory + "/" + name + "-" + serial + ".partial"
        var headerPrefix: [UInt8] = []
        do {
            let hash = try ModelDirectory.stage(source, to: staged, maxBytes: settings.maxModelBytes) { prefix throws(LoadError) in
                do throws(ModelHeaderError) {
                    _ = try ModelHeader.parse(prefix)
                } catch {
                    throw .unreadable("not a VW model file: \(error.reason)")
                }
                headerPrefix = prefix
            }
            return StagedFile(path: staged, hash: hash, headerPrefix: headerPrefix)
        } catch {
            unlink(staged)
            throw error
        }
    }

    /// The version name of a model's bytes with its config: the first 12 hex digits of SHA-256(model + config)
    /// (of the model alone without a config: its ``ModelVersion/baseFile``).
    static func versionName(_ staged: StagedFile, config: [UInt8]?) -> String {
        var hash = staged.hash
        hash.update(config ?? [])
        return String(hash.finalize().hexString.prefix(12))
    }

    /// Checks a staged model against the allowlist and its config, and starts its shards (probed).
    ///
    /// On success the staged copy belongs to the returned version (renamed to a unique name and
    /// unlinked when the version retires); on failure the caller still owns (and removes) it.
    private func start(
        name: String, staged: StagedFile, version: String, configBytes: [UInt8]?, origin: ModelOrigin, baseFile: String
    ) throws(LoadError) -> ModelVersion {
        let config = try configBytes.map { bytes throws(LoadError) in try ModelConfig.parse(bytes) } ?? ModelConfig()
        let header: ModelHeader
        do {
            header = try ModelHeader.parse(staged.headerPrefix)
        } catch {
            throw .unreadable("not a VW model file: \(error.reason)")
        }
        // vw applies the options stored in the model file itself (their checksum is no protection):
        // they pass the same allowlist as `vw_args`.
        let options = try ModelOptions.check(header: header, extra: config.vwArgs)
        // A 231-byte model can ask for gigabytes (`-b 26 --random_weights`): estimated from the header, refused before vw starts.
        if settings.vwMemoryLimit > 0, let estimate = ModelMemoryEstimate(options: options, shards: config.shards ?? settings.defaultShards),
           let why = estimate.problem(limit: settings.vwMemoryLimit) {
            throw .invalidConfig(why)
        }
        let framing = ExampleFraming(family: options.family, blankLineAfterEach: options.answersEndWithBlankLine)
        let jsonGrammar: VWJSONGrammar?
        switch config.input {
        case .vwText:
            jsonGrammar = nil
        case .vwJSON:
            guard let grammar = VWJSONGrammar(family: options.family, limits: settings.limits) else {
                throw .invalidConfig("\"input\": \"vw_json\" is not supported for \(options.family) models")
            }
            jsonGrammar = grammar
        }
        let probe = try probeBatch(config: config, framing: framing, json: jsonGrammar)

        // Unique per load: a retiring version unlinks its own copy, never the one of a newer load of the same bytes.
        let serial = String(stagingSerial.add(1, ordering: .relaxed).newValue)
        let path = settings.stagingDirectory + "/" + name + "-" + version + "-" + serial + ".vw"
        guard rename(staged.path, path) == 0 else {
            throw .unreadable("cannot stage \(name): \(String(cString: strerror(errno)))")
        }
        // `--json` is the server's own choice (SPEC §8.1), never a user option: the allowlist refuses it in vw_args.
        let arguments = VWProcess.arguments(
            command: settings.vwCommand, modelPath: path, extraArguments: config.vwArgs + (jsonGrammar != nil ? ["--json"] : [])
        )
        var poolLogger = logger
        poolLogger[metadataKey: "model"] = "\(name)"
        poolLogger[metadataKey: "version"] = "\(version)"
        let pool = ShardPool(
            modelName: name, arguments: arguments, count: config.shards ?? settings.defaultShards,
            maxQueuedRequests: settings.maxQueuedRequests, hangTimeout: settings.requestTimeout, logger: poolLogger
        )
        do {
            try pool.start(probe: probe, timeout: settings.loadTimeout)
        } catch {
            pool.stop(grace: .milliseconds(100))
            unlink(path)
            throw error
        }
        let loaded = ModelVersion(
            name: name, version: version, loadedAt: rfc3339Now(), vwArgs: config.vwArgs, framing: framing,
            options: options, jsonGrammar: jsonGrammar, loop: config.loop, origin: origin, baseFile: baseFile,
            maxBatch: config.maxBatch ?? settings.maxBatch, pool: pool, stagedPath: path
        )
        loaded.attachNative(config: config, settings: settings, logger: poolLogger)  // SPEC §11: native only once verified
        return loaded
    }

    /// The warmup examples, or a minimal example of the model's family that every model answers.
    ///
    /// For a `vw_json` model each warmup example is the text of one JSON object.
    private func probeBatch(config: ModelConfig, framing: ExampleFraming, json: VWJSONGrammar?) throws(LoadError) -> PreparedBatch {
        var builder = ExampleBatchBuilder(framing: framing, limits: settings.limits)
        let minimal = json.map { $0.isCCB ? #"{"_multi":[{}],"_slots":[{}]}"# : $0.isADF ? #"{"_multi":[{}]}"# : "{}" }
            ?? Self.minimalExample(of: framing.family)
        let examples = config.warmup.isEmpty ? [minimal] : config.warmup
        for (index, example) in examples.enumerated() {
            do throws(ExampleProblem) {
                if let json {
                    builder.append(json: try json.parse(bytes: Array(example.utf8)))
                } else {
                    let lines = framing.isMultiline ? example.split(separator: "\n", omittingEmptySubsequences: false) : [Substring(example)]
                    try builder.append(lines: lines)
                }
            } catch {
                throw .invalidConfig("warmup example \(index): \(error.reason)")
            }
        }
        return builder.finish()
    }

    /// The smallest example vw answers for each family (`--csoaa_ldf` answers nothing for an unlabelled one).
    static func minimalExample(of family: ExampleFamily) -> String {
        switch family {
        case .csoaaLDF: "0:0 |"
        case .ccb: "ccb shared |\nccb action |\nccb slot |"
        case .slates: "slates shared |\nslates action 0 |\nslates slot |"
        default: "|"
        }
    }
}

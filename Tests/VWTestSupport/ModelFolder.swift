#if canImport(Glibc)
import Glibc
#endif
public import VWCore

/// The directory of the model files the tests load (`Tests/VWCoreTests/Fixtures`).
public let fixturesDirectory: String = {
    var path = #filePath
    for _ in 0..<2 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path + "/VWCoreTests/Fixtures"
}()

/// A temporary model directory and staging directory with a stand-in vw, for tests that construct a
/// store, an engine or a router without the real vw.
///
/// The stand-in speaks vw's stdin/stdout protocol for single-line models: it answers each example
/// line with `0.5` and the line's tag, as `vw -t -p /dev/stdout` prints a prediction. While
/// ``failsToStart`` is true it exits at once, so a load's probe fails.
public struct ModelFolder: Sendable {
    public let root: String
    public var models: String { root + "/models" }
    public var staging: String { root + "/staging" }
    public var standInVW: String { root + "/vw" }

    static let standInScript = """
        #!/bin/sh
        # A stand-in for vw: `vw -i <model> -t -d /dev/stdin -p /dev/stdout --quiet ...`.
        if [ -e "${0%/*}/fail" ]; then echo "the stand-in vw was told to fail" >&2; exit 3; fi
        set -f
        while IFS= read -r line; do
            tag=
            for word in ${line%%|*}; do
                case $word in "'"*) tag=${word#?} ;; esac
            done
            if [ -n "$tag" ]; then printf '0.5 %s\\n' "$tag"; else printf '0.5\\n'; fi
        done

        """

    public init() {
        var template = Array("/tmp/vwfcgi-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let made else { preconditionFailure("mkdtemp failed") }
        root = String(cString: made)
        mkdir(root + "/models", 0o755)
        mkdir(root + "/staging", 0o700)
        write(Self.standInScript, to: root + "/vw")
        chmod(root + "/vw", 0o755)
    }

    /// Settings that load from ``models`` with the stand-in vw (the vw engine) and short timeouts.
    public func settings() -> EngineSettings {
        var settings = EngineSettings(modelDirectory: models, vwCommand: [standInVW], stagingDirectory: staging)
        settings.loadTimeout = .seconds(10)
        settings.drainGrace = .milliseconds(500)
        // The stand-in vw is not VW: the native scorer would never match it, so the pool answers.
        settings.native.mode = .vw
        return settings
    }

    /// Writes `text` to `file` of the model directory.
    public func write(_ text: String, model file: String) {
        write(text, to: models + "/" + file)
    }

    /// Copies fixture `fixture` to `file` of the model directory.
    public func copy(fixture: String, to file: String) {
        copy(fixturesDirectory + "/" + fixture, to: models + "/" + file)
    }

    /// Copies the file at `source` to `destination` (written beside it, then renamed into place, as a writer should).
    public func copy(_ source: String, to destination: String) {
        guard let input = fopen(source, "rb") else { preconditionFailure("cannot read \(source)") }
        defer { fclose(input) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = fread(&buffer, 1, buffer.count, input)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        write(bytes, to: destination)
    }

    public func removeModelFile(_ file: String) {
        unlink(models + "/" + file)
    }

    /// Whether the stand-in vw exits at start (its probe fails).
    public func failsToStart(_ fails: Bool) {
        if fails { write("", to: root + "/fail") } else { unlink(root + "/fail") }
    }

    /// The staged model copies of the versions not yet retired.
    public var stagedModels: [String] {
        guard let dir = opendir(staging) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name.hasSuffix(".vw") { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes the folder and everything in it.
    public func destroy() {
        _ = system("rm -rf '\(root)'")
    }

    private func write(_ text: String, to path: String) {
        write(Array(text.utf8), to: path)
    }

    private func write(_ bytes: [UInt8], to path: String) {
        let temporary = path + ".tmp"
        guard let file = fopen(temporary, "wb") else { preconditionFailure("cannot write \(temporary)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
        rename(temporary, path)
    }
}

/// Waits up to `timeout` for `condition` to hold, looking every 10 ms; returns whether it held.
public func eventually(within timeout: Duration = .seconds(5), _ condition: () -> Bool) -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

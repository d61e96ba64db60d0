#if canImport(Glibc)
import Glibc
#endif
@testable import VWCore

/// The package root, found from this file's path.
let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()

/// The repository's vw launcher, which runs VW through the `.venv`'s vowpalwabbit package.
let vwPath = repositoryRoot + "/bin/vw"
let vwAvailable = access(repositoryRoot + "/.venv/bin/python", X_OK) == 0

/// Runs `arguments` through `VWProcess.spawn` (so sandboxed, as the server runs vw) with `input`
/// on stdin until it exits; returns stdout and how it ended.
func runSandboxed(_ arguments: [String], input: [UInt8]) throws -> (output: String, status: String) {
    let process = try VWProcess.spawn(arguments: arguments)
    let written = input.withUnsafeBytes { process.writeAll($0, by: .after(.seconds(30))) }
    process.closeInput()
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = buffer.withUnsafeMutableBytes { VWProcess.read(process.stdoutFD, into: $0) }
        if count <= 0 { break }
        output.append(contentsOf: buffer[0..<count])
    }
    let status = process.reap()
    _ = Glibc.close(process.stdoutFD)
    _ = Glibc.close(process.stderrFD)
    return (String(decoding: output, as: UTF8.self), written ? status : "write failed, " + status)
}

/// Runs `arguments` outside the sandbox with `input` on stdin (from a file); returns system(3)'s status.
func runOutsideSandbox(_ arguments: [String], input: String) -> Int32 {
    let inputPath = "/tmp/vwfcgi-test-\(getpid())-input.txt"
    defer { unlink(inputPath) }
    guard let file = fopen(inputPath, "w") else { return -1 }
    fputs(input, file)
    fclose(file)
    return system(arguments.map { "'" + $0 + "'" }.joined(separator: " ") + " <'\(inputPath)' >/dev/null 2>&1")
}

/// Trains `model` with `bin/vw --quiet -d <data> -f <model> <arguments>` outside the sandbox (vw
/// must write the model file); returns how it ended, as `runSandboxed` does.
func train(_ arguments: [String], data: String, to model: String) -> (output: String, status: String) {
    let dataPath = model + ".train.txt"
    defer { unlink(dataPath) }
    guard let file = fopen(dataPath, "w") else { return ("", "cannot write \(dataPath)") }
    fputs(data, file)
    fclose(file)
    let command = ([vwPath, "--quiet", "-d", dataPath, "-f", model] + arguments).map { "'" + $0 + "'" }.joined(separator: " ")
    let status = system(command + " >/dev/null 2>&1")
    return ("", status == 0 ? "exited with code 0" : "exited with status \(status)")
}


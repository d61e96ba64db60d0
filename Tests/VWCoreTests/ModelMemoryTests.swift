import Glibc
import Testing
@testable import VWCore

/// `ModelMemoryEstimate` against what vw 9.11 really allocates: a tiny model is trained per base
/// learner, and the address space `vw -i model -t` adds (measured in a fresh Python process through
/// the vowpalwabbit package) must be the estimate plus VW's own few MiB.
@Suite(.serialized, .enabled(if: vwAvailable, "needs .venv with vowpalwabbit"))
struct ModelMemoryTests {
    /// Bytes of address space `vowpalwabbit.Workspace("-i <model> -t")` adds, read from /proc/self/statm.
    private func measured(_ model: String) -> UInt64? {
        let out = model + ".vmsize"
        defer { unlink(out) }
        let script = "import vowpalwabbit\ndef vm(): return int(open('/proc/self/statm').read().split()[0]) * 4096\n"
            + "b = vm(); w = vowpalwabbit.Workspace('-i \(model) -t --quiet'); print(vm() - b)"
        let command = "'\(repositoryRoot)/.venv/bin/python' -c \"\(script)\" > '\(out)' 2>/dev/null"
        guard system(command) == 0, let file = fopen(out, "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        return UInt64(String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    @Test(arguments: [["-b", "22"], ["-b", "22", "--oaa", "3"], ["-b", "21", "--ftrl"], ["-b", "21", "--coin"], ["-b", "20", "--freegrad"], ["-b", "23", "--nn", "2"]])
    func estimateIsWhatVWAllocates(arguments: [String]) throws {
        let model = "/tmp/vwfcgi-memory-\(getpid())-\(arguments.joined()).vw"
        defer { unlink(model) }
        let data = arguments.contains("--oaa") ? "1 |a x\n2 |a y\n3 |a z\n" : "1 |a x\n0 |a y\n"
        let trained = train(arguments, data: data, to: model)
        try #require(trained.status == "exited with code 0", "training \(arguments): \(trained.status)")
        let header = try ModelHeader.read(path: model)
        let options = ModelOptions(stored: try VWOptions.check(VWOptions.headerCommandLine(header.options)), extra: [], storedBits: header.bits)
        let estimate = try #require(ModelMemoryEstimate(options: options, shards: 3))
        let actual = try #require(measured(model), "could not measure vw's address space")
        // VW's own allocations besides the weights: a few MiB.
        #expect(actual >= estimate.bytesPerShard && actual < estimate.bytesPerShard + (24 << 20),
                "\(arguments): vw added \(actual >> 20) MiB, estimated \(estimate.bytesPerShard >> 20) MiB")
        #expect(estimate.totalBytes == 3 * estimate.bytesPerShard)
    }

    @Test func aBigTableIsRefusedAboveTheLimitWithTheReason() throws {
        // The model: 231 bytes, -b 26 --random_weights, 4 shards: 1 GiB of weights.
        let options = ModelOptions(stored: [VWOption(name: "bit_precision", values: ["26"]), VWOption(name: "random_weights")], extra: [])
        let estimate = try #require(ModelMemoryEstimate(options: options, shards: 4))
        #expect(estimate.bytesPerShard == 256 << 20 && estimate.totalBytes == 1 << 30)
        #expect(estimate.problem(limit: 4 << 30) == nil)
        #expect(estimate.problem(limit: 512 << 20)
            == "the model's weights take about 1.0 GiB (256 MiB per vw process × 4 shard(s): 2^b slots as stored in the model file), above --vw-memory-limit 512 MiB")
        #expect(ModelMemoryEstimate(options: ModelOptions(stored: [VWOption(name: "sparse_weights")], extra: []), shards: 1) == nil)
        // No -b: VW's default 18 bits.
        #expect(ModelMemoryEstimate(options: ModelOptions(stored: [], extra: []), shards: 1)?.bytesPerShard == 1 << 20)
    }
}

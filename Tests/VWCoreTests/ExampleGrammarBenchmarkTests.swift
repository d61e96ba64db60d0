import Testing
import VWCore

/// A micro-benchmark of the batch builder (grammar, server tags, answer frame) and of the grammar alone (run it in release:
/// `VWFCGI_BENCH=1 swift test -c release --filter ExampleGrammarBenchmark`). Prints ns per example;
/// asserts nothing about time.
@Suite(.enabled(if: ProcessInfoLite.environment("VWFCGI_BENCH") != nil, "set VWFCGI_BENCH=1"))
struct ExampleGrammarBenchmarkTests {
    static let workloads: [(name: String, family: ExampleFamily, multiline: Bool, example: [Substring])] = {
        let typical: Substring = "1 0.5 'req42 |user age:0.3 city=paris f1 f2 f3 |item id123 price:9.99 cat=shoes"
        let wide = Substring("|a " + (0..<1000).map { "f\($0):0.\($0 % 10 + 1)" }.joined(separator: " "))
        let adf: [Substring] = ["shared |u age:0.3 city=paris"] + (0..<10).map { Substring("|a id\($0) price:\($0).5 cat=c\($0 % 3)") }
        return [
            ("single-line, 8 features", .simple, false, [typical]),
            ("single-line, 1000 features", .simple, false, [wide]),
            ("cb_adf, shared + 10 actions", .cbADF, true, adf),
        ]
    }()

    @Test func builderAndGrammar() throws {
        // VWFCGI_BENCH=1 runs every workload; any other value only those whose name contains it.
        let only = ProcessInfoLite.environment("VWFCGI_BENCH") ?? "1"
        for workload in Self.workloads where only == "1" || workload.name.contains(only) {
            let iterations = workload.example.count * workload.example[0].utf8.count > 2_000 ? 5_000 : 200_000
            let clock = ContinuousClock()
            var sink = 0

            // The batch builder as the engine runs it: the grammar plus server tags and the answer frame.
            var best = Duration.seconds(1_000)
            let framing = ExampleFraming(family: workload.family, blankLineAfterEach: workload.multiline)
            for _ in 0..<3 {
                let start = clock.now
                var builder = ExampleBatchBuilder(framing: framing, reservingCapacity: 1 << 16)
                for index in 0..<iterations {
                    try builder.append(lines: workload.example)
                    if index % 256 == 255 { sink &+= builder.finish().payload.count; builder = ExampleBatchBuilder(framing: framing, reservingCapacity: 1 << 16) }
                }
                sink &+= builder.finish().payload.count
                best = min(best, clock.now - start)
            }
            let today = best

            // The grammar: parse, then write the canonical form with a server tag.
            let grammar = ExampleGrammar(family: workload.family)
            let tag = Array("r123456".utf8)
            best = .seconds(1_000)
            for _ in 0..<3 {
                let start = clock.now
                var payload: [UInt8] = []
                payload.reserveCapacity(1 << 16)
                for index in 0..<iterations {
                    let parsed = try grammar.parse(lines: workload.example)
                    parsed.write(serverTag: tag, into: &payload)
                    sink &+= parsed.answerLines
                    if index % 256 == 255 { sink &+= payload.count; payload.removeAll(keepingCapacity: true) }
                }
                best = min(best, clock.now - start)
            }
            let grammarTime = best
            let perToday = Double(today.components.attoseconds) / 1e9 / Double(iterations) + Double(today.components.seconds) * 1e9 / Double(iterations)
            let perGrammar = Double(grammarTime.components.attoseconds) / 1e9 / Double(iterations) + Double(grammarTime.components.seconds) * 1e9 / Double(iterations)
            print("bench \(workload.name): batch builder \(Int(perToday)) ns/example, of which grammar+write \(Int(perGrammar)) ns/example (\(String(Int(perGrammar / perToday * 100)))%)")
            #expect(sink != 0)
        }
    }
}

/// getenv without Foundation.
enum ProcessInfoLite {
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}

#if canImport(Glibc)
import Glibc
#endif

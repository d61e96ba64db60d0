import Testing
import VWCore

struct LabelPolicyTests {
    @Test func onlyLabelDependentReductionsKeepMultilineLabels() throws {
        func keeps(_ stored: [String]) throws -> Bool {
            try ModelOptions.check(stored: stored, extra: []).keepsMultilineLabels
        }
        #expect(try keeps(["--csoaa_ldf", "multiline"]))
        #expect(try keeps(["--wap_ldf", "m"]))
        // What --cb_explore_adf stores in its model file.
        #expect(try !keeps(["--cb_adf", "--cb_explore_adf", "--csoaa_ldf", "multiline", "--csoaa_rank"]))
        #expect(try !keeps(["--oaa", "3"]))
    }

    @Test func banditLabelsAreDroppedAndLDFLabelsKept() throws {
        var bandit = ExampleBatchBuilder(multiline: true, validator: ExampleValidator())
        try bandit.append(lines: ["shared 'u1 |u x", "0:1:0.5 |a id0", "|a id1"])
        #expect(String(decoding: bandit.finish().payload, as: UTF8.self) == "shared 'u1 |u x\n|a id0\n|a id1\n\n")

        var ldf = ExampleBatchBuilder(multiline: true, validator: ExampleValidator(), keepsMultilineLabels: true)
        try ldf.append(lines: ["1:0 |a id0", "2:0 |a id1"])
        #expect(String(decoding: ldf.finish().payload, as: UTF8.self) == "1:0 |a id0\n2:0 |a id1\n\n")
    }
}

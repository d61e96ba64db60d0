import Foundation
import Testing
import VWCore

@Suite struct ModelHeaderTests {
    /// A model file written by vw 9.11.9 (`-b 10`), kept in Fixtures/.
    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
    }

    @Test func linearModelWithQuadraticInteractions() throws {
        let header = try ModelHeader.read(path: Self.fixture("quadratic.vw"))
        #expect(header == ModelHeader(vwVersion: "9.11.9", options: ["--quadratic", "ab"], bits: 10))
    }

    @Test func oneAgainstAllModel() throws {
        let header = try ModelHeader.read(path: Self.fixture("oaa3.vw"))
        #expect(header == ModelHeader(vwVersion: "9.11.9", options: ["--oaa", "3"], bits: 10))
    }

    @Test func contextualBanditExploreADFModel() throws {
        let header = try ModelHeader.read(path: Self.fixture("cb_explore_adf.vw"))
        #expect(header.vwVersion == "9.11.9")
        #expect(header.options == ["--cb_adf", "--cb_explore_adf", "--cb_type", "mtr", "--csoaa_ldf", "multiline", "--csoaa_rank"])
    }

    @Test func modelWithoutOptionsHasNone() throws {
        let header = try ModelHeader.read(path: Self.fixture("no_options.vw"))
        #expect(header == ModelHeader(vwVersion: "9.11.9", options: [], bits: 10))
    }

    @Test func aHeaderVWWouldReadDifferentlyIsRefused() throws {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.fixture("quadratic.vw"))))
        bytes[16] = UInt8(ascii: "x")  // the 'm' after the model id
        #expect(throws: ModelHeaderError.malformed("no 'm' after the model id")) { try ModelHeader.parse(bytes) }
    }

    @Test func truncatedAndGarbageFilesAreRejected() throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.fixture("quadratic.vw"))))
        #expect(throws: ModelHeaderError.tooShort) { try ModelHeader.parse([]) }
        #expect(throws: ModelHeaderError.tooShort) { try ModelHeader.parse(Array(bytes.prefix(3))) }
        #expect(throws: ModelHeaderError.tooShort) { try ModelHeader.parse(Array(bytes.prefix(8))) }
        // Cut inside VW 9's header fields: the options vw would read are missing, so nothing is assumed about them.
        #expect(throws: ModelHeaderError.tooShort) { try ModelHeader.parse(Array(bytes.prefix(40))) }
        #expect(throws: ModelHeaderError.notAVWModel) { try ModelHeader.parse(Array("hello world, not a model".utf8)) }
        #expect(throws: ModelHeaderError.notAVWModel) { try ModelHeader.parse([4, 0, 0, 0, 0x39, 0x2E, 0x41, 0]) }
        #expect(throws: ModelHeaderError.notAVWModel) { try ModelHeader.parse([4, 0, 0, 0, 0x39, 0x2E, 0x31, 0x31]) }
    }

    @Test func garbageFileOnDiskIsRejected() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vwcore-garbage-\(UUID()).vw").path
        try Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37) }).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: ModelHeaderError.notAVWModel) { try ModelHeader.read(path: path) }
    }

    @Test func missingFileIsUnreadable() {
        #expect(throws: ModelHeaderError.unreadable(errno: 2)) { try ModelHeader.read(path: "/nonexistent/model.vw") }
    }

    @Test(arguments: [
        // Stored options of models trained with vw 9.11.9.
        ("--quadratic ab", false, PredictionKind.plain, false),
        ("--oaa 3", false, .plain, false),
        ("--cb_adf --cb_type mtr --csoaa_ldf multiline --csoaa_rank", true, .plain, true),
        ("--cb_adf --cb_explore_adf --cb_type mtr --csoaa_ldf multiline --csoaa_rank", true, .actionProbabilities, true),
        ("--cb_adf --cb_explore_adf --cb_sample --cb_type mtr --ccb_explore_adf --csoaa_ldf multiline --csoaa_rank --random_seed 2147483647",
         true, .actionProbabilities, true),
        ("--csoaa_ldf multiline", true, .plain, true),
        ("--csoaa_ldf multiline --csoaa_rank", true, .actionScores, true),
        ("--wap_ldf multiline", true, .plain, true),
        // `--cb 3` / `--cb_explore 3` read single lines but VW 9 runs them through cb_adf, which prints a blank line after each answer.
        ("--cb 3 --cb_adf --cb_type mtr --csoaa_ldf multiline --csoaa_rank", false, .plain, true),
        ("--cb_adf --cb_explore 3 --cb_explore_adf --cb_type mtr --csoaa_ldf multiline --csoaa_rank", false, .actionProbabilities, true),
        ("--cb 3 --cb_force_legacy --cb_type dr --csoaa 3", false, .plain, false),
        ("--cb_adf --cb_explore_adf --cb_type mtr --cbify 3 --csoaa_ldf multiline --csoaa_rank", false, .plain, false),
        ("--slates --ccb_explore_adf", true, .actionProbabilities, true),
        ("--csoaa_ldf=multiline", true, .plain, true),
    ])
    func optionsDecideLayoutAndPredictionKind(options: String, multiline: Bool, kind: PredictionKind, blankLine: Bool) throws {
        let derived = try ModelOptions.check(stored: VWOptions.split(options), extra: [])
        #expect(derived.family.isMultiline == multiline)
        #expect(derived.predictionKind == kind)
        #expect(derived.answersEndWithBlankLine == blankLine)
    }
}

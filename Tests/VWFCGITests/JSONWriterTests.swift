import Testing
import VWCore
@testable import VWFCGI

private func written(_ body: (inout JSONWriter) -> Void) -> String {
    var writer = JSONWriter()
    body(&writer)
    return String(decoding: writer.bytes, as: UTF8.self)
}

@Suite struct JSONWriterTests {
    @Test func placesCommasItself() {
        #expect(written {
            $0.beginObject()
            $0.key("a"); $0.int(12)
            $0.key("b"); $0.beginArray(); $0.int(-3); $0.null(); $0.double(.nan); $0.raw("1e-05".utf8); $0.endArray()
            $0.key("c"); $0.string(orNull: nil)
            $0.key("d"); $0.beginObject(); $0.endObject()
            $0.endObject()
        } == #"{"a":12,"b":[-3,null,null,1e-05],"c":null,"d":{}}"#)
    }

    @Test func quotesPlainStringsUnchanged() {
        #expect(written { $0.string("héllo 😀") } == "\"héllo 😀\"")
    }

    @Test func escapesQuotesBackslashesAndControlCharacters() {
        #expect(written { $0.string("a\"b\\c\nd\te\r\u{8}\u{c}") } == #""a\"b\\c\nd\te\r\b\f""#)
        #expect(written { $0.string("\u{0}\u{1f}\u{7f}") } == #""\u0000\u001f\u007f""#)
    }

    @Test func escapedStringsParseBack() throws {
        let original = "x\u{0}\"\\\n\u{1}é😀"
        let bytes = written { $0.string(original) }
        #expect(try JSONParser.parse(Array(bytes.utf8)) == .string(original))
    }

    @Test func writesScalarPredictions() {
        #expect(written { $0.prediction(.number("0.413788")) } == "0.413788")
        #expect(written { $0.prediction(.number("-1e-05")) } == "-1e-05")
        #expect(written { $0.prediction(.integer(3)) } == "3")
        #expect(written { $0.prediction(.text("a \"b\"")) } == #""a \"b\"""#)
    }

    @Test func writesNonNumbersFromVWAsStrings() {
        #expect(written { $0.prediction(.number("nan")) } == #""nan""#)
        #expect(written { $0.prediction(.number("-inf")) } == #""-inf""#)
    }

    @Test func writesActionLists() {
        let pairs = [ActionValue(action: 1, value: "0.975"), ActionValue(action: 0, value: "0.025")]
        #expect(written { $0.prediction(.actions(pairs, probabilities: true)) }
            == #"[{"action":1,"probability":0.975},{"action":0,"probability":0.025}]"#)
        #expect(written { $0.prediction(.actions(pairs, probabilities: false)) }
            == #"[{"action":1,"score":0.975},{"action":0,"score":0.025}]"#)
        #expect(written { $0.prediction(.actions([], probabilities: true)) } == "[]")
    }

    @Test func writesLinesAsAnArray() {
        let p = Prediction.lines([.actions([ActionValue(action: 2, value: "1")], probabilities: true), .integer(0), .text("x")])
        #expect(written { $0.prediction(p) } == #"[[{"action":2,"probability":1}],0,"x"]"#)
    }
}

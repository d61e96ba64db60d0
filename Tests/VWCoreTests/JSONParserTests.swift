import Testing
@testable import VWCore

private func parse(_ text: String, maxDepth: Int = 32) throws(JSONError) -> JSONValue {
    try JSONParser.parse(Array(text.utf8), maxDepth: maxDepth)
}

private func parseError(_ bytes: [UInt8], maxDepth: Int = 32) -> JSONError? {
    do {
        _ = try JSONParser.parse(bytes, maxDepth: maxDepth)
        return nil
    } catch {
        return error
    }
}

private func parseError(_ text: String, maxDepth: Int = 32) -> JSONError? {
    parseError(Array(text.utf8), maxDepth: maxDepth)
}

@Suite struct JSONParserTests {
    @Test func parsesScalars() throws {
        #expect(try parse("null") == .null)
        #expect(try parse("true") == .bool(true))
        #expect(try parse(" false\n") == .bool(false))
        #expect(try parse("\"hi\"") == .string("hi"))
        #expect(try parse("\"\"") == .string(""))
    }

    @Test func keepsNumberTextVerbatim() throws {
        for text in ["0", "-0", "1.5", "-12.250", "1e5", "1E+05", "-2.5e-3", "123456789012345678901234567890"] {
            #expect(try parse(text) == .number(text))
        }
    }

    @Test func rejectsNumbersOutsideTheGrammar() {
        for text in ["01", "+1", "1.", ".5", "1e", "1e+", "-", "--1", "0x10", "NaN", "Infinity", "1.5.2"] {
            #expect(parseError(text) != nil, "\(text)")
        }
    }

    @Test func keepsObjectMemberOrderAndDuplicates() throws {
        let value = try parse(#"{"b": 1, "a": [true, null], "b": "x"}"#)
        #expect(value == .object([
            (key: "b", value: .number("1")),
            (key: "a", value: .array([.bool(true), .null])),
            (key: "b", value: .string("x")),
        ]))
        #expect(value != .object([(key: "a", value: .array([.bool(true), .null]))]))
    }

    @Test func parsesEmptyContainersWithWhitespace() throws {
        #expect(try parse(" [ ] ") == .array([]))
        #expect(try parse("{ \t\r\n}") == .object([]))
        #expect(try parse("[[],{}]") == .array([.array([]), .object([])]))
    }

    @Test func decodesEscapes() throws {
        #expect(try parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{8}\u{c}\n\r\t"))
        #expect(try parse(#""\u0041\u00e9\u20AC""#) == .string("Aé€"))
        #expect(try parse(#""\ud83d\ude00 x""#) == .string("😀 x"))
        #expect(try parse(#""\u0000""#) == .string("\u{0}"))
    }

    @Test func acceptsRawMultibyteUTF8() throws {
        #expect(try parse("\"héllo 😀\"") == .string("héllo 😀"))
        #expect(try parse("\"é\\n😀\"") == .string("é\n😀"))
    }

    @Test func rejectsUnpairedSurrogates() {
        #expect(parseError(#""\ud83d""#)?.message == #"invalid JSON at byte 1: unpaired surrogate \uD83D"#)
        #expect(parseError(#""\ud83d\u0041""#) != nil)
        #expect(parseError(#""\ude00""#) != nil)
        #expect(parseError(#""\ud83dx""#) != nil)
    }

    @Test func rejectsInvalidUTF8() {
        #expect(parseError([0x22, 0x61, 0xFF, 0x22])?.message == "invalid JSON at byte 2: invalid UTF-8 in string")
        #expect(parseError([0x22, 0xC3, 0x22]) != nil)                 // truncated sequence
        #expect(parseError([0x22, 0xC0, 0xAF, 0x22]) != nil)           // overlong
        #expect(parseError([0x22, 0xED, 0xA0, 0x80, 0x22]) != nil)     // encoded surrogate
        #expect(parseError([0x22, 0x5C, 0x6E, 0xFF, 0x22])?.offset == 3)  // after an escape
        #expect(parseError([0xEF, 0xBB, 0xBF, 0x31]) != nil)           // byte-order mark
    }

    @Test func rejectsControlCharactersInStrings() {
        #expect(parseError("\"a\nb\"")?.message == "invalid JSON at byte 2: unescaped control character in string")
        #expect(parseError("\"a\u{0}\"") != nil)
    }

    @Test func stringsScannedAWordAtATimeEqualTheirPiecesAtEveryOffset() throws {
        // Pieces as written in JSON and as decoded; a control character, wherever it falls in an 8-byte word, is
        // refused at its own byte.
        let pieces: [(json: String, value: String)] = [
            ("a", "a"), ("Z", "Z"), (" ", " "), ("~", "~"), ("\u{7F}", "\u{7F}"), ("é", "é"), ("€", "€"), ("😀", "😀"),
            (#"\""#, "\""), (#"\\"#, "\\"), (#"\n"#, "\n"), (#"\u0041"#, "A"), ("'", "'"), ("!", "!"),
        ]
        var random = SplitMix(seed: 7)
        for _ in 0..<3_000 {
            let chosen = (0..<Int(random.next() % 40)).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] }
            let json = chosen.map(\.json).joined()
            #expect(try parse("\"" + json + "\"") == .string(chosen.map(\.value).joined()))
            // A control character between two pieces.
            let cut = Int(random.next() % UInt64(chosen.count + 1))
            let before = Array(("\"" + chosen[..<cut].map(\.json).joined()).utf8)
            let broken = before + [UInt8(random.next() % 0x20)] + Array((chosen[cut...].map(\.json).joined() + "\"").utf8)
            let error = parseError(broken)
            #expect(error?.message.hasSuffix("unescaped control character in string") == true && error?.offset == before.count,
                    "\(broken)")
        }
    }

    @Test func reportsPositionAndReason() {
        #expect(parseError(#"{"instances" 1}"#)?.message == "invalid JSON at byte 13: expected ':'")
        #expect(parseError(#"{"a": 1,}"#)?.message == "invalid JSON at byte 8: expected a string key")
        #expect(parseError("[1 2]")?.message == "invalid JSON at byte 3: expected ',' or ']'")
        #expect(parseError("")?.message == "invalid JSON at byte 0: unexpected end of input")
        #expect(parseError("[1,")?.message == "invalid JSON at byte 3: unexpected end of input")
        #expect(parseError("\"abc")?.message == "invalid JSON at byte 0: unterminated string")
        #expect(parseError("tru")?.message == "invalid JSON at byte 0: invalid literal (expected 'true')")
        #expect(parseError(#""\x""#)?.message == "invalid JSON at byte 1: invalid escape sequence")
        #expect(parseError(#""\u12zz""#)?.message == #"invalid JSON at byte 1: invalid \u escape"#)
        #expect(parseError(#""\u12""#)?.message == #"invalid JSON at byte 1: truncated \u escape"#)
        #expect(parseError("'a'")?.message == "invalid JSON at byte 0: unexpected character '''")
    }

    @Test func rejectsTrailingGarbage() {
        #expect(parseError("{} x")?.message == "invalid JSON at byte 3: unexpected character 'x' after the document")
        #expect(parseError("1 2") != nil)
        #expect(parseError("{}\u{0}")?.message == "invalid JSON at byte 2: unexpected byte 0x00 after the document")
    }

    @Test func limitsNestingDepth() throws {
        let ok = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        #expect(try parse(ok) != .null)
        let deep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(parseError(deep)?.message == "invalid JSON at byte 32: nesting deeper than 32")
        #expect(parseError(#"{"a":{"b":[1]}}"#, maxDepth: 2)?.message == "invalid JSON at byte 10: nesting deeper than 2")
        let hostile = String(repeating: "[", count: 1_000_000)
        #expect(parseError(hostile)?.message.hasSuffix("nesting deeper than 32") == true)
    }

    @Test func neverTrapsOnAnyPrefixOfAValidDocument() {
        let document = Array(#"{"instances": [{"features": {"a": {"x": -1.5e3, "c": "r\u00e9d\ud83d\ude00", "t": true, "n": null}}}, "|a b", [1, false]]}"#.utf8)
        #expect(parseError(document) == nil)
        for end in 0..<document.count {
            #expect(parseError(Array(document[0..<end])) != nil)
        }
    }

    @Test func neverTrapsOnRandomBytes() {
        var generator = SplitMix(seed: 42)
        let alphabet = Array(#"{}[]:,"\u0123456789abcdefnulltruefalse -+.eE"#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xED, 0xFF]
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...24, using: &generator)
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator) ?? 0 }
            _ = parseError(bytes)
        }
    }
}


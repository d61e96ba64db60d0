import Testing
@testable import VWCore

struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func partsHashLikeTheirConcatenation() {
        let a = Array(repeating: UInt8(7), count: 100), b = Array("{\"shards\":2}".utf8)
        #expect(SHA256.hex(a, b) == SHA256.hex(a + b))
    }
}

struct ModelDirectoryTests {
    @Test func validNames() {
        for name in ["m", "demo", "A1", "ctr_model-v2.1", String(repeating: "a", count: 128)] {
            #expect(ModelDirectory.isValidName(Substring(name)), "\(name)")
        }
        for name in ["", "-x", "_x", ".x", "a b", "a/b", "é", String(repeating: "a", count: 129)] {
            #expect(!ModelDirectory.isValidName(Substring(name)), "\(name)")
        }
    }

    @Test func transientFilesAreSkipped() {
        for file in [".hidden.vw", "m.vw.tmp", "m.vw.part", "m.vw.writing", "m.vw~", "..data"] {
            #expect(ModelDirectory.isTransient(file), "\(file)")
        }
        #expect(!ModelDirectory.isTransient("m.vw"))
    }

    @Test func classification() {
        #expect(ModelDirectory.classify("m.vw")?.name == "m")
        #expect(ModelDirectory.classify("m.json")?.name == "m")
        #expect(ModelDirectory.classify("m.sha256")?.name == "m")
        #expect(ModelDirectory.classify("README.md") == nil)
        #expect(ModelDirectory.classify("bad name.vw") == nil)
    }
}

struct ModelConfigTests {
    @Test func parsesEveryKey() throws {
        let config = try ModelConfig.parse(Array(#"{"shards": 2, "vw_args": ["--link", "logistic"], "warmup": [" |a x:1"], "max_batch": 1000}"#.utf8))
        #expect(config == ModelConfig(shards: 2, vwArgs: ["--link", "logistic"], warmup: [" |a x:1"], maxBatch: 1000))
    }

    @Test func rejectsBadConfigs() {
        for text in [
            "not json", "[]", #"{"shards": 0}"#, #"{"shards": "2"}"#, #"{"shards": true}"#, #"{"max_batch": -1}"#,
            #"{"vw_args": "--link logistic"}"#, #"{"vw_args": ["--daemon"]}"#, #"{"vw_args": ["-f", "x.vw"]}"#,
            #"{"vw_args": ["--audit"]}"#, #"{"warmup": [1]}"#, #"{"shard": 2}"#,
        ] {
            #expect(throws: LoadError.self, "\(text)") { try ModelConfig.parse(Array(text.utf8)) }
        }
    }
}

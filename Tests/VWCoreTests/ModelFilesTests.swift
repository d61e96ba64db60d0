#if canImport(Glibc)
import Glibc
#endif
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

struct ModelStagingTests {
    private func temporaryDirectory() -> String {
        var template = Array("/tmp/vwfcgi-staging-test-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    private func write(_ bytes: [UInt8], to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    @Test func streamsHashesAndCopiesAcrossChunks() throws {
        let dir = temporaryDirectory()
        let bytes = (0..<(3 << 20) + 12345).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        write(bytes, to: dir + "/m.vw")
        var seen = 0
        var hasher = try ModelDirectory.stage(dir + "/m.vw", to: dir + "/staged", maxBytes: 1 << 30) { prefix throws(LoadError) in
            seen = prefix.count
        }
        #expect(seen == ModelDirectory.headerBytes)
        #expect(hasher.finalize().hexString == SHA256.hex(bytes))
        #expect(try ModelDirectory.read(dir + "/staged", maxBytes: 1 << 30) == bytes)
        for file in ["m.vw", "staged"] { unlink(dir + "/" + file) }
        rmdir(dir)
    }

    @Test func refusesBeforeCopying() {
        let dir = temporaryDirectory()
        write(Array(repeating: 1, count: 100_000), to: dir + "/m.vw")
        #expect(throws: LoadError.self) {
            _ = try ModelDirectory.stage(dir + "/m.vw", to: dir + "/staged", maxBytes: 99_999) { _ throws(LoadError) in }
        }
        #expect(throws: LoadError.self) {
            _ = try ModelDirectory.stage(dir + "/m.vw", to: dir + "/staged", maxBytes: 1 << 20) { _ throws(LoadError) in
                throw .unreadable("not a model")
            }
        }
        #expect(access(dir + "/staged", F_OK) != 0, "nothing staged")
        unlink(dir + "/m.vw")
        rmdir(dir)
    }

    @Test func hashesPiecewiseLikeWhole() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        for split in [0, 1, 63, 64, 65, 500, 999] {
            var hasher = SHA256()
            hasher.update(bytes[..<split])
            bytes[split...].withUnsafeBytes { hasher.update($0) }
            #expect(hasher.finalize().hexString == SHA256.hex(bytes), "split at \(split)")
        }
    }
}

struct SparseStagingTests {
    @Test func holesStayHolesAndBytesAreExact() throws {
        var template = Array("/tmp/vwfcgi-sparse-test-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let fd = open(dir + "/m.vw", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let head = Array("header".utf8), tail = Array("tail".utf8)
        _ = head.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        lseek(fd, 8 << 20, SEEK_SET)
        _ = tail.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        ftruncate(fd, (12 << 20) + 3)  // ends in a hole
        close(fd)
        var hasher = try ModelDirectory.stage(dir + "/m.vw", to: dir + "/staged", maxBytes: 1 << 30) { _ throws(LoadError) in }
        let original = try ModelDirectory.read(dir + "/m.vw", maxBytes: 1 << 30)
        #expect(hasher.finalize().hexString == SHA256.hex(original))
        #expect(try ModelDirectory.read(dir + "/staged", maxBytes: 1 << 30) == original)
        var info = stat()
        stat(dir + "/staged", &info)
        #expect(Int(info.st_size) == original.count)
        #expect(Int(info.st_blocks) * 512 < 4 << 20, "the staged copy is not sparse: \(info.st_blocks) blocks")
        for file in ["m.vw", "staged"] { unlink(dir + "/" + file) }
        rmdir(dir)
    }
}

/// The shared file helpers never block on a FIFO, never read anything but a regular file, and never write through
/// a planted symlink (the model and state directories may be writable by others).
struct FileTypeTests {
    @Test func readersRefuseAFIFOWithoutBlockingAndWritersDoNotFollowALink() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let fifo = scratch.path + "/m.json"
        #expect(mkfifo(fifo, 0o644) == 0)
        #expect(throws: LoadError.self) { try ModelDirectory.read(fifo) }
        #expect(throws: EventLogError.self) { try LoopFiles.read(fifo) }
        // A symlink planted as the temporary file: removed, not written through; the target is untouched.
        let victim = scratch.path + "/victim"
        appendRaw("keep", to: victim)
        symlink(victim, scratch.path + "/out.json.tmp")
        try LoopFiles.writeAtomically(Array("{}\n".utf8), to: scratch.path + "/out.json")
        #expect(readText(victim) == "keep")
        #expect(readText(scratch.path + "/out.json") == "{}\n")
    }
}

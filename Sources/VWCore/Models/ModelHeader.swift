import Glibc

/// Why a model file's header cannot be read.
public enum ModelHeaderError: Error, Equatable, Sendable {
    /// The file could not be opened or read (the errno).
    case unreadable(errno: Int32)
    /// The file ends before its version string does.
    case tooShort
    /// The file does not start with a VW version string.
    case notAVWModel
    /// The header says its options string is longer than the bytes read to find it.
    case optionsTooLong(bytes: Int)
    /// A version whose header layout vwfcgi does not read (before 8.0.3, which added the model id).
    case unsupportedVersion(String)
    /// A header field VW would read differently or refuse.
    case malformed(String)

    /// A short human-readable reason.
    public var reason: String {
        switch self {
        case .unreadable(let code): "cannot read model file (errno \(code))"
        case .tooShort: "model file too short"
        case .notAVWModel: "not a VW model file (no version string)"
        case .optionsTooLong(let bytes): "the options stored in the model file are too long (\(bytes) bytes)"
        case .unsupportedVersion(let version):
            "model files written by vw \(version) are not supported (their header layout predates vw 8.0.3)"
        case .malformed(let why): "malformed model header: \(why)"
        }
    }
}

/// The VW version and the command-line options that VW stored at the start of a model file.
public struct ModelHeader: Sendable, Equatable {
    /// The VW version that wrote the file, e.g. "9.11.9".
    public let vwVersion: String
    /// The option tokens stored in the file, split on any whitespace as VW does, e.g.
    /// ["--cb_adf", "--cb_type", "mtr"]; `ModelOptions.check` judges them.
    /// VW adds the header's `--ngram` and `--skips` fields in front, as it does when it loads the file.
    public let options: [String]
    /// The feature table's bits stored in the header, when the header was read in VW 9's layout.
    public let bits: Int?

    public init(vwVersion: String, options: [String], bits: Int? = nil) {
        self.vwVersion = vwVersion
        self.options = options
        self.bits = bits
    }

    /// How many bytes of a file are read to find the header.
    public static let maxHeaderBytes = 64 * 1024

    /// Reads the header from at most the first 64 KiB of the file at `path`.
    public static func read(path: String) throws(ModelHeaderError) -> ModelHeader {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(errno: errno) }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: maxHeaderBytes)
        let read = bytes.withUnsafeMutableBytes { buffer in Result { () throws(SystemError) in try FileIO.fill(descriptor, buffer) } }
        let filled: Int
        switch read {
        case .success(let count): filled = count
        case .failure(let error): throw .unreadable(errno: error.code)
        }
        bytes.removeSubrange(filled...)
        return try parse(bytes)
    }

    /// Parses the header from the first bytes of a model file, the way VW 9 reads it
    /// (`save_load_header` in `parse_regressor.cc`).
    ///
    /// VW writes: a uint32 length and the NUL-terminated version, the model id (since 8.0.3), 'm',
    /// min and max label, bits, lda, n-grams, skips, then a uint32 length and the NUL-terminated
    /// options string. The options are what VW applies: a non-empty model id as `--id`, the
    /// n-grams and skips as `--ngram`/`--skips`, then the stored string up to its first NUL, split
    /// on any whitespace. Anything VW would read differently is refused rather than guessed.
    public static func parse(_ bytes: [UInt8]) throws(ModelHeaderError) -> ModelHeader {
        var reader = ByteReader(bytes: bytes)
        guard let versionLength = reader.uint32() else { throw .tooShort }
        guard (2...32).contains(versionLength) else { throw .notAVWModel }
        guard let versionBytes = reader.bytes(Int(versionLength)) else { throw .tooShort }
        guard versionBytes.last == 0, let first = versionBytes.first, first &- 0x30 < 10,
              versionBytes.dropLast().allSatisfy({ $0 &- 0x30 < 10 || $0 == UInt8(ascii: ".") })
        else { throw .notAVWModel }
        let version = String(decoding: versionBytes.dropLast(), as: UTF8.self)
        guard isAtLeast(version, [8, 0, 3]) else { throw .unsupportedVersion(version) }

        var options: [UInt8] = []
        guard let idLength = reader.uint32() else { throw .tooShort }
        guard idLength <= 512 else { throw .malformed("model id longer than 512 bytes") }
        guard let id = reader.bytes(Int(idLength)) else { throw .tooShort }
        // VW adds a non-empty id as ` --id <id>`: whatever it holds is read as options too.
        let idText = id.prefix { $0 != 0 }
        if !idText.isEmpty { options += Array(" --id ".utf8) + idText }
        guard let marker = reader.bytes(1) else { throw .tooShort }
        guard marker == [UInt8(ascii: "m")] else { throw .malformed("no 'm' after the model id") }
        guard reader.bytes(8) != nil,                       // min and max label
              let bits = reader.uint32(),
              reader.uint32() != nil                        // lda
        else { throw .tooShort }
        for name in ["ngram", "skips"] {
            guard let count = reader.uint32(), let fields = reader.bytes(3 * Int(count)) else { throw .tooShort }
            for index in 0..<Int(count) {
                // Each is a 3-byte C string.
                let field = fields.dropFirst(3 * index).prefix(3)
                options += Array(" --\(name) ".utf8) + field.prefix { $0 != 0 }
            }
        }
        guard let length = reader.uint32() else { throw .tooShort }
        guard length <= 104_857_600 else { throw .malformed("options string longer than VW accepts") }
        guard let text = reader.bytes(Int(length)) else {
            // vw would read options that are not among these bytes: nothing can be said about them.
            throw Int(length) > maxHeaderBytes / 2 ? .optionsTooLong(bytes: Int(length)) : .tooShort
        }
        if length > 0 {
            // VW appends the string as a C string; without a NUL it would read on past it.
            guard let end = text.firstIndex(of: 0) else { throw .malformed("options string without a NUL") }
            options += Array(" ".utf8) + text[..<end]
        }
        // VW splits the stored string with `std::istream >>`: on any whitespace, not only spaces.
        let tokens = options.split(whereSeparator: VWOptions.isSpace).map { String(decoding: $0, as: UTF8.self) }
        return ModelHeader(vwVersion: version, options: tokens, bits: Int(bits))
    }

    /// Whether a dotted version is at least `minimum` (missing parts count as 0).
    static func isAtLeast(_ version: String, _ minimum: [Int]) -> Bool {
        let parts = version.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) ?? 0 }
        for (index, wanted) in minimum.enumerated() {
            let part = index < parts.count ? parts[index] : 0
            if part != wanted { return part > wanted }
        }
        return true
    }
}

/// Reads little-endian fields from the start of a byte array.
private struct ByteReader {
    let bytes: [UInt8]
    var position = 0

    mutating func uint32() -> UInt32? {
        guard let field = self.bytes(4) else { return nil }
        return field.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func bytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, position + count <= bytes.count else { return nil }
        defer { position += count }
        return bytes[position..<(position + count)]
    }
}

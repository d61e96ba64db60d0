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

    /// A short human-readable reason.
    public var reason: String {
        switch self {
        case .unreadable(let code): "cannot read model file (errno \(code))"
        case .tooShort: "model file too short"
        case .notAVWModel: "not a VW model file (no version string)"
        case .optionsTooLong(let bytes): "the options stored in the model file are too long (\(bytes) bytes)"
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
        var filled = 0
        while filled < maxHeaderBytes {
            let count = bytes.withUnsafeMutableBytes { buffer in
                Glibc.read(descriptor, buffer.baseAddress! + filled, maxHeaderBytes - filled)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(errno: errno)
            }
            if count == 0 { break }
            filled += count
        }
        bytes.removeSubrange(filled...)
        return try parse(bytes)
    }

    /// Parses the header from the first bytes of a model file.
    ///
    /// VW 9 writes: a uint32 length and the NUL-terminated version, the model id, 'm', min and max
    /// label, bits, lda, ngrams, skips, then a uint32 length and the NUL-terminated options string.
    /// The options are what VW applies: the n-grams and skips as `--ngram`/`--skips`, then the
    /// string up to its first NUL, split on any whitespace. When that walk fails (another layout),
    /// the options string is found by scanning for a length-prefixed, NUL-terminated string
    /// starting with " --".
    public static func parse(_ bytes: [UInt8]) throws(ModelHeaderError) -> ModelHeader {
        var reader = ByteReader(bytes: bytes)
        guard let versionLength = reader.uint32() else { throw .tooShort }
        guard (2...32).contains(versionLength) else { throw .notAVWModel }
        guard let versionBytes = reader.bytes(Int(versionLength)) else { throw .tooShort }
        guard versionBytes.last == 0, let first = versionBytes.first, first &- 0x30 < 10,
              versionBytes.dropLast().allSatisfy({ $0 &- 0x30 < 10 || $0 == UInt8(ascii: ".") })
        else { throw .notAVWModel }
        let version = String(decoding: versionBytes.dropLast(), as: UTF8.self)
        let walked: (bits: UInt32, options: [UInt8])?
        switch walkToOptions(&reader) {
        case .found(let bits, let options): walked = (bits, options)
        case .otherLayout: walked = nil
        // VW 9's layout, cut short: vw would read options that are not here, so nothing can be said about them.
        case .truncated(let needed): throw needed > maxHeaderBytes / 2 ? .optionsTooLong(bytes: needed) : .tooShort
        }
        let optionBytes = walked?.options ?? scanForOptions(bytes, from: 4 + Int(versionLength)).map(Array.init) ?? []
        // VW splits the stored string with `std::istream >>`: on any whitespace, not only spaces.
        let options = optionBytes.split(whereSeparator: VWOptions.isSpace).map { String(decoding: $0, as: UTF8.self) }
        return ModelHeader(vwVersion: version, options: options, bits: walked.map { Int($0.bits) })
    }

    /// What the walk through VW 9's header fields found.
    private enum Walk {
        /// The bits and the options string VW builds from the header.
        case found(bits: UInt32, options: [UInt8])
        /// The fields do not follow VW 9's layout.
        case otherLayout
        /// The fields follow VW 9's layout but the bytes end before the options do (`needed`: the
        /// options string's declared length, or 0).
        case truncated(needed: Int)
    }

    /// Reads the VW 9 header fields after the version and returns the bits and the options string
    /// VW builds from them (`save_load_header`): ` --ngram N` and ` --skips N` for each stored
    /// n-gram and skip (a 3-byte C string each), then the stored options up to their first NUL.
    private static func walkToOptions(_ reader: inout ByteReader) -> Walk {
        guard let idLength = reader.uint32() else { return .truncated(needed: 0) }
        guard idLength <= 4096 else { return .otherLayout }
        guard reader.bytes(Int(idLength)) != nil, let marker = reader.bytes(1) else { return .truncated(needed: 0) }
        guard marker == [UInt8(ascii: "m")] else { return .otherLayout }
        guard reader.bytes(8) != nil,                           // min and max label
              let bits = reader.uint32() else { return .truncated(needed: 0) }
        guard (1...64).contains(bits) else { return .otherLayout }
        guard reader.uint32() != nil else { return .truncated(needed: 0) }  // lda
        var options: [UInt8] = []
        for name in ["ngram", "skips"] {
            guard let count = reader.uint32() else { return .truncated(needed: 0) }
            guard count <= 256 else { return .otherLayout }
            guard let fields = reader.bytes(3 * Int(count)) else { return .truncated(needed: 0) }
            for index in 0..<Int(count) {
                let field = fields.dropFirst(3 * index).prefix(3)
                options += Array(" --\(name) ".utf8) + field.prefix { $0 != 0 }
            }
        }
        guard let length = reader.uint32() else { return .truncated(needed: 0) }
        guard length >= 1 else { return .otherLayout }
        guard let text = reader.bytes(Int(length)) else { return .truncated(needed: Int(length)) }
        guard text.last == 0 else { return .otherLayout }
        // VW appends the string as a C string (it ends at the first NUL) and needs no leading space or dash.
        options += Array(" ".utf8) + text.prefix { $0 != 0 }
        return .found(bits: bits, options: options)
    }

    /// Finds the first length-prefixed, NUL-terminated string starting with " --".
    private static func scanForOptions(_ bytes: [UInt8], from start: Int) -> ArraySlice<UInt8>? {
        let marker: [UInt8] = Array(" --".utf8)
        var position = start
        while position + 4 + marker.count < bytes.count {
            if bytes[(position + 4)..<(position + 4 + marker.count)].elementsEqual(marker) {
                let length = Int(bytes[position]) | Int(bytes[position + 1]) << 8
                    | Int(bytes[position + 2]) << 16 | Int(bytes[position + 3]) << 24
                let end = position + 4 + length
                if length > marker.count, end <= bytes.count, bytes[end - 1] == 0,
                   !bytes[(position + 4)..<(end - 1)].contains(0) {
                    return bytes[(position + 4)..<(end - 1)]
                }
            }
            position += 1
        }
        return nil
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

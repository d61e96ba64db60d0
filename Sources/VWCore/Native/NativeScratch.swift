#if canImport(Glibc)
import Glibc
#endif

/// The calling thread's working memory for scoring linear examples: the example's feature lists and
/// the printed answer, reused from one request to the next so a prediction allocates nothing of its
/// own once the thread has served a request of that size.
///
/// Each FastCGI thread serves one request at a time, so its scratch is never used twice at once;
/// nothing here is shared between threads.
final class NativeScratch {
    var example = NativeExample()
    var output: [UInt8] = []

    /// Beyond these sizes the buffers are dropped after use rather than kept for the thread's life
    /// (a large batch would otherwise pin its memory in every thread that served one: with 4,096
    /// features and 64 KiB kept, 64 threads held 13 MB more after the bench's batch rows, over the
    /// 30 MB RSS target). A single example rarely needs more; a batch allocates once per request.
    static let keptFeatures = 256
    static let keptOutputBytes = 4 << 10

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<NativeScratch>.fromOpaque(pointer).release() }
        }
        precondition(created == 0, "pthread_key_create failed")
        return key
    }()

    /// This thread's scratch, created on its first use and released when the thread exits.
    static var current: NativeScratch {
        if let pointer = pthread_getspecific(key) { return Unmanaged<NativeScratch>.fromOpaque(pointer).takeUnretainedValue() }
        let scratch = NativeScratch()
        pthread_setspecific(key, Unmanaged.passRetained(scratch).toOpaque())
        return scratch
    }

    /// Drops what a large request left behind.
    func trim() {
        if max(example.parsed.capacity, example.sorted.capacity) > Self.keptFeatures { example = NativeExample() }
        if output.capacity > Self.keptOutputBytes { output = [] }
    }
}

import CSpawn

/// Starts blocking work on a dedicated OS thread, never on Swift's cooperative pool.
///
/// Shard readers, stderr drains and FastCGI accept loops block in read(2)/accept(2) for as
/// long as they live; parking them on the cooperative pool would starve it.
public enum DetachedThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body` on a new detached thread with a modest stack.
    public static func start(name: String, stackSize: Int = 512 * 1024, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body))
        let rc = cspawn_thread(name, stackSize, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            fatalError("cannot start thread \(name): error \(rc)")
        }
    }
}

/// Process-wide memory settings for a server with many threads.
public enum MemoryTuning {
    /// Caps glibc's malloc arenas: by default each busy thread gets one, which keeps freed
    /// memory, and with 64 FastCGI threads that is tens of MB.
    public static func limitMallocArenas(to arenas: Int32) {
        _ = cspawn_limit_malloc_arenas(arenas)
    }

    /// Gives the pages of freed memory back to the system: after a request of several MiB, malloc
    /// would otherwise keep them (a few large requests at once left hundreds of MB resident).
    public static func returnFreedMemory() {
        _ = cspawn_trim_malloc()
    }
}

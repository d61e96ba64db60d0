/// What the transport may ask of the models: it maps these to documents and never reaches into the store or a version.
extension Engine {
    /// Whether the model directory holds `name`, serving or not.
    public func hasModel(_ name: String, cache: inout ModelStore.ReaderCache) -> Bool {
        store.contains(name, cache: &cache)
    }

    /// Every model's state, in name order.
    public var modelStatuses: [ModelStatus] { store.statuses }

    /// Model `name`'s state; nil for a model not in the directory.
    public func modelStatus(_ name: String) -> ModelStatus? {
        store.status(of: name)
    }

    /// The native scorer's state of the version serving `name` (SPEC §11); nil while none serves.
    public func engineStatus(_ name: String) -> EngineStatus? {
        store.serving(name)?.native.status
    }

    /// Whether `name`'s serving version answers natively now (SPEC §11): its predictions need no vw, but for the
    /// shadow checks.
    public func servesNatively(_ name: String, cache: inout ModelStore.ReaderCache) -> Bool {
        (try? store.withServingVersion(of: name, cache: &cache) { $0.native.isNative }) ?? false
    }

    /// Whether the server should receive traffic (SPEC §5).
    public func readiness() -> Readiness {
        store.readiness()
    }

    /// How long a request may take (`--timeout`).
    public var requestTimeout: Duration { store.settings.requestTimeout }
}

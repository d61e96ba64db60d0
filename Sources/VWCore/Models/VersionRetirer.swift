#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics

/// Stops versions that no longer serve, once their in-flight requests have finished.
///
/// A version must be unpublished from the ``ServingTable`` before it is retired, so no new request reaches it.
struct VersionRetirer: Sendable {
    /// How long in-flight requests may take to finish, and vw to answer what it holds.
    let drainGrace: Duration

    /// Stops `version` on a thread of its own once it drained (or `drainGrace` passed).
    func retire(_ version: ModelVersion) {
        let grace = drainGrace
        DetachedThread.start(name: "retire-\(version.version)") {
            version.waitUntilDrained(by: .after(grace))
            version.pool.stop(grace: grace)
            unlink(version.stagedPath)
        }
        version.infoGauge.destroy()
    }

    /// Stops every one of `versions` before returning: waits for their in-flight requests, then lets vw finish and exit.
    func retireNow(_ versions: [ModelVersion]) {
        let deadline = Deadline.after(drainGrace)
        for version in versions { version.waitUntilDrained(by: deadline) }
        for version in versions {
            version.pool.stop(grace: .seconds(2))
            unlink(version.stagedPath)
        }
    }
}

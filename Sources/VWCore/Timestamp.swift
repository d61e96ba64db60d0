#if canImport(Glibc)
import Glibc
#endif

/// The one wall-clock formatter: RFC 3339 in UTC with milliseconds (`2026-11-30T19:21:23.123Z`), used by the event
/// log's `Timestamp`, status times (`loaded_at`, `last_error`) and the JSON log lines.
public enum Timestamp {
    /// The wall clock in milliseconds since the Unix epoch.
    public static func nowMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec / 1_000_000)
    }

    /// Now, as RFC 3339.
    public static func now() -> String { rfc3339(milliseconds: nowMilliseconds()) }

    /// `milliseconds` since the epoch as RFC 3339.
    public static func rfc3339(milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2) + "T"
            + pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2) + "."
            + pad(Int32(milliseconds % 1000), 3) + "Z"
    }
}

/// The current time in RFC 3339 (``Timestamp/now()``).
func rfc3339Now() -> String { Timestamp.now() }

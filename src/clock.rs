//! The application's one clock. Every time the worker and the ingress write or compare
//! (record fields, event times, dedupe buckets, review deadlines, a notification's
//! timestamp window) is read here, so they cannot disagree on what "now" is, and a reader
//! finds the source of time in one place. The queue keeps its own (leases are its
//! business); both read the system's real-time clock.

use std::time::{SystemTime, UNIX_EPOCH};

use payworker_gateway::UnixTime;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Now as RFC 3339 in UTC with milliseconds (`2026-11-30T14:24:11.123Z`), as events and
/// records carry it.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now as a payment record's `created_at` and `updated_at` carry it: RFC 3339 in UTC with
/// chrono's automatic sub-second digits and a `+00:00` offset
/// (`2026-11-30T14:24:11.123456789+00:00`). Not [`now_rfc3339`]'s format: records have
/// carried this one from the start, and old and new records should read alike.
pub fn now_record_time() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Now as the gateway's `timestamp` (Unix seconds), for signing and for checking a
/// notification's window.
pub fn unix_time() -> UnixTime {
    UnixTime::now()
}

//! Small helpers: stable hashing, Kubernetes timestamps, and reading /proc.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// FNV-1a, 64 bits: a hash that stays the same across builds (container spec hashes are
/// stored on containers and compared after kubelet upgrades and restarts).
pub fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A Kubernetes `Time` for now, truncated to whole seconds (what the API stores).
pub fn now_time() -> Time {
    Time(truncate(jiff::Timestamp::now()))
}

/// Truncates to whole seconds.
pub fn truncate(t: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// A CRI timestamp (nanoseconds since the epoch) as a Kubernetes `Time`; `None` for 0.
pub fn nanos_time(nanos: i64) -> Option<Time> {
    if nanos <= 0 {
        return None;
    }
    jiff::Timestamp::from_second(nanos / 1_000_000_000)
        .ok()
        .map(Time)
}

/// A value of `/proc/meminfo` in bytes (`MemTotal`, `MemAvailable`, ...).
pub fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(fnv64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv64(b"a"), 0xaf63dc4c8601ec8c);
        assert!(nanos_time(0).is_none());
        assert_eq!(
            nanos_time(1_700_000_000_999_999_999).unwrap().0.as_second(),
            1_700_000_000
        );
        assert!(meminfo("MemTotal").unwrap() > 1 << 20);
        assert_eq!(now_time().0.subsec_nanosecond(), 0);
    }
}

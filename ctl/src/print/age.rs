//! Ages as kubectl words them (`HumanDuration` for tables and describe, `ShortHumanDuration`
//! for events), from RFC 3339 timestamps.

/// Seconds since an RFC 3339 timestamp (negative if in the future); `None` if unparsable.
pub fn seconds_since(ts: &str) -> Option<i64> {
    let t: jiff::Timestamp = ts.parse().ok()?;
    Some(jiff::Timestamp::now().as_second() - t.as_second())
}

/// kubectl's `HumanDuration`: `45s`, `3m20s`, `2h5m`, `3d4h`, `400d`, `2y30d`.
pub fn human(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// kubectl's `ShortHumanDuration`: `10s`, `5m`, `3h`, `2d`, `1y`.
pub fn short(seconds: i64) -> String {
    if seconds < -1 {
        "<invalid>".into()
    } else if seconds < 0 {
        "0s".into()
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m", seconds / 60)
    } else if seconds < 86400 {
        format!("{}h", seconds / 3600)
    } else if seconds < 86400 * 365 {
        format!("{}d", seconds / 86400)
    } else {
        format!("{}y", seconds / 86400 / 365)
    }
}

/// The age of a timestamp in `HumanDuration` form, `<unknown>` if there is none.
pub fn age(ts: Option<&str>) -> String {
    match ts.and_then(seconds_since) {
        Some(s) => human(s),
        None => "<unknown>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        for (s, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (47 * 3600, "47h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400 + 30 * 86400, "3y30d"),
            (9 * 365 * 86400, "9y"),
        ] {
            assert_eq!(human(s), want, "{s}");
        }
    }

    #[test]
    fn short_durations_match_kubectl() {
        assert_eq!(short(59), "59s");
        assert_eq!(short(61), "1m");
        assert_eq!(short(7200), "2h");
        assert_eq!(short(86400 * 3), "3d");
    }

    #[test]
    fn ages_from_timestamps() {
        let now = jiff::Timestamp::now();
        let past = now - jiff::SignedDuration::from_secs(90);
        assert!(matches!(
            age(Some(past.to_string().as_str())).as_str(),
            "90s" | "91s"
        ));
        assert_eq!(age(None), "<unknown>");
    }
}

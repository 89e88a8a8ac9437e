//! Go-style durations as Kubernetes flags and fields take them (`--event-ttl=1h`,
//! `--timeout=30s`, `5m0s`, `1h30m`, `500ms`, `1.5s`), or a bare number of seconds.

use std::time::Duration;

/// Parses a Go duration (`300ms`, `5s`, `1m30s`, `1h0m0s`, `1.5h`) or a bare number of
/// seconds; `None` for anything else (an unknown unit, a sign, an empty string).
pub fn parse(s: &str) -> Option<Duration> {
    let t = s.trim();
    match t.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).ok(),
        Err(_) => parse_go(t).ok(),
    }
}

/// Parses a duration as Go's `time.ParseDuration` does (what Kubernetes configuration files
/// hold): every number has a unit, except a lone `0`; the error says what is wrong.
pub fn parse_go(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
        let value: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        total += value * unit;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("invalid duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_bare_seconds() {
        assert_eq!(parse("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1h0m0s"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse(" 40s "), Some(Duration::from_secs(40)));
        for bad in ["", "s", "5x", "-5s", "1h-1m", "m5"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_syntax_wants_units() {
        assert_eq!(parse_go("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(
            parse_go("30"),
            Err("missing unit in duration \"30\"".to_string())
        );
        assert_eq!(
            parse_go("3d"),
            Err("unknown unit \"d\" in duration \"3d\"".to_string())
        );
        assert!(parse_go("").is_err());
        assert!(parse_go("1.2.3s").is_err());
    }
}

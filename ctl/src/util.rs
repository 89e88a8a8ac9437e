//! Small helpers shared by the commands: Go-style durations (`--timeout=30s`) and
//! `key=value` argument parsing for labels and annotations.

use std::time::Duration;

/// A Go duration (`300ms`, `5s`, `1m30s`, `2h`), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// A label or annotation change from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// `key=value`.
    Set(String, String),
    /// `key-`.
    Remove(String),
}

/// Splits `label` / `annotate` arguments into resource arguments and changes (`k=v`, `k-`).
pub fn split_key_changes(args: &[String]) -> (Vec<String>, Vec<KeyChange>) {
    let mut resources = Vec::new();
    let mut changes = Vec::new();
    for a in args {
        if let Some((k, v)) = a.split_once('=') {
            changes.push(KeyChange::Set(k.to_string(), v.to_string()));
        } else if let Some(k) = a.strip_suffix('-')
            && !k.is_empty()
            && !resources.is_empty()
        {
            changes.push(KeyChange::Remove(k.to_string()));
        } else {
            resources.push(a.clone());
        }
    }
    (resources, changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }

    #[test]
    fn key_changes() {
        let args: Vec<String> = ["pod", "web", "app=x", "tier-", "a.b/c=d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (r, c) = split_key_changes(&args);
        assert_eq!(r, ["pod", "web"]);
        assert_eq!(
            c,
            [
                KeyChange::Set("app".into(), "x".into()),
                KeyChange::Remove("tier".into()),
                KeyChange::Set("a.b/c".into(), "d".into())
            ]
        );
    }
}

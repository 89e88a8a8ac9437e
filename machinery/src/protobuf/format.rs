//! Text forms Go gives to times and durations in Kubernetes JSON: `metav1.Time` (RFC 3339 in
//! whole seconds), `metav1.MicroTime` (RFC 3339 with six fractional digits) and
//! `metav1.Duration` (`time.Duration.String`, e.g. `1h2m3.5s`).

/// Seconds from 1970 to 0001-01-01T00:00:00Z: Go's zero `time.Time`, which Kubernetes writes as
/// JSON `null`.
pub(super) const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// The first second RFC 3339 cannot write (year 10000).
const YEAR_10000_SECONDS: i64 = 253_402_300_800;
/// The first second of year 0.
const YEAR_0_SECONDS: i64 = -62_167_219_200;

/// `seconds` since 1970 (UTC) as `YYYY-MM-DDTHH:MM:SS`, with `micros` as six fractional
/// digits when given, then `Z`; `None` outside years 0 to 9999.
pub(super) fn rfc3339(seconds: i64, micros: Option<u32>) -> Option<String> {
    if !(YEAR_0_SECONDS..YEAR_10000_SECONDS).contains(&seconds) {
        return None;
    }
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    if let Some(micros) = micros {
        out.push_str(&format!(".{micros:06}"));
    }
    out.push('Z');
    Some(out)
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm, on eras of 400 years (146097 days) starting in March.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both in range by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Go's `time.Duration.String` of `nanos` nanoseconds: `0s`, `1.5µs`, `20ms`, `1h0m0s`, ...
pub(super) fn go_duration(nanos: i64) -> String {
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Below a second: the largest unit that keeps the number at least 1.
        let (unit, prec) = match u {
            0 => return "0s".to_string(),
            1..=999 => ("ns", 0),
            1_000..=999_999 => ("µs", 3),
            _ => ("ms", 6),
        };
        push_fraction(&mut out, u, prec);
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if secs >= 60 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&s.to_string());
        push_fraction_only(&mut out, u % 1_000_000_000, 9);
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Writes `v / 10^prec` with its fraction (trailing zeros dropped, no point when whole).
fn push_fraction(out: &mut String, v: u64, prec: u32) {
    let scale = 10u64.pow(prec);
    out.push_str(&(v / scale).to_string());
    push_fraction_only(out, v % scale, prec);
}

/// Writes `.digits` of a fraction `frac / 10^prec`, trailing zeros dropped; nothing for 0.
fn push_fraction_only(out: &mut String, frac: u64, prec: u32) {
    if frac == 0 || prec == 0 {
        return;
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    out.push('.');
    out.push_str(digits.trim_end_matches('0'));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0, None).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_704_164_705, None).as_deref(),
            Some("2024-01-02T03:05:05Z")
        );
        assert_eq!(
            rfc3339(951_782_400, Some(42)).as_deref(),
            Some("2000-02-29T00:00:00.000042Z")
        );
        assert_eq!(
            rfc3339(-1, Some(999_999)).as_deref(),
            Some("1969-12-31T23:59:59.999999Z")
        );
        assert_eq!(
            rfc3339(GO_ZERO_TIME_SECONDS, None).as_deref(),
            Some("0001-01-01T00:00:00Z")
        );
        assert_eq!(
            rfc3339(YEAR_10000_SECONDS - 1, None).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(
            rfc3339(YEAR_0_SECONDS, None).as_deref(),
            Some("0000-01-01T00:00:00Z")
        );
        assert_eq!(rfc3339(YEAR_10000_SECONDS, None), None);
        assert_eq!(rfc3339(i64::MIN, None), None);
        assert_eq!(rfc3339(i64::MAX, None), None);
    }

    #[test]
    fn durations_as_go_prints_them() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1_000, "1µs"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (1_234_567, "1.234567ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (61_000_000_000, "1m1s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
            (-1_500_000_000, "-1.5s"),
            (-5, "-5ns"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(go_duration(nanos), text, "{nanos}");
        }
    }
}

//! Cron schedules for the CronJob kind (batch/v1): `spec.schedule` parsed and evaluated the way
//! Kubernetes does it, which is `github.com/robfig/cron/v3`'s `ParseStandard`.
//!
//! The API server uses [`Schedule::parse`] to validate `spec.schedule`; the controller
//! manager's CronJob controller uses [`Schedule::next_after`] to find when a job is due, in the
//! CronJob's `spec.timeZone`.
//!
//! A schedule is either five whitespace-separated fields — minute (0-59), hour (0-23), day of
//! month (1-31), month (1-12 or `JAN`-`DEC`) and day of week (0-6 or `SUN`-`SAT`), each a
//! comma-separated list of `*`, `?`, `N` or `N-M`, optionally followed by `/step` — or one
//! of the descriptors `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`),
//! `@hourly` and `@every <Go duration>`.
//!
//! As in robfig/cron, a schedule fires at the instants whose wall-clock reading in the time
//! zone matches it: a time skipped by a daylight-saving jump (`30 2 * * *` on the day New York
//! springs forward) does not fire that day, and a time that occurs twice when the clocks go
//! back fires twice. Unlike robfig/cron, a `TZ=` or `CRON_TZ=` prefix is rejected, as the
//! Kubernetes API server does: the CronJob's `spec.timeZone` field says which zone to use.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;

/// A parsed cron schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Five fields (or a descriptor standing for five fields).
    Fields(Fields),
    /// `@every <duration>`: this many whole seconds (at least 1) after the previous run.
    Every { seconds: i64 },
}

/// The five fields as bit sets (bit `n` set when value `n` matches), and whether the two
/// day fields are unrestricted (began with `*` or `?`, and had no step above 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

/// Why a schedule does not parse. The messages are robfig/cron's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The schedule is empty (or only whitespace).
    #[error("empty spec string")]
    Empty,
    /// The schedule starts with `TZ=` or `CRON_TZ=`.
    #[error(
        "cannot use TZ or CRON_TZ in schedule, use the CronJob's spec.timeZone field instead: {0}"
    )]
    TimeZoneInSchedule(String),
    /// Not five fields.
    #[error("expected exactly 5 fields, found {found}: [{fields}]")]
    FieldCount {
        /// How many fields there were.
        found: usize,
        /// The fields, separated by single spaces.
        fields: String,
    },
    /// An `@...` descriptor that is not one of the known ones.
    #[error("unrecognized descriptor: {0}")]
    UnrecognizedDescriptor(String),
    /// `@every` with something that is not a Go duration.
    #[error("failed to parse duration {descriptor}: {reason}")]
    Duration {
        /// The whole descriptor (`@every ...`).
        descriptor: String,
        /// What is wrong with the duration.
        reason: String,
    },
    /// A value or step that is neither a number nor (where allowed) a name.
    #[error("failed to parse int from {expr}: {reason}")]
    ParseInt {
        /// The text that should have been a number.
        expr: String,
        /// What is wrong with it (Go's `strconv.Atoi` wording).
        reason: String,
    },
    /// A negative step (`*/-1`).
    #[error("negative number ({value}) not allowed: {expr}")]
    Negative {
        /// The number.
        value: i64,
        /// The text it was parsed from.
        expr: String,
    },
    /// A range with more than one `-` (`1-2-3`).
    #[error("too many hyphens: {0}")]
    TooManyHyphens(String),
    /// A range with more than one `/` (`*/2/3`).
    #[error("too many slashes: {0}")]
    TooManySlashes(String),
    /// A value below the field's minimum (day of month `0`).
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum {
        /// The first value of the range.
        start: u64,
        /// The field's minimum.
        min: u8,
        /// The range.
        expr: String,
    },
    /// A value above the field's maximum (minute `60`, day of week `7`).
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum {
        /// The last value of the range.
        end: u64,
        /// The field's maximum.
        max: u8,
        /// The range.
        expr: String,
    },
    /// A range whose start is after its end (`5-3`).
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    StartAfterEnd {
        /// The first value of the range.
        start: u64,
        /// The last value of the range.
        end: u64,
        /// The range.
        expr: String,
    },
    /// A step of 0 (`*/0`).
    #[error("step of range should be a positive number: {0}")]
    ZeroStep(String),
}

/// The values a field takes, and the names it accepts (the name at index `i` stands for
/// `min + i`).
struct Bounds {
    min: u8,
    max: u8,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// The largest Go `time.Duration`, in nanoseconds (about 292 years).
const GO_MAX_DURATION_NANOS: u128 = i64::MAX as u128;

impl Schedule {
    /// Parses a standard 5-field schedule or a descriptor.
    ///
    /// As robfig/cron's `ParseStandard`: fields are separated by any amount of whitespace
    /// (leading and trailing whitespace is ignored); a descriptor must start the string and
    /// match exactly (`@hourly`, not `@Hourly` or `@hourly `). A `TZ=`/`CRON_TZ=` prefix is an
    /// error (use `spec.timeZone`).
    pub fn parse(spec: &str) -> Result<Schedule, CronError> {
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(CronError::Empty);
        }
        if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
            return Err(CronError::TimeZoneInSchedule(spec.to_string()));
        }
        if spec.starts_with('@') {
            return parse_descriptor(spec);
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(CronError::FieldCount {
                found: fields.len(),
                fields: fields.join(" "),
            });
        };
        let (minute, _) = parse_field(minute, &MINUTE)?;
        let (hour, _) = parse_field(hour, &HOUR)?;
        let (dom, dom_star) = parse_field(dom, &DOM)?;
        let (month, _) = parse_field(month, &MONTH)?;
        let (dow, dow_star) = parse_field(dow, &DOW)?;
        Ok(Schedule {
            kind: Kind::Fields(Fields {
                minute,
                hour,
                dom,
                month,
                dow,
                dom_star,
                dow_star,
            }),
        })
    }

    /// The first time strictly after `after` (to the second) that the schedule fires,
    /// evaluated in time zone `tz`; `None` if it never fires within 5 years (e.g.
    /// `0 0 30 2 *`).
    ///
    /// More precisely (as robfig/cron): the search starts at the first whole second after
    /// `after` and runs to the end of the year five years after that second's year (in `tz`).
    /// `@every d` fires `d` after `after` rounded down to the second, whatever the zone.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let floor = floor_second(after);
        match self.kind {
            Kind::Every { seconds } => Timestamp::from_second(floor.checked_add(seconds)?).ok(),
            Kind::Fields(fields) => {
                let start = Timestamp::from_second(floor.checked_add(1)?).ok()?;
                fields.next_from(start, tz)
            }
        }
    }
}

/// The whole seconds of `t`, rounded towards the past (also before 1970).
fn floor_second(t: Timestamp) -> i64 {
    let seconds = t.as_second();
    if t.subsec_nanosecond() < 0 {
        seconds - 1
    } else {
        seconds
    }
}

fn parse_descriptor(spec: &str) -> Result<Schedule, CronError> {
    let fields = |minute, hour, dom, month, dow| Fields {
        minute,
        hour,
        dom,
        month,
        dow,
        dom_star: dom == all(&DOM),
        dow_star: dow == all(&DOW),
    };
    let every_hour = all(&HOUR);
    let (every_dom, every_month, every_dow) = (all(&DOM), all(&MONTH), all(&DOW));
    let fields = match spec {
        "@yearly" | "@annually" => fields(1, 1, 1 << 1, 1 << 1, every_dow),
        "@monthly" => fields(1, 1, 1 << 1, every_month, every_dow),
        "@weekly" => fields(1, 1, every_dom, every_month, 1),
        "@daily" | "@midnight" => fields(1, 1, every_dom, every_month, every_dow),
        "@hourly" => fields(1, every_hour, every_dom, every_month, every_dow),
        _ => {
            let Some(duration) = spec.strip_prefix("@every ") else {
                return Err(CronError::UnrecognizedDescriptor(spec.to_string()));
            };
            let seconds = parse_every(duration).map_err(|reason| CronError::Duration {
                descriptor: spec.to_string(),
                reason,
            })?;
            return Ok(Schedule {
                kind: Kind::Every { seconds },
            });
        }
    };
    Ok(Schedule {
        kind: Kind::Fields(fields),
    })
}

/// The period of `@every <s>` in whole seconds: `s` is a Go duration (`1h30m`, `90s`, an
/// optional sign); as in robfig/cron, anything under a second counts as one second and the
/// rest is rounded down to the second.
fn parse_every(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if unsigned.is_empty() || unsigned.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    // Go also takes the Greek small letter mu for microseconds.
    let unsigned = unsigned.replace('\u{3bc}', "\u{b5}");
    let duration = crate::duration::parse_go(&unsigned).map_err(|e| format!("time: {e}"))?;
    if duration.as_nanos() > GO_MAX_DURATION_NANOS {
        return Err(invalid());
    }
    if negative || duration.as_secs() == 0 {
        return Ok(1);
    }
    i64::try_from(duration.as_secs()).map_err(|_| invalid())
}

/// Every value of the field.
fn all(bounds: &Bounds) -> u64 {
    bits(u64::from(bounds.min), u64::from(bounds.max), 1)
}

/// The values `start`, `start + step`, ... up to `end` (at most 63) as a bit set.
fn bits(start: u64, end: u64, step: u64) -> u64 {
    let mut set = 0;
    let mut value = start;
    while value <= end {
        set |= 1 << value;
        value = value.saturating_add(step);
    }
    set
}

/// A field: its values as a bit set, and whether any of its ranges was `*` or `?` without a
/// step above 1 (robfig's "star bit", which only matters for the two day fields).
fn parse_field(field: &str, bounds: &Bounds) -> Result<(u64, bool), CronError> {
    let mut set = 0;
    let mut star = false;
    // Like Go's strings.FieldsFunc: empty items (`1,,2`) are ignored.
    for expr in field.split(',').filter(|e| !e.is_empty()) {
        let (range, range_star) = parse_range(expr, bounds)?;
        set |= range;
        star |= range_star;
    }
    Ok((set, star))
}

fn parse_range(expr: &str, bounds: &Bounds) -> Result<(u64, bool), CronError> {
    let (min, max) = (u64::from(bounds.min), u64::from(bounds.max));
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;

    let (start, mut end, mut star) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        // As in robfig/cron, whatever follows a `-` here is ignored.
        (min, max, true)
    } else {
        let start = parse_int_or_name(low_and_high[0], bounds)?;
        let end = match low_and_high[..] {
            [_] => start,
            [_, high] => parse_int_or_name(high, bounds)?,
            _ => return Err(CronError::TooManyHyphens(expr.to_string())),
        };
        (start, end, false)
    };

    let step = match range_and_step[..] {
        [_] => 1,
        [_, step] => {
            let step = parse_int(step)?;
            // `N/step` means `N-max/step`.
            if single {
                end = max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(CronError::TooManySlashes(expr.to_string())),
    };

    if start < min {
        return Err(CronError::BelowMinimum {
            start,
            min: bounds.min,
            expr: expr.to_string(),
        });
    }
    if end > max {
        return Err(CronError::AboveMaximum {
            end,
            max: bounds.max,
            expr: expr.to_string(),
        });
    }
    if start > end {
        return Err(CronError::StartAfterEnd {
            start,
            end,
            expr: expr.to_string(),
        });
    }
    if step == 0 {
        return Err(CronError::ZeroStep(expr.to_string()));
    }
    Ok((bits(start, end, step), star))
}

fn parse_int_or_name(expr: &str, bounds: &Bounds) -> Result<u64, CronError> {
    let lower = expr.to_lowercase();
    match bounds.names.iter().position(|name| *name == lower) {
        Some(index) => Ok(u64::from(bounds.min) + index as u64),
        None => parse_int(expr),
    }
}

/// A non-negative number as Go's `strconv.Atoi` reads it (an optional sign, then digits).
fn parse_int(expr: &str) -> Result<u64, CronError> {
    match expr.parse::<i64>() {
        Ok(value) => u64::try_from(value).map_err(|_| CronError::Negative {
            value,
            expr: expr.to_string(),
        }),
        Err(e) => {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            Err(CronError::ParseInt {
                expr: expr.to_string(),
                reason: format!("strconv.Atoi: parsing {expr:?}: {why}"),
            })
        }
    }
}

/// Whether bit `value` is set.
fn has(set: u64, value: i8) -> bool {
    u32::try_from(value)
        .ok()
        .and_then(|v| set.checked_shr(v))
        .is_some_and(|s| s & 1 == 1)
}

/// The smallest value above `value` (and at most 63) in `set`.
fn next_in(set: u64, value: i8) -> Option<i8> {
    let above = u32::try_from(value).ok()?.checked_add(1)?;
    let rest = set.checked_shr(above)?.checked_shl(above)?;
    if rest == 0 {
        return None;
    }
    i8::try_from(rest.trailing_zeros()).ok()
}

impl Fields {
    /// robfig's `dayMatches`: if either day field is unrestricted, both must match (so the
    /// other decides); if both are restricted, either may match.
    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.dom, date.day());
        let dow = has(self.dow, date.weekday().to_sunday_zero_offset());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn never_fires(&self) -> bool {
        let days = if self.dom_star || self.dow_star {
            self.dom == 0 || self.dow == 0
        } else {
            self.dom == 0 && self.dow == 0
        };
        self.minute == 0 || self.hour == 0 || self.month == 0 || days
    }

    /// The first instant at or after `start` (a whole second) whose wall-clock reading in
    /// `tz` matches, searching to the end of the fifth year after `start`'s.
    ///
    /// Each step looks at the reading at `t`; if it does not match, it jumps to the next
    /// reading that might (the next month, day, matching hour or matching minute) at the
    /// current offset — or to the next time zone transition if that comes first, since the
    /// readings jump there. So no matching instant is passed over, `t` strictly increases,
    /// and there are at most a few dozen steps per day.
    fn next_from(&self, start: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if self.never_fires() {
            return None;
        }
        let year_limit = tz.to_datetime(start).year().checked_add(5)?;
        let mut t = start;
        let mut transition: Option<Timestamp> = None;
        loop {
            let offset = tz.to_offset(t);
            let now = offset.to_datetime(t);
            if now.year() > year_limit {
                return None;
            }
            let date = now.date();
            let target = if !has(self.month, now.month()) {
                midnight(first_of_next_month(date)?)
            } else if !self.day_matches(date) {
                midnight(date.tomorrow().ok()?)
            } else if !has(self.hour, now.hour()) {
                match next_in(self.hour, now.hour()) {
                    Some(hour) => at(date, hour, 0)?,
                    None => midnight(date.tomorrow().ok()?),
                }
            } else if !has(self.minute, now.minute())
                || now.second() != 0
                || now.subsec_nanosecond() != 0
            {
                match next_in(self.minute, now.minute()) {
                    Some(minute) => at(date, now.hour(), minute)?,
                    None => match next_in(self.hour, now.hour()) {
                        Some(hour) => at(date, hour, 0)?,
                        None => midnight(date.tomorrow().ok()?),
                    },
                }
            } else {
                return Some(t);
            };
            let mut next = offset.to_timestamp(target).ok()?;
            if transition.is_none_or(|tr| tr <= t) {
                transition = tz.following(t).next().map(|tr| tr.timestamp());
            }
            if let Some(tr) = transition
                && tr < next
            {
                next = tr;
            }
            if next <= t {
                // Cannot happen (the target reading is later than the current one, and
                // transitions are after `t`), but never loop in place.
                return None;
            }
            t = next;
        }
    }
}

fn first_of_next_month(date: Date) -> Option<Date> {
    if date.month() == 12 {
        Date::new(date.year().checked_add(1)?, 1, 1).ok()
    } else {
        Date::new(date.year(), date.month() + 1, 1).ok()
    }
}

fn midnight(date: Date) -> DateTime {
    date.to_datetime(Time::midnight())
}

fn at(date: Date, hour: i8, minute: i8) -> Option<DateTime> {
    Some(date.to_datetime(Time::new(hour, minute, 0, 0).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn utc_next(spec: &str, after: &str) -> Option<Timestamp> {
        Schedule::parse(spec)
            .unwrap()
            .next_after(ts(after), &TimeZone::UTC)
    }

    /// The next `n` firing times after `after`, in UTC.
    fn utc_series(spec: &str, after: &str, n: usize) -> Vec<String> {
        series(spec, after, &TimeZone::UTC, n)
    }

    fn series(spec: &str, after: &str, tz: &TimeZone, n: usize) -> Vec<String> {
        let schedule = Schedule::parse(spec).unwrap();
        let mut t = ts(after);
        let mut out = Vec::new();
        for _ in 0..n {
            let next = schedule.next_after(t, tz).unwrap();
            assert!(next > t, "{spec}: {next} not after {t}");
            out.push(next.to_string());
            t = next;
        }
        out
    }

    fn err(spec: &str) -> String {
        Schedule::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn every_fifteen_minutes() {
        assert_eq!(
            utc_series("*/15 * * * *", "2025-01-01T10:07:30Z", 4),
            [
                "2025-01-01T10:15:00Z",
                "2025-01-01T10:30:00Z",
                "2025-01-01T10:45:00Z",
                "2025-01-01T11:00:00Z"
            ]
        );
        // Strictly after, to the second.
        assert_eq!(
            utc_next("*/15 * * * *", "2025-01-01T10:14:59.9Z"),
            Some(ts("2025-01-01T10:15:00Z"))
        );
        assert_eq!(
            utc_next("*/15 * * * *", "2025-01-01T10:15:00Z"),
            Some(ts("2025-01-01T10:30:00Z"))
        );
        assert_eq!(
            utc_next("*/15 * * * *", "2025-01-01T10:15:00.5Z"),
            Some(ts("2025-01-01T10:30:00Z"))
        );
        assert_eq!(
            utc_next("* * * * *", "2025-12-31T23:59:00Z"),
            Some(ts("2026-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn working_hours() {
        // 2025-01-03 is a Friday.
        assert_eq!(
            utc_series("0 9-17 * * MON-FRI", "2025-01-03T16:30:00Z", 3),
            [
                "2025-01-03T17:00:00Z",
                "2025-01-06T09:00:00Z",
                "2025-01-06T10:00:00Z"
            ]
        );
    }

    #[test]
    fn lists_and_steps() {
        assert_eq!(
            utc_series("30 2 1,15 * *", "2025-01-01T03:00:00Z", 3),
            [
                "2025-01-15T02:30:00Z",
                "2025-02-01T02:30:00Z",
                "2025-02-15T02:30:00Z"
            ]
        );
        // `N/step` runs from N to the maximum.
        assert_eq!(
            utc_series("5/20 * * * *", "2025-01-01T00:00:00Z", 4),
            [
                "2025-01-01T00:05:00Z",
                "2025-01-01T00:25:00Z",
                "2025-01-01T00:45:00Z",
                "2025-01-01T01:05:00Z"
            ]
        );
        assert_eq!(
            Schedule::parse("1-10/3,,20 * * * *"),
            Schedule::parse("1,4,7,10,20 * * * *")
        );
        assert_eq!(
            Schedule::parse("  0   9 * *\t*\n"),
            Schedule::parse("0 9 * * *")
        );
        assert_eq!(Schedule::parse("+5 * * * *"), Schedule::parse("5 * * * *"));
        // Leap days are within the five years searched.
        assert_eq!(
            utc_next("0 0 29 2 *", "2025-03-01T00:00:00Z"),
            Some(ts("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        let numeric = Schedule::parse("0 0 * 1,7 1-5").unwrap();
        for spec in [
            "0 0 * JAN,JUL MON-FRI",
            "0 0 * jan,jul mon-fri",
            "0 0 * Jan,jUL Mon-fRi",
        ] {
            assert_eq!(Schedule::parse(spec).unwrap(), numeric, "{spec}");
        }
        assert_eq!(
            Schedule::parse("0 0 * * sun").unwrap(),
            Schedule::parse("0 0 * * 0").unwrap()
        );
        assert_eq!(
            Schedule::parse("0 0 * * sat").unwrap(),
            Schedule::parse("0 0 * * 6").unwrap()
        );
        // Names only in the month and day-of-week fields.
        assert!(Schedule::parse("0 0 jan * *").is_err());
    }

    #[test]
    fn descriptors() {
        let same = [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ];
        for (descriptor, fields) in same {
            assert_eq!(
                Schedule::parse(descriptor).unwrap(),
                Schedule::parse(fields).unwrap(),
                "{descriptor}"
            );
        }
        assert_eq!(
            utc_series("@hourly", "2025-01-01T10:00:00Z", 2),
            ["2025-01-01T11:00:00Z", "2025-01-01T12:00:00Z"]
        );
        assert_eq!(
            utc_next("@weekly", "2025-01-01T00:00:00Z"),
            Some(ts("2025-01-05T00:00:00Z"))
        );
        assert_eq!(
            utc_next("@yearly", "2025-01-01T00:00:00Z"),
            Some(ts("2026-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn every() {
        assert_eq!(
            utc_next("@every 1h30m", "2025-01-01T10:00:00Z"),
            Some(ts("2025-01-01T11:30:00Z"))
        );
        // From `after` rounded down to the second, whatever the zone.
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            Schedule::parse("@every 1h30m")
                .unwrap()
                .next_after(ts("2025-01-01T10:00:00.75Z"), &ny),
            Some(ts("2025-01-01T11:30:00Z"))
        );
        assert_eq!(
            utc_next("@every 90s", "2025-01-01T10:00:00Z"),
            Some(ts("2025-01-01T10:01:30Z"))
        );
        assert_eq!(
            utc_next("@every 5m", "2025-01-01T10:00:00Z"),
            Some(ts("2025-01-01T10:05:00Z"))
        );
        // Rounded down to the second, at least one second.
        assert_eq!(
            utc_next("@every 2.9s", "2025-01-01T10:00:00Z"),
            Some(ts("2025-01-01T10:00:02Z"))
        );
        for short in ["@every 500ms", "@every 0", "@every 0s", "@every -5m"] {
            assert_eq!(
                utc_next(short, "2025-01-01T10:00:00.5Z"),
                Some(ts("2025-01-01T10:00:01Z")),
                "{short}"
            );
        }
        // Before 1970 too.
        assert_eq!(
            utc_next("@every 1s", "1969-12-31T23:59:58.5Z"),
            Some(ts("1969-12-31T23:59:59Z"))
        );
        assert_eq!(
            err("@every 3d"),
            "failed to parse duration @every 3d: time: unknown unit \"d\" in duration \"3d\""
        );
        assert!(Schedule::parse("@every").is_err());
        assert!(Schedule::parse("@every ").is_err());
        assert!(Schedule::parse("@every  1h").is_err());
        assert!(Schedule::parse("@every 10").is_err());
        assert!(Schedule::parse("@every 3000000h").is_err());
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // Both restricted: the 13th (a Monday in January 2025) and every Friday.
        assert_eq!(
            utc_series("0 0 13 * FRI", "2025-01-01T00:00:00Z", 4),
            [
                "2025-01-03T00:00:00Z",
                "2025-01-10T00:00:00Z",
                "2025-01-13T00:00:00Z",
                "2025-01-17T00:00:00Z"
            ]
        );
        // An unrestricted day of month: only Fridays.
        assert_eq!(
            utc_series("0 0 * * FRI", "2025-01-01T00:00:00Z", 3),
            [
                "2025-01-03T00:00:00Z",
                "2025-01-10T00:00:00Z",
                "2025-01-17T00:00:00Z"
            ]
        );
        // An unrestricted day of week: only the 13th.
        assert_eq!(
            utc_series("0 0 13 * *", "2025-01-01T00:00:00Z", 2),
            ["2025-01-13T00:00:00Z", "2025-02-13T00:00:00Z"]
        );
        // `?` is `*`.
        assert_eq!(
            Schedule::parse("0 0 ? * FRI"),
            Schedule::parse("0 0 * * FRI")
        );
        // robfig: `*/1` is still unrestricted, `*/2` is restricted (so the days are OR-ed).
        assert_eq!(
            utc_series("0 0 */1 * MON", "2025-01-01T00:00:00Z", 2),
            ["2025-01-06T00:00:00Z", "2025-01-13T00:00:00Z"]
        );
        assert_eq!(
            utc_series("0 0 */2 * MON", "2025-01-01T00:00:00Z", 4),
            [
                "2025-01-03T00:00:00Z",
                "2025-01-05T00:00:00Z",
                "2025-01-06T00:00:00Z",
                "2025-01-07T00:00:00Z"
            ]
        );
    }

    #[test]
    fn never() {
        assert_eq!(utc_next("0 0 30 2 *", "2025-01-01T00:00:00Z"), None);
        assert_eq!(utc_next("0 0 31 4,6,9,11 *", "2025-01-01T00:00:00Z"), None);
        // An empty list (robfig accepts `,`) never fires.
        assert_eq!(utc_next(", * * * *", "2025-01-01T00:00:00Z"), None);
        // Feb 29 more than five years ahead.
        assert_eq!(utc_next("0 0 29 2 *", "2096-03-01T00:00:00Z"), None);
    }

    #[test]
    fn errors() {
        assert_eq!(err(""), "empty spec string");
        assert_eq!(err("  "), "empty spec string");
        assert_eq!(
            err("0 0 * * * *"),
            "expected exactly 5 fields, found 6: [0 0 * * * *]"
        );
        assert_eq!(
            err("0 0 * *"),
            "expected exactly 5 fields, found 4: [0 0 * *]"
        );
        assert_eq!(
            err("60 * * * *"),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            err("0-70 * * * *"),
            "end of range (70) above maximum (59): 0-70"
        );
        assert_eq!(err("0 0 * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(
            err("0 0 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            err("0 0 * 0 *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            err("5-3 * * * *"),
            "beginning of range (5) beyond end of range (3): 5-3"
        );
        assert_eq!(
            err("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(err("*/-1 * * * *"), "negative number (-1) not allowed: -1");
        assert_eq!(err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(err("*/2/3 * * * *"), "too many slashes: */2/3");
        assert_eq!(
            err("x * * * *"),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            err("-5 * * * *"),
            "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"
        );
        assert_eq!(
            err("99999999999999999999 * * * *"),
            "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \
             \"99999999999999999999\": value out of range"
        );
        assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert_eq!(err("@Hourly"), "unrecognized descriptor: @Hourly");
        assert_eq!(
            Schedule::parse("TZ=UTC 0 * * * *"),
            Err(CronError::TimeZoneInSchedule("TZ=UTC 0 * * * *".into()))
        );
        assert!(err("CRON_TZ=Europe/Berlin 0 * * * *").contains("spec.timeZone"));
    }

    #[test]
    fn time_zones() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let nine = Schedule::parse("0 9 * * *").unwrap();
        assert_eq!(
            nine.next_after(ts("2025-01-15T00:00:00Z"), &ny),
            Some(ts("2025-01-15T14:00:00Z"))
        );
        assert_eq!(
            nine.next_after(ts("2025-07-15T00:00:00Z"), &ny),
            Some(ts("2025-07-15T13:00:00Z"))
        );
        // Across the spring-forward change.
        assert_eq!(
            series("0 9 * * *", "2025-03-08T00:00:00Z", &ny, 2),
            ["2025-03-08T14:00:00Z", "2025-03-09T13:00:00Z"]
        );
        // A half-past offset: every hour on the hour in Kathmandu (+05:45).
        let kathmandu = TimeZone::get("Asia/Kathmandu").unwrap();
        assert_eq!(
            series("0 * * * *", "2025-01-01T00:00:00Z", &kathmandu, 2),
            ["2025-01-01T00:15:00Z", "2025-01-01T01:15:00Z"]
        );
    }

    #[test]
    fn daylight_saving_gap_is_skipped() {
        let ny = TimeZone::get("America/New_York").unwrap();
        // 02:30 does not exist in New York on 2025-03-09; like robfig/cron, that day has no
        // run and the next one is on the 10th (at 02:30 EDT).
        let after = ts("2025-03-09T05:00:00Z"); // 00:00 EST
        let next = Schedule::parse("30 2 * * *")
            .unwrap()
            .next_after(after, &ny)
            .unwrap();
        assert!(next > after);
        assert_eq!(next, ts("2025-03-10T06:30:00Z"));
        // Every half hour around the gap: 01:30 EST, then 03:00 EDT.
        assert_eq!(
            series("0,30 * * * *", "2025-03-09T06:15:00Z", &ny, 3),
            [
                "2025-03-09T06:30:00Z",
                "2025-03-09T07:00:00Z",
                "2025-03-09T07:30:00Z"
            ]
        );
        // In São Paulo, midnight of 2018-11-04 did not exist (00:00 -03 became 01:00 -02).
        let sao_paulo = TimeZone::get("America/Sao_Paulo").unwrap();
        assert_eq!(
            series("0 0 * * *", "2018-11-03T12:00:00Z", &sao_paulo, 2),
            ["2018-11-05T02:00:00Z", "2018-11-06T02:00:00Z"]
        );
        assert_eq!(
            series("0 * * * *", "2018-11-04T02:30:00Z", &sao_paulo, 2),
            ["2018-11-04T03:00:00Z", "2018-11-04T04:00:00Z"]
        );
    }

    #[test]
    fn daylight_saving_fold_fires_twice() {
        let ny = TimeZone::get("America/New_York").unwrap();
        // 01:30 happens twice in New York on 2025-11-02 (EDT, then EST), and so does the run.
        assert_eq!(
            series("30 1 * * *", "2025-11-02T04:00:00Z", &ny, 3),
            [
                "2025-11-02T05:30:00Z",
                "2025-11-02T06:30:00Z",
                "2025-11-03T06:30:00Z"
            ]
        );
        // Runs at 01:00 and 01:59 come in the order of the instants, not the readings.
        assert_eq!(
            series("0,59 1 * * *", "2025-11-02T04:00:00Z", &ny, 4),
            [
                "2025-11-02T05:00:00Z",
                "2025-11-02T05:59:00Z",
                "2025-11-02T06:00:00Z",
                "2025-11-02T06:59:00Z"
            ]
        );
    }

    #[test]
    fn matches_a_brute_force_search() {
        // Minute by minute over a few days around both New York changes and a month end,
        // and both changes of Lord Howe Island (half an hour: 02:00 +11 to 01:30 +10:30 on
        // 2025-04-06, 02:00 +10:30 to 02:30 +11 on 2025-10-05).
        let ny = TimeZone::get("America/New_York").unwrap();
        let lord_howe = TimeZone::get("Australia/Lord_Howe").unwrap();
        let specs = [
            "*/7 1-3 * * *",
            "0,30 2 * * *",
            "15 */5 1,9 * SUN",
            "59 23 31 * *",
            "0 0 * 3,11 *",
            "*/10 1,2 * * *",
            "45 1 * * *",
        ];
        let mut runs = 0;
        for (tz, start) in [
            (&ny, "2025-03-07T00:00:00Z"),
            (&ny, "2025-10-30T00:00:00Z"),
            (&ny, "2025-10-31T00:00:00Z"),
            (&lord_howe, "2025-04-04T00:00:00Z"),
            (&lord_howe, "2025-10-03T00:00:00Z"),
        ] {
            for spec in specs {
                let schedule = Schedule::parse(spec).unwrap();
                let Kind::Fields(fields) = schedule.kind else {
                    unreachable!()
                };
                // The first instant after `t` (a whole minute) whose reading matches, up to `end`.
                let end = ts(start)
                    .checked_add(jiff::SignedDuration::from_hours(96))
                    .unwrap();
                let brute = |t: Timestamp| {
                    let mut probe = t;
                    while probe < end {
                        probe = probe
                            .checked_add(jiff::SignedDuration::from_secs(60))
                            .unwrap();
                        let now = tz.to_datetime(probe);
                        if has(fields.month, now.month())
                            && fields.day_matches(now.date())
                            && has(fields.hour, now.hour())
                            && has(fields.minute, now.minute())
                        {
                            return Some(probe);
                        }
                    }
                    None
                };
                let mut t = ts(start);
                while let Some(want) = brute(t) {
                    assert_eq!(schedule.next_after(t, tz), Some(want), "{spec} after {t}");
                    t = want;
                    runs += 1;
                }
            }
        }
        assert!(runs > 500, "{runs}");
    }
}

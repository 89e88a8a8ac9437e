//! Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`, ...): exact parsing, arithmetic,
//! comparison, conversion to integer units and canonical printing — the behaviour of
//! apimachinery's `k8s.io/apimachinery/pkg/api/resource.Quantity`.
//!
//! `k8s_openapi`'s `Quantity` only wraps the string; [`parse_quantity`] turns it into a
//! [`Quantity`] that can be compared and summed (for scheduling, quota and limit ranges).
//!
//! The value is kept exactly as a decimal `mantissa × 10^exponent` (no floating point). As in
//! Kubernetes, parsed values are rounded up (away from zero) to a whole number of nano-units
//! (`0.1n` is `1n`), and `BinarySI` values are capped at 2^63-1. Unlike Kubernetes, which keeps
//! arbitrarily large decimals, a value needing more than 38 significant digits is rejected with
//! [`QuantityError::OutOfRange`].

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

/// The regular expression Kubernetes quotes in its format error ([`QuantityError::Format`]).
pub const SPLIT_RE: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Why a quantity could not be parsed or computed. The first three messages are Kubernetes'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string is not of the form number-then-suffix (also for the empty string).
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The number part has no digits where Kubernetes needs some (e.g. `.Ei`).
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is not one of the SI, binary SI or `e<n>` suffixes (e.g. `1Ki` is fine,
    /// `1ki` is not).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value needs more than 38 significant decimal digits, which this implementation
    /// does not represent.
    #[error("quantity is too large or too precise to represent (more than 38 significant digits)")]
    OutOfRange,
    /// An arithmetic result is not representable (more than 38 significant digits).
    #[error("quantity arithmetic overflowed")]
    Overflow,
}

/// How a quantity is written; kept from parsing and used when printing it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// `12e6`: a decimal exponent.
    DecimalExponent,
    /// `12Mi`: powers of 1024 (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`).
    BinarySI,
    /// `12M`: powers of 1000 (`n`, `u`, `m`, no suffix, `k`, `M`, `G`, `T`, `P`, `E`).
    #[default]
    DecimalSI,
}

/// An exact resource quantity. Equality, ordering and hashing look only at the value
/// (`1Gi == 1024Mi == 1073741824`), not at the [`Format`].
///
/// `Display` prints Kubernetes' canonical form (`1000m` → `1`, `1536Mi` stays `1536Mi`,
/// `0.5` → `500m`, `1.5Gi` → `1536Mi`).
#[derive(Debug, Clone)]
pub struct Quantity {
    /// Normalized: no trailing decimal zeros; zero is `(0, 0)`.
    mantissa: i128,
    exponent: i64,
    format: Format,
    /// The input string, when Kubernetes would serialize the parsed value as written (see
    /// [`Quantity::to_k8s_string`]).
    original: Option<Box<str>>,
}

/// Parses a Kubernetes API quantity. Leading and trailing whitespace is ignored, as Kubernetes
/// does when it decodes a quantity from JSON.
pub fn parse_quantity(quantity: &K8sQuantity) -> Result<Quantity, QuantityError> {
    Quantity::parse(quantity.0.trim())
}

const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// 10^n as an `i128`, if it fits.
fn pow10(n: i64) -> Option<i128> {
    usize::try_from(n).ok().and_then(|n| POW10.get(n).copied())
}

/// Divides by 10^n, rounding away from zero.
fn div_pow10_away(value: i128, n: i64) -> i128 {
    match pow10(n) {
        Some(d) => {
            let q = value / d;
            if value % d == 0 {
                q
            } else {
                q + value.signum()
            }
        }
        None => value.signum(),
    }
}

/// Removes trailing decimal zeros: `(1500, 0)` becomes `(15, 2)`; zero becomes `(0, 0)`.
fn normalize(mut mantissa: i128, mut exponent: i64) -> (i128, i64) {
    if mantissa == 0 {
        return (0, 0);
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exponent += 1;
    }
    (mantissa, exponent)
}

/// The decimal digits of `s` (all ASCII digits) as values 0-9.
fn digit_values(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.bytes().map(|c| c - b'0')
}

/// Doubles a big-endian decimal digit vector in place.
fn double_digits(digits: &mut Vec<u8>) {
    let mut carry = 0;
    for d in digits.iter_mut().rev() {
        let v = *d * 2 + carry;
        *d = v % 10;
        carry = v / 10;
    }
    if carry > 0 {
        digits.insert(0, carry);
    }
}

/// Adds one to a big-endian decimal digit vector.
fn increment_digits(digits: &mut Vec<u8>) {
    for d in digits.iter_mut().rev() {
        if *d == 9 {
            *d = 0;
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, 1);
}

/// The pieces of a quantity string, split like Kubernetes' `parseQuantityString`.
struct Scanned<'a> {
    positive: bool,
    /// Integer digits without leading zeros (empty for zero).
    num: &'a str,
    /// Fraction digits.
    denom: &'a str,
    suffix: &'a str,
    /// Whether the number part has any digit at all.
    has_digits: bool,
}

fn scan(s: &str) -> Result<Scanned<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let done = |num, denom, suffix, has_digits| {
        Ok(Scanned {
            positive,
            num,
            denom,
            suffix,
            has_digits,
        })
    };
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        // Only a sign and zeros (or nothing after the sign): zero.
        return done("", "", "", true);
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &s[num_start..pos];
    if pos >= end {
        return done(num, "", "", true);
    }
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
    }
    let has_digits = s[..pos].bytes().any(|c| c.is_ascii_digit());
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::Format);
    }
    done(num, denom, &s[suffix_start..], has_digits)
}

/// Interprets a suffix as (base, exponent, format).
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = |e| Some((10, e, Format::DecimalSI));
    let binary = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            if rest.is_empty() {
                return None;
            }
            let exponent: i64 = rest.parse().ok()?;
            // Kubernetes stores the exponent in an int32, truncating larger values.
            let exponent = exponent as i32;
            Some((10, exponent, Format::DecimalExponent))
        }
    }
}

impl Quantity {
    /// The quantity zero (`0`, `DecimalSI`).
    pub fn zero() -> Self {
        Quantity::from_parts(0, 0, Format::DecimalSI)
    }

    /// `value` in the given format (`resource.NewQuantity`).
    pub fn new(value: i64, format: Format) -> Self {
        Quantity::from_parts(i128::from(value), 0, format)
    }

    /// `value` thousandths in the given format (`resource.NewMilliQuantity`).
    pub fn from_milli(value: i64, format: Format) -> Self {
        Quantity::from_parts(i128::from(value), -3, format)
    }

    /// `value × 10^scale` in `DecimalSI` format (`resource.NewScaledQuantity`).
    pub fn from_scaled(value: i64, scale: i32) -> Self {
        Quantity::from_parts(i128::from(value), i64::from(scale), Format::DecimalSI)
    }

    fn from_parts(mantissa: i128, exponent: i64, format: Format) -> Self {
        let (mantissa, exponent) = normalize(mantissa, exponent);
        Quantity {
            mantissa,
            exponent,
            format,
            original: None,
        }
    }

    /// Parses a quantity string (`resource.ParseQuantity`): an optionally signed decimal
    /// number (`1`, `1.5`, `.5`, `1.`) followed by a suffix — binary SI (`Ki` … `Ei`), decimal
    /// SI (`n`, `u`, `m`, none, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`,
    /// `E-2`). No whitespace is allowed.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::Format);
        }
        if s == "0" {
            let mut q = Quantity::zero();
            q.original = Some(s.into());
            return Ok(q);
        }
        let scanned = scan(s)?;
        let (base, exponent, format) =
            interpret_suffix(scanned.suffix).ok_or(QuantityError::Suffix)?;

        // Kubernetes has a fast int64 path; which path a string takes decides whether the
        // input is kept as the serialized form, and whether "no digits" is an error.
        let go_num = if scanned.num.is_empty() {
            "0"
        } else {
            scanned.num
        };
        let denom_len = scanned.denom.len() as i64;
        let mut cached = false;
        let fast = if base == 10 {
            let precision = 18 - (go_num.len() as i64 + denom_len);
            let scale = i64::from(exponent) - denom_len;
            let fast = precision >= 0 && scale >= -9;
            if fast {
                let shifted_ends_000 = if scanned.denom.is_empty() {
                    go_num.ends_with("000")
                } else {
                    format!("{go_num}{}", scanned.denom).ends_with("000")
                };
                cached = scale % 3 == 0 && !shifted_ends_000 && !go_num.starts_with('0');
            }
            fast
        } else {
            let precision = 15 - go_num.len() as i64 - i64::from(exponent) * 3 / 10 - 1;
            let mut fast = false;
            if precision >= 0
                && scanned.denom.is_empty()
                && let Ok(value) = go_num.parse::<i64>()
                && let Some(result) = value.checked_mul(1i64 << exponent)
            {
                fast = true;
                cached = result != 0 && value & 0x07 != 0;
            }
            fast
        };
        if !fast && !scanned.has_digits {
            return Err(QuantityError::Numeric);
        }

        // The exact value: digits × 10^exp10 (× 2^exponent for binary suffixes).
        let mut digits: Vec<u8> = digit_values(scanned.num)
            .chain(digit_values(scanned.denom))
            .collect();
        let mut exp10 = -denom_len;
        let mut capped = false;
        if base == 10 {
            exp10 += i64::from(exponent);
        } else if scanned.num.len() > 19 {
            // At least 10^19 × 1024: far above the cap.
            capped = true;
        } else {
            for _ in 0..exponent {
                double_digits(&mut digits);
            }
        }

        // Round up (away from zero) to a whole number of nano-units.
        if !capped && exp10 < -9 {
            let cut = u64::try_from(-9 - exp10).unwrap_or(u64::MAX);
            let len = digits.len() as u64;
            if cut >= len {
                let nonzero = digits.iter().any(|&d| d != 0);
                digits = if nonzero { vec![1] } else { Vec::new() };
            } else {
                let keep = (len - cut) as usize;
                let sticky = digits[keep..].iter().any(|&d| d != 0);
                digits.truncate(keep);
                if sticky {
                    increment_digits(&mut digits);
                }
            }
            exp10 = -9;
        }

        let first_nonzero = digits.iter().position(|&d| d != 0);
        let mut digits: &[u8] = match first_nonzero {
            Some(i) => &digits[i..],
            None => &[],
        };
        while let [rest @ .., 0] = digits {
            digits = rest;
            exp10 += 1;
        }

        let max = i128::from(i64::MAX);
        let mut quantity = if capped {
            Quantity::from_parts(max, 0, format)
        } else if digits.is_empty() {
            Quantity::from_parts(0, 0, format)
        } else {
            if format == Format::BinarySI {
                // Cap the magnitude at 2^63-1.
                let int_digits = digits.len() as i64 + exp10;
                let over = int_digits > 19 || {
                    let v = digits
                        .iter()
                        .fold(0i128, |acc, &d| acc * 10 + i128::from(d));
                    let lhs = v * pow10(exp10.max(0)).unwrap_or(1);
                    let rhs = max * pow10((-exp10).max(0)).unwrap_or(1);
                    lhs > rhs
                };
                if over {
                    capped = true;
                }
            }
            if capped {
                Quantity::from_parts(max, 0, format)
            } else {
                if digits.len() > 38 {
                    return Err(QuantityError::OutOfRange);
                }
                let v = digits
                    .iter()
                    .fold(0i128, |acc, &d| acc * 10 + i128::from(d));
                Quantity::from_parts(v, exp10, format)
            }
        };
        if !scanned.positive {
            quantity.mantissa = -quantity.mantissa;
        }
        // A binary quantity strictly between -1 and 1 is printed in decimal.
        if quantity.format == Format::BinarySI
            && quantity.mantissa != 0
            && quantity.cmp_abs_one() == Ordering::Less
        {
            quantity.format = Format::DecimalSI;
        }
        if cached {
            quantity.original = Some(s.into());
        }
        Ok(quantity)
    }

    /// Compares |self| with 1.
    fn cmp_abs_one(&self) -> Ordering {
        let abs = Quantity::from_parts(self.mantissa.abs(), self.exponent, self.format);
        abs.cmp(&Quantity::new(1, Format::DecimalSI))
    }

    /// The format used when printing.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The same value printed in another format.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self.original = None;
        self
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// -1, 0 or 1 as the value is negative, zero or positive.
    pub fn signum(&self) -> i32 {
        match self.mantissa.cmp(&0) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    /// `ceil(value / 10^scale)`, rounding away from zero, or `None` if it does not fit an
    /// `i64`.
    pub fn try_scaled_value(&self, scale: i32) -> Option<i64> {
        if self.mantissa == 0 {
            return Some(0);
        }
        let shift = self.exponent - i64::from(scale);
        let v = if shift >= 0 {
            self.mantissa.checked_mul(pow10(shift)?)?
        } else {
            div_pow10_away(self.mantissa, -shift)
        };
        i64::try_from(v).ok()
    }

    /// `ceil(value / 10^scale)`, rounding away from zero and saturating at the `i64` limits
    /// (`Quantity.ScaledValue`; Kubernetes' result is undefined on overflow).
    pub fn scaled_value(&self, scale: i32) -> i64 {
        self.try_scaled_value(scale)
            .unwrap_or(if self.mantissa < 0 {
                i64::MIN
            } else {
                i64::MAX
            })
    }

    /// The value as a whole number, rounded up away from zero (`Quantity.Value`: `100m` → 1,
    /// `1Ki` → 1024), saturating at the `i64` limits.
    pub fn to_value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// The value in thousandths, rounded up away from zero (`Quantity.MilliValue`: `1` →
    /// 1000, `1n` → 1), saturating at the `i64` limits.
    pub fn to_milli(&self) -> i64 {
        self.scaled_value(-3)
    }

    /// The value as an `f64`, possibly inexact (`Quantity.AsApproximateFloat64`).
    pub fn as_approximate_f64(&self) -> f64 {
        let e = i32::try_from(self.exponent.clamp(-400, 400)).unwrap_or(0);
        let m = self.mantissa as f64;
        if e >= 0 {
            m * 10f64.powi(e)
        } else {
            m / 10f64.powi(-e)
        }
    }

    /// Aligns two values to a common exponent, if the mantissas fit.
    fn aligned(&self, other: &Quantity) -> Option<(i128, i128, i64)> {
        fn scale_up(mantissa: i128, by: i64) -> Option<i128> {
            if mantissa == 0 {
                return Some(0);
            }
            mantissa.checked_mul(pow10(by)?)
        }
        let e = self.exponent.min(other.exponent);
        let a = scale_up(self.mantissa, self.exponent - e)?;
        let b = scale_up(other.mantissa, other.exponent - e)?;
        Some((a, b, e))
    }

    /// `self + other` (`Quantity.Add`): the result keeps this quantity's format, or takes
    /// `other`'s if this one is zero.
    pub fn checked_add(&self, other: &Quantity) -> Result<Quantity, QuantityError> {
        let format = if self.is_zero() {
            other.format
        } else {
            self.format
        };
        if other.is_zero() {
            return Ok(Quantity::from_parts(self.mantissa, self.exponent, format));
        }
        if self.is_zero() {
            return Ok(Quantity::from_parts(other.mantissa, other.exponent, format));
        }
        let (a, b, e) = self.aligned(other).ok_or(QuantityError::Overflow)?;
        let sum = a.checked_add(b).ok_or(QuantityError::Overflow)?;
        Ok(Quantity::from_parts(sum, e, format))
    }

    /// `self - other` (`Quantity.Sub`): the result keeps this quantity's format, or takes
    /// `other`'s if this one is zero.
    pub fn checked_sub(&self, other: &Quantity) -> Result<Quantity, QuantityError> {
        let mut result = self.checked_add(&-other)?;
        if self.is_zero() {
            result.format = other.format;
        }
        Ok(result)
    }

    /// The canonical string: the largest suffix that keeps the number whole and exact, in the
    /// quantity's format (`Quantity.String` without its cache of the parsed input). `BinarySI`
    /// values below 1024 in magnitude, or not whole, print as `DecimalSI`; `DecimalSI` values
    /// beyond the `E` suffix print with a decimal exponent (as Kubernetes does since it fixed
    /// the bug that dropped their magnitude).
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_string();
        }
        if self.format == Format::BinarySI
            && let Some(s) = self.canonical_binary()
        {
            return s;
        }
        self.canonical_decimal()
    }

    fn canonical_binary(&self) -> Option<String> {
        if self.exponent < 0 {
            // Not a whole number.
            return None;
        }
        let mut value = self.mantissa.checked_mul(pow10(self.exponent)?)?;
        if value.abs() < 1024 {
            return None;
        }
        let mut power = 0;
        while value % 1024 == 0 && power < 6 {
            value /= 1024;
            power += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
        Some(format!("{value}{suffix}"))
    }

    fn canonical_decimal(&self) -> String {
        // Lower the exponent to a multiple of three, padding the mantissa with zeros.
        let pad = self.exponent.rem_euclid(3);
        let exponent = self.exponent - pad;
        let zeros = "0".repeat(pad as usize);
        let number = format!("{}{zeros}", self.mantissa);
        let si = match exponent {
            -9 => Some("n"),
            -6 => Some("u"),
            -3 => Some("m"),
            0 => Some(""),
            3 => Some("k"),
            6 => Some("M"),
            9 => Some("G"),
            12 => Some("T"),
            15 => Some("P"),
            18 => Some("E"),
            _ => None,
        };
        match (self.format, si) {
            (Format::DecimalSI | Format::BinarySI, Some(suffix)) => format!("{number}{suffix}"),
            (_, _) if exponent == 0 => number,
            _ => format!("{number}e{exponent}"),
        }
    }

    /// The string Kubernetes would serialize this quantity as (`Quantity.String` /
    /// `MarshalJSON`): the canonical form, except that a parsed quantity whose input
    /// Kubernetes considers already canonical keeps the input verbatim — including quirks like
    /// `+1`, `01` or `1E3`.
    pub fn to_k8s_string(&self) -> String {
        match &self.original {
            Some(s) => s.to_string(),
            None => self.canonical(),
        }
    }

    /// The quantity as the `k8s_openapi` string wrapper, serialized as Kubernetes would
    /// ([`Quantity::to_k8s_string`]).
    pub fn to_k8s(&self) -> K8sQuantity {
        K8sQuantity(self.to_k8s_string())
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity::zero()
    }
}

impl std::ops::Neg for &Quantity {
    type Output = Quantity;

    /// The value negated, in the same format.
    fn neg(self) -> Quantity {
        Quantity {
            mantissa: -self.mantissa,
            exponent: self.exponent,
            format: self.format,
            original: None,
        }
    }
}

impl std::ops::Neg for Quantity {
    type Output = Quantity;

    /// The value negated, in the same format.
    fn neg(self) -> Quantity {
        -&self
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.mantissa == other.mantissa && self.exponent == other.exponent
    }
}

impl Eq for Quantity {}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.mantissa.hash(state);
        self.exponent.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = self.signum().cmp(&other.signum());
        if sign != Ordering::Equal || self.mantissa == 0 {
            return sign;
        }
        match self.aligned(other) {
            Some((a, b, _)) => a.cmp(&b),
            None => {
                // One mantissa overflowed when scaled up: that value has the larger
                // magnitude.
                let self_larger = self.exponent > other.exponent;
                match (self_larger, self.mantissa > 0) {
                    (true, true) | (false, false) => Ordering::Greater,
                    _ => Ordering::Less,
                }
            }
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl TryFrom<&K8sQuantity> for Quantity {
    type Error = QuantityError;

    fn try_from(q: &K8sQuantity) -> Result<Self, Self::Error> {
        parse_quantity(q)
    }
}

impl From<&Quantity> for K8sQuantity {
    fn from(q: &Quantity) -> Self {
        q.to_k8s()
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_k8s_string())
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    /// Accepts a string (surrounding whitespace ignored) or a JSON number, like Kubernetes'
    /// `UnmarshalJSON`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity string or number")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v.trim()).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        match Quantity::parse(s) {
            Ok(q) => q,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    /// mantissa × 10^exponent.
    fn dec(mantissa: i128, exponent: i64) -> Quantity {
        Quantity::from_parts(mantissa, exponent, Format::DecimalSI)
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            QuantityError::Format.to_string(),
            format!("quantities must match the regular expression '{SPLIT_RE}'")
        );
        assert_eq!(
            QuantityError::Numeric.to_string(),
            "unable to parse numeric part of quantity"
        );
        assert_eq!(
            QuantityError::Suffix.to_string(),
            "unable to parse quantity's suffix"
        );
    }

    #[test]
    fn parse_values_and_formats() {
        use Format::*;
        let cases: &[(&str, i128, i64, Format)] = &[
            ("0", 0, 0, DecimalSI),
            ("0n", 0, 0, DecimalSI),
            ("0u", 0, 0, DecimalSI),
            ("0m", 0, 0, DecimalSI),
            ("0Ki", 0, 0, BinarySI),
            ("0k", 0, 0, DecimalSI),
            ("0Mi", 0, 0, BinarySI),
            ("0M", 0, 0, DecimalSI),
            ("0Gi", 0, 0, BinarySI),
            ("0G", 0, 0, DecimalSI),
            ("0Ti", 0, 0, BinarySI),
            ("0T", 0, 0, DecimalSI),
            ("1", 1, 0, DecimalSI),
            // Binary suffixes.
            ("1Ki", 1024, 0, BinarySI),
            ("8Ki", 8 * 1024, 0, BinarySI),
            ("7Mi", 7 << 20, 0, BinarySI),
            ("6Gi", 6 << 30, 0, BinarySI),
            ("5Ti", 5 << 40, 0, BinarySI),
            ("4Pi", 4 << 50, 0, BinarySI),
            ("3Ei", 3 << 60, 0, BinarySI),
            ("10Ti", 10 << 40, 0, BinarySI),
            ("100Ti", 100 << 40, 0, BinarySI),
            // Decimal suffixes.
            ("5n", 5, -9, DecimalSI),
            ("4u", 4, -6, DecimalSI),
            ("3m", 3, -3, DecimalSI),
            ("9", 9, 0, DecimalSI),
            ("8k", 8, 3, DecimalSI),
            ("50k", 5, 4, DecimalSI),
            ("7M", 7, 6, DecimalSI),
            ("6G", 6, 9, DecimalSI),
            ("5T", 5, 12, DecimalSI),
            ("40T", 4, 13, DecimalSI),
            ("300T", 3, 14, DecimalSI),
            ("2P", 2, 15, DecimalSI),
            ("1E", 1, 18, DecimalSI),
            ("12E", 12, 18, DecimalSI),
            // Decimal exponents.
            ("1E-3", 1, -3, DecimalExponent),
            ("1e3", 1, 3, DecimalExponent),
            ("1E6", 1, 6, DecimalExponent),
            ("1e9", 1, 9, DecimalExponent),
            ("1E12", 1, 12, DecimalExponent),
            ("1e15", 1, 15, DecimalExponent),
            ("1E18", 1, 18, DecimalExponent),
            ("1e14", 1, 14, DecimalExponent),
            ("1e+3", 1, 3, DecimalExponent),
            ("1e03", 1, 3, DecimalExponent),
            ("100.035k", 100035, 0, DecimalSI),
            // Things that look like floating point.
            ("0.001", 1, -3, DecimalSI),
            ("0.0005k", 5, -1, DecimalSI),
            ("0.005", 5, -3, DecimalSI),
            ("0.05", 5, -2, DecimalSI),
            ("0.5", 5, -1, DecimalSI),
            ("0.00050k", 5, -1, DecimalSI),
            ("0.00500", 5, -3, DecimalSI),
            ("0.05000", 5, -2, DecimalSI),
            ("0.50000", 5, -1, DecimalSI),
            ("0.5e0", 5, -1, DecimalExponent),
            ("0.5e-1", 5, -2, DecimalExponent),
            ("0.5e-2", 5, -3, DecimalExponent),
            ("10.035M", 10035, 3, DecimalSI),
            ("1.2e3", 12, 2, DecimalExponent),
            ("1.3E+6", 13, 5, DecimalExponent),
            ("1.40e9", 14, 8, DecimalExponent),
            ("1.53E12", 153, 10, DecimalExponent),
            ("1.6e15", 16, 14, DecimalExponent),
            ("1.7E18", 17, 17, DecimalExponent),
            ("9.01", 901, -2, DecimalSI),
            ("8.1k", 81, 2, DecimalSI),
            ("7.123456M", 7123456, 0, DecimalSI),
            ("6.987654321G", 6987654321, 0, DecimalSI),
            ("5.444T", 5444, 9, DecimalSI),
            ("40.1T", 401, 11, DecimalSI),
            ("300.2T", 3002, 11, DecimalSI),
            ("2.5P", 25, 14, DecimalSI),
            ("1.01E", 101, 16, DecimalSI),
            // Rounding up to nano-units, and the binary cap.
            ("3.001n", 4, -9, DecimalSI),
            ("1.1E-9", 2, -9, DecimalExponent),
            ("0.0000000001", 1, -9, DecimalSI),
            ("0.0000000005", 1, -9, DecimalSI),
            ("0.00000000050", 1, -9, DecimalSI),
            ("0.5e-9", 1, -9, DecimalExponent),
            ("0.9n", 1, -9, DecimalSI),
            ("0.00000012345", 124, -9, DecimalSI),
            ("0.00000012354", 124, -9, DecimalSI),
            ("1e-100", 1, -9, DecimalExponent),
            ("0e-100", 0, 0, DecimalExponent),
            ("9Ei", i64::MAX as i128, 0, BinarySI),
            ("8Ei", i64::MAX as i128, 0, BinarySI),
            ("9223372036854775807Ki", i64::MAX as i128, 0, BinarySI),
            (
                "123456789012345678901234567890Ki",
                i64::MAX as i128,
                0,
                BinarySI,
            ),
            ("7.99999999999999999999999Ei", i64::MAX as i128, 0, BinarySI),
            // Fractional binary quantities.
            ("100.035Ki", 10243584, -2, BinarySI),
            ("0.5Mi", 524288, 0, BinarySI),
            ("0.05Gi", 536870912, -1, BinarySI),
            ("0.025Ti", 274877906944, -1, BinarySI),
            ("1.5Gi", 1610612736, 0, BinarySI),
            ("0.000000000001Ki", 2, -9, DecimalSI),
            ("0.5Ki", 512, 0, BinarySI),
            ("0.0001Ki", 1024, -4, DecimalSI),
            // Odd but accepted spellings.
            (".001", 1, -3, DecimalSI),
            (".0001k", 1, -1, DecimalSI),
            ("1.", 1, 0, DecimalSI),
            ("1.G", 1, 9, DecimalSI),
            ("01", 1, 0, DecimalSI),
            ("-", 0, 0, DecimalSI),
            ("+", 0, 0, DecimalSI),
            ("00", 0, 0, DecimalSI),
            (".", 0, 0, DecimalSI),
            ("k", 0, 0, DecimalSI),
            ("Ki", 0, 0, BinarySI),
            ("e5", 0, 0, DecimalExponent),
            // Large decimal values are kept exactly (no cap outside BinarySI).
            ("1e30", 1, 30, DecimalExponent),
            ("1000E", 1, 21, DecimalSI),
            (
                "123456789012345678901234567890",
                12345678901234567890123456789,
                1,
                DecimalSI,
            ),
        ];
        for &(input, mantissa, exponent, format) in cases {
            for (prefix, sign) in [("", 1), ("+", 1), ("-", -1)] {
                if !prefix.is_empty() && (input.starts_with(['-', '+'])) {
                    continue;
                }
                let text = format!("{prefix}{input}");
                let got = q(&text);
                let want = Quantity::from_parts(mantissa * sign, exponent, format);
                assert_eq!(got, want, "{text:?}: got {got:?}");
                assert_eq!(got.format(), format, "{text:?}");
            }
        }
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("", QuantityError::Format),
            ("1.1.M", QuantityError::Format),
            ("1+1.0M", QuantityError::Format),
            ("aoeu", QuantityError::Format),
            (" 1", QuantityError::Format),
            ("1 ", QuantityError::Format),
            ("1,5", QuantityError::Format),
            ("1Mi ", QuantityError::Format),
            ("--1", QuantityError::Suffix),
            ("1e3.5", QuantityError::Format),
            ("1Kiß", QuantityError::Format),
            ("0.1mi", QuantityError::Suffix),
            ("0.1am", QuantityError::Format),
            (".5i", QuantityError::Suffix),
            ("1i", QuantityError::Suffix),
            ("-3.01i", QuantityError::Suffix),
            ("-3.01e-", QuantityError::Suffix),
            ("1e", QuantityError::Suffix),
            ("1ki", QuantityError::Suffix),
            ("1K", QuantityError::Suffix),
            ("1KiB", QuantityError::Format),
            ("1Mm", QuantityError::Suffix),
            ("1e99999999999999999999", QuantityError::Suffix),
            ("1m3", QuantityError::Suffix),
            // No digits, on the paths where Kubernetes needs them.
            (".Pi", QuantityError::Numeric),
            ("Ei", QuantityError::Numeric),
            ("-.e-10", QuantityError::Numeric),
            // Beyond what is represented here.
            (
                "1234567890123456789012345678901234567891",
                QuantityError::OutOfRange,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Quantity::parse(input), Err(want), "{input:?}");
        }
        assert_eq!(
            Quantity::parse("").unwrap_err().to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn canonical_forms() {
        let cases = [
            ("1Ki", "1Ki"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("100m", "100m"),
            ("0.1", "100m"),
            ("1.08", "1080m"),
            ("1080000000n", "1080m"),
            ("1000u", "1m"),
            ("0.001T", "1G"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("10000T", "10P"),
            ("1.5k", "1500"),
            ("2E", "2E"),
            ("1000E", "1e21"),
            ("12E", "12E"),
            ("0.5Ki", "512"),
            ("0.5Mi", "512Ki"),
            ("100.035Ki", "102435840m"),
            ("1025Ki", "1025Ki"),
            ("1023", "1023"),
            ("300Mi", "300Mi"),
            ("307200Ki", "300Mi"),
            ("1025024Mi", "1001Gi"),
            ("1024Gi", "1Ti"),
            ("1024Ei", "9223372036854775807"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1.5e3", "1500"),
            ("15e2", "1500"),
            ("1e-3", "1e-3"),
            ("0.001e0", "1e-3"),
            ("1000e-12", "1e-9"),
            (".001e12", "1e9"),
            ("80e-3", "80e-3"),
            ("300e6", "300e6"),
            ("1e4", "10e3"),
            ("1e30", "1e30"),
            ("1e31", "10e30"),
            ("1e-20", "1e-9"),
            ("0", "0"),
            ("00", "0"),
            ("0Ki", "0"),
            ("0e3", "0"),
            ("-0", "0"),
            ("-1", "-1"),
            ("-1.5", "-1500m"),
            ("-1536Mi", "-1536Mi"),
            ("-1024Mi", "-1Gi"),
            ("-0.5Ki", "-512"),
            ("-1000E", "-1e21"),
            ("+1", "1"),
            ("01", "1"),
        ];
        for (input, want) in cases {
            let got = q(input);
            assert_eq!(got.to_string(), want, "{input:?}");
            assert_eq!(got.canonical(), want, "{input:?}");
            // The canonical form parses back to the same value.
            assert_eq!(q(want), got, "{want:?}");
            assert_eq!(q(want).to_string(), want, "{want:?}");
        }
    }

    #[test]
    fn kubernetes_serialization_keeps_canonical_input() {
        // Kubernetes re-emits a parsed string verbatim when its fast path deems it canonical.
        let cases = [
            ("0", "0"),
            ("100m", "100m"),
            ("1", "1"),
            ("+1", "+1"),
            ("01", "01"),
            ("1.", "1."),
            ("1E3", "1E3"),
            ("1500e0", "1500e0"),
            ("-1Ki", "-1Ki"),
            ("+1Ki", "+1Ki"),
            ("1025Ki", "1025Ki"),
            ("1Gi", "1Gi"),
            // Not kept: re-emitted in canonical form.
            ("1000", "1k"),
            ("8Ki", "8Ki"),
            ("1024Mi", "1Gi"),
            ("0.5", "500m"),
            ("1.0", "1"),
            ("1.5k", "1500"),
            ("0m", "0"),
            ("0Ki", "0"),
            ("-0", "0"),
            ("1.5Gi", "1536Mi"),
            ("12345678901234567890", "12345678901234567890"),
        ];
        for (input, want) in cases {
            let got = q(input);
            assert_eq!(got.to_k8s_string(), want, "{input:?}");
            assert_eq!(got.to_k8s().0, want, "{input:?}");
            assert_eq!(K8sQuantity::from(&got).0, want, "{input:?}");
        }
        // Arithmetic and format changes drop the input string.
        let plus_one = q("+1");
        assert_eq!(
            plus_one
                .checked_add(&Quantity::zero())
                .unwrap()
                .to_k8s_string(),
            "1"
        );
        assert_eq!(
            plus_one
                .clone()
                .with_format(Format::DecimalSI)
                .to_k8s_string(),
            "1"
        );
        assert_eq!((-&plus_one).to_k8s_string(), "-1");
    }

    #[test]
    fn scaled_values_round_up() {
        let cases: &[(&str, i64, i64)] = &[
            // (input, to_value, to_milli)
            ("0", 0, 0),
            ("1", 1, 1000),
            ("100m", 1, 100),
            ("1m", 1, 1),
            ("1500m", 2, 1500),
            ("1n", 1, 1),
            ("999999n", 1, 1),
            ("1000001n", 1, 2),
            ("0.5", 1, 500),
            ("1Ki", 1024, 1024000),
            ("1.5Ki", 1536, 1536000),
            ("1Gi", 1073741824, 1073741824000),
            ("2E", 2_000_000_000_000_000_000, i64::MAX),
            ("9Ei", i64::MAX, i64::MAX),
            ("1e30", i64::MAX, i64::MAX),
            ("-100m", -1, -100),
            ("-1.5", -2, -1500),
            ("-1n", -1, -1),
            ("-1e30", i64::MIN, i64::MIN),
            ("9223372036854775", 9223372036854775, 9223372036854775000),
            ("9223372036854776", 9223372036854776, i64::MAX),
        ];
        for &(input, value, milli) in cases {
            let got = q(input);
            assert_eq!(got.to_value(), value, "{input:?} value");
            assert_eq!(got.to_milli(), milli, "{input:?} milli");
        }
        assert_eq!(q("2E").try_scaled_value(-3), None);
        assert_eq!(q("1").try_scaled_value(-3), Some(1000));

        // From Kubernetes' TestScaledValue: NewScaledQuantity(1, from).ScaledValue(to).
        let scales: &[(i32, i32, i64)] = &[
            (-9, -9, 1),
            (-9, -6, 1),
            (-9, -3, 1),
            (-9, 0, 1),
            (-6, -9, 1000),
            (-6, -6, 1),
            (-6, -3, 1),
            (-6, 0, 1),
            (-3, -9, 1_000_000),
            (-3, -6, 1000),
            (-3, -3, 1),
            (-3, 0, 1),
            (0, -9, 1_000_000_000),
            (0, -6, 1_000_000),
            (0, -3, 1000),
            (0, 0, 1),
            (2, -2, 10000),
        ];
        for &(from, to, want) in scales {
            assert_eq!(
                Quantity::from_scaled(1, from).scaled_value(to),
                want,
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn comparisons() {
        let cases = [
            ("0", "0", Ordering::Equal),
            ("100m", "50m", Ordering::Greater),
            ("50m", "100m", Ordering::Less),
            ("10000T", "100Gi", Ordering::Greater),
            ("1Gi", "1024Mi", Ordering::Equal),
            ("1Gi", "1073741824", Ordering::Equal),
            ("1k", "1e3", Ordering::Equal),
            ("1", "1000m", Ordering::Equal),
            ("0.5", "500m", Ordering::Equal),
            ("1Ki", "1k", Ordering::Greater),
            ("-1", "1", Ordering::Less),
            ("-1", "-2", Ordering::Greater),
            ("-1n", "0", Ordering::Less),
            ("1n", "0", Ordering::Greater),
            ("1e30", "1n", Ordering::Greater),
            ("1n", "1e30", Ordering::Less),
            ("-1e30", "-1n", Ordering::Less),
            ("-1n", "-1e30", Ordering::Greater),
            ("1e30", "2e29", Ordering::Greater),
            ("123456789012345678901234567890", "1e30", Ordering::Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(q(a).cmp(&q(b)), want, "{a} vs {b}");
            assert_eq!(q(b).cmp(&q(a)), want.reverse(), "{b} vs {a}");
            assert_eq!(q(a) == q(b), want == Ordering::Equal, "{a} == {b}");
        }
        let mut sorted = [q("1Gi"), q("100m"), q("-1"), q("1"), q("0")];
        sorted.sort();
        let printed: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["-1", "0", "100m", "1", "1Gi"]);

        use std::collections::HashSet;
        let set: HashSet<Quantity> = [q("1Gi"), q("1024Mi"), q("1073741824")].into();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn arithmetic() {
        let add = |a: &str, b: &str| q(a).checked_add(&q(b)).unwrap().to_string();
        let sub = |a: &str, b: &str| q(a).checked_sub(&q(b)).unwrap().to_string();
        assert_eq!(add("100m", "900m"), "1");
        assert_eq!(add("1Gi", "512Mi"), "1536Mi");
        assert_eq!(add("1", "1Ki"), "1025");
        assert_eq!(add("1Ki", "1"), "1025");
        assert_eq!(add("1Ki", "1Ki"), "2Ki");
        assert_eq!(add("1n", "1E"), "1000000000000000000000000001n");
        assert_eq!(add("1e3", "1e3"), "2e3");
        assert_eq!(add("-1", "1"), "0");
        assert_eq!(sub("1", "100m"), "900m");
        assert_eq!(sub("1Gi", "512Mi"), "512Mi");
        assert_eq!(sub("100m", "1"), "-900m");
        assert_eq!(sub("1Ki", "1Ki"), "0");
        // Adding to (or subtracting from) zero takes the other quantity's format.
        for v in ["100m", "1Gi", "1e3"] {
            assert_eq!(add("0", v), v);
            assert_eq!(add(v, "0"), v);
            assert_eq!(sub(v, "0"), v);
            assert_eq!(sub("0", v), format!("-{v}"));
        }
        assert_eq!(
            q("0").checked_add(&q("1Gi")).unwrap().format(),
            Format::BinarySI
        );
        assert_eq!(
            q("0").checked_sub(&q("1Gi")).unwrap().format(),
            Format::BinarySI
        );
        // Results that cannot be represented are errors, not wrong values.
        assert_eq!(
            q("1e40").checked_add(&q("1n")),
            Err(QuantityError::Overflow)
        );
        let big = dec(i128::MAX / 10 * 9, 0);
        assert_eq!(big.checked_add(&big), Err(QuantityError::Overflow));
        // Round trips.
        for (a, b) in [("1", "1m"), ("1Gi", "1n"), ("-5k", "3Ki"), ("1e20", "7")] {
            let sum = q(a).checked_add(&q(b)).unwrap();
            assert_eq!(sum.checked_sub(&q(b)).unwrap(), q(a), "{a} {b}");
        }
        assert_eq!(-q("5"), q("-5"));
        assert_eq!((-q("-5")).to_string(), "5");
        assert_eq!((-q("1Gi")).to_string(), "-1Gi");
        assert_eq!((-q("0")).signum(), 0);
        assert_eq!(q("-1m").signum(), -1);
        assert_eq!(q("1m").signum(), 1);
        assert!(q("0Ki").is_zero());
    }

    #[test]
    fn constructors() {
        assert_eq!(Quantity::new(5, Format::BinarySI).to_string(), "5");
        assert_eq!(Quantity::new(2048, Format::BinarySI).to_string(), "2Ki");
        assert_eq!(Quantity::new(1000, Format::DecimalSI).to_string(), "1k");
        assert_eq!(
            Quantity::new(1000, Format::DecimalExponent).to_string(),
            "1e3"
        );
        assert_eq!(
            Quantity::from_milli(500, Format::DecimalSI).to_string(),
            "500m"
        );
        assert_eq!(
            Quantity::from_milli(500, Format::BinarySI).to_string(),
            "500m"
        );
        assert_eq!(
            Quantity::from_milli(1234567, Format::BinarySI).to_string(),
            "1234567m"
        );
        assert_eq!(
            Quantity::from_milli(1_024_000, Format::BinarySI).to_string(),
            "1Ki"
        );
        assert_eq!(Quantity::from_scaled(1, 9).to_string(), "1G");
        assert_eq!(Quantity::from_scaled(1, -12).to_string(), "1e-12");
        assert_eq!(Quantity::zero().to_string(), "0");
        assert_eq!(Quantity::default(), Quantity::zero());
        assert_eq!(
            Quantity::new(1536, Format::DecimalSI)
                .with_format(Format::BinarySI)
                .to_string(),
            "1536"
        );
        assert_eq!(
            q("1536Mi").with_format(Format::DecimalSI).to_string(),
            "1610612736"
        );
        assert_eq!(
            q("1Gi").with_format(Format::DecimalExponent).to_string(),
            "1073741824"
        );
        assert_eq!(
            q("1G").with_format(Format::BinarySI).to_string(),
            "1000000000"
        );
        assert_eq!(q("1M").with_format(Format::BinarySI).to_string(), "1000000");
        assert_eq!(q("2k").with_format(Format::BinarySI).to_string(), "2000");
        assert_eq!(q("1.024k").with_format(Format::BinarySI).to_string(), "1Ki");
    }

    #[test]
    fn floats() {
        assert_eq!(q("1.5").as_approximate_f64(), 1.5);
        assert_eq!(q("1Ki").as_approximate_f64(), 1024.0);
        assert_eq!(q("-250m").as_approximate_f64(), -0.25);
        assert_eq!(q("0").as_approximate_f64(), 0.0);
        assert!((q("1e30").as_approximate_f64() - 1e30).abs() < 1e16);
    }

    #[test]
    fn k8s_and_serde() {
        assert_eq!(
            parse_quantity(&K8sQuantity("1Gi".to_string())).unwrap(),
            q("1Gi")
        );
        assert_eq!(
            parse_quantity(&K8sQuantity(" 1Gi\n".to_string())).unwrap(),
            q("1Gi")
        );
        assert_eq!(
            parse_quantity(&K8sQuantity("".to_string())),
            Err(QuantityError::Format)
        );
        assert_eq!(
            Quantity::try_from(&K8sQuantity("2".to_string())).unwrap(),
            q("2")
        );
        assert_eq!("250m".parse::<Quantity>().unwrap(), q("250m"));

        assert_eq!(serde_json::to_string(&q("1.5")).unwrap(), "\"1500m\"");
        assert_eq!(serde_json::to_string(&q("+1")).unwrap(), "\"+1\"");
        let parsed: Quantity = serde_json::from_str("\" 1Gi \"").unwrap();
        assert_eq!(parsed, q("1Gi"));
        let parsed: Quantity = serde_json::from_str("1.5").unwrap();
        assert_eq!(parsed, q("1500m"));
        let parsed: Quantity = serde_json::from_str("-3").unwrap();
        assert_eq!(parsed, q("-3"));
        let parsed: Quantity = serde_json::from_str("3").unwrap();
        assert_eq!(parsed, q("3"));
        assert!(serde_json::from_str::<Quantity>("\"1 Gi\"").is_err());
        assert!(serde_json::from_str::<Quantity>("true").is_err());
    }
}

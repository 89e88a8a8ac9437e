//! Syntax checks for names, label keys and values, ports, IP addresses and CIDRs — the
//! equivalents of apimachinery's `k8s.io/apimachinery/pkg/util/validation` package (as of
//! Kubernetes 1.33), plus the label and annotation map checks of `ValidateLabels` and
//! `ValidateAnnotations`.
//!
//! Every `is_*` function returns the list of problems found, as the human-readable detail
//! strings Kubernetes uses (an empty list means the value is valid). The strings are exactly
//! the ones apimachinery produces, so they can be embedded in `Invalid value: "x": <detail>`
//! field errors and still match what clients see from a real API server.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Maximum length of a DNS-1123 label (`metadata.name` of most namespaced kinds, ...).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Maximum length of a DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Maximum length of a DNS-1035 label.
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// Maximum length of the name part of a qualified name (label key).
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Maximum length of a label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Maximum total size (keys plus values, in bytes) of an object's annotations.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES: usize = 256 * 1024;
/// Maximum length of an IANA service name (a named port).
pub const PORT_NAME_MAX_LENGTH: usize = 15;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const WILDCARD_DNS1123_SUBDOMAIN_FMT: &str =
    "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const WILDCARD_DNS1123_SUBDOMAIN_ERR_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const C_IDENTIFIER_FMT: &str = "[A-Za-z_][A-Za-z0-9_]*";
const C_IDENTIFIER_ERR_MSG: &str = "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_'";
const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_NAME_ERR_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";
const RELAXED_ENV_VAR_NAME_ERR_MSG: &str = "a valid environment variable name must consist only of printable ASCII characters other than '='";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const PERCENT_FMT: &str = "[0-9]+%";
const PERCENT_ERR_MSG: &str =
    "a valid percent string must be a numeric string followed by an ending '%'";
const HTTP_HEADER_NAME_FMT: &str = "[-A-Za-z0-9]+";
const HTTP_HEADER_NAME_ERR_MSG: &str =
    "a valid HTTP header must consist of alphanumeric characters or '-'";

const INVALID_IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const INVALID_CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

// ---------------------------------------------------------------------------------------------
// Message helpers
// ---------------------------------------------------------------------------------------------

/// The "string too long" detail: `must be no more than N characters`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// The detail for a failed regular-expression check: `msg (e.g. 'a' or 'b', regex used for
/// validation is 're')`, or `msg (regex used for validation is 're')` without examples.
pub fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{regex}')");
    }
    let mut out = String::with_capacity(msg.len() + regex.len() + 64);
    out.push_str(msg);
    out.push_str(" (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(regex);
    out.push_str("')");
    out
}

/// The "must not be empty" detail: `must be non-empty`.
pub fn empty_error() -> String {
    "must be non-empty".to_string()
}

/// The detail for a number outside an inclusive range: `must be between LO and HI, inclusive`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// Quotes a string the way Go's `%q` verb does, as used in Kubernetes' `Invalid value: "x"`
/// field errors.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Hand-written equivalents of the apimachinery regular expressions (all anchored with ^...$)
// ---------------------------------------------------------------------------------------------

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
fn matches_dns1123_label(value: &str) -> bool {
    let b = value.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
fn matches_dns1123_subdomain(value: &str) -> bool {
    value.split('.').all(matches_dns1123_label)
}

/// `^[a-z]([-a-z0-9]*[a-z0-9])?$`
fn matches_dns1035_label(value: &str) -> bool {
    matches_dns1123_label(value) && value.as_bytes()[0].is_ascii_lowercase()
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn matches_qualified_name_part(value: &str) -> bool {
    let b = value.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`
fn matches_c_identifier(value: &str) -> bool {
    let b = value.as_bytes();
    match b.first() {
        Some(&first) => {
            (first.is_ascii_alphabetic() || first == b'_')
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
        }
        None => false,
    }
}

/// `^[-._a-zA-Z][-._a-zA-Z0-9]*$`
fn matches_env_var_name(value: &str) -> bool {
    let b = value.as_bytes();
    let ext = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
    match b.first() {
        Some(&first) => !first.is_ascii_digit() && b.iter().all(|&c| ext(c)),
        None => false,
    }
}

fn has_chdir_prefix(value: &str) -> Option<String> {
    if value == "." {
        Some("must not be '.'".to_string())
    } else if value == ".." {
        Some("must not be '..'".to_string())
    } else if value.starts_with("..") {
        Some("must not start with '..'".to_string())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Names and labels
// ---------------------------------------------------------------------------------------------

/// Checks that `value` is a lowercase RFC 1123 label (at most 63 characters of `[-a-z0-9]`,
/// starting and ending with an alphanumeric character) — `IsDNS1123Label`.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            // A valid subdomain that is not a valid label: it must contain dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Checks that `value` is a lowercase RFC 1123 subdomain (at most 253 characters; dot-separated
/// RFC 1123 labels) — `IsDNS1123Subdomain`, the rule for most object names.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Checks that `value` is a wildcard DNS subdomain such as `*.example.com` (RFC 1034 section
/// 4.3.3) — `IsWildcardDNS1123Subdomain`.
pub fn is_wildcard_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    let ok = value
        .strip_prefix("*.")
        .is_some_and(matches_dns1123_subdomain);
    if !ok {
        errs.push(regex_error(
            WILDCARD_DNS1123_SUBDOMAIN_ERR_MSG,
            WILDCARD_DNS1123_SUBDOMAIN_FMT,
            &["*.example.com"],
        ));
    }
    errs
}

/// Checks that `value` is an RFC 1035 label (like an RFC 1123 label, but starting with a
/// letter) — `IsDNS1035Label`, the rule for Service names.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Checks that `value` is a "qualified name" — the syntax of label keys, annotation keys and
/// many other keys: an optional DNS-1123 subdomain prefix and `/`, then a name of at most 63
/// characters of `[-A-Za-z0-9_.]` starting and ending with an alphanumeric character
/// (`IsQualifiedName`).
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|msg| format!("prefix part {msg}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Checks that `value` is a valid label value: empty, or at most 63 characters of
/// `[-A-Za-z0-9_.]` starting and ending with an alphanumeric character (`IsValidLabelValue`).
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Checks that `value` is a C identifier (`[A-Za-z_][A-Za-z0-9_]*`); the length is not
/// checked (`IsCIdentifier`).
pub fn is_c_identifier(value: &str) -> Vec<String> {
    if matches_c_identifier(value) {
        Vec::new()
    } else {
        vec![regex_error(
            C_IDENTIFIER_ERR_MSG,
            C_IDENTIFIER_FMT,
            &["my_name", "MY_NAME", "MyName"],
        )]
    }
}

/// Checks that `value` is a valid environment variable name under current Kubernetes rules
/// (the `RelaxedEnvironmentVariableValidation` behaviour, on by default since 1.32 and GA in
/// 1.34): non-empty, and only printable ASCII characters (space included) other than `=`
/// (`IsRelaxedEnvVarName`).
pub fn is_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.is_empty() {
        errs.push(format!("environment variable name {}", empty_error()));
    }
    if value.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push(RELAXED_ENV_VAR_NAME_ERR_MSG.to_string());
    }
    errs
}

/// Checks that `value` is a valid environment variable name under the legacy (strict) rule,
/// `[-._a-zA-Z][-._a-zA-Z0-9]*` and not `.`, `..` or starting with `..` (`IsEnvVarName`,
/// still used for e.g. ConfigMap keys imported with `envFrom` when the relaxed rule is off).
pub fn is_legacy_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if !matches_env_var_name(value) {
        errs.push(regex_error(
            ENV_VAR_NAME_ERR_MSG,
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    errs.extend(has_chdir_prefix(value));
    errs
}

/// Checks that `value` is a valid ConfigMap or Secret key: at most 253 characters of
/// `[-._a-zA-Z0-9]`, and not `.`, `..` or starting with `..` (`IsConfigMapKey`).
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(
            CONFIG_MAP_KEY_ERR_MSG,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(has_chdir_prefix(value));
    errs
}

/// Checks that `value` is a percentage such as `25%` (`IsValidPercent`).
pub fn is_valid_percent(value: &str) -> Vec<String> {
    let ok = value
        .strip_suffix('%')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()));
    if ok {
        Vec::new()
    } else {
        vec![regex_error(PERCENT_ERR_MSG, PERCENT_FMT, &["1%", "93%"])]
    }
}

/// Checks that `value` is an HTTP header name as Go's HTTP library accepts it (`[-A-Za-z0-9]+`,
/// `IsHTTPHeaderName`).
pub fn is_http_header_name(value: &str) -> Vec<String> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-');
    if ok {
        Vec::new()
    } else {
        vec![regex_error(
            HTTP_HEADER_NAME_ERR_MSG,
            HTTP_HEADER_NAME_FMT,
            &["X-Header-Name"],
        )]
    }
}

/// Checks that `name` can be used as a path segment (in REST URLs and storage keys): not `.`
/// or `..`, and without `/` or `%` (`IsValidPathSegmentName`). Like Kubernetes, this does not
/// reject empty names or impose a length limit.
pub fn is_path_segment_name(name: &str) -> Vec<String> {
    for illegal in [".", ".."] {
        if name == illegal {
            return vec![format!("may not be '{illegal}'")];
        }
    }
    is_path_segment_prefix(name)
}

/// Checks that `name` can start a path segment: without `/` or `%`
/// (`IsValidPathSegmentPrefix`, used for `generateName`).
pub fn is_path_segment_prefix(name: &str) -> Vec<String> {
    ["/", "%"]
        .into_iter()
        .filter(|illegal| name.contains(illegal))
        .map(|illegal| format!("may not contain '{illegal}'"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Numbers and ports
// ---------------------------------------------------------------------------------------------

/// Checks that `port` is a valid, non-zero port number (1–65535, `IsValidPortNum`).
pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// Checks that `value` lies in `min..=max` (`IsInRange`).
pub fn is_in_range(value: i64, min: i64, max: i64) -> Vec<String> {
    if (min..=max).contains(&value) {
        Vec::new()
    } else {
        vec![inclusive_range_error(min, max)]
    }
}

/// Checks that `uid` is a valid Unix user id (0 to 2^31-1, `IsValidUserID`).
pub fn is_valid_user_id(uid: i64) -> Vec<String> {
    is_in_range(uid, 0, i64::from(i32::MAX))
}

/// Checks that `gid` is a valid Unix group id (0 to 2^31-1, `IsValidGroupID`).
pub fn is_valid_group_id(gid: i64) -> Vec<String> {
    is_in_range(gid, 0, i64::from(i32::MAX))
}

/// Checks that `port` is a valid port name (an IANA_SVC_NAME, RFC 6335): at most 15
/// characters of `[-a-z0-9]`, at least one letter, no leading, trailing or consecutive
/// hyphens (`IsValidPortName`).
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > PORT_NAME_MAX_LENGTH {
        errs.push(max_len_error(PORT_NAME_MAX_LENGTH));
    }
    if port.is_empty() || !port.bytes().all(|c| is_lower_alnum(c) || c == b'-') {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// IP addresses and CIDRs
// ---------------------------------------------------------------------------------------------

/// Parses a dotted-quad IPv4 address the way Kubernetes' legacy "sloppy" parser does:
/// leading zeros in an octet are allowed (and read as decimal).
fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let trimmed = part.trim_start_matches('0');
        if trimmed.len() > 3 {
            return None;
        }
        let n: u16 = if trimmed.is_empty() {
            0
        } else {
            trimmed.parse().ok()?
        };
        *octet = u8::try_from(n).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// Parses an IP address like Kubernetes' `ParseIPSloppy`: also accepts IPv4 octets (alone or
/// embedded at the end of an IPv6 address) with leading zeros.
fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if !s.contains(':') {
        return parse_ipv4_sloppy(s).map(IpAddr::V4);
    }
    // IPv6: the only sloppiness is in an embedded IPv4 tail.
    let (head, tail) = s.rsplit_once(':')?;
    if !tail.contains('.') {
        return None;
    }
    let v4 = parse_ipv4_sloppy(tail)?;
    format!("{head}:{v4}")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The string Go's `net.IP.String()` gives for an address (RFC 5952 for IPv6; IPv4-mapped
/// IPv6 addresses in dotted form).
fn go_ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Checks that `value` is a valid IP address under current Kubernetes rules (`IsValidIP`):
/// IPv4 or IPv6, no leading zeros in IPv4 octets, not an IPv4-mapped IPv6 address, and in
/// canonical form (e.g. `2001:db8::1`, not `2001:DB8:0:0:0:0:0:1`).
pub fn is_valid_ip(value: &str) -> Vec<String> {
    let Some(sloppy) = parse_ip_sloppy(value) else {
        return vec![INVALID_IP_MSG.to_string()];
    };
    let mut errs = Vec::new();
    match value.parse::<IpAddr>() {
        Err(_) => errs.push("must not have leading 0s".to_string()),
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            errs.push("must not be an IPv4-mapped IPv6 address".to_string());
        }
        Ok(_) => {}
    }
    if !errs.is_empty() {
        return errs;
    }
    let canonical = go_ip_string(sloppy);
    if value != canonical {
        errs.push(format!(
            "must be in canonical form ({})",
            go_quote(&canonical)
        ));
    }
    errs
}

/// A CIDR as Kubernetes' legacy `ParseCIDRSloppy` reads it: the address, the prefix length and
/// the address width in bits.
struct SloppyCidr {
    ip: IpAddr,
    prefix: u8,
}

fn parse_cidr_sloppy(value: &str) -> Option<SloppyCidr> {
    let (addr, mask) = value.split_once('/')?;
    let (ip, bits) = match parse_ipv4_sloppy(addr) {
        Some(v4) => (IpAddr::V4(v4), 32u32),
        None => {
            if !addr.contains(':') {
                return None;
            }
            (parse_ip_sloppy(addr)?, 128u32)
        }
    };
    if mask.is_empty() || !mask.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let trimmed = mask.trim_start_matches('0');
    let prefix: u32 = if trimmed.is_empty() {
        0
    } else if trimmed.len() > 3 {
        return None;
    } else {
        trimmed.parse().ok()?
    };
    if prefix > bits {
        return None;
    }
    Some(SloppyCidr {
        ip,
        prefix: u8::try_from(prefix).ok()?,
    })
}

fn mask_ip(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// Checks that `value` is a valid CIDR ("subnet" form, e.g. `10.0.0.0/8`) under current
/// Kubernetes rules (`IsValidCIDR`): no leading zeros in the address or the prefix length, not
/// an IPv4-mapped IPv6 address, no bits set beyond the prefix length, and in canonical form.
pub fn is_valid_cidr(value: &str) -> Vec<String> {
    let Some(sloppy) = parse_cidr_sloppy(value) else {
        return vec![INVALID_CIDR_MSG.to_string()];
    };
    // The strict parse: std's address parser rejects leading zeros in IPv4 octets; the prefix
    // length may not have leading zeros either.
    let strict = value.split_once('/').and_then(|(addr, mask)| {
        let ip = addr.parse::<IpAddr>().ok()?;
        if mask.len() > 1 && mask.starts_with('0') {
            return None;
        }
        Some(ip)
    });
    let Some(strict_ip) = strict else {
        return vec!["must not have leading 0s in IP or prefix length".to_string()];
    };
    if let IpAddr::V6(v6) = strict_ip
        && v6.to_ipv4_mapped().is_some()
    {
        return vec!["must not have an IPv4-mapped IPv6 address".to_string()];
    }
    let masked = mask_ip(sloppy.ip, sloppy.prefix);
    if masked != sloppy.ip {
        return vec!["must not have bits set beyond the prefix length".to_string()];
    }
    let canonical = format!("{}/{}", go_ip_string(masked), sloppy.prefix);
    if value != canonical {
        return vec![format!(
            "must be in canonical form ({})",
            go_quote(&canonical)
        )];
    }
    Vec::new()
}

// ---------------------------------------------------------------------------------------------
// Label and annotation maps
// ---------------------------------------------------------------------------------------------

/// Validates an object's labels like `ValidateLabels`: every key must be a qualified name and
/// every value a valid label value.
///
/// Each entry is a field-error body, `Invalid value: "<key or value>": <detail>`; prefix it
/// with the field path (`metadata.labels: `) to get Kubernetes' full message. Keys are checked
/// in sorted order.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut errs = Vec::new();
    for (key, value) in labels {
        for msg in is_qualified_name(key) {
            errs.push(format!("Invalid value: {}: {msg}", go_quote(key)));
        }
        for msg in is_valid_label_value(value) {
            errs.push(format!("Invalid value: {}: {msg}", go_quote(value)));
        }
    }
    errs
}

/// Validates an object's annotations like `ValidateAnnotations`: every key must be a qualified
/// name (case-insensitively), and the keys and values together may not exceed 256 KiB.
///
/// Entries are field-error bodies like those of [`validate_labels`]; the size error is
/// `Too long: may not be more than 262144 bytes`.
pub fn validate_annotations(annotations: &BTreeMap<String, String>) -> Vec<String> {
    let mut errs = Vec::new();
    let mut total: usize = 0;
    for (key, value) in annotations {
        for msg in is_qualified_name(&key.to_lowercase()) {
            errs.push(format!("Invalid value: {}: {msg}", go_quote(key)));
        }
        total = total.saturating_add(key.len()).saturating_add(value.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES {
        errs.push(format!(
            "Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT_BYTES} bytes"
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    #[test]
    fn regex_error_formats_like_go() {
        assert_eq!(
            regex_error("bad", "re", &[]),
            "bad (regex used for validation is 're')"
        );
        assert_eq!(
            regex_error("bad", "re", &["a"]),
            "bad (e.g. 'a', regex used for validation is 're')"
        );
        // Go's RegexError puts "', " after every example, then " or " before the next one.
        assert_eq!(
            regex_error("bad", "re", &["a", "b"]),
            "bad (e.g. 'a',  or 'b', regex used for validation is 're')"
        );
    }

    #[test]
    fn messages_match_apimachinery() {
        assert_eq!(is_dns1123_subdomain("A"), vec![SUBDOMAIN_MSG.to_string()]);
        assert_eq!(is_dns1123_label("-a"), vec![LABEL_MSG.to_string()]);
        assert_eq!(is_dns1035_label("1a"), vec![DNS1035_MSG.to_string()]);
        assert_eq!(is_qualified_name("-a"), vec![NAME_PART_MSG.to_string()]);
        assert_eq!(
            is_valid_label_value("-a"),
            vec![LABEL_VALUE_MSG.to_string()]
        );
    }

    #[test]
    fn dns1123_subdomain() {
        let long_label = "a".repeat(63);
        let max = format!("{long_label}.{long_label}.{long_label}.{}", "a".repeat(61));
        assert_eq!(max.len(), 253);
        let valid = [
            "a",
            "ab",
            "abc",
            "a1",
            "a-1",
            "a--1--2--b",
            "0",
            "01",
            "012",
            "1a",
            "1-a",
            "1--a--b--2",
            "a.a",
            "ab.a",
            "abc.a",
            "a1.a",
            "a-1.a",
            "a--1--2--b.a",
            "a.1",
            "ab.1",
            "abc.1",
            "a1.1",
            "a-1.1",
            "a--1--2--b.1",
            "0.a",
            "01.a",
            "012.a",
            "1a.a",
            "1-a.a",
            "1--a--b--2",
            "0.1",
            "01.1",
            "012.1",
            "1a.1",
            "1-a.1",
            "1--a--b--2.1",
            "a.b.c.d.e",
            "aa.bb.cc.dd.ee",
            "1.2.3.4.5",
            "11.22.33.44.55",
            &long_label,
            &max,
        ];
        for v in valid {
            assert!(is_dns1123_subdomain(v).is_empty(), "{v:?}");
        }
        let invalid = [
            "",
            "A",
            "ABC",
            "aBc",
            "A1",
            "A-1",
            "1-A",
            "-",
            "a-",
            "-a",
            "1-",
            "-1",
            "_",
            "a_",
            "_a",
            "a_b",
            "1_",
            "_1",
            "1_2",
            ".",
            "a.",
            ".a",
            "a..b",
            "1.",
            ".1",
            "1..2",
            " ",
            "a ",
            " a",
            "a b",
            "1 ",
            " 1",
            "1 2",
            "A.a",
            "aB.a",
            "ab.A",
            "A1.a",
            "a1.A",
            "A.1",
            "aB.1",
            "A1.1",
            "1A.1",
            "0.A",
            "01.A",
            "012.A",
            "1A.a",
            "1a.A",
            "A.B.C.D.E",
            "AA.BB.CC.DD.EE",
            "a.B.c.d.e",
            "aa.bB.cc.dd.ee",
            "a@b",
            "a,b",
            "a\nb",
            "a\n",
            "é",
        ];
        for v in invalid {
            assert_eq!(
                is_dns1123_subdomain(v),
                vec![SUBDOMAIN_MSG.to_string()],
                "{v:?}"
            );
        }
        let too_long = format!("{max}a");
        assert_eq!(
            is_dns1123_subdomain(&too_long),
            vec!["must be no more than 253 characters".to_string()]
        );
        assert_eq!(
            is_dns1123_subdomain(&"-".repeat(254)),
            vec![
                "must be no more than 253 characters".to_string(),
                SUBDOMAIN_MSG.to_string()
            ]
        );
    }

    #[test]
    fn dns1123_label() {
        let long = "a".repeat(63);
        for v in [
            "a",
            "ab",
            "abc",
            "a1",
            "a-1",
            "a--1--2--b",
            "0",
            "01",
            "012",
            "1a",
            "1-a",
            &long,
        ] {
            assert!(is_dns1123_label(v).is_empty(), "{v:?}");
        }
        for v in [
            "", "A", "ABC", "aBc", "-", "a-", "-a", "_", "a_b", ".", "a.", ".a", "a..b", " ",
            "a b", "é",
        ] {
            assert_eq!(is_dns1123_label(v), vec![LABEL_MSG.to_string()], "{v:?}");
        }
        assert_eq!(
            is_dns1123_label("a.b"),
            vec!["must not contain dots".to_string()]
        );
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
        assert_eq!(
            is_dns1123_label(&format!("{}.b", "a".repeat(63))),
            vec![
                "must be no more than 63 characters".to_string(),
                "must not contain dots".to_string()
            ]
        );
    }

    #[test]
    fn wildcard_subdomain() {
        for v in ["*.example.com", "*.bar.com", "*.foo.bar.com", "*.a"] {
            assert!(is_wildcard_dns1123_subdomain(v).is_empty(), "{v:?}");
        }
        for v in [
            "*.*.bar.com",
            "*.foo.*.com",
            "*bar.com",
            "f*.bar.com",
            "*",
            "",
            "*.",
            "*.A",
        ] {
            assert_eq!(is_wildcard_dns1123_subdomain(v).len(), 1, "{v:?}");
        }
    }

    #[test]
    fn dns1035_label() {
        let long = "a".repeat(63);
        for v in ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", &long] {
            assert!(is_dns1035_label(v).is_empty(), "{v:?}");
        }
        for v in [
            "0", "01", "012", "1a", "1-a", "", "A", "ABC", "aBc", "A1", "-", "a-", "-a", "_", "a_",
            "a.b", " ", "a b",
        ] {
            assert_eq!(is_dns1035_label(v), vec![DNS1035_MSG.to_string()], "{v:?}");
        }
        assert_eq!(
            is_dns1035_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn qualified_name() {
        let valid = [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "1234",
            "simple/simple",
            "now-with-dashes/simple",
            "now-with-dashes/now-with-dashes",
            "now.with.dots/simple",
            "now-with.dashes-and.dots/simple",
            "1-num.2-num/3-num",
            "1234/5678",
            "1.2.3.4/5678",
            "Uppercase_Is_OK_123",
            "example.com/Uppercase_Is_OK_123",
            "requests.storage-foo",
        ];
        for v in valid {
            assert!(is_qualified_name(v).is_empty(), "{v:?}");
        }
        let max_name = "a".repeat(63);
        assert!(is_qualified_name(&max_name).is_empty());
        let max_prefix = format!("{}/{}", "a".repeat(253), max_name);
        assert!(is_qualified_name(&max_prefix).is_empty());

        for v in [
            "",
            "nospecialchars%^=@",
            "cantendwithadash-",
            "-cantstartwithadash-",
            "only/one/slash",
            "Example.com/abc",
            "example_com/abc",
            "example.com/",
            "/simple",
            "a b",
            "é",
        ] {
            assert!(!is_qualified_name(v).is_empty(), "{v:?}");
        }
        assert_eq!(
            is_qualified_name(""),
            vec![
                "name part must be non-empty".to_string(),
                NAME_PART_MSG.to_string()
            ]
        );
        assert_eq!(
            is_qualified_name("/simple"),
            vec!["prefix part must be non-empty".to_string()]
        );
        assert_eq!(
            is_qualified_name("Example.com/abc"),
            vec![format!("prefix part {SUBDOMAIN_MSG}")]
        );
        assert_eq!(
            is_qualified_name("a/b/c"),
            vec![
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string()
            ]
        );
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters".to_string()]
        );
        assert_eq!(
            is_qualified_name(&format!("{}/a", "a".repeat(254))),
            vec!["prefix part must be no more than 253 characters".to_string()]
        );
    }

    #[test]
    fn label_value() {
        let long = "a".repeat(63);
        for v in [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "end-with-num-1",
            "1234",
            "",
            "A.b_c-D",
            &long,
        ] {
            assert!(is_valid_label_value(v).is_empty(), "{v:?}");
        }
        for v in [
            "nospecialchars%^=@",
            "Tama-nui-te-rā.is.Māori.sun",
            "\\backslashes\\are\\bad",
            "-starts-with-dash",
            "ends-with-dash-",
            ".starts.with.dot",
            "ends.with.dot.",
            "a b",
            "a/b",
        ] {
            assert_eq!(
                is_valid_label_value(v),
                vec![LABEL_VALUE_MSG.to_string()],
                "{v:?}"
            );
        }
        assert_eq!(
            is_valid_label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn c_identifier() {
        for v in [
            "a",
            "ab",
            "abc",
            "a1",
            "_a",
            "a_",
            "a_b",
            "a_1",
            "a__1__2__b",
            "__abc_123",
            "A",
            "AB",
            "AbC",
            "A1",
            "_A",
            "A_",
            "A_B",
            "A_1",
            "A__1__2__B",
            "__123_ABC",
        ] {
            assert!(is_c_identifier(v).is_empty(), "{v:?}");
        }
        for v in [
            "", "1", "123", "1a", "-", "a-", "-a", "1-", "-1", "1_", "1_2", ".", "a.", ".a", "a.b",
            "1.", ".1", "1.2", " ", "a ", " a", "a b", "1 ", " 1", "1 2", "#a#",
        ] {
            assert_eq!(
                is_c_identifier(v),
                vec!["a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName', regex used for validation is '[A-Za-z_][A-Za-z0-9_]*')".to_string()],
                "{v:?}"
            );
        }
    }

    #[test]
    fn env_var_name() {
        for v in [
            "A",
            "ABC",
            "AbC_123",
            "_123",
            "a",
            "a.b",
            "1abc",
            "$",
            "a-b",
            "with space",
            "!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}~",
            ".",
            "..",
            "..a",
        ] {
            assert!(is_env_var_name(v).is_empty(), "{v:?}");
        }
        let bad_char = vec![RELAXED_ENV_VAR_NAME_ERR_MSG.to_string()];
        for v in ["a=b", "=", "tab\there", "new\nline", "é", "\u{7f}"] {
            assert_eq!(is_env_var_name(v), bad_char, "{v:?}");
        }
        assert_eq!(
            is_env_var_name(""),
            vec!["environment variable name must be non-empty".to_string()]
        );
    }

    #[test]
    fn legacy_env_var_name() {
        for v in ["A", "ABC", "AbC_123", "_123", "a", "a.b", "a-b", ".a", "-a"] {
            assert!(is_legacy_env_var_name(v).is_empty(), "{v:?}");
        }
        let regex_msg = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
        for v in ["", "1", "123", "1a", "a b", "a=b", "#"] {
            assert_eq!(
                is_legacy_env_var_name(v),
                vec![regex_msg.to_string()],
                "{v:?}"
            );
        }
        assert_eq!(
            is_legacy_env_var_name("."),
            vec!["must not be '.'".to_string()]
        );
        assert_eq!(
            is_legacy_env_var_name(".."),
            vec!["must not be '..'".to_string()]
        );
        assert_eq!(
            is_legacy_env_var_name("..a"),
            vec!["must not start with '..'".to_string()]
        );
    }

    #[test]
    fn config_map_key() {
        for v in [
            "a",
            "A",
            "a.b",
            "a_b",
            "a-b",
            "1",
            ".a",
            "a..b",
            &"a".repeat(253),
        ] {
            assert!(is_config_map_key(v).is_empty(), "{v:?}");
        }
        for v in ["", "a b", "a/b", "a:b", "é"] {
            assert_eq!(is_config_map_key(v).len(), 1, "{v:?}");
        }
        assert_eq!(is_config_map_key("."), vec!["must not be '.'".to_string()]);
        assert_eq!(
            is_config_map_key("..a"),
            vec!["must not start with '..'".to_string()]
        );
        assert_eq!(
            is_config_map_key(&"a".repeat(254)),
            vec!["must be no more than 253 characters".to_string()]
        );
    }

    #[test]
    fn percent_and_header() {
        for v in ["0%", "100%", "93%"] {
            assert!(is_valid_percent(v).is_empty(), "{v:?}");
        }
        for v in ["", "%", "1", "1.5%", "-1%", "1%%", " 1%"] {
            assert_eq!(is_valid_percent(v).len(), 1, "{v:?}");
        }
        for v in ["X-Header-Name", "a", "1-2"] {
            assert!(is_http_header_name(v).is_empty(), "{v:?}");
        }
        for v in ["", "X Header", "X_Header", "X:"] {
            assert_eq!(is_http_header_name(v).len(), 1, "{v:?}");
        }
    }

    #[test]
    fn path_segments() {
        assert!(is_path_segment_name("abc").is_empty());
        assert!(is_path_segment_name("").is_empty());
        assert!(is_path_segment_name("...").is_empty());
        assert_eq!(
            is_path_segment_name("."),
            vec!["may not be '.'".to_string()]
        );
        assert_eq!(
            is_path_segment_name(".."),
            vec!["may not be '..'".to_string()]
        );
        assert_eq!(
            is_path_segment_name("a/b%c"),
            vec![
                "may not contain '/'".to_string(),
                "may not contain '%'".to_string()
            ]
        );
        assert!(is_path_segment_prefix("..").is_empty());
        assert_eq!(
            is_path_segment_prefix("a%"),
            vec!["may not contain '%'".to_string()]
        );
    }

    #[test]
    fn port_numbers_and_ids() {
        for p in [1, 80, 443, 65535] {
            assert!(is_valid_port_num(p).is_empty(), "{p}");
        }
        for p in [0, -1, 65536, i64::MAX, i64::MIN] {
            assert_eq!(
                is_valid_port_num(p),
                vec!["must be between 1 and 65535, inclusive".to_string()],
                "{p}"
            );
        }
        assert!(is_in_range(5, 5, 5).is_empty());
        assert_eq!(
            is_in_range(6, 1, 5),
            vec!["must be between 1 and 5, inclusive".to_string()]
        );
        assert!(is_valid_user_id(0).is_empty());
        assert!(is_valid_user_id(2147483647).is_empty());
        assert_eq!(
            is_valid_user_id(2147483648),
            vec!["must be between 0 and 2147483647, inclusive".to_string()]
        );
        assert_eq!(is_valid_group_id(-1).len(), 1);
    }

    #[test]
    fn port_name() {
        for v in [
            "telnet",
            "re-mail-ck",
            "pop3",
            "a",
            "a-1",
            "1-a",
            "a-1-b-2-c",
            "1-a-2-b-3",
            "abcdefghijklmno",
        ] {
            assert!(is_valid_port_name(v).is_empty(), "{v:?}");
        }
        let charset = "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)";
        let letter = "must contain at least one letter (a-z)";
        let hyphens = "must not contain consecutive hyphens";
        let ends = "must not begin or end with a hyphen";
        let cases: &[(&str, &[&str])] = &[
            ("", &[charset, letter]),
            ("1", &[letter]),
            ("12345", &[letter]),
            ("a--b", &[hyphens]),
            ("-ab", &[ends]),
            ("ab-", &[ends]),
            ("-", &[letter, ends]),
            ("--", &[letter, hyphens, ends]),
            ("UPPER", &[charset, letter]),
            ("a_b", &[charset]),
            ("a b", &[charset]),
            ("abcdefghijklmnop", &["must be no more than 15 characters"]),
        ];
        for (v, want) in cases {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(is_valid_port_name(v), want, "{v:?}");
        }
    }

    #[test]
    fn ip_addresses() {
        for v in [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.8.7",
            "255.255.255.255",
            "::",
            "::1",
            "2001:db8::ffff",
            "fe80::1",
            "1::2:0:0:3:4",
            "2001:db8::1:0:0:1",
            "::102:304",
        ] {
            assert!(is_valid_ip(v).is_empty(), "{v:?}");
        }
        let invalid = vec![INVALID_IP_MSG.to_string()];
        for v in [
            "",
            " ",
            "1",
            "1.2.3",
            "1.2.3.4.5",
            "256.0.0.1",
            "1.2.3.4 ",
            "a.b.c.d",
            "1.2.3.-4",
            "fe80::1%eth0",
            ":::",
            "1:2:3:4:5:6:7:8:9",
            "2001:db8::/64",
            "0x1.2.3.4",
            "1.2.3.0256",
            "::ffff:1.2.3.256",
        ] {
            assert_eq!(is_valid_ip(v), invalid, "{v:?}");
        }
        assert_eq!(
            is_valid_ip("010.002.003.004"),
            vec!["must not have leading 0s".to_string()]
        );
        assert_eq!(
            is_valid_ip("1.2.3.04"),
            vec!["must not have leading 0s".to_string()]
        );
        assert_eq!(
            is_valid_ip("::ffff:1.2.3.04"),
            vec!["must not have leading 0s".to_string()]
        );
        assert_eq!(
            is_valid_ip("::ffff:1.2.3.4"),
            vec!["must not be an IPv4-mapped IPv6 address".to_string()]
        );
        assert_eq!(
            is_valid_ip("2001:DB8::1"),
            vec!["must be in canonical form (\"2001:db8::1\")".to_string()]
        );
        assert_eq!(
            is_valid_ip("0:0:0:0:0:0:0:1"),
            vec!["must be in canonical form (\"::1\")".to_string()]
        );
        assert_eq!(
            is_valid_ip("::1.2.3.4"),
            vec!["must be in canonical form (\"::102:304\")".to_string()]
        );
    }

    #[test]
    fn cidrs() {
        for v in [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.9.8.0/24",
            "192.168.1.7/32",
            "::/0",
            "2001:db8::/64",
            "::1/128",
            "fe80::/10",
        ] {
            assert!(is_valid_cidr(v).is_empty(), "{v:?}");
        }
        let invalid = vec![INVALID_CIDR_MSG.to_string()];
        for v in [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/8/8",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0/8",
            "/8",
            "fe80::%eth0/64",
            "abc/8",
            "10.0.0.0/-1",
        ] {
            assert_eq!(is_valid_cidr(v), invalid, "{v:?}");
        }
        let leading = vec!["must not have leading 0s in IP or prefix length".to_string()];
        assert_eq!(is_valid_cidr("010.0.0.0/8"), leading);
        assert_eq!(is_valid_cidr("10.0.0.0/08"), leading);
        assert_eq!(is_valid_cidr("10.0.0.0/008"), leading);
        assert!(is_valid_cidr("0.0.0.0/0").is_empty());
        assert_eq!(
            is_valid_cidr("::ffff:1.2.3.0/120"),
            vec!["must not have an IPv4-mapped IPv6 address".to_string()]
        );
        assert_eq!(
            is_valid_cidr("10.0.0.1/8"),
            vec!["must not have bits set beyond the prefix length".to_string()]
        );
        assert_eq!(
            is_valid_cidr("2001:db8::1/64"),
            vec!["must not have bits set beyond the prefix length".to_string()]
        );
        assert_eq!(
            is_valid_cidr("2001:DB8::/64"),
            vec!["must be in canonical form (\"2001:db8::/64\")".to_string()]
        );
        assert_eq!(
            is_valid_cidr("2001:db8:0:0:0:0:0:0/64"),
            vec!["must be in canonical form (\"2001:db8::/64\")".to_string()]
        );
    }

    #[test]
    fn labels_map() {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "web".to_string());
        labels.insert("example.com/tier".to_string(), "".to_string());
        assert!(validate_labels(&labels).is_empty());
        labels.insert("bad key".to_string(), "-bad".to_string());
        assert_eq!(
            validate_labels(&labels),
            vec![
                format!("Invalid value: \"bad key\": {NAME_PART_MSG}"),
                format!("Invalid value: \"-bad\": {LABEL_VALUE_MSG}"),
            ]
        );
        assert!(validate_labels(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn annotations_map() {
        let mut ann = BTreeMap::new();
        ann.insert(
            "Example.COM/Key".to_string(),
            "any value at all: ✓".to_string(),
        );
        ann.insert(
            "kubectl.kubernetes.io/last-applied-configuration".to_string(),
            "{}".to_string(),
        );
        assert!(validate_annotations(&ann).is_empty());
        ann.insert("a/b/c".to_string(), String::new());
        let errs = validate_annotations(&ann);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("Invalid value: \"a/b/c\": a qualified name must consist"));

        let mut big = BTreeMap::new();
        big.insert(
            "k".to_string(),
            "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES - 1),
        );
        assert!(validate_annotations(&big).is_empty());
        big.insert(
            "k".to_string(),
            "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES),
        );
        assert_eq!(
            validate_annotations(&big),
            vec!["Too long: may not be more than 262144 bytes".to_string()]
        );
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("abc"), "\"abc\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("a\nb\t"), "\"a\\nb\\t\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
        assert_eq!(go_quote("rā"), "\"rā\"");
    }
}

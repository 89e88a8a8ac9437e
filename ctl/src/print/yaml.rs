//! YAML as kubectl writes it (Go's yaml.v2 emitter behind `sigs.k8s.io/yaml`): keys sorted,
//! two-space indentation with sequences not indented under their key, strings quoted only
//! when they would read back as something else (`"2024-01-01T00:00:00Z"`, `"true"`, `"80"`),
//! `|` blocks for multi-line strings, and long strings folded at spaces past column 80.

use serde_json::Value;

/// Where the emitter folds long scalars (yaml.v2's `best_width`).
const BEST_WIDTH: usize = 80;

/// A YAML document for the value, ending with a newline.
pub fn to_string(v: &Value) -> String {
    let mut e = Emitter::default();
    match v {
        Value::Object(m) if !m.is_empty() => e.mapping(v, 0, false),
        Value::Array(a) if !a.is_empty() => e.sequence(v, 0, false),
        other => {
            e.scalar(other, 0, false);
        }
    }
    if !e.out.ends_with('\n') {
        e.out.push('\n');
    }
    e.out
}

#[derive(Default)]
struct Emitter {
    out: String,
    column: usize,
}

impl Emitter {
    fn put(&mut self, s: &str) {
        for c in s.chars() {
            if c == '\n' {
                self.column = 0;
            } else {
                self.column += 1;
            }
            self.out.push(c);
        }
    }

    fn put_char(&mut self, c: char) {
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
        self.out.push(c);
    }

    /// Starts a new line indented to `indent` (unless at the start of an empty line).
    fn indent(&mut self, indent: usize) {
        // Column 0 is the start of a line (or of the output): nothing to break.
        if self.column > 0 {
            self.put_char('\n');
        }
        while self.column < indent {
            self.put_char(' ');
        }
    }

    /// A block mapping whose keys sit at `indent`; `inline` when its first key continues the
    /// current line (after `- `).
    fn mapping(&mut self, v: &Value, indent: usize, inline: bool) {
        let Value::Object(map) = v else { return };
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for (i, k) in keys.into_iter().enumerate() {
            if i > 0 || !inline {
                self.indent(indent);
            } else {
                while self.column < indent {
                    self.put_char(' ');
                }
            }
            self.key(k);
            self.put_char(':');
            let value = &map[k];
            match value {
                Value::Object(m) if !m.is_empty() => self.mapping(value, indent + 2, false),
                Value::Array(a) if !a.is_empty() => self.sequence(value, indent, false),
                _ => {
                    self.put_char(' ');
                    self.scalar(value, indent + 2, false);
                }
            }
        }
    }

    /// A block sequence whose dashes sit at `indent`.
    fn sequence(&mut self, v: &Value, indent: usize, inline: bool) {
        let Value::Array(items) = v else { return };
        for (i, item) in items.iter().enumerate() {
            if i > 0 || !inline {
                self.indent(indent);
            } else {
                while self.column < indent {
                    self.put_char(' ');
                }
            }
            self.put_char('-');
            match item {
                Value::Object(m) if !m.is_empty() => {
                    self.put_char(' ');
                    self.mapping(item, indent + 2, true)
                }
                Value::Array(a) if !a.is_empty() => {
                    self.put_char(' ');
                    self.sequence(item, indent + 2, true)
                }
                _ => {
                    self.put_char(' ');
                    self.scalar(item, indent + 2, false);
                }
            }
        }
    }

    fn key(&mut self, k: &str) {
        let style = select_style(k, true);
        self.string(k, style, 0, false);
    }

    /// A scalar (or empty collection) whose continuation lines are indented to `indent`.
    fn scalar(&mut self, v: &Value, indent: usize, simple_key: bool) {
        match v {
            Value::Null => self.put("null"),
            Value::Bool(b) => self.put(if *b { "true" } else { "false" }),
            Value::Number(n) => self.put(&number(n)),
            Value::Object(_) => self.put("{}"),
            Value::Array(_) => self.put("[]"),
            Value::String(s) => {
                let style = select_style(s, simple_key);
                self.string(s, style, indent, !simple_key);
            }
        }
    }

    fn string(&mut self, s: &str, style: Style, indent: usize, allow_breaks: bool) {
        match style {
            Style::Plain => self.plain(s, indent, allow_breaks),
            Style::Single => self.single(s, indent, allow_breaks),
            Style::Double => self.double(s, indent, allow_breaks),
            Style::Literal => self.literal(s, indent),
        }
    }

    fn plain(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !next_space {
                    self.indent(indent);
                } else {
                    self.put_char(c);
                }
                spaces = true;
            } else {
                self.put_char(c);
                spaces = false;
            }
        }
    }

    fn single(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.put_char('\'');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < chars.len() - 1
                    && !next_space
                {
                    self.indent(indent);
                } else {
                    self.put_char(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put_char('\'');
                }
                self.put_char(c);
                spaces = false;
            }
        }
        self.put_char('\'');
    }

    fn double(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.put_char('"');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put_char('\\');
                let esc = match c {
                    '\0' => "0".to_string(),
                    '\u{7}' => "a".to_string(),
                    '\u{8}' => "b".to_string(),
                    '\t' => "t".to_string(),
                    '\n' => "n".to_string(),
                    '\u{b}' => "v".to_string(),
                    '\u{c}' => "f".to_string(),
                    '\r' => "r".to_string(),
                    '\u{1b}' => "e".to_string(),
                    '"' => "\"".to_string(),
                    '\\' => "\\".to_string(),
                    '\u{85}' => "N".to_string(),
                    '\u{a0}' => "_".to_string(),
                    '\u{2028}' => "L".to_string(),
                    '\u{2029}' => "P".to_string(),
                    c if (c as u32) <= 0xff => format!("x{:02X}", c as u32),
                    c if (c as u32) <= 0xffff => format!("u{:04X}", c as u32),
                    c => format!("U{:08X}", c as u32),
                };
                self.put(&esc);
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != chars.len() - 1
                {
                    self.indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.put_char('\\');
                    }
                } else {
                    self.put_char(c);
                }
                spaces = true;
            } else {
                self.put_char(c);
                spaces = false;
            }
        }
        self.put_char('"');
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.put_char('|');
        if s.starts_with(' ') || s.starts_with('\n') {
            self.put_char('2');
        }
        let trailing = s.len() - s.trim_end_matches('\n').len();
        if trailing == 0 {
            self.put_char('-');
        } else if trailing > 1 || s.len() == 1 {
            self.put_char('+');
        }
        self.put_char('\n');
        let mut at_line_start = true;
        for c in s.chars() {
            if c == '\n' {
                self.put_char('\n');
                at_line_start = true;
            } else {
                if at_line_start {
                    while self.column < indent {
                        self.put_char(' ');
                    }
                    at_line_start = false;
                }
                self.put_char(c);
            }
        }
    }
}

fn number(n: &serde_json::Number) -> String {
    super::json::number(n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0a
        || (0x20..=0x7e).contains(&u)
        || u == 0x85
        || (0xa0..=0xd7ff).contains(&u)
        || ((0xe000..=0xfffd).contains(&u) && u != 0xfeff)
        || (0x10000..=0x10ffff).contains(&u)
}

/// What yaml.v2's emitter allows for a string, from its characters.
struct Analysis {
    block_plain: bool,
    single_quoted: bool,
    block: bool,
}

fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            block_plain: true,
            single_quoted: true,
            block: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut special = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut previous_space, mut previous_break) =
        (false, false, false, false);
    let mut line_breaks = false;
    let mut preceded_by_ws = true;
    let is_blank = |c: Option<&char>| matches!(c, Some(' ') | Some('\t'));
    let is_blankz =
        |c: Option<&char>| c.is_none() || is_blank(c) || c.is_some_and(|c| is_break(*c));
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = is_blankz(chars.get(i + 1));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_ws => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_indicators = true,
                '#' if preceded_by_ws => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == chars.len() - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i == chars.len() - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_ws = is_blankz(Some(&c));
    }
    let mut a = Analysis {
        block_plain: true,
        single_quoted: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single_quoted = false;
    }
    if space_break || special {
        a.block_plain = false;
        a.single_quoted = false;
        a.block = false;
    }
    if line_breaks || block_indicators {
        a.block_plain = false;
    }
    a
}

/// The style yaml.v2 writes a string in.
fn select_style(s: &str, simple_key: bool) -> Style {
    let requested = if s.contains('\n') {
        Style::Literal
    } else if !resolves_to_non_string(s) && !is_base60_float(s) {
        Style::Plain
    } else {
        Style::Double
    };
    let a = analyze(s);
    let mut style = requested;
    if style == Style::Plain && (!a.block_plain || (s.is_empty() && simple_key)) {
        style = Style::Single;
    }
    if style == Style::Single && !a.single_quoted {
        style = Style::Double;
    }
    if style == Style::Literal && (!a.block || simple_key) {
        style = Style::Double;
    }
    style
}

/// True when a plain scalar with this text would read back as a non-string (null, bool,
/// number, timestamp, merge key) under YAML 1.1 as yaml.v2 resolves it.
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let Some(first) = s.chars().next() else {
        return true;
    };
    if !matches!(first, '+' | '-' | '.' | '0'..='9') {
        return false;
    }
    let plain = s.replace('_', "");
    is_go_int(&plain) || is_yaml_float(&plain) || is_timestamp(s)
}

/// Go's `strconv.ParseInt(s, 0, 64)`/`ParseUint` syntax: optional sign, then decimal, `0x`,
/// `0o`, `0b` or leading-zero octal digits.
fn is_go_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    let lower = body.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0x") {
        (d, 16)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d, 2)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d, 8)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

/// yaml.v2's float syntax: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match b.find(['e', 'E']) {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    let mantissa_ok = if let Some(frac) = mantissa.strip_prefix('.') {
        !frac.is_empty() && frac.chars().all(|c| c.is_ascii_digit())
    } else {
        let (int, frac) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        !int.is_empty()
            && int.chars().all(|c| c.is_ascii_digit())
            && frac.chars().all(|c| c.is_ascii_digit())
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
        }
    };
    mantissa_ok && exp_ok
}

/// yaml.v2's timestamps: `2006-1-2`, `2006-1-2T15:4:5.999999999Z07:00` (also `t`), and
/// `2006-1-2 15:4:5.999999999`.
fn is_timestamp(s: &str) -> bool {
    let digits = |p: &str, min: usize, max: usize| {
        (min..=max).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit())
    };
    let date_ok = |d: &str| {
        let parts: Vec<&str> = d.split('-').collect();
        parts.len() == 3
            && digits(parts[0], 4, 4)
            && digits(parts[1], 1, 2)
            && digits(parts[2], 1, 2)
    };
    let time_ok = |t: &str| {
        let (hms, frac) = match t.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let parts: Vec<&str> = hms.split(':').collect();
        parts.len() == 3
            && parts.iter().all(|p| digits(p, 1, 2))
            && frac.is_none_or(|f| digits(f, 1, 9))
    };
    if date_ok(s) {
        return true;
    }
    if let Some(i) = s.find(['T', 't']) {
        let (date, rest) = (&s[..i], &s[i + 1..]);
        if !date_ok(date) {
            return false;
        }
        let (time, zone) = if let Some(t) = rest.strip_suffix('Z') {
            (t, true)
        } else if rest.len() > 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
            let z = &rest[rest.len() - 5..];
            (
                &rest[..rest.len() - 6],
                z.len() == 5
                    && z.as_bytes()[2] == b':'
                    && digits(&z[..2], 2, 2)
                    && digits(&z[3..], 2, 2),
            )
        } else {
            (rest, false)
        };
        return zone && time_ok(time);
    }
    if let Some((date, time)) = s.split_once(' ') {
        return date_ok(date) && time_ok(time);
    }
    false
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`, which yaml.v2 quotes.
fn is_base60_float(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = match b.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (b, None),
    };
    if frac.is_some_and(|f| !f.chars().all(|c| c.is_ascii_digit() || c == '_')) {
        return false;
    }
    let mut parts = main.split(':');
    let first = parts.next().unwrap_or("");
    if first.is_empty()
        || !first.starts_with(|c: char| c.is_ascii_digit())
        || !first.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    !rest.is_empty()
        && rest.iter().all(|p| {
            let bytes = p.as_bytes();
            match bytes.len() {
                1 => bytes[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&bytes[0]) && bytes[1].is_ascii_digit(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_layout_like_kubectl() {
        let v = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "args": ["a", "b"], "ports": []}]},
            "status": {"list": [["x", "y"]]}
        });
        assert_eq!(
            to_string(&v),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations: {}\n  labels:\n    app: web\n  name: web\nspec:\n  containers:\n  - args:\n    - a\n    - b\n    image: nginx\n    name: c\n    ports: []\nstatus:\n  list:\n  - - x\n    - \"y\"\n"
        );
    }

    #[test]
    fn quotes_what_would_read_back_differently() {
        for (s, want) in [
            ("2024-05-01T10:00:00Z", "\"2024-05-01T10:00:00Z\""),
            ("true", "\"true\""),
            ("80", "\"80\""),
            ("0755", "\"0755\""),
            ("1.5", "\"1.5\""),
            ("", "\"\""),
            ("1:20", "\"1:20\""),
            ("*", "'*'"),
            ("- x", "'- x'"),
            ("a: b", "'a: b'"),
            ("it's", "it's"),
            (" lead", "' lead'"),
            ("tab\there", "\"tab\\there\""),
            ("plain text", "plain text"),
            ("10.96.0.1", "10.96.0.1"),
            ("nginx:1.25", "nginx:1.25"),
            ("80/TCP", "80/TCP"),
        ] {
            assert_eq!(
                to_string(&json!({ "k": s })),
                format!("k: {want}\n"),
                "{s:?}"
            );
        }
    }

    #[test]
    fn literal_blocks() {
        assert_eq!(
            to_string(&json!({"a": {"b": "{\"x\":1}\n"}})),
            "a:\n  b: |\n    {\"x\":1}\n"
        );
        assert_eq!(to_string(&json!({"b": "x\ny"})), "b: |-\n  x\n  y\n");
        assert_eq!(to_string(&json!({"b": "x\n\n"})), "b: |+\n  x\n\n");
        assert_eq!(to_string(&json!({"b": "x \ny"})), "b: \"x \\ny\"\n");
    }

    #[test]
    fn long_strings_fold_past_column_80() {
        let long = "a".repeat(80);
        let v = json!({"k": format!("{long} bb  cc"), "l": [format!("{long} x")]});
        assert_eq!(
            to_string(&v),
            format!("k: {long}\n  bb  cc\nl:\n- {long}\n  x\n")
        );
        // Keys never fold.
        let key = format!("{long} b");
        assert_eq!(to_string(&json!({ key.clone(): 1 })), format!("{key}: 1\n"));
    }

    #[test]
    fn scalars_in_lists_and_keys() {
        assert_eq!(
            to_string(&json!({"true": [1, null, false, 1.5], "a b": "c"})),
            "a b: c\n\"true\":\n- 1\n- null\n- false\n- 1.5\n"
        );
    }
}

//! kubectl's JSONPath templates (`-o jsonpath=…`, custom columns, `--sort-by`, `wait
//! --for=jsonpath=…`): text with `{…}` actions holding paths (`.a.b`, `['a.b']`, `[0]`,
//! `[-1]`, `[1:3]`, `[*]`, `..name`, `[?(@.type=="Ready")]`, unions `[0,2]`), string literals
//! (`{"\n"}`), and `{range …}…{end}`. Missing keys print nothing, as kubectl's default
//! `--allow-missing-template-keys` does.

use serde_json::Value;

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error parsing jsonpath {template}, {message}")]
pub struct JsonPathError {
    /// The template text.
    pub template: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    AllFields,
    Recursive,
    Index(Vec<i64>),
    Slice(Option<i64>, Option<i64>),
    All,
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Path(Vec<Step>),
    Literal(Value),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Operand,
    op: Option<String>,
    right: Option<Operand>,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    nodes: Vec<Node>,
}

impl JsonPath {
    /// Parses a template such as `{.metadata.name}{"\n"}`.
    pub fn parse(template: &str) -> Result<JsonPath, JsonPathError> {
        let err = |message: String| JsonPathError {
            template: template.to_string(),
            message,
        };
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find('{') {
                None => {
                    nodes.push(Node::Text(rest.to_string()));
                    break;
                }
                Some(i) => {
                    if i > 0 {
                        nodes.push(Node::Text(rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let end = find_close(after).ok_or_else(|| err("unclosed action".into()))?;
                    let action = after[..end].trim();
                    rest = &after[end + 1..];
                    if let Some(r) = action.strip_prefix("range ") {
                        let steps = parse_path(r.trim()).map_err(err)?;
                        stack.push((steps, std::mem::take(&mut nodes)));
                    } else if action == "end" {
                        let (steps, outer) = stack
                            .pop()
                            .ok_or_else(|| err("not in range, nothing to end".into()))?;
                        let body = std::mem::replace(&mut nodes, outer);
                        nodes.push(Node::Range(steps, body));
                    } else if action.starts_with('"') || action.starts_with('\'') {
                        nodes.push(Node::Text(unquote(action).map_err(err)?));
                    } else {
                        for part in split_top(action, ',') {
                            nodes.push(Node::Path(parse_path(part.trim()).map_err(err)?));
                        }
                    }
                }
            }
        }
        if !stack.is_empty() {
            return Err(err("unclosed range".into()));
        }
        Ok(JsonPath { nodes })
    }

    /// Parses a path the relaxed way of custom columns and `--sort-by` (`.a.b`, `a.b` or
    /// `{.a.b}`).
    pub fn parse_relaxed(expr: &str) -> Result<JsonPath, JsonPathError> {
        let e = expr.trim();
        let inner = e
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(e);
        let inner = inner.strip_prefix('.').unwrap_or(inner);
        JsonPath::parse(&format!("{{.{inner}}}"))
    }

    /// Renders the template for `data`.
    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, data, data, &mut out);
        out
    }

    /// The values every path of the template selects (for custom columns and sorting).
    pub fn values<'a>(&self, data: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for n in &self.nodes {
            if let Node::Path(steps) = n {
                out.extend(eval(steps, data, data));
            }
        }
        out
    }
}

/// Text of a value as kubectl's JSONPath prints it: strings raw, the rest as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => super::json::to_compact(other),
    }
}

fn render_nodes(nodes: &[Node], root: &Value, cur: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let vals = eval(steps, root, cur);
                let texts: Vec<String> = vals.into_iter().map(value_text).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(steps, body) => {
                for v in eval(steps, root, cur) {
                    match v {
                        Value::Array(items) if steps_end_without_expansion(steps) => {
                            for item in items {
                                render_nodes(body, root, item, out);
                            }
                        }
                        _ => render_nodes(body, root, v, out),
                    }
                }
            }
        }
    }
}

/// `{range .items}` iterates the list itself; `{range .items[*]}` already expanded it.
fn steps_end_without_expansion(steps: &[Step]) -> bool {
    !matches!(
        steps.last(),
        Some(Step::All | Step::Slice(..) | Step::Filter(_) | Step::AllFields)
    )
}

fn find_close(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '}' => return Some(i),
            _ => {}
        }
    }
    None
}

/// Splits at `sep` outside brackets and quotes.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0usize);
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unquote(s: &str) -> Result<String, String> {
    let q = s.chars().next().unwrap_or('"');
    let inner = s
        .strip_prefix(q)
        .and_then(|r| r.strip_suffix(q))
        .ok_or_else(|| format!("unterminated string {s}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    Ok(out)
}

fn parse_path(s: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let s = s.strip_prefix('$').unwrap_or(s);
    let s = s.strip_prefix('@').unwrap_or(s);
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                if chars.get(i + 1) == Some(&'.') {
                    steps.push(Step::Recursive);
                    i += 2;
                } else {
                    i += 1;
                }
                let name = field_name(&chars, &mut i);
                if name == "*" {
                    steps.push(Step::AllFields);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let mut depth = 0;
                let mut quote: Option<char> = None;
                let start = i + 1;
                let mut end = None;
                for (j, &c) in chars.iter().enumerate().skip(i) {
                    if let Some(q) = quote {
                        if c == q {
                            quote = None;
                        }
                        continue;
                    }
                    match c {
                        '\'' | '"' => quote = Some(c),
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| format!("unterminated array in {s}"))?;
                let inner: String = chars[start..end].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = end + 1;
            }
            c if i == 0 => {
                // A path without the leading dot (`metadata.name`).
                let name = field_name(&chars, &mut i);
                if name.is_empty() {
                    return Err(format!("unrecognized character in action: {c}"));
                }
                steps.push(Step::Field(name));
            }
            c => return Err(format!("unrecognized character in action: {c}")),
        }
    }
    Ok(steps)
}

/// A field name up to the next unescaped `.` or `[`, with backslash escapes (`kubectl\.io/x`)
/// resolved as Go's parser does (every backslash is dropped, the next character kept).
fn field_name(chars: &[char], i: &mut usize) -> String {
    let mut name = String::new();
    while *i < chars.len() && chars[*i] != '.' && chars[*i] != '[' {
        if chars[*i] == '\\' {
            *i += 1;
            if let Some(&c) = chars.get(*i) {
                name.push(c);
            }
        } else {
            name.push(chars[*i]);
        }
        *i += 1;
    }
    name
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Some(f) = inner.strip_prefix('?') {
        let f = f.trim();
        let f = f
            .strip_prefix('(')
            .and_then(|x| x.strip_suffix(')'))
            .ok_or_else(|| format!("invalid filter {inner}"))?;
        return Ok(Step::Filter(Box::new(parse_filter(f.trim())?)));
    }
    if inner.starts_with('\'') || inner.starts_with('"') {
        let names = split_top(inner, ',');
        if names.len() == 1 {
            return Ok(Step::Field(unquote(inner)?));
        }
        return Err(format!("field unions are not supported: [{inner}]"));
    }
    if inner.contains(':') {
        let parts: Vec<&str> = inner.split(':').collect();
        let num = |p: &str| -> Result<Option<i64>, String> {
            let p = p.trim();
            if p.is_empty() {
                Ok(None)
            } else {
                p.parse()
                    .map(Some)
                    .map_err(|_| format!("invalid array index {p}"))
            }
        };
        return Ok(Step::Slice(
            num(parts[0])?,
            num(parts.get(1).unwrap_or(&""))?,
        ));
    }
    let idx: Result<Vec<i64>, String> = inner
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<i64>()
                .map_err(|_| format!("invalid array index {p}"))
        })
        .collect();
    Ok(Step::Index(idx?))
}

fn parse_filter(f: &str) -> Result<Filter, String> {
    for op in ["==", "!=", "<=", ">=", "<", ">", "=~"] {
        if let Some(pos) = find_op(f, op) {
            let left = parse_operand(f[..pos].trim())?;
            let right = parse_operand(f[pos + op.len()..].trim())?;
            return Ok(Filter {
                left,
                op: Some(op.to_string()),
                right: Some(right),
            });
        }
    }
    Ok(Filter {
        left: parse_operand(f)?,
        op: None,
        right: None,
    })
}

fn find_op(f: &str, op: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in f.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            continue;
        }
        if f[i..].starts_with(op) {
            // `<` must not be the start of `<=`.
            if (op == "<" || op == ">") && f[i + 1..].starts_with('=') {
                continue;
            }
            return Some(i);
        }
    }
    None
}

fn parse_operand(s: &str) -> Result<Operand, String> {
    if s.starts_with('@') || s.starts_with('$') {
        return Ok(Operand::Path(parse_path(s)?));
    }
    if s.starts_with('"') || s.starts_with('\'') {
        return Ok(Operand::Literal(Value::String(unquote(s)?)));
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(Operand::Literal(Value::from(n)));
    }
    if let Ok(f) = s.parse::<f64>() {
        return Ok(Operand::Literal(Value::from(f)));
    }
    match s {
        "true" => Ok(Operand::Literal(Value::Bool(true))),
        "false" => Ok(Operand::Literal(Value::Bool(false))),
        "nil" | "null" => Ok(Operand::Literal(Value::Null)),
        _ => Err(format!("unrecognized filter operand {s}")),
    }
}

fn eval<'a>(steps: &[Step], root: &'a Value, cur: &'a Value) -> Vec<&'a Value> {
    let _ = root;
    let mut set: Vec<&'a Value> = vec![cur];
    for step in steps {
        let mut next = Vec::new();
        match step {
            Step::Recursive => {
                for v in set {
                    descendants(v, &mut next);
                }
            }
            Step::Field(name) => {
                for v in set {
                    if let Value::Object(m) = v
                        && let Some(x) = m.get(name)
                    {
                        next.push(x);
                    }
                }
            }
            Step::AllFields => {
                for v in set {
                    match v {
                        Value::Object(m) => next.extend(m.values()),
                        Value::Array(a) => next.extend(a.iter()),
                        _ => {}
                    }
                }
            }
            Step::All => {
                for v in set {
                    match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    }
                }
            }
            Step::Index(idx) => {
                for v in set {
                    if let Value::Array(a) = v {
                        for &i in idx {
                            let i = if i < 0 { a.len() as i64 + i } else { i };
                            if i >= 0
                                && let Some(x) = a.get(i as usize)
                            {
                                next.push(x);
                            }
                        }
                    }
                }
            }
            Step::Slice(start, end) => {
                for v in set {
                    if let Value::Array(a) = v {
                        let len = a.len() as i64;
                        let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                        let s = norm(start.unwrap_or(0));
                        let e = norm(end.unwrap_or(len));
                        if s < e {
                            next.extend(a[s as usize..e as usize].iter());
                        }
                    }
                }
            }
            Step::Filter(f) => {
                for v in set {
                    if let Value::Array(a) = v {
                        for item in a {
                            if filter_matches(f, root, item) {
                                next.push(item);
                            }
                        }
                    }
                }
            }
        }
        set = next;
    }
    set
}

fn descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Object(m) => {
            for x in m.values() {
                descendants(x, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                descendants(x, out);
            }
        }
        _ => {}
    }
}

fn operand<'a>(o: &'a Operand, root: &'a Value, cur: &'a Value) -> Option<&'a Value> {
    match o {
        Operand::Literal(v) => Some(v),
        Operand::Path(steps) => eval(steps, root, cur).into_iter().next(),
    }
}

fn filter_matches(f: &Filter, root: &Value, item: &Value) -> bool {
    let left = operand(&f.left, root, item);
    let (Some(op), Some(right)) = (&f.op, &f.right) else {
        return left.is_some();
    };
    let (Some(l), Some(r)) = (left, operand(right, root, item)) else {
        return false;
    };
    let ord = compare(l, r);
    match op.as_str() {
        "==" => ord == Some(std::cmp::Ordering::Equal),
        "!=" => ord != Some(std::cmp::Ordering::Equal),
        "<" => ord == Some(std::cmp::Ordering::Less),
        ">" => ord == Some(std::cmp::Ordering::Greater),
        "<=" => matches!(
            ord,
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        ),
        ">=" => matches!(
            ord,
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        ),
        _ => false,
    }
}

/// Orders two values the way sorting and filters need: numbers numerically, strings by
/// bytes, booleans false first; values of different types are not ordered.
pub fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        (Value::Number(x), Value::String(y)) => x.as_f64()?.partial_cmp(&y.parse::<f64>().ok()?),
        (Value::String(x), Value::Number(y)) => x.parse::<f64>().ok()?.partial_cmp(&y.as_f64()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> String {
        JsonPath::parse(t).unwrap().render(v)
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"}
            ], "restarts": 3}
        })
    }

    #[test]
    fn fields_indexes_and_wildcards() {
        let p = pod();
        assert_eq!(render("{.metadata.name}", &p), "web");
        assert_eq!(render("name={.metadata.name}!", &p), "name=web!");
        assert_eq!(render("{.spec.containers[*].image}", &p), "x:1 y:2");
        assert_eq!(render("{.spec.containers[-1].name}", &p), "b");
        assert_eq!(render("{.spec.containers[0:1].name}", &p), "a");
        assert_eq!(render("{.spec.containers[0,1].name}", &p), "a b");
        assert_eq!(
            render("{.metadata.labels['app.kubernetes.io/name']}", &p),
            "web"
        );
        assert_eq!(render("{..image}", &p), "x:1 y:2");
        assert_eq!(render("{.status.restarts}", &p), "3");
        assert_eq!(render("{.missing.key}", &p), "");
        assert_eq!(
            render("{.metadata.labels}", &p),
            r#"{"app.kubernetes.io/name":"web"}"#
        );
        assert_eq!(render("{.metadata.name}{\"\\n\"}", &p), "web\n");
        assert_eq!(render("{.metadata.name,.status.restarts}", &p), "web3");
    }

    #[test]
    fn filters_and_ranges() {
        let p = pod();
        assert_eq!(
            render("{.status.conditions[?(@.type==\"Ready\")].status}", &p),
            "False"
        );
        assert_eq!(
            render("{.status.conditions[?(@.status!='False')].type}", &p),
            "PodScheduled"
        );
        assert_eq!(
            render(
                "{range .spec.containers[*]}{.name}={.image}{\"\\n\"}{end}",
                &p
            ),
            "a=x:1\nb=y:2\n"
        );
        assert_eq!(
            render("{range .spec.containers}[{.name}]{end}", &p),
            "[a][b]"
        );
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(JsonPath::parse("{.a").is_err());
        assert!(JsonPath::parse("{range .a}x").is_err());
        assert!(JsonPath::parse("{end}").is_err());
    }

    #[test]
    fn relaxed_paths() {
        let p = pod();
        for e in [".metadata.name", "metadata.name", "{.metadata.name}"] {
            assert_eq!(JsonPath::parse_relaxed(e).unwrap().render(&p), "web", "{e}");
        }
    }

    #[test]
    fn escaped_dots_stay_in_field_names() {
        let o =
            serde_json::json!({"metadata": {"annotations": {"a.io/b": "x", "a": {"io/b": "y"}}}});
        let t = JsonPath::parse(r"{.metadata.annotations.a\.io/b}").unwrap();
        assert_eq!(t.render(&o), "x");
        let t = JsonPath::parse(r"{.metadata.annotations.a.io/b}").unwrap();
        assert_eq!(t.render(&o), "y", "unescaped dots separate fields");
        assert_eq!(
            JsonPath::parse_relaxed(r"metadata.annotations.a\.io/b")
                .unwrap()
                .render(&o),
            "x"
        );
    }
}

//! Label selectors: parsing the `?labelSelector=` string syntax, converting
//! `metav1.LabelSelector` objects, matching label sets and printing the canonical form — the
//! behaviour of apimachinery's `k8s.io/apimachinery/pkg/labels` package.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sLabelSelector;

use super::SelectorError;
use crate::validation::{go_quote, is_qualified_name, is_valid_label_value};

/// The operator of a label selector [`Requirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `key in (v1,v2)`: the label is present and has one of the values.
    In,
    /// `key notin (v1,v2)`: the label is absent or has none of the values.
    NotIn,
    /// `key=value`: the label is present with that value.
    Equals,
    /// `key==value`: same as [`Operator::Equals`], remembered for printing.
    DoubleEquals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>n`: the label's value is an integer greater than `n`.
    GreaterThan,
    /// `key<n`: the label's value is an integer less than `n`.
    LessThan,
}

impl Operator {
    /// The operator's name in apimachinery's `selection.Operator` (`in`, `notin`, `=`, `==`,
    /// `!=`, `exists`, `!`, `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One requirement of a label selector: a key, an operator and (depending on the operator)
/// values. Requirements are always valid: build them with [`Requirement::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// Formats a list of strings the way Go's `%#v` prints a `[]string`.
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_string();
    }
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Joins field errors the way apimachinery's error aggregate prints them: one error alone,
/// several (deduplicated) as `[e1, e2]`.
fn aggregate(errors: Vec<String>) -> String {
    let mut seen = BTreeSet::new();
    let mut unique = Vec::new();
    for e in errors {
        if seen.insert(e.clone()) {
            unique.push(e);
        }
    }
    if unique.len() == 1 {
        unique.pop().unwrap_or_default()
    } else {
        format!("[{}]", unique.join(", "))
    }
}

/// The field error for an invalid label key at `path`, or `None` if the key is valid.
fn label_key_error(key: &str, path: &str) -> Option<String> {
    let errs = is_qualified_name(key);
    if errs.is_empty() {
        None
    } else {
        Some(format!(
            "{path}: Invalid value: {}: {}",
            go_quote(key),
            errs.join("; ")
        ))
    }
}

impl Requirement {
    /// Builds a requirement, checking it like apimachinery's `NewRequirement`: the key must be
    /// a qualified name and every value a label value; `In`/`NotIn` need at least one value,
    /// `=`/`==`/`!=` exactly one, `Exists`/`DoesNotExist` none, and `>`/`<` exactly one integer.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        let mut errs = Vec::new();
        errs.extend(label_key_error(&key, "key"));
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                        go_string_slice(&values)
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: exact-match compatibility requires one single value",
                        go_string_slice(&values)
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(format!(
                        "values: Invalid value: {}: values set must be empty for exists and does not exist",
                        go_string_slice(&values)
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        go_string_slice(&values)
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            go_quote(v)
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = is_valid_label_value(v);
            if !msgs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    msgs.join("; ")
                ));
            }
        }
        if errs.is_empty() {
            Ok(Requirement {
                key,
                operator,
                values,
            })
        } else {
            Err(SelectorError::InvalidRequirement(aggregate(errs)))
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given (sorted and deduplicated when parsed from a string).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    /// Whether a label set satisfies this requirement; `get` looks a label up by key.
    pub fn matches_fn<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }

    /// Whether the labels satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_fn(|k| labels.get(k).map(String::as_str))
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        f.write_str(op)?;
        let parens = matches!(self.operator, Operator::In | Operator::NotIn);
        if parens {
            f.write_str("(")?;
        }
        let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        f.write_str(&sorted.join(","))?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: requirements that must all hold (AND), or the selector that matches
/// nothing.
///
/// Kubernetes distinguishes two "empty" selectors: an empty selector (no requirements, the
/// empty query string, `LabelSelector {}`) matches **every** object, while a *nil* selector
/// (`selector: null` in an object, see [`LabelSelector::from_k8s_opt`]) matches **no** object.
/// [`LabelSelector::everything`] and [`LabelSelector::nothing`] build the two.
///
/// Requirements are kept sorted by key, so `Display` gives a canonical string (both
/// selectors that match nothing and selectors that match everything print as the empty
/// string, as in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    matches_nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every label set (no requirements).
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no label set (what a nil `metav1.LabelSelector` means).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            matches_nothing: true,
        }
    }

    /// Parses the string syntax of `?labelSelector=` (apimachinery's `labels.Parse`):
    /// comma-separated requirements `k=v`, `k==v`, `k!=v`, `k in (v1,v2)`, `k notin (v1,v2)`,
    /// `k`, `!k`, `k>n`, `k<n`, with spaces, tabs and newlines allowed between tokens. The empty
    /// string gives [`LabelSelector::everything`].
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let requirements = Parser::new(selector).parse()?;
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Builds a selector from requirements (ANDed), sorting them by key.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            matches_nothing: false,
        }
    }

    /// A selector requiring every label of `labels` with its value (`key=value` for each
    /// entry), validating keys and values (`labels.ValidatedSelectorFromSet`). An empty map
    /// gives [`LabelSelector::everything`].
    pub fn from_map(labels: &BTreeMap<String, String>) -> Result<Self, SelectorError> {
        let requirements = labels
            .iter()
            .map(|(k, v)| Requirement::new(k.clone(), Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Converts a `metav1.LabelSelector` (`metav1.LabelSelectorAsSelector`): each
    /// `matchLabels` entry becomes `key=value`, each `matchExpressions` entry a requirement
    /// with operator `In`, `NotIn`, `Exists` or `DoesNotExist`. A selector with neither gives
    /// [`LabelSelector::everything`]. For an optional selector field, where absent means
    /// "match nothing", use [`LabelSelector::from_k8s_opt`].
    pub fn from_k8s(selector: &K8sLabelSelector) -> Result<Self, SelectorError> {
        let labels = selector.match_labels.as_ref();
        let expressions = selector.match_expressions.as_deref().unwrap_or_default();
        let mut requirements = Vec::new();
        for (k, v) in labels.into_iter().flatten() {
            requirements.push(Requirement::new(
                k.clone(),
                Operator::Equals,
                vec![v.clone()],
            )?);
        }
        for expr in expressions {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::InvalidOperator(other.to_string())),
            };
            requirements.push(Requirement::new(
                expr.key.clone(),
                operator,
                expr.values.clone().unwrap_or_default(),
            )?);
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Converts an optional `metav1.LabelSelector` with Kubernetes' nil rule: `None` gives
    /// [`LabelSelector::nothing`] (a nil selector matches no objects), `Some` is
    /// [`LabelSelector::from_k8s`] (an empty selector matches all objects).
    pub fn from_k8s_opt(selector: Option<&K8sLabelSelector>) -> Result<Self, SelectorError> {
        match selector {
            None => Ok(LabelSelector::nothing()),
            Some(s) => LabelSelector::from_k8s(s),
        }
    }

    /// Adds requirements (ANDed with the existing ones), keeping them sorted by key. Adding
    /// to [`LabelSelector::nothing`] leaves it matching nothing.
    pub fn add_requirements(mut self, requirements: impl IntoIterator<Item = Requirement>) -> Self {
        if self.matches_nothing {
            return self;
        }
        self.requirements.extend(requirements);
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    /// The requirements, sorted by key (empty for both [`everything`](Self::everything) and
    /// [`nothing`](Self::nothing)).
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether this selector matches everything (has no requirements and is not
    /// [`LabelSelector::nothing`]) — apimachinery's `Selector.Empty()`.
    pub fn is_everything(&self) -> bool {
        !self.matches_nothing && self.requirements.is_empty()
    }

    /// Whether this is the selector that matches nothing.
    pub fn is_nothing(&self) -> bool {
        self.matches_nothing
    }

    /// Whether a label set matches; `get` looks a label up by key.
    pub fn matches_fn<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        !self.matches_nothing && self.requirements.iter().all(|r| r.matches_fn(&get))
    }

    /// Whether the labels match.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_fn(|k| labels.get(k).map(String::as_str))
    }

    /// Whether an object's labels match, where `None` (as in `metadata.labels` left out) means
    /// no labels.
    pub fn matches_opt(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        match labels {
            Some(labels) => self.matches(labels),
            None => self.matches_fn(|_| None),
        }
    }

    /// If the selector only matches objects whose label `key` has one particular value
    /// (`key=v`, `key==v` or `key in (v)`), that value — useful to narrow a list before
    /// matching (apimachinery's `RequiresExactMatch`).
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v.as_str()),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

impl TryFrom<&K8sLabelSelector> for LabelSelector {
    type Error = SelectorError;

    fn try_from(selector: &K8sLabelSelector) -> Result<Self, Self::Error> {
        LabelSelector::from_k8s(selector)
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword_token(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a selector string into tokens. Like Kubernetes' lexer it works on bytes and treats
/// a NUL byte as the end of the current token (or of the input, between tokens).
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// The next byte, or 0 at the end of the input (without moving past the end).
    fn read(&mut self) -> u8 {
        match self.s.as_bytes().get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut end;
        loop {
            end = self.pos;
            let c = self.read();
            if c == 0 {
                break;
            }
            if is_special_symbol(c) || is_whitespace(c) {
                self.unread();
                break;
            }
        }
        // Token boundaries are ASCII bytes, so this slice is always on char boundaries.
        let literal = self.s.get(start..end).unwrap_or_default().to_string();
        match keyword_token(&literal) {
            Some(tok) => (tok, literal),
            None => (Token::Identifier, literal),
        }
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        // Every single special symbol is a token; "==" and "!=" are the two-byte ones, read
        // with longest match.
        let first = self.read();
        let mut literal = String::from(char::from(first));
        let next = self.read();
        if next != 0 {
            let mut two = literal.clone();
            two.push(char::from(next));
            if is_special_symbol(next) && keyword_token(&two).is_some() {
                literal = two;
            } else {
                self.unread();
            }
        }
        let tok = keyword_token(&literal).unwrap_or(Token::EndOfString);
        (tok, literal)
    }

    fn lex(&mut self) -> (Token, String) {
        let mut c = self.read();
        while is_whitespace(c) {
            c = self.read();
        }
        if c == 0 {
            return (Token::EndOfString, String::new());
        }
        self.unread();
        if is_special_symbol(c) {
            self.scan_special_symbol()
        } else {
            self.scan_id_or_keyword()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

fn syntax(msg: String) -> SelectorError {
    SelectorError::LabelSyntax(msg)
}

impl Parser {
    fn new(selector: &str) -> Self {
        let mut lexer = Lexer {
            s: selector,
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let (tok, lit) = lexer.lex();
            items.push((tok, lit));
            if tok == Token::EndOfString {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn item(&self, index: usize, context: Context) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(index)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        // In a values context the keywords `in` and `notin` are plain identifiers.
        let tok = match (context, tok) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => tok,
        };
        (tok, lit)
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        self.item(self.position, context)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.item(self.position, context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| syntax(format!("unable to parse requirement: {e}")))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(syntax(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(syntax(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(syntax(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new(key, op, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(key, operator, values.into_iter().collect())
    }

    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(String, Option<Operator>), SelectorError> {
        let mut operator = None;
        let (mut tok, mut literal) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, literal) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(syntax(format!("found '{literal}', expected: identifier")));
        }
        if let Some(err) = label_key_error(&literal, "<nil>") {
            return Err(SelectorError::InvalidRequirement(err));
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(syntax(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                )));
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(syntax(format!("found '{lit}' expected: '('")));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Token::ClosedPar {
                    return Err(syntax(format!("found '{lit}', expected: ')'")));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                // "()" is the set holding the empty string.
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(syntax(format!(
                "found '{lit}', expected: ',', ')' or identifier"
            ))),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let mut values = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    values.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => {
                            return Err(syntax(format!("found '{lit2}', expected: ',' or ')'")));
                        }
                    }
                }
                Token::Comma => {
                    // Empty entries (leading, trailing or doubled commas) are the empty
                    // string.
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        values.insert(String::new());
                        return Ok(values);
                    }
                    if tok2 == Token::Comma {
                        self.consume(Context::Values);
                        values.insert(String::new());
                    }
                }
                _ => {
                    return Err(syntax(format!(
                        "found '{lit}', expected: ',', or identifier"
                    )));
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, _) = self.lookahead(Context::Values);
        if matches!(tok, Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok(BTreeSet::from([lit]))
        } else {
            Err(syntax(format!("found '{lit}', expected: identifier")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parse_and_print_canonical() {
        let cases = [
            ("", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("x=", "x="),
            ("x==", "x=="),
            ("x!=", "x!="),
            ("x", "x"),
            ("!x", "!x"),
            ("x>1", "x>1"),
            ("x<10", "x<10"),
            ("x in (a)", "x in (a)"),
            ("x in (b,a)", "x in (a,b)"),
            ("x in (a,a,b)", "x in (a,b)"),
            ("x notin (a)", "x notin (a)"),
            ("x in ()", "x in ()"),
            ("x in (,)", "x in ()"),
            ("x in (a,)", "x in (,a)"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("x=a,y!=b", "x=a,y!=b"),
            ("y!=b,x=a", "x=a,y!=b"),
            ("z,!y,x in (a)", "x in (a),!y,z"),
            ("x=a,x!=b", "x=a,x!=b"),
            ("x=in", "x=in"),
            ("x=notin", "x=notin"),
            ("in", "in"),
            ("notin in (in,notin)", "notin in (in,notin)"),
            ("x in (in)", "x in (in)"),
            ("example.com/key=v", "example.com/key=v"),
            ("a.b_c-D=E.f_G-h", "a.b_c-D=E.f_G-h"),
            // Whitespace, tabs and newlines between tokens are ignored.
            ("  x  =  a  ", "x=a"),
            ("x\t==\na", "x==a"),
            ("x\r\n!=\ta", "x!=a"),
            (" x in ( a , b ) , y notin ( c ) ", "x in (a,b),y notin (c)"),
            ("x in(a)", "x in (a)"),
            ("! x", "!x"),
            ("x,y", "x,y"),
            ("x , y", "x,y"),
        ];
        for (input, want) in cases {
            let sel = match LabelSelector::parse(input) {
                Ok(sel) => sel,
                Err(e) => panic!("{input:?}: {e}"),
            };
            assert_eq!(sel.to_string(), want, "{input:?}");
            // The canonical form parses back to the same selector.
            assert_eq!(LabelSelector::parse(want).ok(), Some(sel), "{want:?}");
        }
    }

    #[test]
    fn parse_errors_match_kubernetes() {
        let name_part = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        let label_value = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        let cases: Vec<(&str, String)> = vec![
            (
                "x=a||y=b",
                format!("unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {label_value}"),
            ),
            (
                "x>",
                "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer".to_string(),
            ),
            ("x=a,", "found '', expected: identifier after ','".to_string()),
            ("x=a,,y=b", "found ',', expected: identifier after ','".to_string()),
            (",x=a", "found ',', expected: !, identifier, or 'end of string'".to_string()),
            ("(x)", "found '(', expected: !, identifier, or 'end of string'".to_string()),
            ("=a", "found '=', expected: !, identifier, or 'end of string'".to_string()),
            ("x=a b", "found 'b', expected: ',' or 'end of string'".to_string()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".to_string()),
            ("x y", "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt".to_string()),
            ("x in a", "unable to parse requirement: found 'a' expected: '('".to_string()),
            ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'".to_string()),
            ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'".to_string()),
            ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".to_string()),
            ("x in (,=)", "unable to parse requirement: found '=', expected: ',', or identifier".to_string()),
            ("x notin", "unable to parse requirement: found '' expected: '('".to_string()),
            ("x=(", "unable to parse requirement: found '(', expected: identifier".to_string()),
            ("x==!", "unable to parse requirement: found '!', expected: identifier".to_string()),
            ("!", "unable to parse requirement: found '', expected: identifier".to_string()),
            ("!!x", "unable to parse requirement: found '!', expected: identifier".to_string()),
            ("!=a", "found '!=', expected: !, identifier, or 'end of string'".to_string()),
            ("x===a", "unable to parse requirement: found '=', expected: identifier".to_string()),
            ("x=!a", "unable to parse requirement: found '!', expected: identifier".to_string()),
            (
                "-x=a",
                format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {name_part}"),
            ),
            (
                "a/b/c",
                "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
            ),
            (
                "x=-a",
                format!("unable to parse requirement: values[0][x]: Invalid value: \"-a\": {label_value}"),
            ),
            (
                "x in (-a,-b)",
                format!(
                    "unable to parse requirement: [values[0][x]: Invalid value: \"-a\": {label_value}, values[1][x]: Invalid value: \"-b\": {label_value}]"
                ),
            ),
            (
                "x>a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".to_string(),
            ),
            (
                "x<1.5",
                "unable to parse requirement: values[0]: Invalid value: \"1.5\": for 'Gt', 'Lt' operators, the value must be an integer".to_string(),
            ),
        ];
        for (input, want) in cases {
            match LabelSelector::parse(input) {
                Ok(sel) => panic!("{input:?} parsed as {sel}"),
                Err(e) => assert_eq!(e.to_string(), want, "{input:?}"),
            }
        }
        let long_key = "a".repeat(64);
        let err = LabelSelector::parse(&long_key).unwrap_err().to_string();
        assert!(
            err.contains("name part must be no more than 63 characters"),
            "{err}"
        );
        let long_value = format!("x={}", "a".repeat(64));
        let err = LabelSelector::parse(&long_value).unwrap_err().to_string();
        assert!(err.contains("must be no more than 63 characters"), "{err}");
    }

    #[test]
    fn nul_bytes_behave_like_kubernetes() {
        // A NUL ends the current token; between tokens it ends the input.
        assert_eq!(
            LabelSelector::parse("x\0").map(|s| s.to_string()),
            Ok("x".to_string())
        );
        // Right after a symbol the NUL is swallowed with it...
        assert_eq!(
            LabelSelector::parse("x=a,\0y").map(|s| s.to_string()),
            Ok("x=a,y".to_string())
        );
        // ...while between tokens it ends the input.
        assert_eq!(
            LabelSelector::parse("x=a, \0y").map(|s| s.to_string()),
            Err(SelectorError::LabelSyntax(
                "found '', expected: identifier after ','".to_string()
            ))
        );
    }

    #[test]
    fn matching() {
        let set = labels(&[("x", "a"), ("y", "b"), ("n", "5")]);
        let cases = [
            ("", true),
            ("x=a", true),
            ("x==a", true),
            ("x=b", false),
            ("x!=a", false),
            ("x!=b", true),
            ("z!=a", true),
            ("z=", false),
            ("x", true),
            ("z", false),
            ("!z", true),
            ("!x", false),
            ("x in (a,b)", true),
            ("x in (b,c)", false),
            ("z in (a)", false),
            ("x notin (a)", false),
            ("x notin (b,c)", true),
            ("z notin (a)", true),
            ("x=a,y=b", true),
            ("x=a,y=c", false),
            ("x=a,y!=b", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("n<5", false),
            ("n>0", true),
            ("x>1", false),
            ("z>1", false),
            ("z<1", false),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap();
            assert_eq!(sel.matches(&set), want, "{input:?}");
            assert_eq!(sel.matches_opt(Some(&set)), want, "{input:?}");
        }
        // An object without labels.
        assert!(LabelSelector::parse("").unwrap().matches_opt(None));
        assert!(
            LabelSelector::parse("!x,x!=a,x notin (a)")
                .unwrap()
                .matches_opt(None)
        );
        assert!(!LabelSelector::parse("x").unwrap().matches_opt(None));
        // The empty value.
        let empty = labels(&[("x", "")]);
        assert!(LabelSelector::parse("x=").unwrap().matches(&empty));
        assert!(LabelSelector::parse("x in ()").unwrap().matches(&empty));
        assert!(LabelSelector::parse("x in (,a)").unwrap().matches(&empty));
        assert!(!LabelSelector::parse("x in (a)").unwrap().matches(&empty));
        // Any label store can be used through matches_fn.
        let hm: std::collections::HashMap<String, String> =
            [("x".to_string(), "a".to_string())].into();
        assert!(
            LabelSelector::parse("x=a")
                .unwrap()
                .matches_fn(|k| hm.get(k).map(String::as_str))
        );
    }

    #[test]
    fn everything_and_nothing() {
        let set = labels(&[("x", "a")]);
        let everything = LabelSelector::everything();
        assert!(everything.is_everything());
        assert!(!everything.is_nothing());
        assert!(everything.matches(&set));
        assert!(everything.matches(&BTreeMap::new()));
        assert_eq!(everything.to_string(), "");
        assert_eq!(LabelSelector::parse("").unwrap(), everything);
        assert_eq!(LabelSelector::parse("  ").unwrap(), everything);

        let nothing = LabelSelector::nothing();
        assert!(nothing.is_nothing());
        assert!(!nothing.is_everything());
        assert!(!nothing.matches(&set));
        assert!(!nothing.matches(&BTreeMap::new()));
        assert!(!nothing.matches_opt(None));
        assert_eq!(nothing.to_string(), "");
        let req = Requirement::new("x", Operator::Exists, vec![]).unwrap();
        assert!(nothing.clone().add_requirements([req.clone()]).is_nothing());
        let added = everything.add_requirements([req]);
        assert_eq!(added.to_string(), "x");
        assert!(!added.is_everything());
    }

    #[test]
    fn from_k8s_selectors() {
        let set = labels(&[("app", "web"), ("tier", "front")]);
        // nil matches nothing, empty matches everything.
        let nil = LabelSelector::from_k8s_opt(None).unwrap();
        assert!(nil.is_nothing());
        assert!(!nil.matches(&set));
        let empty = K8sLabelSelector::default();
        assert!(
            LabelSelector::from_k8s_opt(Some(&empty))
                .unwrap()
                .is_everything()
        );
        assert!(LabelSelector::from_k8s(&empty).unwrap().matches(&set));
        let empty_fields = K8sLabelSelector {
            match_labels: Some(BTreeMap::new()),
            match_expressions: Some(vec![]),
        };
        assert!(
            LabelSelector::from_k8s(&empty_fields)
                .unwrap()
                .is_everything()
        );

        let expr = |key: &str, op: &str, values: Option<&[&str]>| LabelSelectorRequirement {
            key: key.to_string(),
            operator: op.to_string(),
            values: values.map(strings),
        };
        let sel = K8sLabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                expr("tier", "In", Some(&["front", "back"])),
                expr("env", "NotIn", Some(&["prod"])),
                expr("tier", "Exists", None),
                expr("legacy", "DoesNotExist", Some(&[])),
            ]),
        };
        let parsed = LabelSelector::from_k8s(&sel).unwrap();
        assert_eq!(
            parsed.to_string(),
            "app=web,env notin (prod),!legacy,tier in (back,front),tier"
        );
        assert!(parsed.matches(&set));
        assert!(!parsed.matches(&labels(&[("app", "web"), ("tier", "middle")])));
        assert_eq!(LabelSelector::try_from(&sel).unwrap(), parsed);

        let bad = |e: LabelSelectorRequirement| {
            LabelSelector::from_k8s(&K8sLabelSelector {
                match_labels: None,
                match_expressions: Some(vec![e]),
            })
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            bad(expr("x", "In", None)),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            bad(expr("x", "NotIn", Some(&[]))),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            bad(expr("x", "Exists", Some(&["a", "b"]))),
            "values: Invalid value: []string{\"a\", \"b\"}: values set must be empty for exists and does not exist"
        );
        assert_eq!(
            bad(expr("x", "DoesNotExist", Some(&["a"]))),
            "values: Invalid value: []string{\"a\"}: values set must be empty for exists and does not exist"
        );
        assert_eq!(
            bad(expr("x", "Gt", Some(&["1"]))),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            bad(expr("x", "in", Some(&["1"]))),
            "\"in\" is not a valid label selector operator"
        );
        let err = bad(expr("bad key", "Exists", None));
        assert!(
            err.starts_with("key: Invalid value: \"bad key\": name part must consist"),
            "{err}"
        );
        let err = bad(expr("bad key", "In", None));
        assert!(err.starts_with("[key: Invalid value: \"bad key\""), "{err}");
        assert!(err.ends_with("values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty]"), "{err}");

        let bad_label = K8sLabelSelector {
            match_labels: Some(labels(&[("app", "-web")])),
            match_expressions: None,
        };
        let err = LabelSelector::from_k8s(&bad_label).unwrap_err().to_string();
        assert!(
            err.starts_with("values[0][app]: Invalid value: \"-web\": a valid label"),
            "{err}"
        );
    }

    #[test]
    fn requirement_validation() {
        assert!(Requirement::new("x", Operator::Equals, strings(&["a"])).is_ok());
        assert!(Requirement::new("x", Operator::Equals, strings(&[""])).is_ok());
        let err = Requirement::new("x", Operator::Equals, strings(&["a", "b"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "values: Invalid value: []string{\"a\", \"b\"}: exact-match compatibility requires one single value"
        );
        let err = Requirement::new("x", Operator::NotEquals, vec![]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "values: Invalid value: []string(nil): exact-match compatibility requires one single value"
        );
        let err = Requirement::new("x", Operator::GreaterThan, strings(&["1", "2"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "values: Invalid value: []string{\"1\", \"2\"}: for 'Gt', 'Lt' operators, exactly one value is required"
        );
        // Gt/Lt values must also be label values, so negative numbers are rejected.
        assert!(Requirement::new("x", Operator::LessThan, strings(&["7"])).is_ok());
        let err = Requirement::new("x", Operator::LessThan, strings(&["-7"])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("values[0][x]: Invalid value: \"-7\": a valid label"),
            "{err}"
        );
        let err = Requirement::new("x", Operator::LessThan, strings(&["99999999999999999999"]))
            .unwrap_err();
        assert!(err.to_string().contains("the value must be an integer"));
        let err = Requirement::new("x", Operator::In, strings(&["-a", "-b"])).unwrap_err();
        assert!(err.to_string().starts_with("[values[0][x]"), "{err}");
        // Identical errors are reported once, and a single error without brackets.
        assert_eq!(aggregate(strings(&["e1", "e1"])), "e1");
        assert_eq!(aggregate(strings(&["e1", "e2", "e1"])), "[e1, e2]");
        let r = Requirement::new("k", Operator::In, strings(&["b", "a"])).unwrap();
        assert_eq!(r.key(), "k");
        assert_eq!(r.operator(), Operator::In);
        assert_eq!(r.values(), &strings(&["b", "a"])[..]);
        assert_eq!(r.to_string(), "k in (a,b)");
        assert!(r.matches(&labels(&[("k", "b")])));
        assert_eq!(Operator::NotIn.to_string(), "notin");
    }

    #[test]
    fn from_map_and_exact_match() {
        let sel = LabelSelector::from_map(&labels(&[("b", "2"), ("a", "1")])).unwrap();
        assert_eq!(sel.to_string(), "a=1,b=2");
        assert_eq!(sel.requires_exact_match("a"), Some("1"));
        assert_eq!(sel.requires_exact_match("c"), None);
        assert!(
            LabelSelector::from_map(&BTreeMap::new())
                .unwrap()
                .is_everything()
        );
        assert!(LabelSelector::from_map(&labels(&[("a", "-")])).is_err());

        let sel = LabelSelector::parse("a in (x),b in (x,y),c!=z,d==w").unwrap();
        assert_eq!(sel.requires_exact_match("a"), Some("x"));
        assert_eq!(sel.requires_exact_match("b"), None);
        assert_eq!(sel.requires_exact_match("c"), None);
        assert_eq!(sel.requires_exact_match("d"), Some("w"));
        assert_eq!(sel.requirements().len(), 4);
        assert_eq!("a=b".parse::<LabelSelector>().unwrap().to_string(), "a=b");
    }
}

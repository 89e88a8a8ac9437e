//! Field selectors: parsing the `?fieldSelector=` syntax (`field=value`, `field==value`,
//! `field!=value`, comma-separated, with `\,` `\=` `\\` escapes in values), matching an
//! object's selectable fields and checking that only supported fields are used — the behaviour
//! of apimachinery's `k8s.io/apimachinery/pkg/fields` package.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::SelectorError;

/// The operator of a [`FieldRequirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldOperator {
    /// `field=value` or `field==value`: the field has that value.
    Equals,
    /// `field!=value`: the field has another value.
    NotEquals,
}

/// One term of a field selector. A field the object does not have counts as the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The field path, e.g. `metadata.name` or `spec.nodeName`.
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The (unescaped) value to compare with.
    pub value: String,
}

impl FieldRequirement {
    /// Whether a field value satisfies the requirement (a missing field is the empty string).
    pub fn matches_value(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("");
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A field selector: terms that must all hold (AND). The empty selector matches everything.
///
/// Terms are kept in the order Kubernetes gives them (sorted by their text as written), so
/// `Display` gives the string Kubernetes would print.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Escapes `\`, `,` and `=` in a field selector value (`fields.EscapeValue`).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reverses [`escape_value`] (`fields.UnescapeValue`): `\\`, `\,` and `\=` become `\`, `,` and
/// `=`; any other backslash sequence, a trailing backslash, or an unescaped `,` or `=` is an
/// error.
pub fn unescape_value(value: &str) -> Result<String, SelectorError> {
    if !value.contains(['\\', ',', '=']) {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::InvalidEscapeSequence(format!("\\{c}")));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(SelectorError::UnescapedCharacter(c)),
            c => out.push(c),
        }
    }
    if escaped {
        return Err(SelectorError::InvalidEscapeSequence("\\".to_string()));
    }
    Ok(out)
}

/// Splits a selector at the commas that are not escaped.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, `==` or `=`, tried in that order at each
/// position).
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the `?fieldSelector=` syntax (`fields.ParseSelector`). Like Kubernetes, no
    /// whitespace is trimmed (`a = b` compares field `a ` with ` b`), empty terms are skipped,
    /// and a term with an empty field and an empty value (`=`) is dropped.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let (field, operator, value) =
                split_term(term).ok_or_else(|| SelectorError::FieldSyntax {
                    selector: selector.to_string(),
                    term: term.to_string(),
                })?;
            let value = unescape_value(value)?;
            if field.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// A selector with the single term `field=value` (`fields.OneTermEqualSelector`).
    pub fn one_term_equal(field: impl Into<String>, value: impl Into<String>) -> Self {
        FieldSelector {
            requirements: vec![FieldRequirement {
                field: field.into(),
                operator: FieldOperator::Equals,
                value: value.into(),
            }],
        }
    }

    /// A selector requiring `field=value` for every entry (`fields.SelectorFromSet`), in key
    /// order.
    pub fn from_map(fields: &BTreeMap<String, String>) -> Self {
        FieldSelector {
            requirements: fields
                .iter()
                .map(|(f, v)| FieldRequirement {
                    field: f.clone(),
                    operator: FieldOperator::Equals,
                    value: v.clone(),
                })
                .collect(),
        }
    }

    /// A selector with these requirements (ANDed), in the given order.
    pub fn from_requirements(requirements: Vec<FieldRequirement>) -> Self {
        FieldSelector { requirements }
    }

    /// The terms, for callers that need to know which fields are used.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector has no terms (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object matches; `get` returns the object's value for a field path, `None`
    /// for a field it does not have (which compares as the empty string).
    pub fn matches_with(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(get(&r.field).as_deref()))
    }

    /// Whether an object with these field values matches (absent fields are the empty
    /// string).
    pub fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(fields.get(&r.field).map(String::as_str)))
    }

    /// If the selector requires `field` to have one particular value (`field=v`), that value
    /// (`Selector.RequiresExactMatch`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Checks that every field used is one of `supported`; the first one that is not gives
    /// [`SelectorError::UnsupportedField`] (`field label not supported: X`, which the API
    /// server returns as 400 Bad Request). Kubernetes supports `metadata.name` and
    /// `metadata.namespace` for every resource; include them in `supported` as appropriate.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), SelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| !supported.contains(&r.field.as_str()))
        {
            Some(r) => Err(SelectorError::UnsupportedField(r.field.clone())),
            None => Ok(()),
        }
    }

    /// Rewrites every term with `f(field, value)` (`Selector.Transform`, used to convert
    /// field labels between versions); a term mapped to an empty field and an empty value is
    /// dropped. The first error is returned.
    pub fn transform<F>(&self, mut f: F) -> Result<FieldSelector, SelectorError>
    where
        F: FnMut(&str, &str) -> Result<(String, String), SelectorError>,
    {
        let mut requirements = Vec::with_capacity(self.requirements.len());
        for r in &self.requirements {
            let (field, value) = f(&r.field, &r.value)?;
            if field.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(FieldRequirement {
                field,
                operator: r.operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }
}

impl fmt::Display for FieldSelector {
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

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_and_print() {
        let cases = [
            ("", ""),
            (",", ""),
            (",,", ""),
            ("=", ""),
            ("==", ""),
            ("!=", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a!=b", "a!=b"),
            ("a=", "a="),
            ("a!=", "a!="),
            ("=b", "=b"),
            ("metadata.name=foo", "metadata.name=foo"),
            ("x=a,y=b", "x=a,y=b"),
            ("y=b,x=a", "x=a,y=b"),
            ("x=a,,y=b", "x=a,y=b"),
            ("x=a,x!=b", "x!=b,x=a"),
            ("x==a,x=b", "x=a,x=b"),
            // No whitespace trimming.
            (" a = b ", " a = b "),
            // Escapes.
            ("a=b\\,c", "a=b\\,c"),
            ("a=b\\=c", "a=b\\=c"),
            ("a=b\\\\c", "a=b\\\\c"),
            ("a=\\,\\=\\\\", "a=\\,\\=\\\\"),
            ("a!=x\\,y,b=1", "a!=x\\,y,b=1"),
            ("k=ünïcode", "k=ünïcode"),
        ];
        for (input, want) in cases {
            let sel = match FieldSelector::parse(input) {
                Ok(sel) => sel,
                Err(e) => panic!("{input:?}: {e}"),
            };
            assert_eq!(sel.to_string(), want, "{input:?}");
            assert_eq!(FieldSelector::parse(want).ok(), Some(sel), "{want:?}");
        }
    }

    #[test]
    fn parse_values_and_operators() {
        let sel = FieldSelector::parse("b!=x\\,y,a==1\\=2").unwrap();
        assert_eq!(
            sel.requirements(),
            &[
                FieldRequirement {
                    field: "a".to_string(),
                    operator: FieldOperator::Equals,
                    value: "1=2".to_string(),
                },
                FieldRequirement {
                    field: "b".to_string(),
                    operator: FieldOperator::NotEquals,
                    value: "x,y".to_string(),
                },
            ]
        );
        // Operators are found without regard to escapes, so a field cannot contain "=".
        let sel = FieldSelector::parse("b=1,a\\=x=2").unwrap_err();
        assert_eq!(sel, SelectorError::UnescapedCharacter('='));
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            (
                "x=a,!b",
                "invalid selector: 'x=a,!b'; can't understand '!b'",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a==b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a=b\\",
                "invalid field selector: invalid escape sequence: \\",
            ),
            (
                "a=b\\n",
                "invalid field selector: invalid escape sequence: \\n",
            ),
            (
                "a=\\é",
                "invalid field selector: invalid escape sequence: \\é",
            ),
            // The first operator wins: "!=" before "==" before "=" at each position.
            (
                "a!==b",
                "invalid field selector: unescaped character in value: 61",
            ),
        ];
        for (input, want) in cases {
            match FieldSelector::parse(input) {
                Ok(sel) => panic!("{input:?} parsed as {sel}"),
                Err(e) => assert_eq!(e.to_string(), want, "{input:?}"),
            }
        }
    }

    #[test]
    fn escaping() {
        let cases = [
            ("", ""),
            ("a", "a"),
            ("=", "\\="),
            (",", "\\,"),
            ("\\", "\\\\"),
            ("\\=\\,\\", "\\\\\\=\\\\\\,\\\\"),
            ("a,b=c\\d", "a\\,b\\=c\\\\d"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_value(raw), escaped, "{raw:?}");
            assert_eq!(unescape_value(escaped).as_deref(), Ok(raw), "{escaped:?}");
        }
        assert_eq!(
            unescape_value("a,b"),
            Err(SelectorError::UnescapedCharacter(','))
        );
        assert_eq!(
            unescape_value("a\\b"),
            Err(SelectorError::InvalidEscapeSequence("\\b".to_string()))
        );
        assert_eq!(
            SelectorError::UnescapedCharacter(',').to_string(),
            "invalid field selector: unescaped character in value: 44"
        );
    }

    #[test]
    fn matching() {
        let fields = map(&[
            ("metadata.name", "web-1"),
            ("spec.nodeName", "node-a"),
            ("status.phase", "Running"),
            ("empty", ""),
        ]);
        let cases = [
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-1", true),
            ("metadata.name=web-2", false),
            ("metadata.name!=web-2", true),
            ("metadata.name!=web-1", false),
            ("spec.nodeName=node-a,status.phase=Running", true),
            ("spec.nodeName=node-a,status.phase!=Running", false),
            // A missing field is the empty string.
            ("spec.missing=", true),
            ("spec.missing!=", false),
            ("spec.missing!=x", true),
            ("spec.missing=x", false),
            ("empty=", true),
            ("empty!=", false),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input).unwrap();
            assert_eq!(sel.matches(&fields), want, "{input:?}");
            let get = |f: &str| fields.get(f).cloned();
            assert_eq!(sel.matches_with(&get), want, "{input:?}");
        }
        let escaped = FieldSelector::parse("a=x\\,y").unwrap();
        assert!(escaped.matches(&map(&[("a", "x,y")])));
        assert!(!escaped.matches(&map(&[("a", "x\\,y")])));
    }

    #[test]
    fn supported_fields_and_helpers() {
        let sel = FieldSelector::parse("spec.nodeName=n,metadata.name!=x").unwrap();
        assert_eq!(
            sel.requirements()
                .iter()
                .map(|r| r.field.as_str())
                .collect::<Vec<_>>(),
            vec!["metadata.name", "spec.nodeName"]
        );
        assert_eq!(
            sel.check_supported(&["metadata.name", "spec.nodeName"]),
            Ok(())
        );
        let err = sel.check_supported(&["metadata.name"]).unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: spec.nodeName");
        assert_eq!(FieldSelector::everything().check_supported(&[]), Ok(()));

        assert_eq!(sel.requires_exact_match("spec.nodeName"), Some("n"));
        assert_eq!(sel.requires_exact_match("metadata.name"), None);
        assert!(FieldSelector::everything().is_empty());
        assert!(!sel.is_empty());

        let one = FieldSelector::one_term_equal("metadata.name", "a,b");
        assert_eq!(one.to_string(), "metadata.name=a\\,b");
        assert_eq!(FieldSelector::parse(&one.to_string()).unwrap(), one);

        let from_map = FieldSelector::from_map(&map(&[("b", "2"), ("a", "1")]));
        assert_eq!(from_map.to_string(), "a=1,b=2");
        assert_eq!("a=1,b=2".parse::<FieldSelector>().unwrap(), from_map);
        let from_reqs = FieldSelector::from_requirements(vec![FieldRequirement {
            field: "x".to_string(),
            operator: FieldOperator::NotEquals,
            value: "y".to_string(),
        }]);
        assert_eq!(from_reqs.to_string(), "x!=y");
    }

    #[test]
    fn transform_terms() {
        let sel = FieldSelector::parse("name=a,drop=me,spec.host=h").unwrap();
        let out = sel
            .transform(|field, value| match field {
                "name" => Ok(("metadata.name".to_string(), value.to_string())),
                "drop" => Ok((String::new(), String::new())),
                "spec.host" => Ok(("spec.nodeName".to_string(), value.to_string())),
                other => Err(SelectorError::UnsupportedField(other.to_string())),
            })
            .unwrap();
        assert_eq!(out.to_string(), "metadata.name=a,spec.nodeName=h");
        let err = FieldSelector::parse("bogus=1")
            .unwrap()
            .transform(|f, _| Err(SelectorError::UnsupportedField(f.to_string())))
            .unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: bogus");
    }
}

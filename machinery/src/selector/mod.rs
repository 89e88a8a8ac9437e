//! Label and field selectors, as the Kubernetes API server reads them from the
//! `?labelSelector=` and `?fieldSelector=` query parameters and from `LabelSelector` objects
//! (Deployment `spec.selector`, NetworkPolicy `podSelector`, ...).
//!
//! - [`LabelSelector`] follows apimachinery's `labels` package: the set-based string syntax
//!   (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`), the conversion from
//!   `metav1.LabelSelector` (`matchLabels` / `matchExpressions`), matching and canonical
//!   printing.
//! - [`FieldSelector`] follows the `fields` package: `field=value`, `field==value`,
//!   `field!=value` terms joined by commas, with `\,` `\=` `\\` escaping in values.
//!
//! Parse errors are [`SelectorError`]s whose messages are the ones Kubernetes returns.

mod field;
mod label;

pub use field::{FieldOperator, FieldRequirement, FieldSelector, escape_value, unescape_value};
pub use label::{LabelSelector, Operator, Requirement};

use crate::validation::go_quote;

/// Why a label or field selector could not be parsed, converted or used. The `Display` text is
/// the message Kubernetes puts in its 400 Bad Request responses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector string is malformed, e.g. `found '(', expected: !, identifier, or
    /// 'end of string'` or `unable to parse requirement: ...`.
    #[error("{0}")]
    LabelSyntax(String),
    /// A requirement is invalid: a bad key or value, or values that do not fit the operator
    /// (e.g. `values: Invalid value: []string(nil): for 'in', 'notin' operators, values set
    /// can't be empty`).
    #[error("{0}")]
    InvalidRequirement(String),
    /// A `matchExpressions` entry has an operator other than `In`, `NotIn`, `Exists` and
    /// `DoesNotExist`.
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    InvalidOperator(String),
    /// A field selector term has no `=`, `==` or `!=` operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldSyntax {
        /// The whole field selector.
        selector: String,
        /// The term that could not be understood.
        term: String,
    },
    /// A field selector value contains a backslash not followed by `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscapeSequence(String),
    /// A field selector value contains an unescaped `,` or `=` (Kubernetes prints the
    /// character's code point).
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    UnescapedCharacter(char),
    /// A field selector uses a field the resource does not support filtering on.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

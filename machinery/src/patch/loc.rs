//! Locations inside a document, for error messages, built on the stack as the patch
//! algorithms descend (no allocation until an error is reported).

use std::fmt;

/// A path from the document root: `.spec.containers[0].env`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Loc<'p> {
    /// The document itself.
    Root,
    /// A key of an object.
    Key(&'p Loc<'p>, &'p str),
    /// An index of a list.
    Index(&'p Loc<'p>, usize),
}

impl<'p> Loc<'p> {
    /// The location of `key` under this one.
    pub(super) fn key(&'p self, key: &'p str) -> Loc<'p> {
        Loc::Key(self, key)
    }

    /// The location of item `index` under this one.
    pub(super) fn index(&'p self, index: usize) -> Loc<'p> {
        Loc::Index(self, index)
    }

    /// The path as a string; the root is `.`.
    pub(super) fn path(&self) -> String {
        let path = self.to_string();
        if path.is_empty() {
            ".".to_owned()
        } else {
            path
        }
    }
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Root => Ok(()),
            Loc::Key(parent, key) => write!(f, "{parent}.{key}"),
            Loc::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

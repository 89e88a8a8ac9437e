//! The static token file (`--token-auth-file`): one user per line,
//! `token,user,uid,"group1,group2"` (CSV; the groups column is optional), as Kubernetes reads it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::UserInfo;

/// Why the token file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("token file {path}, line {line}: {message}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The users of a token file, by token.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    users: HashMap<String, Arc<UserInfo>>,
}

/// Splits one CSV line into fields (double quotes group, `""` is a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    fields.push(cur);
    Ok(fields)
}

impl TokenFile {
    /// Parses the text of a token file (`path` is for messages).
    pub fn parse(text: &str, path: &str) -> Result<Self, TokenFileError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let err = |message: String| TokenFileError::Line {
                path: path.to_string(),
                line: i + 1,
                message,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = csv_fields(line).map_err(err)?;
            if fields.len() < 3 {
                return Err(err(
                    "expected token,user,uid[,\"group1,group2\"]".to_string()
                ));
            }
            let (token, user, uid) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
            if token.is_empty() || user.is_empty() {
                return Err(err("the token and the user may not be empty".into()));
            }
            let groups: Vec<String> = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let u = UserInfo::authenticated(user, uid, groups);
            if users.insert(token.to_string(), Arc::new(u)).is_some() {
                return Err(err("duplicate token".into()));
            }
        }
        Ok(Self { users })
    }

    /// Reads a token file.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The user of a token.
    pub fn lookup(&self, token: &str) -> Option<Arc<UserInfo>> {
        self.users.get(token).cloned()
    }

    /// How many users the file names.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file names no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_token_files() {
        let f = TokenFile::parse(
            "# comment\nt1,jane,u1,\"dev,ops\"\nt2,bob,u2\n\nt3,\"a,b\",u3,solo\n",
            "tokens.csv",
        )
        .unwrap();
        let jane = f.lookup("t1").unwrap();
        assert_eq!(jane.username, "jane");
        assert_eq!(jane.uid, "u1");
        assert_eq!(jane.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(f.lookup("t2").unwrap().groups, ["system:authenticated"]);
        assert_eq!(f.lookup("t3").unwrap().username, "a,b");
        assert!(f.lookup("nope").is_none());
        assert_eq!(f.len(), 3);
        let e = TokenFile::parse("x,y\n", "f").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(TokenFile::parse("a,b,c\na,d,e\n", "f").is_err());
        assert!(TokenFile::parse("a,\"b,c\n", "f").is_err());
    }
}

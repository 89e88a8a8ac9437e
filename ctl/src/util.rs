//! Small helpers shared by the commands: `key=value` argument parsing for labels and
//! annotations.

/// A label or annotation change from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// `key=value`.
    Set(String, String),
    /// `key-`.
    Remove(String),
}

/// Splits `label` / `annotate` arguments into resource arguments and changes (`k=v`, `k-`).
pub fn split_key_changes(args: &[String]) -> (Vec<String>, Vec<KeyChange>) {
    let mut resources = Vec::new();
    let mut changes = Vec::new();
    for a in args {
        if let Some((k, v)) = a.split_once('=') {
            changes.push(KeyChange::Set(k.to_string(), v.to_string()));
        } else if let Some(k) = a.strip_suffix('-')
            && !k.is_empty()
            && !resources.is_empty()
        {
            changes.push(KeyChange::Remove(k.to_string()));
        } else {
            resources.push(a.clone());
        }
    }
    (resources, changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes() {
        let args: Vec<String> = ["pod", "web", "app=x", "tier-", "a.b/c=d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (r, c) = split_key_changes(&args);
        assert_eq!(r, ["pod", "web"]);
        assert_eq!(
            c,
            [
                KeyChange::Set("app".into(), "x".into()),
                KeyChange::Remove("tier".into()),
                KeyChange::Set("a.b/c".into(), "d".into())
            ]
        );
    }
}

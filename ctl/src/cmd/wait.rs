//! `wait --for=delete|condition=NAME[=VALUE]|jsonpath={…}[=VALUE]`: polls the objects until
//! the condition holds (printing `kind/name condition met`) or `--timeout` passes.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::WaitArgs;
use crate::client::Ctx;
use crate::cmd::common;
use crate::error::{CtlError, Result};
use crate::output::outln;
use crate::print::jsonpath::{JsonPath, value_text};
use crate::resource::ExpandOptions;

/// What to wait for.
#[derive(Debug)]
pub enum Condition {
    /// The object is gone.
    Delete,
    /// `status.conditions[type=NAME].status == VALUE` (case-insensitive; default `True`).
    Condition(String, String),
    /// A JSONPath value equals VALUE (or exists, without a value).
    JsonPath(JsonPath, Option<String>),
}

/// Parses `--for`.
pub fn parse_for(s: &str) -> Result<Condition> {
    if s == "delete" {
        return Ok(Condition::Delete);
    }
    if let Some(rest) = s.strip_prefix("condition=") {
        let (name, value) = match rest.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (rest.to_string(), "true".to_string()),
        };
        return Ok(Condition::Condition(name, value));
    }
    if let Some(rest) = s.strip_prefix("jsonpath=") {
        // The value follows the closing brace: `{.status.phase}=Running`.
        let (expr, value) = match rest.rfind('}') {
            Some(i) => {
                let (e, v) = rest.split_at(i + 1);
                (
                    e.to_string(),
                    v.strip_prefix('=')
                        .map(|v| v.trim_matches(['\'', '"']).to_string()),
                )
            }
            None => match rest.split_once('=') {
                Some((e, v)) => (e.to_string(), Some(v.to_string())),
                None => (rest.to_string(), None),
            },
        };
        let path = JsonPath::parse_relaxed(&expr).map_err(|e| CtlError::Usage(e.to_string()))?;
        return Ok(Condition::JsonPath(path, value));
    }
    Err(CtlError::Usage(format!("unrecognized condition: \"{s}\"")))
}

/// Whether an object meets a condition.
pub fn met(c: &Condition, obj: &Value) -> bool {
    match c {
        Condition::Delete => false,
        Condition::Condition(name, value) => obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|cond| {
                cond["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(name))
                    && cond["status"]
                        .as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(value))
            }),
        Condition::JsonPath(p, value) => {
            let vals = p.values(obj);
            match value {
                None => !vals.is_empty(),
                Some(v) => vals.len() == 1 && value_text(vals[0]) == *v,
            }
        }
    }
}

/// Runs `wait`.
pub async fn run(ctx: &Ctx, args: &WaitArgs) -> Result<()> {
    let cond = parse_for(&args.for_)?;
    let timeout = rkube_machinery::duration::parse(&args.timeout)
        .ok_or_else(|| CtlError::Usage(format!("invalid --timeout {:?}", args.timeout)))?;
    let targets = common::targets(
        ctx,
        &args.resources,
        &args.filename,
        &ExpandOptions {
            selector: args.selector.clone(),
            all: args.all,
            ..Default::default()
        },
    )
    .await?;
    if targets.is_empty() {
        return Err(CtlError::Other("no matching resources found".into()));
    }
    let start = Instant::now();
    for t in targets {
        loop {
            let done = match ctx.get_json(&t.path()).await {
                Ok(obj) => met(&cond, &obj),
                Err(e) if e.is_not_found() => {
                    if matches!(cond, Condition::Delete) {
                        true
                    } else {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            };
            if done {
                outln(&format!("{} condition met", t.kind_name()));
                break;
            }
            if start.elapsed() >= timeout {
                return Err(CtlError::Other(format!(
                    "timed out waiting for the condition on {}/{}",
                    t.info.group_resource(),
                    t.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions() {
        let d = json!({"status": {"phase": "Running", "conditions": [{"type": "Available", "status": "True"}]}});
        assert!(met(&parse_for("condition=Available").unwrap(), &d));
        assert!(met(&parse_for("condition=available=true").unwrap(), &d));
        assert!(!met(&parse_for("condition=Available=False").unwrap(), &d));
        assert!(met(
            &parse_for("jsonpath={.status.phase}=Running").unwrap(),
            &d
        ));
        assert!(!met(
            &parse_for("jsonpath={.status.phase}=Pending").unwrap(),
            &d
        ));
        assert!(met(&parse_for("jsonpath={.status.phase}").unwrap(), &d));
        assert!(parse_for("ready").is_err());
    }
}

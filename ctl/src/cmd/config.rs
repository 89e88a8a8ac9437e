//! `config view|get-contexts|use-context|set-context|current-context`, over the kubeconfig
//! files as kubectl reads and writes them: the merged view (first file wins, secrets shown as
//! `DATA+OMITTED`/`REDACTED` unless `--raw`), and changes written to the file kubectl would
//! write them to (the explicit file; else the file defining the entry; else the first
//! existing file of `$KUBECONFIG`).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::cli::{ConfigCommand, GlobalArgs};
use crate::config::kubeconfig_paths;
use crate::error::{CtlError, Result};
use crate::output::{out, outln};
use crate::print::tabwriter::TabWriter;
use crate::print::{json as gojson, yaml};

/// The field order of client-go's kubeconfig types (`Config`, `NamedCluster`, `Cluster`,
/// `NamedAuthInfo`, `AuthInfo`, `NamedContext`, `Context`), in which `config view -o json`
/// prints them.
const KUBECONFIG_FIELD_ORDER: &[&str] = &[
    "kind",
    "apiVersion",
    "preferences",
    "clusters",
    "users",
    "contexts",
    "current-context",
    "name",
    "cluster",
    "user",
    "context",
    "namespace",
    "server",
    "tls-server-name",
    "insecure-skip-tls-verify",
    "certificate-authority",
    "certificate-authority-data",
    "proxy-url",
    "disable-compression",
    "client-certificate",
    "client-certificate-data",
    "client-key",
    "client-key-data",
    "token",
    "tokenFile",
    "as",
    "as-uid",
    "as-groups",
    "as-user-extra",
    "username",
    "password",
    "auth-provider",
    "exec",
    "extensions",
];

/// Runs a `config` subcommand.
pub fn run(g: &GlobalArgs, c: &ConfigCommand) -> Result<()> {
    let (paths, explicit) = kubeconfig_paths(g.kubeconfig.as_deref());
    let files = load_files(&paths, explicit)?;
    let merged = merge(&files);
    match c {
        ConfigCommand::View {
            minify,
            raw,
            output,
        } => {
            let mut v = merged;
            if *minify {
                v = minified(&v, g.context.as_deref())?;
            }
            if !raw {
                redact(&mut v);
            }
            match output.as_deref() {
                None | Some("yaml") => out(&yaml::to_string(&v)),
                Some("json") => out(&gojson::to_pretty_in_order(&v, KUBECONFIG_FIELD_ORDER)),
                Some(o) => return Err(CtlError::Usage(format!("unsupported output format {o:?}"))),
            }
        }
        ConfigCommand::CurrentContext => match current_context(&merged, g) {
            Some(c) => outln(&c),
            None => return Err(CtlError::Other("current-context is not set".into())),
        },
        ConfigCommand::GetContexts {
            names,
            output,
            no_headers,
        } => {
            let current = current_context(&merged, g).unwrap_or_default();
            let mut contexts: Vec<&Value> = merged["contexts"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            contexts.sort_by_key(|c| c["name"].as_str().unwrap_or_default().to_string());
            let mut missing = Vec::new();
            if !names.is_empty() {
                for n in names {
                    if !contexts.iter().any(|c| c["name"] == n.as_str()) {
                        missing.push(n.clone());
                    }
                }
                contexts.retain(|c| names.iter().any(|n| c["name"] == n.as_str()));
            }
            if output.as_deref() == Some("name") {
                for c in &contexts {
                    outln(c["name"].as_str().unwrap_or_default());
                }
            } else {
                let mut w = TabWriter::new();
                if !no_headers {
                    w.write("CURRENT\tNAME\tCLUSTER\tAUTHINFO\tNAMESPACE\n");
                }
                for c in &contexts {
                    let name = c["name"].as_str().unwrap_or_default();
                    let ctx = &c["context"];
                    w.write(&format!(
                        "{}\t{}\t{}\t{}\t{}\n",
                        if name == current { "*" } else { "" },
                        name,
                        ctx["cluster"].as_str().unwrap_or_default(),
                        ctx["user"].as_str().unwrap_or_default(),
                        ctx["namespace"].as_str().unwrap_or_default()
                    ));
                }
                out(&w.flush());
            }
            if !missing.is_empty() {
                return Err(CtlError::Other(format!(
                    "context {} not found",
                    missing
                        .iter()
                        .map(|m| format!("{m:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        ConfigCommand::UseContext { name } => {
            if !merged["contexts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c["name"] == name.as_str()))
            {
                return Err(CtlError::Other(format!(
                    "no context exists with the name: \"{name}\""
                )));
            }
            let target = default_file(&paths, explicit);
            let mut doc = read_one(&target)?;
            doc["current-context"] = Value::String(name.clone());
            write(&target, &doc)?;
            outln(&format!("Switched to context \"{name}\"."));
        }
        ConfigCommand::SetContext { name, current } => {
            let (cluster_name, user_name, namespace_name) = (&g.cluster, &g.user, &g.namespace);
            let name = match (name, current) {
                (Some(n), false) => n.clone(),
                (None, true) => current_context(&merged, g)
                    .ok_or_else(|| CtlError::Other("no current context is set".into()))?,
                (Some(_), true) => {
                    return Err(CtlError::Usage(
                        "you cannot specify both a context name and --current".into(),
                    ));
                }
                (None, false) => {
                    return Err(CtlError::Usage(
                        "you must specify a non-empty context name or --current".into(),
                    ));
                }
            };
            // The file that defines the context, else the default file.
            let target = files
                .iter()
                .find(|(_, d)| {
                    d["contexts"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|c| c["name"] == name.as_str()))
                })
                .map(|(p, _)| p.clone())
                .unwrap_or_else(|| default_file(&paths, explicit));
            let mut doc = read_one(&target)?;
            if !doc["contexts"].is_array() {
                doc["contexts"] = json!([]);
            }
            let list = doc["contexts"].as_array_mut().expect("array");
            let existed = list.iter().any(|c| c["name"] == name.as_str());
            if !existed {
                list.push(json!({"name": name, "context": {}}));
            }
            let entry = list
                .iter_mut()
                .find(|c| c["name"] == name.as_str())
                .expect("entry");
            if !entry["context"].is_object() {
                entry["context"] = json!({});
            }
            for (k, v) in [
                ("cluster", cluster_name),
                ("user", user_name),
                ("namespace", namespace_name),
            ] {
                if let Some(v) = v {
                    if v.is_empty() {
                        entry["context"].as_object_mut().expect("object").remove(k);
                    } else {
                        entry["context"][k] = Value::String(v.clone());
                    }
                }
            }
            write(&target, &doc)?;
            outln(&format!(
                "Context \"{name}\" {}.",
                if existed { "modified" } else { "created" }
            ));
        }
    }
    Ok(())
}

fn current_context(merged: &Value, g: &GlobalArgs) -> Option<String> {
    g.context.clone().or_else(|| {
        merged["current-context"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

fn load_files(paths: &[PathBuf], explicit: bool) -> Result<Vec<(PathBuf, Value)>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.exists() {
            if explicit {
                return Err(CtlError::Config(format!(
                    "stat {}: no such file or directory",
                    p.display()
                )));
            }
            continue;
        }
        out.push((p.clone(), read_one(p)?));
    }
    Ok(out)
}

fn read_one(p: &Path) -> Result<Value> {
    if !p.exists() {
        return Ok(
            json!({"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": [], "preferences": {}, "current-context": ""}),
        );
    }
    let text = std::fs::read_to_string(p)?;
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_saphyr::from_str::<Value>(&text).map_err(|e| {
        CtlError::Config(format!(
            "error loading config file \"{}\": {e}",
            p.display()
        ))
    })
}

fn write(p: &Path, doc: &Value) -> Result<()> {
    if let Some(dir) = p.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(p, yaml::to_string(doc))?;
    Ok(())
}

/// kubectl's file for new entries and `current-context`.
fn default_file(paths: &[PathBuf], explicit: bool) -> PathBuf {
    if explicit || paths.len() == 1 {
        return paths[0].clone();
    }
    paths
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| paths[paths.len() - 1].clone())
}

/// Merges kubeconfig documents: named entries and `current-context` from the first file
/// that has them.
pub fn merge(files: &[(PathBuf, Value)]) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Config"));
    out.insert("preferences".into(), json!({}));
    let mut current = String::new();
    for key in ["clusters", "contexts", "users"] {
        let mut entries: Vec<Value> = Vec::new();
        for (_, d) in files {
            for e in d[key].as_array().cloned().unwrap_or_default() {
                if !entries.iter().any(|x| x["name"] == e["name"]) {
                    entries.push(e);
                }
            }
        }
        entries.sort_by_key(|e| e["name"].as_str().unwrap_or_default().to_string());
        out.insert(key.into(), Value::Array(entries));
    }
    for (_, d) in files {
        if let Some(c) = d["current-context"].as_str()
            && !c.is_empty()
            && current.is_empty()
        {
            current = c.to_string();
        }
    }
    out.insert("current-context".into(), Value::String(current));
    Value::Object(out)
}

fn minified(v: &Value, context: Option<&str>) -> Result<Value> {
    let cur = context
        .map(str::to_string)
        .or_else(|| {
            v["current-context"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .ok_or_else(|| CtlError::Other("current-context must exist in order to minify".into()))?;
    let ctx = v["contexts"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == cur.as_str()))
        .cloned()
        .ok_or_else(|| CtlError::Other(format!("cannot locate context {cur}")))?;
    let pick = |key: &str, name: &Value| -> Value {
        Value::Array(
            v[key]
                .as_array()
                .map(|a| a.iter().filter(|e| &e["name"] == name).cloned().collect())
                .unwrap_or_default(),
        )
    };
    let mut m = v.clone();
    m["clusters"] = pick("clusters", &ctx["context"]["cluster"]);
    m["users"] = pick("users", &ctx["context"]["user"]);
    m["contexts"] = json!([ctx]);
    m["current-context"] = Value::String(cur);
    Ok(m)
}

/// Hides secrets as kubectl does without `--raw`.
fn redact(v: &mut Value) {
    for c in v["clusters"].as_array_mut().into_iter().flatten() {
        if c["cluster"]["certificate-authority-data"].is_string() {
            c["cluster"]["certificate-authority-data"] = json!("DATA+OMITTED");
        }
    }
    for u in v["users"].as_array_mut().into_iter().flatten() {
        for k in ["client-certificate-data", "client-key-data"] {
            if u["user"][k].is_string() {
                u["user"][k] = json!("DATA+OMITTED");
            }
        }
        for k in ["token", "password"] {
            if u["user"][k].is_string() {
                u["user"][k] = json!("REDACTED");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_first_wins_and_redacts() {
        let a = json!({"current-context": "one", "clusters": [{"name": "c", "cluster": {"server": "http://a"}}], "contexts": [{"name": "one", "context": {"cluster": "c", "user": "u"}}], "users": [{"name": "u", "user": {"token": "secret"}}]});
        let b = json!({"current-context": "two", "clusters": [{"name": "c", "cluster": {"server": "http://b"}}, {"name": "d", "cluster": {"server": "http://d"}}], "contexts": [{"name": "two", "context": {"cluster": "d"}}]});
        let mut m = merge(&[(PathBuf::from("a"), a), (PathBuf::from("b"), b)]);
        assert_eq!(m["current-context"], "one");
        assert_eq!(m["clusters"][0]["cluster"]["server"], "http://a");
        assert_eq!(m["clusters"].as_array().unwrap().len(), 2);
        let mini = minified(&m, None).unwrap();
        assert_eq!(mini["clusters"].as_array().unwrap().len(), 1);
        redact(&mut m);
        assert_eq!(m["users"][0]["user"]["token"], "REDACTED");
    }

    #[test]
    fn default_file_is_first_existing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&b, "{}").unwrap();
        assert_eq!(default_file(&[a.clone(), b.clone()], false), b);
        assert_eq!(default_file(std::slice::from_ref(&a), true), a);
    }
}

//! Kubeconfig handling the way kubectl does it: `--kubeconfig FILE`, else `$KUBECONFIG` (a
//! colon-separated list merged with the first file winning for each entry and for
//! `current-context`), else `~/.kube/config`; `--context`, `--cluster`, `--user` pick the
//! entries; `--server`, `--token` and `-n` override them. Without any configuration the
//! server is `http://localhost:8080`, as with kubectl.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cli::GlobalArgs;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named kubeconfig does not exist.
    #[error("stat {0}: no such file or directory")]
    Missing(String),
    /// A kubeconfig file does not parse.
    #[error("error loading config file \"{path}\": {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The selected context does not exist.
    #[error("context \"{0}\" does not exist")]
    NoContext(String),
    /// The configuration is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// The kubeconfig files in effect, in precedence order, and whether they were named
/// explicitly (`--kubeconfig`).
pub fn kubeconfig_paths(explicit: Option<&Path>) -> (Vec<PathBuf>, bool) {
    if let Some(p) = explicit {
        return (vec![p.to_path_buf()], true);
    }
    if let Ok(env) = std::env::var("KUBECONFIG") {
        let paths: Vec<PathBuf> = env
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if !paths.is_empty() {
            return (paths, false);
        }
    }
    (vec![default_path()], false)
}

/// `~/.kube/config`.
pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".kube").join("config")
}

/// The merged kubeconfig of the files (missing files are skipped unless named explicitly).
pub fn load(explicit: Option<&Path>) -> Result<Kubeconfig, ConfigError> {
    let (paths, explicit) = kubeconfig_paths(explicit);
    let mut merged: Option<Kubeconfig> = None;
    for p in &paths {
        if !p.exists() {
            if explicit {
                return Err(ConfigError::Missing(p.display().to_string()));
            }
            continue;
        }
        let kc = Kubeconfig::read_from(p).map_err(|e| ConfigError::Parse {
            path: p.display().to_string(),
            message: e.to_string(),
        })?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m
                .merge(kc)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
        });
    }
    Ok(merged.unwrap_or_default())
}

/// The client configuration and the namespace commands use by default.
pub struct Resolved {
    /// kube-rs client configuration.
    pub config: kube::Config,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// Whether `-n` was given.
    pub explicit_namespace: bool,
}

/// Resolves the kubeconfig and the overrides into a client configuration.
pub async fn resolve(g: &GlobalArgs) -> Result<Resolved, ConfigError> {
    let kc = load(g.kubeconfig.as_deref())?;
    let context = g.context.clone().or_else(|| kc.current_context.clone());
    if let Some(c) = &g.context
        && !kc.contexts.iter().any(|x| &x.name == c)
    {
        return Err(ConfigError::NoContext(c.clone()));
    }
    let usable = context
        .as_ref()
        .is_some_and(|c| kc.contexts.iter().any(|x| &x.name == c));
    let mut config = if usable {
        let opts = KubeConfigOptions {
            context: context.clone(),
            cluster: g.cluster.clone(),
            user: g.user.clone(),
        };
        match kube::Config::from_custom_kubeconfig(kc, &opts).await {
            Ok(c) => c,
            Err(e) if g.server.is_some() => {
                let _ = e;
                kube::Config::new(parse_url("http://localhost:8080")?)
            }
            Err(e) => return Err(ConfigError::Invalid(e.to_string())),
        }
    } else {
        kube::Config::new(parse_url("http://localhost:8080")?)
    };
    if let Some(s) = &g.server {
        config.cluster_url = parse_url(s)?;
    }
    if let Some(t) = &g.token {
        // As kubectl: the token replaces the user's other token sources (and basic auth), the
        // client certificate stays; the cluster (its CA too) is kept even with --server.
        let a = &mut config.auth_info;
        a.token = Some(t.clone().into());
        a.token_file = None;
        a.exec = None;
        a.auth_provider = None;
        a.username = None;
        a.password = None;
    }
    if let Some(t) = &g.request_timeout {
        let d = parse_timeout(t)?;
        config.read_timeout = d;
        config.connect_timeout = d;
    }
    let explicit_namespace = g.namespace.is_some();
    let namespace = g
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok(Resolved {
        config,
        namespace,
        explicit_namespace,
    })
}

fn parse_url(s: &str) -> Result<http::Uri, ConfigError> {
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("https://{s}")
    };
    with_scheme
        .parse()
        .map_err(|e| ConfigError::Invalid(format!("invalid server {s:?}: {e}")))
}

/// `--request-timeout`: `0` (none), a number of seconds, or a duration like `5s`, `1m`.
pub fn parse_timeout(s: &str) -> Result<Option<std::time::Duration>, ConfigError> {
    if s == "0" {
        return Ok(None);
    }
    rkube_machinery::duration::parse(s)
        .map(Some)
        .ok_or_else(|| ConfigError::Invalid(format!("invalid timeout value {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_wins_and_must_exist() {
        let (p, explicit) = kubeconfig_paths(Some(Path::new("/x/config")));
        assert_eq!(p, vec![PathBuf::from("/x/config")]);
        assert!(explicit);
        assert!(matches!(
            load(Some(Path::new("/nonexistent/kubeconfig"))),
            Err(ConfigError::Missing(_))
        ));
    }

    #[test]
    fn files_merge_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(
            &a,
            "apiVersion: v1\nkind: Config\ncurrent-context: one\nclusters:\n- name: c1\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: one\n  context:\n    cluster: c1\n    namespace: first\nusers: []\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "apiVersion: v1\nkind: Config\ncurrent-context: two\nclusters:\n- name: c1\n  cluster:\n    server: http://127.0.0.1:2\n- name: c2\n  cluster:\n    server: http://127.0.0.1:3\ncontexts:\n- name: two\n  context:\n    cluster: c2\nusers: []\n",
        )
        .unwrap();
        let mut merged = Kubeconfig::read_from(&a).unwrap();
        merged = merged.merge(Kubeconfig::read_from(&b).unwrap()).unwrap();
        assert_eq!(merged.current_context.as_deref(), Some("one"));
        assert_eq!(merged.clusters.len(), 2);
        let c1 = merged.clusters.iter().find(|c| c.name == "c1").unwrap();
        assert_eq!(
            c1.cluster.as_ref().unwrap().server.as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(merged.contexts.len(), 2);
    }

    #[test]
    fn timeouts_parse() {
        assert_eq!(parse_timeout("0").unwrap(), None);
        assert_eq!(
            parse_timeout("5s").unwrap(),
            Some(std::time::Duration::from_secs(5))
        );
        assert!(parse_timeout("soon").is_err());
    }
}

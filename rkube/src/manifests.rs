//! The manifests directory (`DATA/manifests/`, like k3s' `server/manifests`): every `*.yaml`,
//! `*.yml` and `*.json` file in it is applied at start and again whenever its contents change
//! (server-side apply, field manager `rkube`, conflicts forced: the file is the source of
//! truth). A file holds one or more documents (YAML `---`, or a `v1` `List`). A file that does
//! not parse gets one error line and is skipped until it changes; objects the API refuses are
//! retried with back-off. Removing a file does not delete its objects.
//!
//! The built-in add-ons (the `kube-dns` Service of `manifests/addons/`) are copied there at
//! the first start; edits to them are kept.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The field manager of applied manifests.
pub const FIELD_MANAGER: &str = "rkube";

/// The built-in add-ons: (file name in `DATA/manifests/`, contents).
pub const BUILTIN: &[(&str, &str)] = &[(
    "rkube-kube-dns.yaml",
    include_str!("../../manifests/addons/kube-dns-service.yaml"),
)];

/// Why a manifest file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not YAML or JSON.
    #[error("{path}: not valid {format}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// YAML or JSON.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A document is not a Kubernetes object.
    #[error("{path}: document {index}: {message}")]
    Object {
        /// The file.
        path: PathBuf,
        /// The document's position (1-based).
        index: usize,
        /// What is missing.
        message: String,
    },
    /// The API refused an object.
    #[error("{path}: {kind} {name}: {message}")]
    Apply {
        /// The file.
        path: PathBuf,
        /// The object's kind.
        kind: String,
        /// Its `namespace/name` or name.
        name: String,
        /// The API's message.
        message: String,
    },
}

/// The ClusterIP the built-in kube-dns Service is written with.
const BUILTIN_DNS_IP: &str = "10.96.0.10";

/// Writes the built-in add-ons missing from `dir` (created if needed), the kube-dns Service
/// with `cluster_dns` as its ClusterIP (`None` leaves it out). Returns the files written.
pub fn install_builtin(
    dir: &Path,
    cluster_dns: Option<Ipv4Addr>,
) -> Result<Vec<PathBuf>, ManifestError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ManifestError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::new();
    for (name, text) in BUILTIN {
        let text = if name.contains("kube-dns") {
            let Some(ip) = cluster_dns else { continue };
            text.replace(
                &format!("clusterIP: {BUILTIN_DNS_IP}"),
                &format!("clusterIP: {ip}"),
            )
        } else {
            text.to_string()
        };
        let path = dir.join(name);
        if path.exists() {
            continue;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// Whether `path` is a manifest file (by extension; hidden files are not).
pub fn is_manifest(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    !hidden && matches!(ext, "yaml" | "yml" | "json")
}

/// The objects of a manifest file: its documents, `List`s flattened, empty documents skipped;
/// each must have `apiVersion`, `kind` and `metadata.name`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Value>, ManifestError> {
    let docs: Vec<Value> = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        vec![
            serde_json::from_str(text).map_err(|e| ManifestError::Parse {
                path: path.to_path_buf(),
                format: "JSON",
                message: e.to_string(),
            })?,
        ]
    } else {
        serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            format: "YAML",
            message: e.to_string(),
        })?
    };
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let bad = |message: &str| ManifestError::Object {
            path: path.to_path_buf(),
            index: i + 1,
            message: message.to_string(),
        };
        match doc {
            Value::Null => continue,
            Value::Object(_) => {}
            _ => return Err(bad("not a mapping")),
        }
        let items = if doc["kind"] == "List" && doc["items"].is_array() {
            doc["items"].as_array().cloned().unwrap_or_default()
        } else {
            vec![doc]
        };
        for obj in items {
            if obj["apiVersion"].as_str().is_none_or(str::is_empty) {
                return Err(bad("no apiVersion"));
            }
            if obj["kind"].as_str().is_none_or(str::is_empty) {
                return Err(bad("no kind"));
            }
            if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
                return Err(bad("no metadata.name (generateName cannot be applied)"));
            }
            out.push(obj);
        }
    }
    Ok(out)
}

fn gvk_of(obj: &Value) -> GroupVersionKind {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, obj["kind"].as_str().unwrap_or_default())
}

/// Applies one object (server-side apply, forced); namespaced objects without a namespace go
/// to `default`.
pub async fn apply_object(
    client: &kube::Client,
    path: &Path,
    obj: &Value,
) -> Result<(), ManifestError> {
    let gvk = gvk_of(obj);
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let ns = obj["metadata"]["namespace"].as_str();
    let fail = |message: String| ManifestError::Apply {
        path: path.to_path_buf(),
        kind: gvk.kind.clone(),
        name: match ns {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        },
        message,
    };
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| {
            let api_version = obj["apiVersion"].as_str().unwrap_or_default();
            fail(format!("unknown kind (apiVersion {api_version}): {e}"))
        })?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            Api::namespaced_with(client.clone(), ns.unwrap_or("default"), &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| fail(api_message(&e)))?;
    Ok(())
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// What was last done with one file.
#[derive(Debug)]
struct FileState {
    /// The contents last handled.
    contents: String,
    /// `None`: applied (or unparsable: not retried until it changes); `Some`: retry then.
    retry: Option<(Instant, Duration)>,
}

/// Applies the manifests directory and follows its changes.
pub struct Applier {
    client: kube::Client,
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    /// The directory could not be read at the last pass (logged once).
    unreadable: bool,
}

/// The most time between retries of a file the API refused.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Applier {
    /// An applier of `dir` through `client`.
    pub fn new(client: kube::Client, dir: PathBuf) -> Self {
        Applier {
            client,
            dir,
            files: BTreeMap::new(),
            unreadable: false,
        }
    }

    /// One pass: applies every file that is new, changed or due for a retry, in name order.
    /// Returns the outcome per file handled.
    pub async fn pass(&mut self) -> Vec<(PathBuf, Result<usize, ManifestError>)> {
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| is_manifest(p) && p.is_file())
                .collect(),
            Err(e) => {
                if !self.unreadable {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the manifests directory");
                    self.unreadable = true;
                }
                return Vec::new();
            }
        };
        self.unreadable = false;
        paths.sort();
        let mut results = Vec::new();
        let now = Instant::now();
        for path in paths {
            let Ok(contents) = std::fs::read_to_string(&path) else {
                continue;
            };
            let prev = self.files.get(&path);
            let due = match prev {
                None => true,
                Some(s) if s.contents != contents => true,
                Some(FileState {
                    retry: Some((at, _)),
                    ..
                }) => *at <= now,
                Some(_) => false,
            };
            if !due {
                continue;
            }
            let backoff = match prev {
                Some(FileState {
                    contents: c,
                    retry: Some((_, b)),
                }) if *c == contents => (*b * 2).min(MAX_BACKOFF),
                _ => Duration::from_secs(2),
            };
            let result = self.apply_file(&path, &contents).await;
            let retry = match &result {
                Err(ManifestError::Apply { .. }) => Some((Instant::now() + backoff, backoff)),
                _ => None,
            };
            match &result {
                Ok(n) => tracing::info!(file = %path.display(), objects = n, "applied manifest"),
                Err(e @ ManifestError::Apply { .. }) => {
                    tracing::warn!(retry_in = ?backoff, "manifest not applied: {e}");
                }
                Err(e) => tracing::error!("manifest skipped until it changes: {e}"),
            }
            self.files
                .insert(path.clone(), FileState { contents, retry });
            results.push((path, result));
        }
        results
    }

    async fn apply_file(&self, path: &Path, contents: &str) -> Result<usize, ManifestError> {
        let objects = parse(path, contents)?;
        let mut first_error = None;
        for obj in &objects {
            if let Err(e) = apply_object(&self.client, path, obj).await {
                tracing::debug!("{e}");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(objects.len()),
        }
    }

    /// Passes every `poll` until `stop` is cancelled.
    pub async fn run(mut self, poll: Duration, stop: CancellationToken) {
        loop {
            self.pass().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_lists_and_errors() {
        let p = Path::new("/m/app.yaml");
        let objs = parse(
            p,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\n\
             apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c\n    namespace: a\n",
        )
        .unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1]["kind"], "ConfigMap");
        let e = parse(p, "kind: ConfigMap\nmetadata:\n  name: x\n").unwrap_err();
        assert_eq!(e.to_string(), "/m/app.yaml: document 1: no apiVersion");
        let e = parse(p, "apiVersion: v1\nkind: Pod\nmetadata: [").unwrap_err();
        assert!(
            e.to_string().starts_with("/m/app.yaml: not valid YAML"),
            "{e}"
        );
        let e = parse(
            p,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: x-\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("no metadata.name"), "{e}");
        let j = Path::new("/m/x.json");
        let objs = parse(
            j,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"}}"#,
        )
        .unwrap();
        assert_eq!(gvk_of(&objs[0]).group, "apps");
        assert_eq!(gvk_of(&objs[0]).version, "v1");
        assert!(parse(j, "{").unwrap_err().to_string().contains("JSON"));
        assert_eq!(
            gvk_of(&serde_json::json!({"apiVersion": "v1", "kind": "Service"})).group,
            ""
        );
    }

    #[test]
    fn manifest_files() {
        assert!(is_manifest(Path::new("/m/a.yaml")));
        assert!(is_manifest(Path::new("/m/a.yml")));
        assert!(is_manifest(Path::new("/m/a.json")));
        assert!(!is_manifest(Path::new("/m/.a.yaml")));
        assert!(!is_manifest(Path::new("/m/a.yaml.tmp")));
        assert!(!is_manifest(Path::new("/m/README")));
    }

    #[test]
    fn builtin_addons_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifests");
        let written = install_builtin(&m, Some(Ipv4Addr::new(10, 96, 0, 10))).unwrap();
        assert_eq!(written.len(), 1);
        let objs = parse(&written[0], &std::fs::read_to_string(&written[0]).unwrap()).unwrap();
        assert_eq!(objs[0]["metadata"]["name"], "kube-dns");
        assert_eq!(objs[0]["spec"]["clusterIP"], "10.96.0.10");
        assert!(objs[0]["spec"]["selector"].is_null(), "selector-less");
        std::fs::write(&written[0], "# edited\n").unwrap();
        assert!(
            install_builtin(&m, Some(Ipv4Addr::new(10, 96, 0, 10)))
                .unwrap()
                .is_empty()
        );
        assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), "# edited\n");
        let other = dir.path().join("m2");
        assert!(install_builtin(&other, None).unwrap().is_empty());
        let third = dir.path().join("m3");
        let w = install_builtin(&third, Some(Ipv4Addr::new(10, 100, 0, 53))).unwrap();
        let objs = parse(&w[0], &std::fs::read_to_string(&w[0]).unwrap()).unwrap();
        assert_eq!(objs[0]["spec"]["clusterIP"], "10.100.0.53");
    }
}

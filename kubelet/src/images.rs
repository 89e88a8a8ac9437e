//! Images: pulling through the CRI ImageService with the container's imagePullPolicy
//! (`Always`, `IfNotPresent`, `Never`) and the pod's `imagePullSecrets` as registry auth, with
//! per-image back-off (ErrImagePull → ImagePullBackOff); and the images directory — OCI or
//! docker image tarballs placed there are imported at start and whenever they appear (for
//! containerd with `ctr images import` into the CRI namespace `k8s.io`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use rkube_cri::v1 as cri;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::cri::Cri;
use crate::events::{EventType, Events};
use crate::hollow::FakeRuntime;

/// Why a container's image is not available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PullError {
    /// Policy `Never` and the image is not on the node.
    #[error("Container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
    /// A recent pull failed; waiting before the next try.
    #[error("Back-off pulling image \"{image}\": {last}")]
    BackOff {
        /// The image.
        image: String,
        /// The last failure.
        last: String,
    },
    /// The pull failed.
    #[error("Failed to pull image \"{image}\": {message}")]
    Pull {
        /// The image.
        image: String,
        /// The runtime's error.
        message: String,
    },
    /// The image name is empty or malformed.
    #[error("Failed to apply default image tag \"{0}\": invalid reference format")]
    InvalidName(String),
}

impl PullError {
    /// The container waiting reason Kubernetes shows for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::NeverPull(_) => "ErrImageNeverPull",
            PullError::BackOff { .. } => "ImagePullBackOff",
            PullError::Pull { .. } => "ErrImagePull",
            PullError::InvalidName(_) => "InvalidImageName",
        }
    }
}

/// Why importing a tarball failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The tarball could not be read.
    #[error("reading image tarball {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `ctr images import` failed.
    #[error("importing {path} with ctr failed: {message}")]
    Ctr {
        /// The file.
        path: PathBuf,
        /// ctr's output.
        message: String,
    },
}

/// Expands a reference as containerd does: `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize_reference(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && digest.is_none() {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    }
    full
}

/// The registry host of an image reference (`docker.io` when none is named).
pub fn registry_host(image: &str) -> String {
    normalize_reference(image)
        .split('/')
        .next()
        .unwrap_or("docker.io")
        .to_string()
}

fn normalize_registry_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_string(),
    }
}

/// The registry credentials for `image` found in `imagePullSecrets` (docker config JSON
/// Secrets), in the order the secrets are listed.
pub fn auth_for(image: &str, secrets: &[Secret]) -> Vec<cri::AuthConfig> {
    let host = registry_host(image);
    let mut out = Vec::new();
    for s in secrets {
        let data = s.data.clone().unwrap_or_default();
        let json = match s.type_.as_deref() {
            Some("kubernetes.io/dockercfg") => data
                .get(".dockercfg")
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b.0).ok()),
            _ => data
                .get(".dockerconfigjson")
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b.0).ok())
                .and_then(|v| v.get("auths").cloned()),
        };
        let Some(serde_json::Value::Object(auths)) = json else {
            continue;
        };
        for (key, entry) in auths {
            if normalize_registry_key(&key) != host {
                continue;
            }
            let field = |k: &str| {
                entry
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let (mut username, mut password) = (field("username"), field("password"));
            let auth = field("auth");
            if username.is_empty()
                && !auth.is_empty()
                && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&auth)
                && let Some((u, p)) = String::from_utf8_lossy(&decoded).split_once(':')
            {
                username = u.to_string();
                password = p.to_string();
            }
            // No server address, as the kubelet does: the registry is matched here, and a
            // runtime compares an address it is given with the host it pulls from (containerd
            // 1.6 drops credentials whose address is not a URL, e.g. `127.0.0.1:5000`, or
            // names another host, e.g. `https://index.docker.io/v1/`).
            out.push(cri::AuthConfig {
                username,
                password,
                auth,
                server_address: String::new(),
                identity_token: field("identitytoken"),
                registry_token: field("registrytoken"),
            });
        }
    }
    out
}

/// Pulls images for containers.
pub struct ImageManager {
    cri: Cri,
    events: Events,
    backoff: Mutex<Backoff<String>>,
    last_error: Mutex<HashMap<String, String>>,
    /// One pull at a time per image.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ImageManager {
    /// An image manager with the given pull back-off.
    pub fn new(cri: Cri, events: Events, backoff: (Duration, Duration)) -> Self {
        ImageManager {
            cri,
            events,
            backoff: Mutex::new(Backoff::new(backoff.0, backoff.1)),
            last_error: Default::default(),
            locks: Default::default(),
        }
    }

    fn lock_for(&self, image: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(image.to_string())
            .or_default()
            .clone()
    }

    /// Makes the container's image present as its pull policy says; returns the image id
    /// the runtime knows it by.
    pub async fn ensure(
        &self,
        pod: &Pod,
        container: &Container,
        field_path: &str,
        secrets: &[Secret],
        sandbox: Option<&cri::PodSandboxConfig>,
    ) -> Result<String, PullError> {
        let image = container.image.clone().unwrap_or_default();
        if image.trim().is_empty() || image.contains(char::is_whitespace) {
            return Err(PullError::InvalidName(image));
        }
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).into());
        let present = self
            .cri
            .image_status(&image)
            .await
            .map_err(|e| PullError::Pull {
                image: image.clone(),
                message: e.to_string(),
            })?;
        match (policy.as_str(), &present) {
            ("Never", None) => {
                let err = PullError::NeverPull(image.clone());
                self.events.pod(
                    pod,
                    Some(field_path),
                    EventType::Warning,
                    "ErrImageNeverPull",
                    &err.to_string(),
                );
                return Err(err);
            }
            ("Never", Some(img)) | ("IfNotPresent", Some(img)) => {
                self.events.pod(
                    pod,
                    Some(field_path),
                    EventType::Normal,
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                );
                return Ok(img.id.clone());
            }
            _ => {}
        }
        let key = format!("{}/{}", pod.metadata.uid.clone().unwrap_or_default(), image);
        {
            let b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
            if b.in_backoff_since(&key, tokio::time::Instant::now())
                .is_some()
            {
                let last = self
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .cloned()
                    .unwrap_or_default();
                let err = PullError::BackOff {
                    image: image.clone(),
                    last,
                };
                self.events.pod(
                    pod,
                    Some(field_path),
                    EventType::Normal,
                    "BackOff",
                    &format!("Back-off pulling image \"{image}\""),
                );
                return Err(err);
            }
        }
        let lock = self.lock_for(&image);
        let _guard = lock.lock().await;
        self.events.pod(
            pod,
            Some(field_path),
            EventType::Normal,
            "Pulling",
            &format!("Pulling image \"{image}\""),
        );
        let started = std::time::Instant::now();
        let mut auths: Vec<Option<cri::AuthConfig>> =
            auth_for(&image, secrets).into_iter().map(Some).collect();
        auths.push(None);
        let mut last_err = String::new();
        for auth in auths {
            match self.cri.pull_image(&image, auth, sandbox.cloned()).await {
                Ok(id) => {
                    self.backoff
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .reset(&key);
                    self.events.pod(
                        pod,
                        Some(field_path),
                        EventType::Normal,
                        "Pulled",
                        &format!(
                            "Successfully pulled image \"{image}\" in {:.3}s",
                            started.elapsed().as_secs_f64()
                        ),
                    );
                    return Ok(id);
                }
                Err(e) => last_err = e.to_string(),
            }
        }
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next(&key);
        let err = PullError::Pull {
            image: image.clone(),
            message: last_err,
        };
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, err.to_string());
        self.events.pod(
            pod,
            Some(field_path),
            EventType::Warning,
            "Failed",
            &err.to_string(),
        );
        Err(err)
    }
}

/// The pull policy Kubernetes defaults to for an image.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// The image names an OCI layout or `docker save` tarball declares.
pub fn image_names_in_tar(path: &Path) -> Result<Vec<String>, ImportError> {
    let err = |m: String| ImportError::Read {
        path: path.to_path_buf(),
        message: m,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut archive = tar::Archive::new(file);
    let mut names = Vec::new();
    for entry in archive.entries().map_err(|e| err(e.to_string()))? {
        let mut entry = entry.map_err(|e| err(e.to_string()))?;
        let p = entry
            .path()
            .map_err(|e| err(e.to_string()))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if p != "index.json" && p != "manifest.json" {
            continue;
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| err(e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_slice(&data).map_err(|e| err(format!("{p}: {e}")))?;
        if p == "index.json" {
            for m in v["manifests"].as_array().into_iter().flatten() {
                if let Some(n) = m["annotations"]["io.containerd.image.name"].as_str() {
                    names.push(n.to_string());
                } else if let Some(n) =
                    m["annotations"]["org.opencontainers.image.ref.name"].as_str()
                    && n.contains(['/', ':'])
                {
                    names.push(n.to_string());
                }
            }
        } else {
            for m in v.as_array().into_iter().flatten() {
                for t in m["RepoTags"].as_array().into_iter().flatten() {
                    if let Some(t) = t.as_str() {
                        names.push(t.to_string());
                    }
                }
            }
        }
    }
    if names.is_empty() {
        return Err(err(
            "no image names (index.json annotations or manifest.json RepoTags)".into(),
        ));
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Imports image tarballs into the runtime.
#[async_trait::async_trait]
pub trait Importer: Send + Sync {
    /// Imports one tarball; returns the names it brought.
    async fn import(&self, path: &Path) -> Result<Vec<String>, ImportError>;
}

/// Imports with containerd's `ctr` into the CRI namespace.
pub struct CtrImporter {
    /// The ctr binary.
    pub ctr: PathBuf,
    /// containerd's socket.
    pub socket: PathBuf,
}

#[async_trait::async_trait]
impl Importer for CtrImporter {
    async fn import(&self, path: &Path) -> Result<Vec<String>, ImportError> {
        let names = image_names_in_tar(path).unwrap_or_default();
        let out = tokio::process::Command::new(&self.ctr)
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io", "images", "import"])
            .arg(path)
            .output()
            .await
            .map_err(|e| ImportError::Ctr {
                path: path.to_path_buf(),
                message: format!("running {}: {e}", self.ctr.display()),
            })?;
        if !out.status.success() {
            return Err(ImportError::Ctr {
                path: path.to_path_buf(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(names)
    }
}

/// Imports into the hollow runtime (only the names matter).
pub struct FakeImporter(pub FakeRuntime);

#[async_trait::async_trait]
impl Importer for FakeImporter {
    async fn import(&self, path: &Path) -> Result<Vec<String>, ImportError> {
        let names = image_names_in_tar(path)?;
        self.0.add_images(&names);
        Ok(names)
    }
}

type Seen = HashMap<PathBuf, (u64, SystemTime)>;

/// The files of an images directory already imported (size and mtime), so they are not
/// imported again.
#[derive(Default, Debug, Clone)]
pub struct Imported(Seen);

impl Imported {
    /// How many files were imported (or tried).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was imported.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Imports every finished tarball in `dir` not imported yet (or changed since).
async fn scan(
    dir: &Path,
    importer: &dyn Importer,
    seen: &mut Seen,
    pending: &mut Seen,
    require_stable: bool,
) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<_> = rd.flatten().collect();
    files.sort_by_key(|e| e.file_name());
    for e in files {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp-partial") || name.ends_with(".partial") {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let stamp = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        if seen.get(&path) == Some(&stamp) {
            continue;
        }
        // A file still being written changes between scans: import once it is stable.
        let recent = stamp
            .1
            .elapsed()
            .map(|age| age < Duration::from_secs(1))
            .unwrap_or(false);
        if require_stable && recent && pending.get(&path) != Some(&stamp) {
            pending.insert(path.clone(), stamp);
            continue;
        }
        pending.remove(&path);
        let started = std::time::Instant::now();
        match importer.import(&path).await {
            Ok(names) => tracing::info!(
                file = %path.display(),
                images = ?names,
                took = ?started.elapsed(),
                "imported images"
            ),
            Err(e) => tracing::warn!(error = %e, "image import failed"),
        }
        seen.insert(path, stamp);
    }
}

/// Keeps importing what appears in `dir` (after [`import_all`]) until cancelled.
pub async fn watch_dir(
    dir: PathBuf,
    importer: Arc<dyn Importer>,
    interval: Duration,
    cancel: CancellationToken,
    imported: Imported,
) {
    let mut seen = imported.0;
    let mut pending = Seen::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        scan(&dir, importer.as_ref(), &mut seen, &mut pending, true).await;
    }
}

/// Imports every tarball `dir` holds now.
pub async fn import_all(dir: &Path, importer: &dyn Importer) -> Imported {
    let mut seen = Seen::new();
    scan(dir, importer, &mut seen, &mut Seen::new(), false).await;
    Imported(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn references() {
        assert_eq!(
            normalize_reference("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_reference("busybox:1.35"),
            "docker.io/library/busybox:1.35"
        );
        assert_eq!(normalize_reference("me/app"), "docker.io/me/app:latest");
        assert_eq!(
            normalize_reference("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause:3.9"
        );
        assert_eq!(
            normalize_reference("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(
            normalize_reference("busybox@sha256:abc"),
            "docker.io/library/busybox@sha256:abc"
        );
        assert_eq!(registry_host("quay.io/a/b:1"), "quay.io");
        assert_eq!(registry_host("nginx"), "docker.io");
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(default_pull_policy("nginx@sha256:00"), "IfNotPresent");
    }

    #[test]
    fn pull_secrets_become_cri_auth() {
        let cfg = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": base64::engine::general_purpose::STANDARD.encode("alice:s3cret")},
            "quay.io": {"username": "bob", "password": "pw"},
        }});
        let secret = Secret {
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(serde_json::to_vec(&cfg).unwrap()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let a = auth_for("busybox:1.35", std::slice::from_ref(&secret));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].username, "alice");
        assert_eq!(a[0].password, "s3cret");
        assert_eq!(a[0].server_address, "", "left to the runtime's host");
        let q = auth_for("quay.io/x/y:1", std::slice::from_ref(&secret));
        assert_eq!(
            (q[0].username.as_str(), q[0].password.as_str()),
            ("bob", "pw")
        );
        assert!(auth_for("ghcr.io/x:1", &[secret]).is_empty());
    }

    #[test]
    fn names_in_tarballs() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = rkube_images::Image::new("example.org/tools:2");
        image.file("x", "y", 0o644);
        let p = dir.path().join("a.tar");
        image.write(&p).unwrap();
        assert_eq!(image_names_in_tar(&p).unwrap(), vec!["example.org/tools:2"]);
        // docker save layout.
        let mut b = tar::Builder::new(Vec::new());
        let manifest = br#"[{"Config":"c.json","RepoTags":["me/app:1"],"Layers":[]}]"#;
        let mut h = tar::Header::new_gnu();
        h.set_size(manifest.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "manifest.json", &manifest[..])
            .unwrap();
        let p2 = dir.path().join("b.tar");
        std::fs::write(&p2, b.into_inner().unwrap()).unwrap();
        assert_eq!(image_names_in_tar(&p2).unwrap(), vec!["me/app:1"]);
        std::fs::write(dir.path().join("c.tar"), b"not a tar").unwrap();
        assert!(image_names_in_tar(&dir.path().join("c.tar")).is_err());
    }

    #[tokio::test]
    async fn directory_imports_new_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeRuntime::default();
        let importer: Arc<dyn Importer> = Arc::new(FakeImporter(fake.clone()));
        rkube_images::Image::new("example.org/one:1")
            .write(&dir.path().join("one.tar"))
            .unwrap();
        let imported = import_all(dir.path(), importer.as_ref()).await;
        assert_eq!(imported.len(), 1);
        let cri = fake.client(Default::default());
        let listed = || async {
            cri.list_images()
                .await
                .unwrap()
                .into_iter()
                .flat_map(|i| i.repo_tags)
                .collect::<Vec<_>>()
        };
        assert_eq!(listed().await, vec!["example.org/one:1"]);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(watch_dir(
            dir.path().to_path_buf(),
            importer,
            Duration::from_millis(50),
            cancel.clone(),
            imported,
        ));
        rkube_images::Image::new("example.org/two:2")
            .write(&dir.path().join("two.tar"))
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while listed().await.len() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "two.tar was not imported"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cancel.cancel();
        task.await.unwrap();
    }
}

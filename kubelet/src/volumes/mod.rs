//! Pod volumes under `DATA/pods/<uid>/volumes/<plugin>/<name>`: emptyDir (a directory, or a
//! tmpfs for `medium: Memory`), hostPath (with its type checks), and the projected kinds —
//! configMap, secret (on tmpfs), downwardAPI and projected (with ServiceAccount tokens
//! requested for the pod, see [`crate::env::ApiObjects`]) — written with the atomic writer and
//! refreshed at every pod sync, so updated ConfigMaps and Secrets reach running pods within the
//! sync period. Teardown unmounts and removes everything of a pod.

pub mod atomic;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume};

use crate::env::{self, Context, EnvError, Objects};
use atomic::File;

/// Why a volume could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A referenced object or key is missing, or the API failed.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    Source {
        /// The volume.
        volume: String,
        /// The cause.
        source: EnvError,
    },
    /// A hostPath does not have the type the pod asked for.
    #[error(
        "MountVolume.SetUp failed for volume \"{volume}\" : hostPath type check failed: {path} is not a {expected}"
    )]
    HostPathType {
        /// The volume.
        volume: String,
        /// The path.
        path: String,
        /// The type asked for.
        expected: String,
    },
    /// A volume kind rkubelet does not implement.
    #[error("volume \"{volume}\": {kind} volumes are not supported by rkubelet")]
    Unsupported {
        /// The volume.
        volume: String,
        /// The kind.
        kind: &'static str,
    },
    /// A container mounts a volume the pod does not define.
    #[error("container {container}: volume mount {volume:?} does not match any pod volume")]
    UnknownVolume {
        /// The container.
        container: String,
        /// The volume name.
        volume: String,
    },
    /// A filesystem or mount operation failed.
    #[error("volume \"{volume}\": {context}: {message}")]
    Io {
        /// The volume.
        volume: String,
        /// What was being done.
        context: String,
        /// The error.
        message: String,
    },
}

/// Where a pod volume is on the host.
#[derive(Clone, Debug)]
pub struct HostVolume {
    /// The host path.
    pub path: PathBuf,
    /// Always mounted read-only (configMap, secret, downwardAPI, projected).
    pub read_only: bool,
    /// May hold a subPath directory the kubelet creates.
    pub writable: bool,
}

/// Sets up and tears down pod volumes.
pub struct VolumeManager {
    root: PathBuf,
    mounts: bool,
    objects: Arc<dyn Objects>,
}

fn plugin_dir(v: &Volume) -> &'static str {
    if v.empty_dir.is_some() {
        "kubernetes.io~empty-dir"
    } else if v.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if v.secret.is_some() {
        "kubernetes.io~secret"
    } else if v.downward_api.is_some() {
        "kubernetes.io~downward-api"
    } else if v.projected.is_some() {
        "kubernetes.io~projected"
    } else {
        "kubernetes.io~other"
    }
}

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mount(m) == want)
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Mounts a tmpfs at `path` unless one is there.
fn mount_tmpfs(path: &Path, size: Option<i64>) -> Result<(), String> {
    if is_mount_point(path) {
        return Ok(());
    }
    let mut opts = String::from("mode=0755");
    if let Some(s) = size.filter(|s| *s > 0) {
        opts.push_str(&format!(",size={s}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOSUID,
        Some(opts.as_str()),
    )
    .map_err(|e| format!("mounting tmpfs on {}: {e}", path.display()))
}

/// Unmounts everything under `dir` (deepest first).
fn unmount_under(dir: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Err(e) = nix::mount::umount2(Path::new(&p), nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %p, error = %e, "unmounting a pod volume failed");
        }
    }
}

fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    optional: bool,
    missing_key: impl Fn(&str) -> EnvError,
) -> Result<BTreeMap<String, File>, EnvError> {
    let mut out = BTreeMap::new();
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(
                            it.path.clone(),
                            File {
                                data: v.clone(),
                                mode: it.mode.map(|m| m as u32).unwrap_or(default_mode),
                            },
                        );
                    }
                    None if optional => {}
                    None => return Err(missing_key(&it.key)),
                }
            }
        }
        _ => {
            for (k, v) in data {
                out.insert(
                    k.clone(),
                    File {
                        data: v.clone(),
                        mode: default_mode,
                    },
                );
            }
        }
    }
    Ok(out)
}

fn quoted_map(m: Option<&BTreeMap<String, String>>) -> Vec<u8> {
    let mut s = String::new();
    for (k, v) in m.into_iter().flatten() {
        s.push_str(&format!("{k}={}\n", serde_json::Value::String(v.clone())));
    }
    s.into_bytes()
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    ctx: &Context,
) -> Result<BTreeMap<String, File>, EnvError> {
    let mut out = BTreeMap::new();
    for it in items {
        let data = if let Some(f) = &it.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => quoted_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => quoted_map(pod.metadata.annotations.as_ref()),
                path => env::field_value(pod, path, ctx)?.into_bytes(),
            }
        } else if let Some(r) = &it.resource_field_ref {
            let name = r.container_name.clone().unwrap_or_default();
            let c = pod
                .spec
                .as_ref()
                .and_then(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                        .find(|c| c.name == name)
                        .cloned()
                })
                .ok_or_else(|| EnvError::Resource(format!("container {name}")))?;
            env::resource_value(&c, &r.resource, r.divisor.as_ref(), ctx)?.into_bytes()
        } else {
            Vec::new()
        };
        out.insert(
            it.path.clone(),
            File {
                data,
                mode: it.mode.map(|m| m as u32).unwrap_or(default_mode),
            },
        );
    }
    Ok(out)
}

impl VolumeManager {
    /// Volumes under `DATA/pods`; `mounts` false skips tmpfs mounts (hollow nodes).
    pub fn new(data_dir: &Path, mounts: bool, objects: Arc<dyn Objects>) -> Self {
        VolumeManager {
            root: data_dir.join("pods"),
            mounts,
            objects,
        }
    }

    /// `DATA/pods/<uid>`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join(uid)
    }

    /// The UIDs that have a pod directory.
    pub fn pod_dirs(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// The files of a ConfigMap volume or projection (none when an optional one is missing).
    async fn config_map_files(
        &self,
        ns: &str,
        name: &str,
        items: Option<&Vec<KeyToPath>>,
        mode: u32,
        optional: Option<bool>,
    ) -> Result<BTreeMap<String, File>, EnvError> {
        let optional = optional == Some(true);
        match self.objects.config_map(ns, name).await? {
            None if optional => Ok(BTreeMap::new()),
            None => Err(EnvError::ConfigMapNotFound(name.into())),
            Some(obj) => key_files(&env::config_map_data(&obj), items, mode, optional, |k| {
                EnvError::ConfigMapKey {
                    namespace: ns.into(),
                    name: name.into(),
                    key: k.into(),
                }
            }),
        }
    }

    /// The files of a Secret volume or projection (none when an optional one is missing).
    async fn secret_files(
        &self,
        ns: &str,
        name: &str,
        items: Option<&Vec<KeyToPath>>,
        mode: u32,
        optional: Option<bool>,
    ) -> Result<BTreeMap<String, File>, EnvError> {
        let optional = optional == Some(true);
        match self.objects.secret(ns, name).await? {
            None if optional => Ok(BTreeMap::new()),
            None => Err(EnvError::SecretNotFound(name.into())),
            Some(obj) => key_files(&env::secret_data(&obj), items, mode, optional, |k| {
                EnvError::SecretKey {
                    namespace: ns.into(),
                    name: name.into(),
                    key: k.into(),
                }
            }),
        }
    }

    async fn payload(
        &self,
        pod: &Pod,
        v: &Volume,
        ctx: &Context,
    ) -> Result<Option<BTreeMap<String, File>>, EnvError> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        if let Some(cm) = &v.config_map {
            let mode = cm.default_mode.unwrap_or(0o644) as u32;
            return self
                .config_map_files(&ns, &cm.name, cm.items.as_ref(), mode, cm.optional)
                .await
                .map(Some);
        }
        if let Some(s) = &v.secret {
            let mode = s.default_mode.unwrap_or(0o644) as u32;
            let name = s.secret_name.as_deref().unwrap_or_default();
            return self
                .secret_files(&ns, name, s.items.as_ref(), mode, s.optional)
                .await
                .map(Some);
        }
        if let Some(d) = &v.downward_api {
            let mode = d.default_mode.unwrap_or(0o644) as u32;
            return downward_files(pod, d.items.as_deref().unwrap_or_default(), mode, ctx)
                .map(Some);
        }
        if let Some(p) = &v.projected {
            let mode = p.default_mode.unwrap_or(0o644) as u32;
            let mut out = BTreeMap::new();
            for src in p.sources.iter().flatten() {
                if let Some(cm) = &src.config_map {
                    out.extend(
                        self.config_map_files(&ns, &cm.name, cm.items.as_ref(), mode, cm.optional)
                            .await?,
                    );
                }
                if let Some(s) = &src.secret {
                    out.extend(
                        self.secret_files(&ns, &s.name, s.items.as_ref(), mode, s.optional)
                            .await?,
                    );
                }
                if let Some(d) = &src.downward_api {
                    out.extend(downward_files(
                        pod,
                        d.items.as_deref().unwrap_or_default(),
                        mode,
                        ctx,
                    )?);
                }
                if let Some(t) = &src.service_account_token {
                    let req = env::TokenFor {
                        namespace: ns.clone(),
                        service_account: pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.service_account_name.clone())
                            .filter(|n| !n.is_empty())
                            .unwrap_or_else(|| "default".into()),
                        pod_name: pod.metadata.name.clone().unwrap_or_default(),
                        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
                        audience: t.audience.clone().filter(|a| !a.is_empty()),
                        expiration_seconds: t.expiration_seconds.unwrap_or(3600),
                    };
                    let token = self.objects.service_account_token(&req).await?;
                    // With the volume's mode (0644 by default), as Kubernetes writes it:
                    // containers running as another user read it too.
                    out.insert(
                        t.path.clone(),
                        File {
                            data: token.into_bytes(),
                            mode,
                        },
                    );
                }
            }
            return Ok(Some(out));
        }
        Ok(None)
    }

    /// Sets up (or refreshes) every volume of the pod; returns where each one is.
    pub async fn setup(
        &self,
        pod: &Pod,
        ctx: &Context,
    ) -> Result<HashMap<String, HostVolume>, VolumeError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_dir = self.pod_dir(&uid);
        let mut out = HashMap::new();
        let spec = pod.spec.clone().unwrap_or_default();
        for v in spec.volumes.iter().flatten() {
            let name = v.name.clone();
            let ioerr = |context: &str, e: String| VolumeError::Io {
                volume: name.clone(),
                context: context.to_string(),
                message: e,
            };
            if let Some(h) = &v.host_path {
                check_host_path(&name, &h.path, h.type_.as_deref().unwrap_or_default())?;
                out.insert(
                    name.clone(),
                    HostVolume {
                        path: PathBuf::from(&h.path),
                        read_only: false,
                        writable: true,
                    },
                );
                continue;
            }
            let unsupported = if v.persistent_volume_claim.is_some() {
                Some("persistentVolumeClaim")
            } else if v.nfs.is_some() {
                Some("nfs")
            } else if v.csi.is_some() {
                Some("csi")
            } else if v.ephemeral.is_some() {
                Some("ephemeral")
            } else if v.image.is_some() {
                Some("image")
            } else if v.empty_dir.is_none()
                && v.config_map.is_none()
                && v.secret.is_none()
                && v.downward_api.is_none()
                && v.projected.is_none()
            {
                Some("this kind of")
            } else {
                None
            };
            if let Some(kind) = unsupported {
                return Err(VolumeError::Unsupported { volume: name, kind });
            }
            let dir = pod_dir.join("volumes").join(plugin_dir(v)).join(&name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| ioerr("creating the volume", e.to_string()))?;
            if let Some(e) = &v.empty_dir {
                if e.medium.as_deref() == Some("Memory") && self.mounts {
                    let size = e
                        .size_limit
                        .as_ref()
                        .and_then(|q| rkube_machinery::quantity::parse_quantity(q).ok())
                        .map(|q| q.to_value());
                    mount_tmpfs(&dir, size).map_err(|e| ioerr("tmpfs", e))?;
                }
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                    .map_err(|e| ioerr("chmod", e.to_string()))?;
                out.insert(
                    name.clone(),
                    HostVolume {
                        path: dir,
                        read_only: false,
                        writable: true,
                    },
                );
                continue;
            }
            if (v.secret.is_some() || v.projected.is_some()) && self.mounts {
                mount_tmpfs(&dir, None).map_err(|e| ioerr("tmpfs", e))?;
            }
            let payload = self
                .payload(pod, v, ctx)
                .await
                .map_err(|source| VolumeError::Source {
                    volume: name.clone(),
                    source,
                })?
                .unwrap_or_default();
            let changed =
                atomic::write(&dir, &payload).map_err(|e| ioerr("writing", e.to_string()))?;
            if changed {
                tracing::debug!(volume = %name, pod = %uid, "volume contents updated");
            }
            out.insert(
                name.clone(),
                HostVolume {
                    path: dir,
                    read_only: true,
                    writable: false,
                },
            );
        }
        Ok(out)
    }

    /// Unmounts and removes everything of a pod (volumes, hosts file, termination logs).
    pub fn teardown(&self, uid: &str) -> Result<(), VolumeError> {
        let dir = self.pod_dir(uid);
        if !dir.exists() {
            return Ok(());
        }
        if self.mounts {
            unmount_under(&dir);
        }
        std::fs::remove_dir_all(&dir).map_err(|e| VolumeError::Io {
            volume: String::new(),
            context: format!("removing {}", dir.display()),
            message: e.to_string(),
        })
    }
}

fn check_host_path(volume: &str, path: &str, kind: &str) -> Result<(), VolumeError> {
    use std::os::unix::fs::FileTypeExt;
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    let fail = |expected: &str| VolumeError::HostPathType {
        volume: volume.into(),
        path: path.into(),
        expected: expected.into(),
    };
    let ioerr = |e: std::io::Error| VolumeError::Io {
        volume: volume.into(),
        context: format!("creating {path}"),
        message: e.to_string(),
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(p).map_err(ioerr)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
                    .map_err(ioerr)?;
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                Err(fail("directory"))
            }
        }
        "Directory" => {
            if meta.is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                Err(fail("directory"))
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(ioerr)?;
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                Err(fail("file"))
            }
        }
        "File" => {
            if meta.is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                Err(fail("file"))
            }
        }
        "Socket" => {
            if meta.is_ok_and(|m| m.file_type().is_socket()) {
                Ok(())
            } else {
                Err(fail("socket"))
            }
        }
        "CharDevice" => {
            if meta.is_ok_and(|m| m.file_type().is_char_device()) {
                Ok(())
            } else {
                Err(fail("character device"))
            }
        }
        "BlockDevice" => {
            if meta.is_ok_and(|m| m.file_type().is_block_device()) {
                Ok(())
            } else {
                Err(fail("block device"))
            }
        }
        other => Err(fail(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::tests::MapObjects;

    fn pod(volumes: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "8Mi"}}}],
                     "volumes": volumes}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn projected_kinds_and_updates() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Arc::new(MapObjects::with(
            serde_json::json!([{"metadata": {"name": "cfg", "namespace": "ns"},
                                "data": {"app.conf": "x=1", "other": "o"}}]),
            serde_json::json!([{"metadata": {"name": "sec", "namespace": "ns"},
                                "data": {"token": "czNjcjN0"}}]),
        ));
        let vm = VolumeManager::new(dir.path(), false, objects.clone());
        let p = pod(serde_json::json!([
            {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o644}},
            {"name": "one", "configMap": {"name": "cfg", "items": [{"key": "app.conf", "path": "conf/app.conf", "mode": 0o600}]}},
            {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
            {"name": "down", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}},
            {"name": "all", "projected": {"sources": [
                {"configMap": {"name": "cfg", "optional": true, "items": [{"key": "other", "path": "o"}]}},
                {"secret": {"name": "sec"}}]}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "opt", "configMap": {"name": "missing", "optional": true}}
        ]));
        let ctx = Context::default();
        let vols = vm.setup(&p, &ctx).await.unwrap();
        let read = |v: &str, f: &str| std::fs::read_to_string(vols[v].path.join(f)).unwrap();
        assert_eq!(read("cfg", "app.conf"), "x=1");
        assert_eq!(read("one", "conf/app.conf"), "x=1");
        assert!(!vols["one"].path.join("other").exists());
        assert_eq!(read("sec", "token"), "s3cr3t");
        assert_eq!(read("down", "labels"), "a=\"b\"\n");
        assert_eq!(read("down", "name"), "p");
        assert_eq!(read("down", "mem"), "8");
        assert_eq!(read("all", "o"), "o");
        assert_eq!(read("all", "token"), "s3cr3t");
        assert!(vols["cfg"].read_only && !vols["scratch"].read_only);
        use std::os::unix::fs::PermissionsExt;
        let mode = |v: &str, f: &str| {
            std::fs::metadata(vols[v].path.join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("sec", "token"), 0o400);
        assert_eq!(mode("one", "conf/app.conf"), 0o600);
        // An update reaches the files at the next setup.
        objects
            .config_maps
            .lock()
            .unwrap()
            .get_mut("ns/cfg")
            .unwrap()
            .data = Some([("app.conf".to_string(), "x=2".to_string())].into());
        vm.setup(&p, &ctx).await.unwrap();
        assert_eq!(read("cfg", "app.conf"), "x=2");
        assert!(!vols["cfg"].path.join("other").exists());
        // An optional key that went away disappears from the projection.
        assert!(!vols["all"].path.join("o").exists());
        assert_eq!(read("all", "token"), "s3cr3t");
        vm.teardown("u1").unwrap();
        assert!(!vm.pod_dir("u1").exists());
    }

    #[tokio::test]
    async fn errors_name_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let vm = VolumeManager::new(dir.path(), false, Arc::new(MapObjects::default()));
        let err = vm
            .setup(
                &pod(serde_json::json!([{"name": "c", "configMap": {"name": "nope"}}])),
                &Context::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "MountVolume.SetUp failed for volume \"c\" : configmap \"nope\" not found"
        );
        let err = vm
            .setup(
                &pod(
                    serde_json::json!([{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}]),
                ),
                &Context::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, VolumeError::Unsupported { .. }));
        let host = dir.path().join("made/here");
        let p = pod(
            serde_json::json!([{"name": "h", "hostPath": {"path": host, "type": "DirectoryOrCreate"}}]),
        );
        vm.setup(&p, &Context::default()).await.unwrap();
        assert!(host.is_dir());
        let p = pod(serde_json::json!([{"name": "h", "hostPath": {"path": host, "type": "File"}}]));
        assert!(matches!(
            vm.setup(&p, &Context::default()).await.unwrap_err(),
            VolumeError::HostPathType { .. }
        ));
    }
}

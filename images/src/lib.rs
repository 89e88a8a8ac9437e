//! Offline container images for labs and tests: builds OCI image-layout tarballs (one
//! uncompressed layer, a config, a manifest, `index.json` and `oci-layout`) from files on this
//! machine, with the image reference in the `io.containerd.image.name` annotation so that
//! `ctr images import` — and therefore the kubelet's images directory — names the image.
//!
//! Two images are predefined: [`busybox`] (the static busybox of Debian's `busybox-static`
//! with all its applet links, `/etc/passwd` and `/etc/group`) and [`pause`] (Debian's static
//! `catatonit`, entrypoint `-P`, the sandbox image).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The reference of the busybox image [`write_default_images`] writes.
pub const BUSYBOX_REF: &str = "docker.io/library/busybox:1.35";
/// The reference of the pause image [`write_default_images`] writes (the kubelet's default
/// sandbox image).
pub const PAUSE_REF: &str = "registry.k8s.io/pause:3.9";
/// Where Debian's `busybox-static` installs the static busybox.
pub const BUSYBOX_BIN: &str = "/bin/busybox";
/// Where Debian's `catatonit` installs it.
pub const CATATONIT_BIN: &str = "/usr/bin/catatonit";

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host file the image needs is missing (the apt package is not installed).
    #[error("{path} is missing (install it with scripts/setup: apt package {package})")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// Reading a host file or writing the tarball failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The busybox applet list could not be read.
    #[error("listing the busybox applets failed: {0}")]
    Applets(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// One entry of the image's single layer.
#[derive(Clone, Debug)]
pub enum Entry {
    /// A directory with its mode.
    Dir(u32),
    /// A regular file: contents and mode.
    File(Vec<u8>, u32),
    /// A symbolic link to the target.
    Symlink(String),
}

/// An image to build: its reference, its single layer and the runtime config.
#[derive(Clone, Debug, Default)]
pub struct Image {
    /// The full reference, e.g. `docker.io/library/busybox:1.35`.
    pub reference: String,
    /// Layer entries by path (relative, without a leading `/`).
    pub entries: BTreeMap<String, Entry>,
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
    /// `ENV`, as `KEY=value`.
    pub env: Vec<String>,
    /// `WORKDIR` (empty: `/`).
    pub working_dir: String,
    /// `USER` (empty: root).
    pub user: String,
}

impl Image {
    /// An empty image with the standard directories and `PATH`.
    pub fn new(reference: &str) -> Self {
        let mut image = Image {
            reference: reference.to_string(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            ..Default::default()
        };
        for d in [
            "bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "usr", "usr/bin",
            "usr/sbin", "var", "var/www",
        ] {
            image.dir(d, 0o755);
        }
        image.dir("tmp", 0o1777);
        image
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.entries
            .insert(path.trim_start_matches('/').to_string(), Entry::Dir(mode));
        self
    }

    /// Adds a file.
    pub fn file(&mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> &mut Self {
        self.entries.insert(
            path.trim_start_matches('/').to_string(),
            Entry::File(contents.into(), mode),
        );
        self
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entries.insert(
            path.trim_start_matches('/').to_string(),
            Entry::Symlink(target.to_string()),
        );
        self
    }

    /// The uncompressed layer tar. Entries are written parents first, with mtime 0, so the
    /// same image always has the same digest.
    pub fn layer(&self) -> Result<Vec<u8>, Error> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            match entry {
                Entry::Dir(mode) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(io(format!("adding {path}")))?;
                }
                Entry::File(data, mode) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, path, data.as_slice())
                        .map_err(io(format!("adding {path}")))?;
                }
                Entry::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, target)
                        .map_err(io(format!("adding {path}")))?;
                }
            }
        }
        builder.into_inner().map_err(io("finishing the layer"))
    }

    /// The OCI image-layout tarball.
    pub fn oci_tar(&self) -> Result<Vec<u8>, Error> {
        let layer = self.layer()?;
        let layer_digest = sha256(&layer);
        let (arch, os) = (oci_arch(), "linux");
        let nullable = |v: &Vec<String>| {
            if v.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::json!(v)
            }
        };
        let config = serde_json::json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": arch,
            "os": os,
            "config": {
                "Env": self.env,
                "Entrypoint": nullable(&self.entrypoint),
                "Cmd": nullable(&self.cmd),
                "WorkingDir": if self.working_dir.is_empty() { "/" } else { &self.working_dir },
                "User": self.user,
            },
            "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
            "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "rkube-images" }],
        });
        let config = serde_json::to_vec(&config).expect("JSON");
        let config_digest = sha256(&config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{config_digest}"),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": format!("sha256:{layer_digest}"),
                "size": layer.len(),
            }],
        });
        let manifest = serde_json::to_vec(&manifest).expect("JSON");
        let manifest_digest = sha256(&manifest);
        let tag = self
            .reference
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(_, t)| t.to_string())
            .unwrap_or_else(|| "latest".into());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{manifest_digest}"),
                "size": manifest.len(),
                "platform": { "architecture": arch, "os": os },
                "annotations": {
                    "io.containerd.image.name": self.reference,
                    "org.opencontainers.image.ref.name": tag,
                },
            }],
        });
        let index = serde_json::to_vec(&index).expect("JSON");

        let mut out = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| -> Result<(), Error> {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            header.set_entry_type(tar::EntryType::Regular);
            out.append_data(&mut header, path, data)
                .map_err(io(format!("adding {path}")))
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add("index.json", &index)?;
        add(&format!("blobs/sha256/{manifest_digest}"), &manifest)?;
        add(&format!("blobs/sha256/{config_digest}"), &config)?;
        add(&format!("blobs/sha256/{layer_digest}"), &layer)?;
        out.into_inner().map_err(io("finishing the image tarball"))
    }

    /// Writes the OCI tarball to `path` atomically (a temporary file renamed into place, so a
    /// directory watcher never sees half a file).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let data = self.oci_tar()?;
        let tmp = path.with_extension("tmp-partial");
        let mut f =
            std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        f.write_all(&data)
            .and_then(|_| f.sync_all())
            .map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))
    }
}

/// The hex SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The OCI architecture name of this machine.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn read_host(path: &str, package: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing {
            path: path.into(),
            package,
        },
        _ => Error::Io {
            context: format!("reading {path}"),
            source: e,
        },
    })
}

/// A busybox image: `/bin/busybox` and a symlink for every applet (`busybox --list-full`),
/// `/etc/passwd` and `/etc/group` with root and nobody, `CMD ["sh"]`.
pub fn busybox(reference: &str) -> Result<Image, Error> {
    let binary = read_host(BUSYBOX_BIN, "busybox-static")?;
    let out = std::process::Command::new(BUSYBOX_BIN)
        .arg("--list-full")
        .output()
        .map_err(|e| Error::Applets(e.to_string()))?;
    if !out.status.success() {
        return Err(Error::Applets(String::from_utf8_lossy(&out.stderr).into()));
    }
    let mut image = Image::new(reference);
    image
        .file("bin/busybox", binary, 0o755)
        .file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            0o644,
        )
        .file("etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644)
        .file("etc/hostname", "busybox\n", 0o644);
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        image.symlink(applet, "/bin/busybox");
    }
    image.cmd = vec!["sh".into()];
    Ok(image)
}

/// The pause image: catatonit as `/pause` with entrypoint `/pause -P` (it only reaps children
/// and waits for a signal).
pub fn pause(reference: &str) -> Result<Image, Error> {
    let binary = read_host(CATATONIT_BIN, "catatonit")?;
    let mut image = Image::new(reference);
    image.file("pause", binary, 0o755);
    image.entrypoint = vec!["/pause".into(), "-P".into()];
    image.user = "65535:65535".into();
    Ok(image)
}

/// Writes `busybox.tar` ([`BUSYBOX_REF`]) and `pause.tar` ([`PAUSE_REF`]) into `dir`
/// (created if missing) and returns their paths.
pub fn write_default_images(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let mut paths = Vec::new();
    for (file, image) in [
        ("busybox.tar", busybox(BUSYBOX_REF)?),
        ("pause.tar", pause(PAUSE_REF)?),
    ] {
        let path = dir.join(file);
        image.write(&path)?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(tar_bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(path, data);
        }
        out
    }

    #[test]
    fn layout_is_consistent() {
        let mut image = Image::new("example.org/test:v1");
        image.file("hello", "hi", 0o644);
        image.entrypoint = vec!["/hello".into()];
        let files = entries(&image.oci_tar().unwrap());
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let desc = &index["manifests"][0];
        assert_eq!(
            desc["annotations"]["io.containerd.image.name"],
            "example.org/test:v1"
        );
        assert_eq!(
            desc["annotations"]["org.opencontainers.image.ref.name"],
            "v1"
        );
        // Every descriptor's digest and size match the blob.
        let blob = |d: &serde_json::Value| {
            let digest = d["digest"].as_str().unwrap().trim_start_matches("sha256:");
            let data = files[&format!("blobs/sha256/{digest}")].clone();
            assert_eq!(sha256(&data), digest);
            assert_eq!(d["size"].as_u64().unwrap(), data.len() as u64);
            data
        };
        let manifest: serde_json::Value = serde_json::from_slice(&blob(desc)).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&blob(&manifest["config"])).unwrap();
        let layer = blob(&manifest["layers"][0]);
        assert_eq!(
            config["rootfs"]["diff_ids"][0].as_str().unwrap(),
            format!("sha256:{}", sha256(&layer))
        );
        assert_eq!(config["config"]["Entrypoint"][0], "/hello");
        assert!(config["config"]["Cmd"].is_null());
        let layer_files = entries(&layer);
        assert_eq!(layer_files["hello"], b"hi");
        assert!(layer_files.contains_key("tmp/"));
        // Deterministic.
        assert_eq!(image.oci_tar().unwrap(), image.oci_tar().unwrap());
    }

    #[test]
    fn busybox_has_applets_and_pause_has_entrypoint() {
        let bb = busybox(BUSYBOX_REF).expect("busybox-static is installed (scripts/setup)");
        assert!(
            matches!(bb.entries.get("bin/busybox"), Some(Entry::File(d, 0o755)) if d.len() > 100_000)
        );
        for applet in ["bin/sh", "bin/sleep", "usr/sbin/httpd", "bin/cat"] {
            assert!(
                matches!(bb.entries.get(applet), Some(Entry::Symlink(t)) if t == "/bin/busybox"),
                "{applet}"
            );
        }
        let p = pause(PAUSE_REF).expect("catatonit is installed (scripts/setup)");
        assert_eq!(p.entrypoint, vec!["/pause", "-P"]);
        let dir = tempfile::tempdir().unwrap();
        let paths = write_default_images(dir.path()).unwrap();
        assert_eq!(paths.len(), 2);
        for p in paths {
            assert!(std::fs::metadata(&p).unwrap().len() > 0);
        }
    }
}

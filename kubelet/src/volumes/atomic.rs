//! The atomic writer behind configMap, secret, downwardAPI and projected volumes, with the
//! layout Kubernetes uses so running programs see a consistent set of files: the payload lives
//! in a timestamped directory `..<time>`, `..data` links to it, and each top-level entry is a
//! link through `..data`. An update writes a new directory and swaps `..data` with one
//! `rename`, so a reader never sees half an update.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// One file of a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// The contents.
    pub data: Vec<u8>,
    /// The mode bits.
    pub mode: u32,
}

/// Why a payload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    /// A path in the payload escapes the volume or is malformed.
    #[error("invalid path {0:?} in volume payload")]
    BadPath(String),
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AtomicError {
    let context = context.into();
    move |source| AtomicError::Io { context, source }
}

fn check_path(p: &str) -> Result<(), AtomicError> {
    let path = Path::new(p);
    let ok = !p.is_empty()
        && !p.starts_with("..")
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(AtomicError::BadPath(p.into()))
    }
}

/// Reads the payload currently published in `dir` (following `..data`).
pub fn read_current(dir: &Path) -> Option<BTreeMap<String, File>> {
    let data = dir.join("..data");
    let target = std::fs::read_link(&data).ok()?;
    let base = dir.join(target);
    let mut out = BTreeMap::new();
    fn walk(base: &Path, rel: &Path, out: &mut BTreeMap<String, File>) -> Option<()> {
        for e in std::fs::read_dir(base.join(rel)).ok()? {
            let e = e.ok()?;
            let rel_path = rel.join(e.file_name());
            let meta = e.metadata().ok()?;
            if meta.is_dir() {
                walk(base, &rel_path, out)?;
            } else {
                let data = std::fs::read(base.join(&rel_path)).ok()?;
                out.insert(
                    rel_path.to_string_lossy().into_owned(),
                    File {
                        data,
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
        Some(())
    }
    walk(&base, Path::new(""), &mut out)?;
    Some(out)
}

/// Publishes `payload` in `dir`; returns `false` when it was already there.
pub fn write(dir: &Path, payload: &BTreeMap<String, File>) -> Result<bool, AtomicError> {
    for p in payload.keys() {
        check_path(p)?;
    }
    if read_current(dir).as_ref() == Some(payload) {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let stamp = jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let ts_dir = dir.join(&stamp);
    std::fs::create_dir(&ts_dir).map_err(io(format!("creating {}", ts_dir.display())))?;
    std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io("chmod payload dir"))?;
    for (rel, f) in payload {
        let path = ts_dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, &f.data).map_err(io(format!("writing {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))
            .map_err(io(format!("chmod {}", path.display())))?;
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).map_err(io("linking ..data_tmp"))?;
    std::fs::rename(&tmp, dir.join("..data")).map_err(io("swapping ..data"))?;
    // Top-level links for the new payload; drop those no longer in it.
    let tops: std::collections::BTreeSet<String> = payload
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(PathBuf::from("..data").join(top), &link)
                .map_err(io(format!("linking {}", link.display())))?;
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("..") {
                if name != "..data" && name != stamp && name.starts_with("..2") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
                continue;
            }
            if !tops.contains(&name) && e.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(old) = old
        && old != Path::new(&stamp)
    {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(items: &[(&str, &str, u32)]) -> BTreeMap<String, File> {
        items
            .iter()
            .map(|(k, v, m)| {
                (
                    k.to_string(),
                    File {
                        data: v.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn publishes_and_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("vol");
        assert!(write(&d, &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o400)])).unwrap());
        assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(d.join("sub/b")).unwrap(), "2");
        let mode = std::fs::metadata(d.join("sub/b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o400);
        assert!(
            std::fs::symlink_metadata(d.join("a"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // Same payload: nothing written.
        assert!(!write(&d, &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o400)])).unwrap());
        // Update: "a" changes, "sub" goes, "c" arrives; one payload directory remains.
        assert!(write(&d, &payload(&[("a", "9", 0o644), ("c", "3", 0o644)])).unwrap());
        assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "9");
        assert_eq!(std::fs::read_to_string(d.join("c")).unwrap(), "3");
        assert!(std::fs::symlink_metadata(d.join("sub")).is_err());
        let stamped = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..2"))
            .count();
        assert_eq!(stamped, 1);
        assert!(write(&d, &payload(&[("../x", "", 0o644)])).is_err());
        assert!(write(&d, &payload(&[("/abs", "", 0o644)])).is_err());
    }
}

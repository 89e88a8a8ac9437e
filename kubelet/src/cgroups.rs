//! Pod cgroups (cgroupfs, v1 and v2): runc creates a pod's cgroup under its QoS parent when
//! the first container starts; the kubelet removes the empty directories once the pod is gone.

use std::path::{Path, PathBuf};

/// The cgroup filesystem root.
const ROOT: &str = "/sys/fs/cgroup";

/// Every hierarchy's copy of a cgroup path (v1: one per controller; v2: one).
fn copies(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let root = Path::new(ROOT);
    let mut out = vec![root.join(rel)];
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.push(e.path().join(rel));
            }
        }
    }
    out
}

/// Removes a directory tree of (empty) cgroups, children first.
fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes the cgroups of pod `uid` under `root` in every QoS class.
pub fn remove_pod(root: &str, uid: &str) {
    let root = root.trim_end_matches('/');
    for rel in [
        format!("{root}/pod{uid}"),
        format!("{root}/burstable/pod{uid}"),
        format!("{root}/besteffort/pod{uid}"),
    ] {
        for dir in copies(&rel) {
            if dir.is_dir() {
                remove_tree(&dir);
            }
        }
    }
}

/// Removes the whole tree under `root` (tests clean their own cgroup root with it).
pub fn remove_root(root: &str) {
    for dir in copies(root) {
        if dir.is_dir() && dir != Path::new(ROOT) {
            remove_tree(&dir);
        }
    }
}

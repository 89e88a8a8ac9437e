//! The programs a test cluster runs: the `rkube` and `rkubectl` binaries of this workspace
//! (found next to the test executable, in the target directory of the same profile, or built
//! once with `$CARGO build` when missing) and the real `kubectl` (`/usr/bin/kubectl`, or
//! `$KUBECTL`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// Where the programs are.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `rkube` (server and agent).
    pub rkube: PathBuf,
    /// `rkubectl`.
    pub rkubectl: PathBuf,
    /// The real kubectl.
    pub kubectl: PathBuf,
}

/// The binaries, located (and built when missing) at the first call.
///
/// # Panics
/// When a binary is missing and `cargo build` fails.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(locate)
}

/// The profile directory the test executable runs from (`target/debug` for
/// `target/debug/deps/cluster-…`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("the test executable's directory");
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

fn locate() -> Binaries {
    let dir = profile_dir();
    let rkube = dir.join("rkube");
    let rkubectl = dir.join("rkubectl");
    if !rkube.exists() || !rkubectl.exists() {
        build(&dir);
    }
    for b in [&rkube, &rkubectl] {
        assert!(b.exists(), "{} is missing after cargo build", b.display());
        warn_if_stale(b);
    }
    let kubectl = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    assert!(
        kubectl.exists(),
        "{} is missing (scripts/setup installs kubectl)",
        kubectl.display()
    );
    Binaries {
        rkube,
        rkubectl,
        kubectl,
    }
}

/// `$CARGO build -p rkube -p rkube-ctl` in the workspace, for the profile of `dir`.
///
/// Only run when a binary is missing: `cargo test --workspace` builds both (they are
/// binaries of workspace members) with the features of the whole workspace, which a build of
/// two packages alone would change — and rebuild.
fn build(dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace directory");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "-p", "rkube", "-p", "rkube-ctl"]);
    if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
        cmd.arg("--release");
    }
    // The target directory the test executable lives in.
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    eprintln!("building rkube and rkubectl: {cmd:?}");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", cargo.to_string_lossy()));
    assert!(status.success(), "cargo build -p rkube -p rkube-ctl failed");
}

/// The newest modification time of the Rust sources, manifests and protos under `dir` that
/// the binaries are built from (not tests, benchmarks, examples, this crate or the testkit).
fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let Ok(kind) = e.file_type() else { continue };
        let t = if kind.is_dir() {
            // What the binaries are not built from.
            let skip = [
                "target", ".git", "tests", "benches", "examples", "e2e", "testkit",
            ];
            if path
                .file_name()
                .is_some_and(|n| skip.iter().any(|s| n == *s))
            {
                continue;
            }
            newest_source(&path)
        } else if path
            .extension()
            .is_some_and(|x| x == "rs" || x == "toml" || x == "proto")
        {
            e.metadata().and_then(|m| m.modified()).ok()
        } else {
            None
        };
        newest = newest.max(t);
    }
    newest
}

/// Says so when `binary` is older than the workspace's sources (`cargo test -p rkube-e2e`
/// alone does not rebuild it): the tests then run yesterday's code.
fn warn_if_stale(binary: &Path) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent();
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).ok();
    let newest = workspace.and_then(newest_source);
    if let (Some(built), Some(newest)) = (built, newest)
        && newest > built
    {
        eprintln!(
            "WARNING: {} is older than the workspace's sources; run `cargo build -p rkube -p \
             rkube-ctl` (cargo test --workspace does) to test the current code",
            binary.display()
        );
    }
}

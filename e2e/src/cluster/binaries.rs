//! The programs a test cluster runs: the `rkube` and `rkubectl` binaries of this workspace
//! (found next to the test executable, in the target directory of the same profile, or built
//! once with `$CARGO build` when missing) and the real `kubectl` (`/usr/bin/kubectl`, or
//! `$KUBECTL`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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

/// The binary `name` of workspace package `package` in the target directory of the running
/// executable's profile, built (`$CARGO build -p PACKAGE`) when missing.
///
/// # Panics
/// When it is missing and `cargo build` fails.
pub fn workspace_binary(name: &str, package: &str) -> PathBuf {
    let dir = profile_dir();
    let bin = dir.join(name);
    if !bin.exists() {
        build(&dir, &[package]);
    }
    assert!(
        bin.exists(),
        "{} is missing after cargo build",
        bin.display()
    );
    warn_if_stale(&bin);
    bin
}

fn locate() -> Binaries {
    let dir = profile_dir();
    let rkube = dir.join("rkube");
    let rkubectl = dir.join("rkubectl");
    if !rkube.exists() || !rkubectl.exists() {
        build(&dir, &["rkube", "rkube-ctl"]);
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

/// `$CARGO build -p PACKAGE…` in the workspace, for the profile of `dir`.
///
/// Only run when a binary is missing: `cargo test --workspace` builds them (they are
/// binaries of workspace members) with the features of the whole workspace, which a build of
/// a few packages alone would change — and rebuild.
fn build(dir: &Path, packages: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace directory");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace).arg("build");
    for p in packages {
        cmd.args(["-p", p]);
    }
    if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
        cmd.arg("--release");
    }
    // The target directory the test executable lives in.
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    eprintln!("building {}: {cmd:?}", packages.join(", "));
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", cargo.to_string_lossy()));
    assert!(status.success(), "{cmd:?} failed");
}

/// The files `binary` was built from: the dep-info file cargo writes next to it
/// (`target/debug/rkube.d`: `TARGET: DEP DEP …`, spaces in paths escaped).
fn built_from(binary: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(binary.with_extension("d")) else {
        return Vec::new();
    };
    let Some((_, deps)) = text.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.trim().chars();
    while let Some(ch) = chars.next() {
        match ch {
            // An escaped space belongs to the path; an escaped line end continues the list.
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(c) => cur.push(c),
            },
            ' ' | '\n' => {
                if !cur.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut cur)));
                }
            }
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        out.push(PathBuf::from(cur));
    }
    out
}

/// Says so when a file `binary` was built from changed since (`cargo test -p rkube-e2e`
/// alone does not rebuild it): the tests then run older code.
fn warn_if_stale(binary: &Path) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(binary) else {
        return;
    };
    if let Some(newer) = built_from(binary)
        .into_iter()
        .find(|d| modified(d).is_some_and(|t| t > built))
    {
        eprintln!(
            "WARNING: {} is older than {}; rebuild it with `cargo build` (cargo \
             test --workspace does) to test the current code",
            binary.display(),
            newer.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, "").unwrap();
        std::fs::write(
            dir.path().join("tool.d"),
            format!(
                "{}: /src/a.rs /src/with\\ space.rs \\\n /src/b.rs\n",
                bin.display()
            ),
        )
        .unwrap();
        assert_eq!(
            built_from(&bin),
            [
                PathBuf::from("/src/a.rs"),
                PathBuf::from("/src/with space.rs"),
                PathBuf::from("/src/b.rs"),
            ]
        );
        assert!(built_from(&dir.path().join("missing")).is_empty());
    }
}

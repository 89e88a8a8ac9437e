//! Test support: runs rkubectl (the built binary) and the real kubectl against the same
//! in-process API server, and compares their outputs with ages normalised.

#![allow(dead_code)]

use std::process::{Command, Output, Stdio};

#[allow(unused_imports)] // not every test uses every name
pub use rkube_testkit::apiserver::{Backend, Identity, TestServer};

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            ok: o.status.success(),
        }
    }
}

/// Starts an API server on the embedded store.
pub async fn server() -> TestServer {
    TestServer::start(Backend::Embedded).await
}

/// Runs rkubectl with the server's kubeconfig.
pub fn rk_with(s: &TestServer, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkubectl"));
    cmd.arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", s.dir.path())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run rkubectl");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap().into()
}

/// Runs rkubectl.
pub fn rk(s: &TestServer, args: &[&str]) -> Run {
    rk_with(s, args, None, &[])
}

/// Runs rkubectl, asserts success, returns stdout.
pub fn rk_ok(s: &TestServer, args: &[&str]) -> String {
    let r = rk(s, args);
    assert!(
        r.ok,
        "rkubectl {} failed:\n{}{}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    r.stdout
}

/// Runs rkubectl, asserts failure, returns stderr.
pub fn rk_err(s: &TestServer, args: &[&str]) -> String {
    let r = rk(s, args);
    assert!(
        !r.ok,
        "rkubectl {} should fail:\n{}",
        args.join(" "),
        r.stdout
    );
    r.stderr
}

/// Runs the real kubectl.
pub fn kc(s: &TestServer, args: &[&str]) -> Run {
    s.kubectl(args).into()
}

/// Ages (`5s`, `3m20s`, `2d`) replaced by `#` of the same length, so runs a second apart
/// compare equal while the alignment is still checked.
pub fn normalise(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let mut out = String::new();
            let mut token = String::new();
            let flush = |token: &mut String, out: &mut String| {
                if is_age(token) {
                    out.push_str(&"#".repeat(token.len()));
                } else {
                    out.push_str(token);
                }
                token.clear();
            };
            for c in line.chars() {
                if c == ' ' {
                    flush(&mut token, &mut out);
                    out.push(c);
                } else {
                    token.push(c);
                }
            }
            flush(&mut token, &mut out);
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_age(t: &str) -> bool {
    if t.is_empty() || t == "<invalid>" {
        return t == "<invalid>";
    }
    let mut rest = t;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        let unit = rest[digits..].chars().next();
        if !matches!(unit, Some('s' | 'm' | 'h' | 'd' | 'y')) {
            return false;
        }
        rest = &rest[digits + 1..];
        parts += 1;
    }
    parts <= 2
}

/// Runs the same command with rkubectl and kubectl and asserts equal stdout, stderr and exit
/// status (ages normalised; retried a few times when an age ticks between the runs).
/// Returns rkubectl's result.
pub fn golden(s: &TestServer, args: &[&str]) -> Run {
    golden_with(s, args, |r| r)
}

/// Like [`golden`], with kubectl's output adapted first (e.g. `kubectl` → `rkubectl` in hints).
pub fn golden_with(s: &TestServer, args: &[&str], adapt: impl Fn(Run) -> Run) -> Run {
    let mut last = None;
    for _ in 0..5 {
        let mine = rk(s, args);
        let theirs = adapt(kc(s, args));
        let n = |r: &Run| Run {
            stdout: normalise(&r.stdout),
            stderr: normalise(&r.stderr),
            ok: r.ok,
        };
        if n(&mine) == n(&theirs) {
            return mine;
        }
        last = Some((mine, theirs));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let (mine, theirs) = last.unwrap();
    panic!(
        "rkubectl and kubectl differ for `{}`:\n--- rkubectl (ok={}) stdout:\n{}\n--- kubectl (ok={}) stdout:\n{}\n--- rkubectl stderr:\n{}\n--- kubectl stderr:\n{}",
        args.join(" "),
        mine.ok,
        mine.stdout,
        theirs.ok,
        theirs.stdout,
        mine.stderr,
        theirs.stderr
    );
}

/// A running rkubectl whose stdout is read line by line as it prints (for commands that
/// follow the cluster: `rollout status`, `get -w`, `wait`).
pub struct Spawned {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    what: String,
}

impl Spawned {
    /// Starts rkubectl with the server's kubeconfig.
    pub fn start(s: &TestServer, args: &[&str]) -> Spawned {
        Spawned::program(s, env!("CARGO_BIN_EXE_rkubectl"), args)
    }

    /// Starts the real kubectl with the server's kubeconfig.
    pub fn kubectl(s: &TestServer, args: &[&str]) -> Spawned {
        Spawned::program(s, "kubectl", args)
    }

    fn program(s: &TestServer, program: &str, args: &[&str]) -> Spawned {
        let mut child = Command::new(program)
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", s.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run rkubectl");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Spawned {
            child,
            lines,
            what: format!("{program} {}", args.join(" ")),
        }
    }

    /// The next line of stdout (waiting up to a minute for it).
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("`{}` printed no further line within a minute", self.what))
    }

    /// Waits for the process to end (up to a minute); its exit status and the rest of its
    /// stdout and stderr.
    pub fn finish(mut self) -> Run {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("rkubectl did not end within a minute");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            e.read_to_string(&mut stderr).unwrap();
        }
        let mut stdout = String::new();
        while let Ok(l) = self.lines.recv_timeout(std::time::Duration::from_secs(5)) {
            stdout.push_str(&l);
            stdout.push('\n');
        }
        Run {
            stdout,
            stderr,
            ok: status.success(),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a file in the server's directory and returns its path.
pub fn write(s: &TestServer, name: &str, text: &str) -> String {
    let p = s.dir.path().join(name);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn ages_are_normalised() {
    assert_eq!(
        normalise("web   5s\nx 3m20s 10d foo1s"),
        "web   ##\nx ##### ### foo1s"
    );
}

//! A real etcd server process for tests: started on free loopback ports in its own data
//! directory, killed with SIGKILL or stopped with SIGTERM, restarted on the same data.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary: `$ETCD_BIN`, else `etcd` on the PATH.
pub fn etcd_binary() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".into())
}

/// A running (or stopped) etcd server owned by a test. Dropping it kills the process.
pub struct EtcdServer {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl EtcdServer {
    /// Starts etcd in a fresh temporary directory and waits until it is healthy.
    /// Panics with a clear message if the etcd binary is missing (run `scripts/setup`).
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir for etcd");
        let mut server = Self {
            dir: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
            client_port: 0,
            peer_port: 0,
            child: None,
        };
        // A free port can be taken by another process between our probe and etcd's bind
        // (many tests start servers at once): then etcd exits at once, and new ports are tried.
        for attempt in 1.. {
            server.client_port = crate::free_port();
            server.peer_port = crate::free_port();
            match server.try_spawn() {
                Ok(()) => break,
                Err(log) if log.contains("address already in use") && attempt < 5 => {
                    let _ = std::fs::remove_dir_all(server.dir.join("data"));
                    let _ = std::fs::remove_file(server.dir.join("etcd.log"));
                }
                Err(log) => panic!("etcd exited before becoming healthy:\n{log}"),
            }
        }
        server
    }

    /// The client URL, e.g. `http://127.0.0.1:23790`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The etcd process's id (`None` once it is stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn spawn_process(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .expect("etcd log file");
        let child = Command::new(etcd_binary())
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start etcd ({}): {e}; install it with scripts/setup",
                    etcd_binary()
                )
            });
        self.child = Some(child);
    }

    /// Starts etcd; its log if it exited before becoming healthy.
    fn try_spawn(&mut self) -> Result<(), String> {
        self.spawn_process();
        self.wait_healthy()
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("etcd exited before becoming healthy:\n{log}");
        }
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.healthy() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
                self.child = None;
                return Err(format!("exit {status}\n{log}"));
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `/health` answers healthy.
    pub fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }

    /// Kills the process with SIGKILL (a crash) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same data directory and ports.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts the process again after `kill` or `stop`.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "etcd is still running");
        self.spawn();
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

//! The network namespace the dataplane lives in. In production that is the proxy's own; tests
//! (and an all-in-one node simulator) point it at a namespace such as `/run/netns/node1` while the
//! API connection stays in the process's namespace. Commands (`nft`, `ip`) and sockets are created
//! on a short-lived thread that has entered the namespace: children and sockets inherit it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Errors entering a namespace or running a command in it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namespace file could not be opened or entered.
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// The namespace path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A command could not be started or waited for.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: io::Error,
    },
    /// The helper thread panicked.
    #[error("namespace helper thread panicked")]
    Panicked,
}

/// A network namespace to work in: `None` is the calling process's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Netns {
    path: Option<PathBuf>,
}

impl Netns {
    /// The process's own namespace.
    pub fn current() -> Self {
        Self { path: None }
    }

    /// The namespace at `path` (e.g. `/run/netns/NAME`).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
        }
    }

    /// The namespace `ip netns add NAME` created.
    pub fn named(name: &str) -> Self {
        Self::at(Path::new("/run/netns").join(name))
    }

    /// The namespace path, if not the process's own.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` inside the namespace (on a helper thread when it is not the current one).
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R, Error> {
        let Some(path) = &self.path else {
            return Ok(f());
        };
        let file = File::open(path).map_err(|source| Error::Enter {
            path: path.clone(),
            source,
        })?;
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    Error::Enter {
                        path: path.clone(),
                        source: io::Error::from(e),
                    }
                })?;
                Ok(f())
            })
            .join()
            .map_err(|_| Error::Panicked)?
        })
    }

    /// Runs a program in the namespace with `stdin` as its input and collects its output.
    pub fn command(&self, program: &str, args: &[&str], stdin: &[u8]) -> Result<Output, Error> {
        let spawn_err = |source| Error::Spawn {
            program: program.to_string(),
            source,
        };
        self.run(|| {
            let mut child = Command::new(program)
                .args(args)
                .stdin(if stdin.is_empty() {
                    Stdio::null()
                } else {
                    Stdio::piped()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut input) = child.stdin.take() {
                // A writer thread: nft may start answering before it has read all its input.
                let data = stdin.to_vec();
                let writer = std::thread::spawn(move || {
                    use std::io::Write;
                    input.write_all(&data)
                });
                let out = child.wait_with_output()?;
                writer
                    .join()
                    .map_err(|_| io::Error::other("stdin writer panicked"))??;
                return Ok(out);
            }
            child.wait_with_output()
        })?
        .map_err(spawn_err)
    }

    /// Binds a TCP listener in the namespace.
    pub fn tcp_listener(&self, addr: std::net::SocketAddr) -> io::Result<tokio::net::TcpListener> {
        let l = self.run(|| {
            let sock = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            sock.set_reuse_address(true)?;
            sock.set_nonblocking(true)?;
            sock.bind(&addr.into())?;
            sock.listen(1024)?;
            Ok::<_, io::Error>(std::net::TcpListener::from(sock))
        });
        tokio::net::TcpListener::from_std(flatten(l)?)
    }

    /// An unconnected TCP socket in the namespace, for connecting out from it.
    pub fn tcp_socket(&self) -> io::Result<tokio::net::TcpSocket> {
        let s = self.run(|| {
            let sock = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            sock.set_nonblocking(true)?;
            Ok::<_, io::Error>(std::net::TcpStream::from(sock))
        });
        Ok(tokio::net::TcpSocket::from_std_stream(flatten(s)?))
    }

    /// Binds a UDP socket in the namespace.
    pub fn udp_socket(&self, addr: std::net::SocketAddr) -> io::Result<tokio::net::UdpSocket> {
        let s = self.run(|| {
            let sock = std::net::UdpSocket::bind(addr)?;
            sock.set_nonblocking(true)?;
            Ok::<_, io::Error>(sock)
        });
        tokio::net::UdpSocket::from_std(flatten(s)?)
    }
}

fn flatten<T>(r: Result<io::Result<T>, Error>) -> io::Result<T> {
    match r {
        Ok(inner) => inner,
        Err(e) => Err(io::Error::other(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_namespace_runs_inline_and_commands_get_stdin() {
        let ns = Netns::current();
        assert_eq!(ns.run(|| 7).unwrap(), 7);
        let out = ns.command("cat", &[], b"hello").unwrap();
        assert_eq!(out.stdout, b"hello");
        assert!(matches!(
            ns.command("/nonexistent/program", &[], b""),
            Err(Error::Spawn { .. })
        ));
    }

    #[test]
    fn a_missing_namespace_is_an_error() {
        let ns = Netns::named("rkube-proxy-test-does-not-exist");
        assert!(matches!(ns.run(|| ()), Err(Error::Enter { .. })));
    }
}

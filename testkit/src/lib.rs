//! Test support shared by rkube's test suites: free loopback ports and real etcd server
//! processes that tests start, kill (SIGKILL), and restart on the same data directory.

#[cfg(feature = "apiserver")]
pub mod apiserver;
pub mod etcd;

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

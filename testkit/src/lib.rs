//! Test support shared by rkube's test suites (and benchmarks): free loopback ports, real etcd
//! server processes that tests start, kill (SIGKILL), and restart on the same data directory,
//! an in-process API server (feature `apiserver`), in-cluster clients run in pods (feature
//! `in-cluster`), network namespaces, mounts, processes and cgroups made on the host and their
//! teardown (feature `host`), and real nodes — a kubelet with its managed containerd in a
//! network namespace of their own (feature `node`).

#[cfg(feature = "apiserver")]
pub mod apiserver;
pub mod etcd;
#[cfg(feature = "host")]
pub mod host;
#[cfg(feature = "in-cluster")]
pub mod in_cluster;
#[cfg(feature = "node")]
pub mod node;

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

//! rkube, all in one (like k3s): `rkube server` runs the API server (embedded store by
//! default), the scheduler, the controller manager, the cluster DNS and — unless disabled — a
//! local agent (kubelet with a managed containerd, and the proxy) as tasks of one process,
//! each component with its own identity from the cluster CA. It writes
//! `DATA/admin.kubeconfig` and `DATA/node-token`, applies the manifests of `DATA/manifests/`
//! at start and on change, and stops cleanly on SIGTERM or Ctrl-C; a restart picks up the
//! stored state and adopts the running pods.
//!
//! `rkube agent --server URL --token TOKEN` makes another machine a node of that cluster: it
//! checks the server against the CA the token names ([`trust`]), turns the token into
//! certificates ([`join`]) and runs the same agent as the server's ([`agent`]); pods of
//! different nodes reach each other over host-gw routes the proxies keep. `rkube token`
//! creates, lists and revokes join tokens ([`token`]).
//!
//! [`run`] takes a [`ServerConfig`] (see [`cli`] for the flags) and a shutdown future,
//! [`agent::run`] an [`AgentConfig`]; the `rkube` binary is a thin wrapper around them.

pub mod agent;
pub mod cli;
pub mod config;
pub mod dns;
pub mod identity;
pub mod join;
pub mod manifests;
pub mod server;
pub mod supervise;
pub mod token;
pub mod trust;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use config::{AgentConfig, Component, NodeConfig, ServerConfig};
pub use server::run;

/// A component's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The cluster CA could not be loaded or created.
    #[error(transparent)]
    Pki(#[from] rkube_apiserver::pki::PkiError),
    /// A component identity could not be written.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// A join token could not be made, read or used.
    #[error(transparent)]
    Token(#[from] token::TokenError),
    /// The agent could not join.
    #[error("joining {server}: {source}")]
    Join {
        /// The server's URL.
        server: String,
        /// The cause.
        source: join::JoinError,
    },
    /// The built-in add-ons could not be written.
    #[error(transparent)]
    Manifests(#[from] manifests::ManifestError),
    /// A kubeconfig the server wrote is unusable.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The API server's address is taken or not local.
    #[error(
        "cannot listen on {addr}: {source} (is another rkube server running? see --https-listen-port)"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The API server failed.
    #[error("the API server failed: {0}")]
    ApiServer(#[source] rkube_apiserver::server::ServerError),
    /// The API server never answered `/readyz`.
    #[error("the API server was not ready within {limit:?}: {last}")]
    NotReady {
        /// The time allowed.
        limit: Duration,
        /// The last error.
        last: String,
    },
    /// A component failed.
    #[error("{name} failed: {source}")]
    Component {
        /// The component.
        name: &'static str,
        /// Its error.
        source: BoxError,
    },
    /// A component ended by itself.
    #[error("{0} stopped unexpectedly")]
    Stopped(&'static str),
    /// A component panicked.
    #[error("{name} panicked: {message}")]
    Panic {
        /// The component.
        name: &'static str,
        /// The panic.
        message: String,
    },
}

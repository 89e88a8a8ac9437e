//! Starting the API server: storage (embedded or etcd) behind the watch cache, periodic
//! compaction, the registry, first-start state, the admin kubeconfig, and the HTTP server with
//! graceful shutdown (watches end cleanly).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::alloc::Allocators;
use crate::http::{AppState, metrics::Metrics, router};
use crate::registry::{Api, Settings, builtin_kinds};
use crate::resources;
use crate::storage::cache::{CacheConfig, WatchCache};
use crate::storage::embedded::{EmbeddedConfig, EmbeddedStorage};
use crate::storage::etcd::{EtcdConfig, EtcdStorage};
use crate::storage::{Storage, StorageError, compactor};

/// API server settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the embedded store and `admin.kubeconfig` live.
    pub data_dir: PathBuf,
    /// etcd client URLs; empty for the embedded store.
    pub etcd_servers: Vec<String>,
    /// Cluster settings (service ranges, toleration seconds).
    pub settings: Settings,
    /// How often history is compacted (history kept: one to two intervals).
    pub compaction_interval: Duration,
}

impl Config {
    /// Defaults with the given data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            etcd_servers: Vec::new(),
            settings: Settings::default(),
            compaction_interval: Duration::from_secs(300),
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Storage could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The data directory or kubeconfig could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// First-start state could not be created.
    #[error("bootstrap failed: {0}")]
    Bootstrap(#[from] crate::error::ApiError),
}

/// Opens the configured backend.
pub async fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, ServerError> {
    if config.etcd_servers.is_empty() {
        let path = config.data_dir.join("rkube.db");
        Ok(Arc::new(EmbeddedStorage::open(EmbeddedConfig::new(path))?))
    } else {
        Ok(Arc::new(
            EtcdStorage::connect(EtcdConfig::new(config.etcd_servers.clone())).await?,
        ))
    }
}

/// Runs the API server on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::Io {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let backend = open_storage(&config).await?;
    let mut prefixes: Vec<String> = resources::ALL.iter().map(|d| d.prefix()).collect();
    // (events.k8s.io events share the core events' prefix.)
    prefixes.sort();
    prefixes.dedup();
    let cache = Arc::new(WatchCache::new(
        backend.clone(),
        prefixes,
        CacheConfig::default(),
    ));
    let store: Arc<dyn Storage> = cache.clone();
    let compactor = compactor::spawn(backend.clone(), config.compaction_interval);
    let api = Arc::new(Api {
        store: store.clone(),
        kinds: builtin_kinds(),
        settings: config.settings.clone(),
        alloc: Allocators::new(
            store.clone(),
            config.settings.service_cidr,
            config.settings.node_ports.clone(),
        ),
        deleted_namespaces: Default::default(),
    });
    crate::bootstrap::ensure_system_state(&api).await?;
    let sa_controller = crate::bootstrap::spawn_service_account_controller(api.clone());

    let addr = listener.local_addr().map_err(|source| ServerError::Io {
        path: "listener".into(),
        source,
    })?;
    let server_url = format!("http://{addr}");
    let kubeconfig = config.data_dir.join("admin.kubeconfig");
    crate::kubeconfig::write(&kubeconfig, &server_url).map_err(|source| ServerError::Io {
        path: kubeconfig.display().to_string(),
        source,
    })?;
    tracing::info!(%server_url, kubeconfig = %kubeconfig.display(), "rkube-apiserver serving");

    let cancel = CancellationToken::new();
    let state = Arc::new(AppState {
        api,
        shutdown: cancel.clone(),
        metrics: Metrics::default(),
        server_address: addr.to_string(),
    });
    let app = router(state);
    let stop = cancel.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: closing watches");
            stop.cancel();
        })
        .await;
    // Stop everything that holds the store, so it is closed when run returns.
    for task in [sa_controller, compactor] {
        task.abort();
        let _ = task.await;
    }
    cache.close().await;
    drop(store);
    drop(cache);
    drop(backend);
    result.map_err(|source| ServerError::Io {
        path: addr.to_string(),
        source,
    })
}

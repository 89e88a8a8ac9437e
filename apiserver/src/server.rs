//! Starting the API server: the PKI, storage (embedded or etcd, Secrets encrypted) behind the
//! watch cache, periodic compaction, the registry, first-start state (namespaces, RBAC
//! defaults), the admin kubeconfig, and the HTTPS server (rustls; HTTP/1.1 and h2 by ALPN;
//! client certificates optional) with graceful shutdown (watches end cleanly).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditConfig, AuditLog};
use crate::auth::{Authenticator, Authorizer, PeerIdentity, UserInfo};
use crate::encryption::{EncryptedStorage, EncryptionConfig};
use crate::http::ConnInfo;
use crate::pki::{Pki, ServingNames};

use crate::alloc::Allocators;
use crate::http::{AppState, metrics::Metrics, router};
use crate::registry::{Api, Settings, builtin_kinds};
use crate::resources;
use crate::storage::cache::{CacheConfig, WatchCache};
use crate::storage::embedded::{EmbeddedConfig, EmbeddedStorage};
use crate::storage::etcd::{EtcdConfig, EtcdStorage};
use crate::storage::{Storage, StorageError, compactor};

/// The kubeconfigs written next to `admin.kubeconfig` at every start: (file stem, user).
pub const COMPONENT_KUBECONFIGS: &[(&str, &str)] = &[
    ("scheduler", "system:kube-scheduler"),
    ("controller-manager", "system:kube-controller-manager"),
    ("kube-proxy", "system:kube-proxy"),
];

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
    /// How long an Event lives after its last write (`--event-ttl`).
    pub event_ttl: Duration,
    /// Extra names and IPs of the serving certificate (`--tls-san`).
    pub tls_sans: Vec<String>,
    /// The static token file (`--token-auth-file`).
    pub token_auth_file: Option<PathBuf>,
    /// The EncryptionConfiguration file; `None`: `DATA/encryption-config.yaml`, generated.
    pub encryption_provider_config: Option<PathBuf>,
    /// The audit log, if any.
    pub audit: Option<AuditConfig>,
    /// Requests served at once (watches excluded) before 429 (`--max-requests-inflight`).
    pub max_requests_inflight: usize,
    /// Watches one user may hold open before 429 (`--max-watches-per-user`).
    pub max_watches_per_user: usize,
    /// How kubelets are reached (`--kubelet-client-certificate`, `--kubelet-client-key`,
    /// `--kubelet-certificate-authority`).
    pub kubelet_client: crate::kubelet::KubeletClientConfig,
    /// The address pods and other nodes reach this server at (`--advertise-address`): the
    /// `kubernetes` Service's endpoint. `None`: the listener's address unless it is loopback
    /// or unspecified.
    pub advertise_address: Option<std::net::IpAddr>,
}

impl Config {
    /// Defaults with the given data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            etcd_servers: Vec::new(),
            settings: Settings::default(),
            compaction_interval: Duration::from_secs(300),
            event_ttl: crate::event_ttl::DEFAULT_TTL,
            tls_sans: Vec::new(),
            token_auth_file: None,
            encryption_provider_config: None,
            audit: None,
            max_requests_inflight: 400,
            max_watches_per_user: 1000,
            kubelet_client: Default::default(),
            advertise_address: None,
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
    /// The PKI could not be created or loaded.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] rkube_machinery::https::HttpsError),
    /// The token file is unusable.
    #[error(transparent)]
    Tokens(#[from] crate::auth::tokens::TokenFileError),
    /// The ServiceAccount signing key is unusable.
    #[error(transparent)]
    ServiceAccountKey(#[from] crate::auth::serviceaccount::SaTokenError),
    /// The encryption configuration is unusable.
    #[error(transparent)]
    Encryption(#[from] crate::encryption::EncryptionError),
    /// The audit log cannot be written.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The client of kubelets cannot be set up.
    #[error(transparent)]
    KubeletClient(#[from] crate::kubelet::KubeletClientError),
}

/// Opens the configured backend, with the metrics that report on it.
pub async fn open_storage(
    config: &Config,
) -> Result<(Arc<dyn Storage>, crate::storage::metered::StoreMetrics), ServerError> {
    if config.etcd_servers.is_empty() {
        let path = config.data_dir.join("rkube.db");
        let store = EmbeddedStorage::open(EmbeddedConfig::new(path))?;
        let metrics = crate::storage::metered::StoreMetrics::new(Some(store.commit_stats()));
        Ok((Arc::new(store), metrics))
    } else {
        Ok((
            Arc::new(EtcdStorage::connect(EtcdConfig::new(config.etcd_servers.clone())).await?),
            crate::storage::metered::StoreMetrics::default(),
        ))
    }
}

/// The address clients reach a listener at (`0.0.0.0`/`::` become loopback).
fn client_address(addr: SocketAddr) -> String {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => format!("127.0.0.1:{}", addr.port()),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => format!("[::1]:{}", addr.port()),
        _ => addr.to_string(),
    }
}

/// The rustls server configuration: our serving certificate followed by the cluster CA (the
/// usual serving chain; a joining agent checks that CA against the hash its token names before
/// it trusts the server), client certificates of our CA accepted (not required), h2 and
/// HTTP/1.1.
fn tls_config(pki: &Pki, names: &ServingNames) -> Result<rustls::ServerConfig, ServerError> {
    use rkube_machinery::https;
    let serving = pki.serving(names)?;
    let mut chain = https::parse_certs(&serving.cert_pem, "apiserver.crt")?;
    let key = https::parse_key(&serving.key_pem, "apiserver.key")?;
    let ca = https::parse_certs(pki.ca_pem(), "ca.crt")?;
    chain.extend(ca.iter().cloned());
    Ok(https::server_config(chain, key, Some(&ca))?)
}

/// The user a verified client certificate names (CN = user, O = groups).
fn peer_user(tls: &rustls::ServerConnection) -> Option<Arc<UserInfo>> {
    let der = tls.peer_certificates()?.first()?;
    match crate::pki::subject_of(der) {
        Ok(s) if !s.common_name.is_empty() => Some(Arc::new(UserInfo::authenticated(
            s.common_name,
            "",
            s.organizations,
        ))),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable client certificate");
            None
        }
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
    let addr = listener.local_addr().map_err(|source| ServerError::Io {
        path: "listener".into(),
        source,
    })?;
    let pki = Pki::load_or_create(&config.data_dir.join("pki"))?;
    let service_ip = config
        .settings
        .service_cidr
        .hosts()
        .next()
        .map(std::net::IpAddr::V4);
    let advertise = crate::master_service::advertise_address(config.advertise_address, addr);
    let mut sans = config.tls_sans.clone();
    sans.extend(advertise.map(|a| a.ip().to_string()));
    let names = ServingNames::standard(addr.ip(), service_ip, &sans);
    let tls = Arc::new(tls_config(&pki, &names)?);
    let admin = pki.admin()?;
    let kubelet = crate::kubelet::KubeletClient::new(&config.kubelet_client, &pki)?;
    let tokens = match &config.token_auth_file {
        Some(p) => crate::auth::tokens::TokenFile::load(p)?,
        None => Default::default(),
    };
    let issuer = crate::auth::serviceaccount::TokenIssuer::new(&pki.service_account_key()?)?;
    let encryption = Arc::new(match &config.encryption_provider_config {
        Some(p) => EncryptionConfig::load(p)?,
        None => EncryptionConfig::load_or_generate(&config.data_dir)?,
    });
    let audit = config.audit.clone().map(AuditLog::start).transpose()?;

    let (opened, store_metrics) = open_storage(&config).await?;
    let store_metrics = Arc::new(store_metrics);
    let backend: Arc<dyn Storage> = Arc::new(crate::storage::metered::MeteredStorage::new(
        opened,
        store_metrics.clone(),
    ));
    let encrypted: Arc<dyn Storage> = Arc::new(EncryptedStorage::new(backend.clone(), encryption));
    let mut prefixes: Vec<String> = resources::ALL
        .iter()
        .filter(|d| !d.create_only)
        .map(|d| d.prefix())
        .collect();
    // (events.k8s.io events share the core events' prefix.) Events are not cached, as in
    // kube-apiserver (its default --watch-cache-sizes disables them): many, written once or
    // twice, read and watched rarely; lists and watches of them go to the store.
    prefixes.retain(|p| p != crate::event_ttl::PREFIX);
    prefixes.sort();
    prefixes.dedup();
    let cache = Arc::new(WatchCache::new(
        encrypted.clone(),
        prefixes,
        CacheConfig::default(),
    ));
    let store: Arc<dyn Storage> = cache.clone();
    let compactor = compactor::spawn(backend.clone(), config.compaction_interval);
    let event_expiry = crate::event_ttl::spawn(store.clone(), config.event_ttl);
    let rbac = crate::auth::rbac::RbacCache::new();
    let rbac_task = rbac.spawn(store.clone());
    let node_graph = crate::auth::node::NodeGraph::new();
    let node_graph_task = node_graph.spawn(store.clone());
    let api = Arc::new(Api {
        store: store.clone(),
        kinds: builtin_kinds(),
        settings: config.settings.clone(),
        alloc: Allocators::new(
            store.clone(),
            config.settings.service_cidr,
            config.settings.node_ports.clone(),
        ),
        rbac: rbac.clone(),
        node_graph,
        deleted_namespaces: Default::default(),
    });
    crate::bootstrap::ensure_system_state(&api).await?;
    crate::auth::defaults::ensure(&api).await?;
    let ns_controller = crate::bootstrap::spawn_namespace_defaults_controller(
        api.clone(),
        pki.ca_pem().to_string(),
    );
    let master_service = crate::master_service::spawn(api.clone(), advertise, addr.port());

    let client_addr = client_address(addr);
    let server_url = format!("https://{client_addr}");
    let kubeconfig = config.data_dir.join("admin.kubeconfig");
    let text = crate::kubeconfig::render(
        &server_url,
        pki.ca_pem(),
        "admin",
        &crate::kubeconfig::Credentials::Certificate {
            cert_pem: admin.cert_pem.clone(),
            key_pem: admin.key_pem.clone(),
        },
    );
    crate::kubeconfig::write_text(&kubeconfig, &text).map_err(|source| ServerError::Io {
        path: kubeconfig.display().to_string(),
        source,
    })?;
    // As kubeadm writes scheduler.conf, controller-manager.conf…: a kubeconfig per component
    // identity, which its default roles authorize.
    for (file, user) in COMPONENT_KUBECONFIGS {
        let cert = pki.client_stored(file, user, &[])?;
        let path = config.data_dir.join(format!("{file}.kubeconfig"));
        let text = crate::kubeconfig::render(
            &server_url,
            pki.ca_pem(),
            user,
            &crate::kubeconfig::Credentials::Certificate {
                cert_pem: cert.cert_pem,
                key_pem: cert.key_pem,
            },
        );
        crate::kubeconfig::write_text(&path, &text).map_err(|source| ServerError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    tracing::info!(%server_url, kubeconfig = %kubeconfig.display(), "rkube-apiserver serving");

    let cancel = CancellationToken::new();
    let state = Arc::new(AppState {
        api,
        shutdown: cancel.clone(),
        metrics: Metrics::new(store_metrics, Some(cache.clone())),
        server_address: client_addr,
        authn: Authenticator {
            tokens,
            service_accounts: issuer,
        },
        authz: Authorizer { rbac },
        audit,
        limits: Arc::new(crate::http::guard::Limits::new(
            config.max_requests_inflight,
            config.max_watches_per_user,
        )),
        kubelet,
    });
    let app = router(state);
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: closing watches");
        stop.cancel();
    });
    rkube_machinery::https::serve(
        listener,
        tls,
        app,
        cancel,
        Duration::from_secs(15),
        |tls: &rustls::ServerConnection, remote| {
            let mut ext = axum::http::Extensions::new();
            ext.insert(PeerIdentity(peer_user(tls)));
            ext.insert(ConnInfo { remote });
            ext
        },
    )
    .await;
    // Stop everything that holds the store, so it is closed when run returns.
    for task in [
        ns_controller,
        master_service,
        rbac_task,
        node_graph_task,
        compactor,
        event_expiry,
    ] {
        task.abort();
        let _ = task.await;
    }
    cache.close().await;
    drop(store);
    drop(cache);
    drop(encrypted);
    release(backend).await;
    Ok(())
}

/// Closes the store: waits (a bounded time) until nothing but `backend` holds it, so that its
/// last reference is dropped here and it is closed (an embedded store's file released, an etcd
/// client's connections ended) when `run` returns. What may still hold it for a moment after
/// the server stopped: a connection's or an HTTP/2 stream's task that has finished its work
/// but not yet been dropped.
async fn release(backend: Arc<dyn Storage>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&backend) > 1 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                holders = Arc::strong_count(&backend) - 1,
                "the store is still in use 10 s after the server stopped; leaving it open"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(backend);
}

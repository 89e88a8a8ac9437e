//! The API server's client of kubelets (`pods/log`, `nodes/proxy`, and the upgraded streams of
//! `pods/exec`, `pods/attach`, `pods/portforward`): HTTPS to the address and
//! port a Node reports, presenting the API server's kubelet client certificate
//! (`--kubelet-client-certificate`/`--kubelet-client-key`; by default
//! `kube-apiserver-kubelet-client`, issued by the cluster CA and kept in
//! `DATA/pki/apiserver-kubelet-client.{crt,key}`, which the default RBAC binds to
//! `system:kubelet-api-admin`) and verifying the kubelet's serving certificate against
//! `--kubelet-certificate-authority` when given — without it, as Kubernetes' API server, it
//! does not (kubelets serve self-signed certificates by default).

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use k8s_openapi::api::core::v1::Node;
use rkube_machinery::https::{self, HttpsError, ServerTrust};

use crate::error::ApiError;
use crate::pki::{Pki, PkiError};

/// The user of the default kubelet client certificate (bound to `system:kubelet-api-admin`).
pub const CLIENT_USER: &str = "kube-apiserver-kubelet-client";
/// The file stem of the default kubelet client certificate under `DATA/pki/`.
const CLIENT_FILE: &str = "apiserver-kubelet-client";
/// What to check when a kubelet refuses the API server's requests.
pub const REFUSED_HINT: &str = "check that the kubelet's --client-ca-file is the CA of the \
     API server's kubelet client certificate and that its user is granted \
     system:kubelet-api-admin";
/// How long a kubelet has to answer (the response headers; bodies may stream for longer).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How the API server reaches kubelets (Kubernetes' flags of the same names).
#[derive(Clone, Debug, Default)]
pub struct KubeletClientConfig {
    /// `--kubelet-client-certificate`: the client certificate (PEM) presented to kubelets;
    /// default: `kube-apiserver-kubelet-client` from the cluster CA.
    pub client_certificate: Option<PathBuf>,
    /// `--kubelet-client-key`: its private key.
    pub client_key: Option<PathBuf>,
    /// `--kubelet-certificate-authority`: the CA kubelets' serving certificates must verify
    /// against; without it they are not verified.
    pub certificate_authority: Option<PathBuf>,
}

/// Why the kubelet client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KubeletClientError {
    /// The default client certificate could not be issued.
    #[error("the kubelet client certificate: {0}")]
    Pki(#[from] PkiError),
    /// A certificate, key or CA file is unusable.
    #[error("kubelet client TLS: {0}")]
    Https(#[from] HttpsError),
    /// Only one of the certificate and its key was given.
    #[error("--kubelet-client-certificate and --kubelet-client-key must be given together")]
    HalfIdentity,
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Body,
>;

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// A connection pool to kubelets, with the API server's client identity.
pub struct KubeletClient {
    http: HttpsClient,
    /// Single connections for upgraded streams: HTTP/1.1 only (an upgrade has no h2 form).
    http1: Connector,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

impl KubeletClient {
    /// The client per `config`, the default identity issued from `pki` when none is given.
    pub fn new(config: &KubeletClientConfig, pki: &Pki) -> Result<Self, KubeletClientError> {
        let identity = match (&config.client_certificate, &config.client_key) {
            (Some(cert), Some(key)) => (https::read_certs(cert)?, https::read_key(key)?),
            (None, None) => {
                let issued = pki.client_stored(CLIENT_FILE, CLIENT_USER, &[])?;
                (
                    https::parse_certs(&issued.cert_pem, CLIENT_FILE)?,
                    https::parse_key(&issued.key_pem, CLIENT_FILE)?,
                )
            }
            _ => return Err(KubeletClientError::HalfIdentity),
        };
        let trust = match &config.certificate_authority {
            Some(ca) => ServerTrust::Roots(https::read_certs(ca)?),
            None => ServerTrust::InsecureSkipVerify,
        };
        let tls = https::client_config(&trust, Some(identity))?;
        let http1 = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_only()
            .enable_http1()
            .build();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Self { http, http1 })
    }

    /// Relays an upgrade request (`method path_and_query` with the client's upgrade headers)
    /// to the kubelet of `node` over a new HTTP/1.1 connection: its answer, and on 101 the
    /// two connections joined (see [`rkube_machinery::https::upgrade`]).
    pub async fn relay_upgrade(
        &self,
        node: &Node,
        method: axum::http::Method,
        path_and_query: &str,
        headers: &axum::http::HeaderMap,
        client: hyper::upgrade::OnUpgrade,
    ) -> Result<axum::http::Response<Body>, ApiError> {
        let (name, host, port, uri) = target(node, path_and_query)?;
        let reach = |e: String| {
            ApiError::internal(format!(
                "error trying to reach the kubelet on {name} ({host}:{port}): {e}"
            ))
        };
        let mut connector = self.http1.clone();
        let io = tokio::time::timeout(
            ANSWER_TIMEOUT,
            tower::Service::<axum::http::Uri>::call(&mut connector, uri),
        )
        .await
        .map_err(|_| reach(format!("no connection within {ANSWER_TIMEOUT:?}")))?
        .map_err(|e| reach(error_chain(e.as_ref())))?;
        tokio::time::timeout(
            ANSWER_TIMEOUT,
            rkube_machinery::https::upgrade::relay(
                io,
                method,
                &format!("{host}:{port}"),
                path_and_query,
                headers,
                &[],
                client,
            ),
        )
        .await
        .map_err(|_| reach(format!("no answer within {ANSWER_TIMEOUT:?}")))?
        .map_err(|e| reach(error_chain(&e)))
    }

    /// `GET <path_and_query>` (starting with `/`) on the kubelet of `node`: its response
    /// whatever the status; 500 when it cannot be reached or does not answer in time, as
    /// Kubernetes answers (not 503: clients would retry what a retry does not mend).
    pub async fn get(
        &self,
        node: &Node,
        path_and_query: &str,
    ) -> Result<axum::http::Response<hyper::body::Incoming>, ApiError> {
        let (name, host, port, uri) = target(node, path_and_query)?;
        tokio::time::timeout(ANSWER_TIMEOUT, self.http.get(uri))
            .await
            .map_err(|_| {
                ApiError::internal(format!(
                    "error trying to reach the kubelet on {name} ({host}:{port}): no answer \
                     within {ANSWER_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| {
                ApiError::internal(format!(
                    "error trying to reach the kubelet on {name} ({host}:{port}): {}",
                    error_chain(&e)
                ))
            })
    }
}

/// The kubelet of `node`: its name, host (bracketed if IPv6), port and the URL of
/// `path_and_query` there.
fn target(
    node: &Node,
    path_and_query: &str,
) -> Result<(String, String, i32, axum::http::Uri), ApiError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let (host, port) = kubelet_address(node).ok_or_else(|| {
        ApiError::bad_request(format!("node {name} has no address for its kubelet"))
    })?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("https://{host}:{port}{path_and_query}");
    let uri = url
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad kubelet URL {url}: {e}")))?;
    Ok((name, host, port, uri))
}

/// An error with its causes (hyper's own message is only "client error (Connect)").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// The kubelet address of a node: its InternalIP (else ExternalIP, else Hostname) and the
/// port of its `daemonEndpoints.kubeletEndpoint` (else 10250).
pub fn kubelet_address(node: &Node) -> Option<(String, i32)> {
    let status = node.status.as_ref()?;
    let addrs = status.addresses.as_ref()?;
    let pick = |t: &str| {
        addrs
            .iter()
            .find(|a| a.type_ == t)
            .map(|a| a.address.clone())
    };
    let host = pick("InternalIP")
        .or_else(|| pick("ExternalIP"))
        .or_else(|| pick("Hostname"))?;
    let port = status
        .daemon_endpoints
        .as_ref()
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| e.port)
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_identities() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "Hostname", "address": "h"},
                                     {"type": "InternalIP", "address": "10.0.0.2"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}}}
        }))
        .unwrap();
        assert_eq!(kubelet_address(&node), Some(("10.0.0.2".into(), 11250)));
        let bare: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n2"},
            "status": {"addresses": [{"type": "Hostname", "address": "h"}]}
        }))
        .unwrap();
        assert_eq!(kubelet_address(&bare), Some(("h".into(), 10250)));

        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        KubeletClient::new(&KubeletClientConfig::default(), &pki).unwrap();
        let issued = dir.path().join(format!("{CLIENT_FILE}.crt"));
        let pem = std::fs::read_to_string(&issued).unwrap();
        let subject = crate::pki::subject_of(&crate::pki::pem_der(&pem, &issued).unwrap()).unwrap();
        assert_eq!(subject.common_name, CLIENT_USER);
        let half = KubeletClientConfig {
            client_certificate: Some(issued.clone()),
            ..Default::default()
        };
        assert!(matches!(
            KubeletClient::new(&half, &pki),
            Err(KubeletClientError::HalfIdentity)
        ));
        let given = KubeletClientConfig {
            client_certificate: Some(issued),
            client_key: Some(dir.path().join(format!("{CLIENT_FILE}.key"))),
            certificate_authority: Some(dir.path().join("ca.crt")),
        };
        KubeletClient::new(&given, &pki).unwrap();
    }
}

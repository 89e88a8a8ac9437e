//! Joining a cluster with a join token: an agent's credentials, as Kubernetes' TLS
//! bootstrapping makes them.
//!
//! With the CA pinned by the token ([`crate::trust`]) and the bootstrap token as its bearer
//! credential, the agent generates keys (ECDSA P-256, never leaving the machine) and asks the
//! certificates API for
//! - the kubelet's client certificate (CN `system:node:<node>`, O `system:nodes`, signer
//!   `kubernetes.io/kube-apiserver-client-kubelet`) and the proxy's (CN `system:kube-proxy`,
//!   signer `kubernetes.io/kube-apiserver-client`), as `system:bootstrap:<id>`;
//! - then, as the node itself, the kubelet's serving certificate (signer
//!   `kubernetes.io/kubelet-serving`, the node's name and IP as SANs).
//!
//! The controller manager approves and signs them; each is waited for (a clear error naming
//! the CSR when it is denied, fails, or is not signed in time). Only when all are in hand is
//! anything written: `DATA/agent/pki/` (the CA, `<name>.crt`/`<name>.key`, 0600; directories
//! 0700) and the kubeconfigs `DATA/agent/{kubelet,proxy}.kubeconfig`. At the next start the
//! stored certificates are reused while they are of the token's CA, name this node and have
//! more than a day left; a serving certificate for other names (a new node IP) is asked for
//! again with the node's own credential, so the token is needed only for a first join.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use rkube_apiserver::kubeconfig::{Credentials, render};
use rkube_apiserver::pki::{IssuedCert, ServingNames};

use crate::config::Layout;
use crate::token::{JoinToken, ca_hash, hex};
use crate::trust::TrustError;

use rkube_machinery::certificates::{
    self as certs, CertificateError, KUBE_APISERVER_CLIENT as SIGNER_CLIENT,
    KUBE_APISERVER_CLIENT_KUBELET as SIGNER_KUBELET_CLIENT,
    KUBELET_SERVING as SIGNER_KUBELET_SERVING, KeyPair,
};

/// The proxy's user.
pub const PROXY_USER: &str = "system:kube-proxy";
/// A stored certificate is replaced when it expires within this time.
const RENEW_BEFORE: Duration = Duration::from_secs(24 * 3600);
/// How often a pending CSR is looked at.
const POLL: Duration = Duration::from_millis(500);

/// Why the agent could not get its credentials.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The server is not trusted or not reached.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The token was refused.
    #[error(
        "the server refused the join token (401 Unauthorized): no bootstrap token with this id \
         and secret exists — it was deleted (`rkube token delete`), expired, or belongs to \
         another cluster; use the server's DATA/node-token or one from `rkube token create`"
    )]
    Unauthorized,
    /// The credential may not do what joining needs.
    #[error("{what}: forbidden (403): {message}")]
    Forbidden {
        /// What was being done.
        what: String,
        /// The server's message.
        message: String,
    },
    /// The server has no certificates API.
    #[error("the server has no certificates.k8s.io/v1 CertificateSigningRequest API (404)")]
    NoCsrApi,
    /// Another API error.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The cause.
        source: kube::Error,
    },
    /// A CSR was denied.
    #[error("the certificate signing request {csr} was denied: {message}")]
    Denied {
        /// The CSR's name.
        csr: String,
        /// The condition's reason and message.
        message: String,
    },
    /// Signing a CSR failed.
    #[error("signing the certificate signing request {csr} failed: {message}")]
    Failed {
        /// The CSR's name.
        csr: String,
        /// The condition's reason and message.
        message: String,
    },
    /// A CSR was not signed in time.
    #[error(
        "the certificate signing request {csr} (signer {signer}) was {state} within {waited:?}; \
         on the server: `kubectl get csr {csr}`, `kubectl certificate approve {csr}`"
    )]
    Timeout {
        /// The CSR's name.
        csr: String,
        /// Its signer.
        signer: String,
        /// "not approved" or "approved but not signed".
        state: &'static str,
        /// How long it was waited for.
        waited: Duration,
    },
    /// The certificate issued is not what was asked for.
    #[error("the certificate issued for {csr} is unusable: {message}")]
    BadCertificate {
        /// The CSR's name.
        csr: String,
        /// What is wrong.
        message: String,
    },
    /// A key or request could not be made.
    #[error("generating a key and certificate request: {0}")]
    Key(#[from] CertificateError),
    /// A kubeconfig could not be loaded.
    #[error("client configuration: {0}")]
    Kubeconfig(String),
    /// A file could not be written.
    #[error("writing {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// One certificate an agent asks for.
#[derive(Clone, Debug)]
pub struct CertRequest {
    /// The file stem under `DATA/agent/pki/` (`<file>.crt`, `<file>.key`).
    pub file: &'static str,
    /// The start of the CSR's name (the node's name and a random suffix follow).
    pub name: String,
    /// The signer.
    pub signer: &'static str,
    /// The subject's CN (the user).
    pub cn: String,
    /// The subject's O attributes (the groups).
    pub orgs: Vec<String>,
    /// The key usages asked for.
    pub usages: &'static [&'static str],
    /// The SANs (serving certificates only).
    pub names: Option<ServingNames>,
}

impl CertRequest {
    /// The kubelet's client certificate.
    pub fn kubelet_client(node: &str) -> Self {
        CertRequest {
            file: "kubelet-client",
            name: format!("node-client-{}", trim_name(node)),
            signer: SIGNER_KUBELET_CLIENT,
            cn: format!("system:node:{node}"),
            orgs: vec!["system:nodes".into()],
            usages: &["digital signature", "client auth"],
            names: None,
        }
    }

    /// The kubelet's serving certificate for `names`.
    pub fn kubelet_serving(node: &str, names: ServingNames) -> Self {
        CertRequest {
            file: "kubelet-serving",
            name: format!("kubelet-serving-{}", trim_name(node)),
            signer: SIGNER_KUBELET_SERVING,
            cn: format!("system:node:{node}"),
            orgs: vec!["system:nodes".into()],
            usages: &["digital signature", "server auth"],
            names: Some(names),
        }
    }

    /// The proxy's client certificate.
    pub fn proxy(node: &str) -> Self {
        CertRequest {
            file: "proxy",
            name: format!("kube-proxy-{}", trim_name(node)),
            signer: SIGNER_CLIENT,
            cn: PROXY_USER.into(),
            orgs: Vec::new(),
            usages: &["digital signature", "client auth"],
            names: None,
        }
    }

    /// Whether it is a client certificate.
    fn client(&self) -> bool {
        self.names.is_none()
    }

    /// What a stored certificate must have been asked for with (kept as `<file>.tag`).
    fn tag(&self) -> String {
        let mut parts = vec![
            self.signer.to_string(),
            self.cn.clone(),
            self.orgs.join(","),
        ];
        if let Some(n) = &self.names {
            let mut sans: Vec<String> = n.dns.clone();
            sans.extend(n.ips.iter().map(IpAddr::to_string));
            sans.sort();
            parts.push(sans.join(","));
        }
        parts.join("/")
    }

    /// A new key and the PEM certificate request for it.
    fn csr(&self) -> Result<(KeyPair, String), JoinError> {
        let key = KeyPair::generate().map_err(|source| CertificateError::Rcgen {
            what: "a key".into(),
            source,
        })?;
        let (dns, ips) = match &self.names {
            Some(n) => (n.dns.clone(), n.ips.clone()),
            None => Default::default(),
        };
        let pem = certs::request_pem(&key, &self.cn, &self.orgs, &dns, &ips)?;
        Ok((key, pem))
    }
}

/// A node name cut to fit in a CSR name with its prefix and suffix.
fn trim_name(node: &str) -> &str {
    let end = node.len().min(200);
    node[..end].trim_end_matches(['.', '-'])
}

/// The SANs of a kubelet's serving certificate: its node name, `localhost`, its IP and
/// 127.0.0.1 (the same for the server's local kubelet and an agent's).
pub fn kubelet_serving_names(node: &str, node_ip: Option<IpAddr>) -> ServingNames {
    let mut names = ServingNames::default();
    names.add_name(node);
    names.add_name("localhost");
    for ip in node_ip.into_iter().chain([IpAddr::from([127, 0, 0, 1])]) {
        names.add_ip(ip);
    }
    names
}

/// An agent's credentials.
#[derive(Clone, Debug)]
pub struct NodeCredentials {
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// The kubelet's client certificate.
    pub kubelet: IssuedCert,
    /// The kubelet's serving certificate.
    pub serving: IssuedCert,
    /// The proxy's client certificate.
    pub proxy: IssuedCert,
}

/// The files an agent keeps its credentials in.
#[derive(Clone, Debug)]
pub struct AgentFiles {
    /// The cluster CA.
    pub ca: PathBuf,
    /// The kubelet's kubeconfig.
    pub kubelet_kubeconfig: PathBuf,
    /// The proxy's kubeconfig.
    pub proxy_kubeconfig: PathBuf,
    /// The kubelet's serving certificate.
    pub serving_cert: PathBuf,
    /// Its key.
    pub serving_key: PathBuf,
}

impl AgentFiles {
    /// The files under `layout`.
    pub fn new(layout: &Layout) -> Self {
        let pki = layout.agent_pki();
        AgentFiles {
            ca: pki.join("ca.crt"),
            kubelet_kubeconfig: layout.agent_kubeconfig("kubelet"),
            proxy_kubeconfig: layout.agent_kubeconfig("proxy"),
            serving_cert: pki.join("kubelet-serving.crt"),
            serving_key: pki.join("kubelet-serving.key"),
        }
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A stored certificate of `req` if it is of the CA `ca_der`, was asked for as `req` is now,
/// and has more than [`RENEW_BEFORE`] left.
fn stored(pki: &Path, req: &CertRequest, ca_der: &[u8]) -> Option<IssuedCert> {
    let cert_pem = read(&pki.join(format!("{}.crt", req.file)))?;
    let key_pem = read(&pki.join(format!("{}.key", req.file)))?;
    let tag = read(&pki.join(format!("{}.tag", req.file)))?;
    if tag != req.tag() {
        return None;
    }
    let der = rkube_apiserver::pki::x509::pem_der(&cert_pem).ok()?;
    let left = rkube_apiserver::pki::not_after(&der).ok()? - time::OffsetDateTime::now_utc();
    let fresh = left > time::Duration::try_from(RENEW_BEFORE).ok()?;
    let subject = rkube_apiserver::pki::subject_of(&der).ok()?;
    let ours = rkube_apiserver::pki::verify_issued_by(&der, ca_der, req.client());
    (fresh && ours && subject.common_name == req.cn).then_some(IssuedCert { cert_pem, key_pem })
}

/// The stored CA if its hash is the token's.
fn stored_ca(files: &AgentFiles, token: &JoinToken) -> Option<(String, Vec<u8>)> {
    let pem = read(&files.ca)?;
    let der = rkube_apiserver::pki::x509::pem_der(&pem).ok()?;
    (ca_hash(&der) == token.ca_hash).then_some((pem, der))
}

/// A kube-rs client for `server` trusting `ca_pem`, with `creds`.
pub async fn client(
    server: &str,
    ca_pem: &str,
    user: &str,
    creds: &Credentials,
) -> Result<kube::Client, JoinError> {
    let text = render(server, ca_pem, user, creds);
    let kc = kube::config::Kubeconfig::from_yaml(&text)
        .map_err(|e| JoinError::Kubeconfig(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| JoinError::Kubeconfig(e.to_string()))?;
    rkube_machinery::client::client(cfg).map_err(|e| JoinError::Kubeconfig(e.to_string()))
}

fn api_error(what: String, e: kube::Error) -> JoinError {
    match e {
        kube::Error::Api(s) if s.code == 401 => JoinError::Unauthorized,
        kube::Error::Api(s) if s.code == 403 => JoinError::Forbidden {
            what,
            message: s.message,
        },
        kube::Error::Api(s) if s.code == 404 => JoinError::NoCsrApi,
        e => JoinError::Api { what, source: e },
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 4];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    hex(&b)
}

fn condition_text(reason: Option<&str>, message: Option<&str>) -> String {
    match (reason, message) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
        (Some(r), _) => r.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "no reason given".into(),
    }
}

/// Asks the certificates API (as `client`'s user) for `req`'s certificate, waits up to
/// `timeout` for it to be signed, and checks it is of `ca_der` for `req`'s subject.
pub async fn request_certificate(
    client: &kube::Client,
    req: &CertRequest,
    ca_der: &[u8],
    timeout: Duration,
) -> Result<IssuedCert, JoinError> {
    let (key, request) = req.csr()?;
    let name = format!("{}-{}", req.name, random_suffix());
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: req.signer.into(),
            usages: Some(req.usages.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    api.create(&PostParams::default(), &csr)
        .await
        .map_err(|e| {
            api_error(
                format!("creating the certificate signing request {name}"),
                e,
            )
        })?;
    tracing::info!(csr = %name, signer = req.signer, user = %req.cn, "certificate requested");
    let started = tokio::time::Instant::now();
    let mut approved = false;
    loop {
        let got = api
            .get(&name)
            .await
            .map_err(|e| api_error(format!("reading the certificate signing request {name}"), e))?;
        let status = got.status.unwrap_or_default();
        for c in status.conditions.iter().flatten() {
            let text = condition_text(c.reason.as_deref(), c.message.as_deref());
            match (c.type_.as_str(), c.status.as_str()) {
                ("Denied", "True") => {
                    return Err(JoinError::Denied {
                        csr: name,
                        message: text,
                    });
                }
                ("Failed", "True") => {
                    return Err(JoinError::Failed {
                        csr: name,
                        message: text,
                    });
                }
                ("Approved", "True") => approved = true,
                _ => {}
            }
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            let cert_pem = String::from_utf8(cert.0).map_err(|_| JoinError::BadCertificate {
                csr: name.clone(),
                message: "not PEM text".into(),
            })?;
            check_issued(&name, req, &cert_pem, ca_der)?;
            tracing::info!(csr = %name, took = ?started.elapsed(), "certificate issued");
            return Ok(IssuedCert {
                cert_pem,
                key_pem: key.serialize_pem(),
            });
        }
        if started.elapsed() >= timeout {
            return Err(JoinError::Timeout {
                csr: name,
                signer: req.signer.into(),
                state: if approved {
                    "approved but not signed"
                } else {
                    "not approved"
                },
                waited: timeout,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Checks an issued certificate: of the CA, for the subject asked for.
fn check_issued(
    csr: &str,
    req: &CertRequest,
    cert_pem: &str,
    ca_der: &[u8],
) -> Result<(), JoinError> {
    let bad = |message: String| JoinError::BadCertificate {
        csr: csr.into(),
        message,
    };
    let der = rkube_apiserver::pki::x509::pem_der(cert_pem).map_err(|e| bad(e.to_string()))?;
    if !rkube_apiserver::pki::verify_issued_by(&der, ca_der, req.client()) {
        return Err(bad(format!(
            "it does not verify against the cluster CA as a {} certificate",
            if req.client() { "client" } else { "serving" }
        )));
    }
    let subject = rkube_apiserver::pki::subject_of(&der).map_err(|e| bad(e.to_string()))?;
    if subject.common_name != req.cn || subject.organizations != req.orgs {
        return Err(bad(format!(
            "it names {} in {:?}, not {} in {:?}",
            subject.common_name, subject.organizations, req.cn, req.orgs
        )));
    }
    Ok(())
}

/// What an agent needs to get its credentials.
#[derive(Clone, Debug)]
pub struct Join<'a> {
    /// The server URL.
    pub server: &'a str,
    /// The join token.
    pub token: &'a JoinToken,
    /// The node's name.
    pub node_name: &'a str,
    /// The node's IP (in the serving certificate).
    pub node_ip: IpAddr,
    /// How long each CSR is waited for.
    pub timeout: Duration,
}

impl Join<'_> {
    /// The server's CA as the token pins it; an unreachable server is tried again every 2 s
    /// for up to the join timeout (it may be starting).
    async fn discover(&self) -> Result<crate::trust::TrustedServer, JoinError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut warned = false;
        loop {
            match crate::trust::discover_ca(self.server, &self.token.ca_hash).await {
                Err(TrustError::Connect { addr, source })
                    if tokio::time::Instant::now() < deadline =>
                {
                    if !warned {
                        tracing::warn!(%addr, error = %source, "waiting for the server");
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                r => return Ok(r?),
            }
        }
    }

    /// The credentials: stored ones while usable, else new ones from the server; written
    /// (only) once all are in hand.
    pub async fn credentials(&self, layout: &Layout) -> Result<NodeCredentials, JoinError> {
        let files = AgentFiles::new(layout);
        let pki = layout.agent_pki();
        let kubelet_req = CertRequest::kubelet_client(self.node_name);
        let proxy_req = CertRequest::proxy(self.node_name);
        let serving_req = CertRequest::kubelet_serving(
            self.node_name,
            kubelet_serving_names(self.node_name, Some(self.node_ip)),
        );
        let stored_ca = stored_ca(&files, self.token);
        let have = |req: &CertRequest| {
            stored_ca
                .as_ref()
                .and_then(|(_, der)| stored(&pki, req, der))
        };
        let (kubelet, proxy, serving) = (have(&kubelet_req), have(&proxy_req), have(&serving_req));
        let (ca_pem, ca_der, kubelet, proxy) = match (stored_ca.clone(), kubelet, proxy) {
            (Some((pem, der)), Some(k), Some(p)) => {
                tracing::info!(dir = %pki.display(), "using the stored credentials");
                (pem, der, k, p)
            }
            _ => {
                let trusted = self.discover().await?;
                let ca_pem = crate::token::pem_of(&trusted.ca_der);
                tracing::info!(server = %self.server, ca = %self.token.ca_hash,
                    "the server's CA matches the token; joining");
                let bootstrap = client(
                    self.server,
                    &ca_pem,
                    &format!("system:bootstrap:{}", self.token.token.id),
                    &Credentials::Token(self.token.token.to_string()),
                )
                .await?;
                let (k, p) = tokio::try_join!(
                    request_certificate(&bootstrap, &kubelet_req, &trusted.ca_der, self.timeout),
                    request_certificate(&bootstrap, &proxy_req, &trusted.ca_der, self.timeout),
                )?;
                (ca_pem, trusted.ca_der, k, p)
            }
        };
        let serving = match serving {
            // (A stored one is of the stored CA, whose hash is the token's: the same CA.)
            Some(s) => s,
            _ => {
                let node = client(
                    self.server,
                    &ca_pem,
                    &kubelet_req.cn,
                    &Credentials::Certificate {
                        cert_pem: kubelet.cert_pem.clone(),
                        key_pem: kubelet.key_pem.clone(),
                    },
                )
                .await?;
                request_certificate(&node, &serving_req, &ca_der, self.timeout).await?
            }
        };
        let creds = NodeCredentials {
            ca_pem,
            kubelet,
            serving,
            proxy,
        };
        write(
            layout,
            &files,
            &creds,
            [&kubelet_req, &serving_req, &proxy_req],
            self.server,
        )?;
        Ok(creds)
    }
}

/// Writes the credentials (directories 0700, files 0600) and the kubeconfigs for `server`.
fn write(
    layout: &Layout,
    files: &AgentFiles,
    creds: &NodeCredentials,
    reqs: [&CertRequest; 3],
    server: &str,
) -> Result<(), JoinError> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |e: crate::identity::IdentityError| JoinError::Write {
            path,
            message: e.to_string(),
        }
    };
    let pki = layout.agent_pki();
    for dir in [&layout.root, &layout.agent(), &pki] {
        crate::identity::create_private_dir(dir).map_err(werr(dir))?;
    }
    let put = |path: PathBuf, text: &str| {
        rkube_machinery::https::write_private(&path, text).map_err(|e| JoinError::Write {
            path: path.clone(),
            message: e.to_string(),
        })
    };
    put(files.ca.clone(), &creds.ca_pem)?;
    for (req, cert) in reqs
        .iter()
        .zip([&creds.kubelet, &creds.serving, &creds.proxy])
    {
        put(pki.join(format!("{}.crt", req.file)), &cert.cert_pem)?;
        put(pki.join(format!("{}.key", req.file)), &cert.key_pem)?;
        put(pki.join(format!("{}.tag", req.file)), &req.tag())?;
    }
    for (path, req, cert) in [
        (&files.kubelet_kubeconfig, reqs[0], &creds.kubelet),
        (&files.proxy_kubeconfig, reqs[2], &creds.proxy),
    ] {
        let text = render(
            server,
            &creds.ca_pem,
            &req.cn,
            &Credentials::Certificate {
                cert_pem: cert.cert_pem.clone(),
                key_pem: cert.key_pem.clone(),
            },
        );
        put(path.clone(), &text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_the_node_and_signers() {
        let k = CertRequest::kubelet_client("node-b");
        assert_eq!(k.cn, "system:node:node-b");
        assert_eq!(k.orgs, ["system:nodes"]);
        assert_eq!(k.signer, SIGNER_KUBELET_CLIENT);
        assert!(k.name.starts_with("node-client-node-b"));
        let p = CertRequest::proxy("node-b");
        assert_eq!((p.cn.as_str(), p.orgs.len()), ("system:kube-proxy", 0));
        let names = kubelet_serving_names("node-b", Some("10.99.0.3".parse().unwrap()));
        let s = CertRequest::kubelet_serving("node-b", names);
        assert!(!s.client() && k.client());
        assert_eq!(
            s.tag(),
            "kubernetes.io/kubelet-serving/system:node:node-b/system:nodes/\
             10.99.0.3,127.0.0.1,localhost,node-b"
        );
        // A CSR name stays a valid object name for the longest node names.
        let long = "a".repeat(253);
        assert!(CertRequest::kubelet_client(&long).name.len() + 9 <= 253);
    }

    #[test]
    fn certificate_requests_carry_the_subject_and_sans() {
        let names = kubelet_serving_names("node-b", Some("10.99.0.3".parse().unwrap()));
        let (_, pem) = CertRequest::kubelet_serving("node-b", names).csr().unwrap();
        assert!(
            pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
            "{pem}"
        );
        // Signed by a CA as the controller manager would: the certificate has what was asked.
        let dir = tempfile::tempdir().unwrap();
        let pki = rkube_apiserver::pki::Pki::load_or_create(dir.path()).unwrap();
        let req = CertRequest::kubelet_client("node-b");
        let issued = pki
            .issue_client(&req.cn, &req.orgs, Duration::from_secs(3600 * 48))
            .unwrap();
        let ca = pki.ca_der().unwrap();
        check_issued("c", &req, &issued.cert_pem, &ca).unwrap();
        let e = check_issued("c", &CertRequest::proxy("node-b"), &issued.cert_pem, &ca)
            .unwrap_err()
            .to_string();
        assert!(e.contains("names system:node:node-b"), "{e}");
        let other = rkube_apiserver::pki::Pki::load_or_create(&dir.path().join("o")).unwrap();
        let e = check_issued("c", &req, &issued.cert_pem, &other.ca_der().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not verify against the cluster CA"), "{e}");
    }

    #[test]
    fn stored_certificates_are_reused_only_while_they_fit() {
        let dir = tempfile::tempdir().unwrap();
        let pki = rkube_apiserver::pki::Pki::load_or_create(&dir.path().join("ca")).unwrap();
        let ca = pki.ca_der().unwrap();
        let store = dir.path().join("pki");
        std::fs::create_dir(&store).unwrap();
        let req = CertRequest::kubelet_client("node-b");
        let put = |cert: &IssuedCert, tag: &str| {
            std::fs::write(store.join("kubelet-client.crt"), &cert.cert_pem).unwrap();
            std::fs::write(store.join("kubelet-client.key"), &cert.key_pem).unwrap();
            std::fs::write(store.join("kubelet-client.tag"), tag).unwrap();
        };
        assert!(stored(&store, &req, &ca).is_none());
        let year = pki
            .issue_client(&req.cn, &req.orgs, Duration::from_secs(365 * 24 * 3600))
            .unwrap();
        put(&year, &req.tag());
        assert!(stored(&store, &req, &ca).is_some());
        // Another node's request, another tag, a CA of another cluster, nearly expired: no.
        assert!(stored(&store, &CertRequest::kubelet_client("node-c"), &ca).is_none());
        put(&year, "something else");
        assert!(stored(&store, &req, &ca).is_none());
        put(&year, &req.tag());
        let other = rkube_apiserver::pki::Pki::load_or_create(&dir.path().join("o")).unwrap();
        assert!(stored(&store, &req, &other.ca_der().unwrap()).is_none());
        let hour = pki
            .issue_client(&req.cn, &req.orgs, Duration::from_secs(3600))
            .unwrap();
        put(&hour, &req.tag());
        assert!(stored(&store, &req, &ca).is_none());
    }
}

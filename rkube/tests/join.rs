//! Join tokens and server trust against the real API server (in-process, HTTPS, RBAC, the
//! bootstrap token authenticator and the CSR API): the server's node token and `rkube
//! token`'s operations on bootstrap token Secrets, the pinned-CA handshake an agent makes
//! before it sends its token — with the API server's own serving chain, and with chains made
//! to be wrong (another CA, no CA, another name) —, and joins that must fail (a revoked token,
//! CSRs nobody approves) without writing anything.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use rkube::config::Layout;
use rkube::join::{Join, JoinError};
use rkube::token::{self, JoinToken, TokenError};
use rkube::trust::{TrustError, discover_ca};
use rkube_apiserver::pki::{Pki, ServingNames};
use rkube_testkit::apiserver::{Backend, Identity, TestServer};

fn secret_value(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// The server's token: made once with its Secret, kept while the Secret is, a new one once
/// it is deleted (revoked) or when the file holds the old `::server:` format.
#[tokio::test]
async fn the_server_node_token_lives_with_its_secret() {
    let server = TestServer::start(Backend::Embedded).await;
    let client = server.client().await;
    let ca = server.pki().ca_der().unwrap();
    let path = server.dir.path().join("node-token");
    let first = token::ensure_node_token(&client, &ca, &path).await.unwrap();
    assert_eq!(first.ca_hash, token::ca_hash(&ca));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{first}\n"));
    assert_eq!(JoinToken::parse(&text).unwrap(), first);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let s = secrets
        .get(&format!("bootstrap-token-{}", first.token.id))
        .await
        .unwrap();
    assert_eq!(s.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
    assert_eq!(secret_value(&s, "token-secret"), first.token.secret);
    assert_eq!(secret_value(&s, "usage-bootstrap-authentication"), "true");
    assert!(!s.data.as_ref().unwrap().contains_key("expiration"));

    // Kept across restarts.
    let again = token::ensure_node_token(&client, &ca, &path).await.unwrap();
    assert_eq!(again, first);

    // Revoked: a new token, not the old one brought back.
    token::delete(&client, &first.token.id).await.unwrap();
    let renewed = token::ensure_node_token(&client, &ca, &path).await.unwrap();
    assert_ne!(renewed.token, first.token);
    assert!(
        secrets
            .get_opt(&format!("bootstrap-token-{}", first.token.id))
            .await
            .unwrap()
            .is_none()
    );

    // The old format is replaced by a token that can join.
    std::fs::write(
        &path,
        format!("K10{}::server:{}\n", first.ca_hash, "a".repeat(32)),
    )
    .unwrap();
    let replaced = token::ensure_node_token(&client, &ca, &path).await.unwrap();
    assert_ne!(replaced.token, renewed.token);
    assert_eq!(
        JoinToken::parse(&std::fs::read_to_string(&path).unwrap()).unwrap(),
        replaced
    );
}

/// `rkube token create|list|delete`: Secrets with a TTL and description, listed by id (no
/// secret), deleted by id; an unknown id is a clear error.
#[tokio::test]
async fn tokens_are_created_listed_and_deleted() {
    let server = TestServer::start(Backend::Embedded).await;
    let client = server.client().await;
    let t = token::create(&client, "for node-b", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let forever = token::create(&client, "", None).await.unwrap();
    let list = token::list(&client).await.unwrap();
    let mine = list.iter().find(|i| i.id == t.id).expect("listed");
    assert_eq!(mine.description, "for node-b");
    assert_eq!(mine.usages, ["authentication", "signing"]);
    let ttl = mine.ttl(jiff::Timestamp::now());
    assert!(ttl == "59m" || ttl == "1h", "{ttl}");
    let table = token::table(&list, jiff::Timestamp::now());
    assert!(
        table.contains(&forever.id) && table.contains("<forever>"),
        "{table}"
    );
    assert!(!table.contains(&t.secret), "{table}");

    token::delete(&client, &t.id).await.unwrap();
    let list = token::list(&client).await.unwrap();
    assert!(list.iter().all(|i| i.id != t.id));
    let e = token::delete(&client, &t.id).await.unwrap_err();
    assert!(matches!(e, TokenError::NotFound(_)), "{e}");
    assert!(e.to_string().contains("rkube token list"), "{e}");
}

/// The API server's chain carries the CA: a handshake pinned to its hash succeeds (by IP and
/// by name) and yields exactly that CA; pinned to another hash it fails before anything is
/// sent; nothing listening is a connection error.
#[tokio::test]
async fn the_api_server_is_trusted_only_under_the_pinned_ca() {
    let server = TestServer::start(Backend::Embedded).await;
    let ca = server.pki().ca_der().unwrap();
    let hash = token::ca_hash(&ca);
    let trusted = discover_ca(&server.url, &hash).await.unwrap();
    assert_eq!(trusted.ca_der, ca);
    let by_name = server.url.replace("127.0.0.1", "localhost");
    assert_eq!(discover_ca(&by_name, &hash).await.unwrap().ca_der, ca);

    let wrong = "0".repeat(64);
    let e = discover_ca(&server.url, &wrong).await.unwrap_err();
    assert!(matches!(e, TrustError::WrongCa { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains(&wrong) && text.contains(&hash), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = discover_ca(&format!("https://127.0.0.1:{port}"), &hash)
        .await
        .unwrap_err();
    assert!(matches!(e, TrustError::Connect { .. }), "{e}");
}

/// Serves TLS with `chain` on a loopback port (one handshake at a time, until dropped).
async fn tls_server(
    pki: &Pki,
    names: &ServingNames,
    with_ca: bool,
) -> (String, tokio::task::JoinHandle<()>) {
    use rkube_machinery::https;
    let serving = pki.issue_serving("test", names).unwrap();
    let mut chain = https::parse_certs(&serving.cert_pem, "leaf").unwrap();
    if with_ca {
        chain.extend(https::parse_certs(pki.ca_pem(), "ca").unwrap());
    }
    let key = https::parse_key(&serving.key_pem, "key").unwrap();
    let cfg = https::server_config(chain, key, None).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    (url, task)
}

/// Chains made wrong on purpose: without the CA, the hash cannot be checked; with the right
/// CA but a certificate for another name, the server is not trusted either.
#[tokio::test]
async fn a_chain_without_the_ca_or_for_another_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(dir.path()).unwrap();
    let hash = token::ca_hash(&pki.ca_der().unwrap());
    let mut ours = ServingNames::default();
    ours.add_ip("127.0.0.1".parse().unwrap());

    let (url, task) = tls_server(&pki, &ours, false).await;
    let e = discover_ca(&url, &hash).await.unwrap_err();
    assert!(matches!(e, TrustError::NoCa), "{e}");
    task.abort();

    let mut other = ServingNames::default();
    other.add_name("elsewhere.example");
    let (url, task) = tls_server(&pki, &other, true).await;
    let e = discover_ca(&url, &hash).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, TrustError::Certificate { .. }), "{text}");
    assert!(text.contains("--tls-san 127.0.0.1"), "{text}");
    task.abort();

    let (url, task) = tls_server(&pki, &ours, true).await;
    assert!(discover_ca(&url, &hash).await.is_ok());
    task.abort();
}

fn join<'a>(server: &'a TestServer, token: &'a JoinToken, timeout: Duration) -> Join<'a> {
    Join {
        server: &server.url,
        token,
        node_name: "node-x",
        node_ip: "127.0.0.1".parse().unwrap(),
        timeout,
    }
}

/// A token whose Secret was deleted (revoked) is refused with the 401 explained; nothing is
/// written.
#[tokio::test]
async fn a_revoked_token_cannot_join_and_nothing_is_written() {
    let server = TestServer::start(Backend::Embedded).await;
    let client = server.client().await;
    let ca_hash = token::ca_hash(&server.pki().ca_der().unwrap());
    let t = token::create(&client, "", None).await.unwrap();
    token::delete(&client, &t.id).await.unwrap();
    let revoked = JoinToken { ca_hash, token: t };
    let data = tempfile::tempdir().unwrap();
    let layout = Layout::new(&data.path().join("data"));
    let e = join(&server, &revoked, Duration::from_secs(30))
        .credentials(&layout)
        .await
        .unwrap_err();
    assert!(matches!(e, JoinError::Unauthorized), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("401 Unauthorized") && text.contains("rkube token delete"),
        "{text}"
    );
    assert!(!layout.root.exists());
}

/// Without anyone to approve them (no controller manager here), the CSRs wait, and the agent
/// gives up naming the CSR and how to approve it; nothing is written. The CSR is there for
/// `kubectl get csr`, requested by the bootstrap token's user.
#[tokio::test]
async fn an_unapproved_csr_times_out_naming_it() {
    let server = TestServer::start(Backend::Embedded).await;
    let client = server.client().await;
    let ca_hash = token::ca_hash(&server.pki().ca_der().unwrap());
    let t = token::create(&client, "", None).await.unwrap();
    let id = t.id.clone();
    let valid = JoinToken { ca_hash, token: t };
    let data = tempfile::tempdir().unwrap();
    let layout = Layout::new(&data.path().join("data"));
    let e = join(&server, &valid, Duration::from_secs(2))
        .credentials(&layout)
        .await
        .unwrap_err();
    let JoinError::Timeout { csr, state, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(*state, "not approved");
    assert!(
        csr.starts_with("node-client-node-x-") || csr.starts_with("kube-proxy-node-x-"),
        "{csr}"
    );
    let text = e.to_string();
    assert!(
        text.contains(&format!("kubectl certificate approve {csr}")),
        "{text}"
    );
    assert!(!layout.root.exists());
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let got = csrs.get(csr).await.unwrap();
    assert_eq!(
        got.spec.username.as_deref(),
        Some(format!("system:bootstrap:{id}").as_str())
    );
}

/// The controller manager (its CSR approving and signing controllers with the server's CA)
/// running against `server`, as `rkube server` runs it.
async fn controller_manager(
    server: &TestServer,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<Result<(), rkube_controller_manager::Error>>,
) {
    let own = server.config_as(&Identity::controller_manager()).await;
    let pki = server.dir.path().join("pki");
    let config = rkube_controller_manager::Config {
        service_account_credentials: Some(own.clone()),
        cluster_signing_cert_file: Some(pki.join("ca.crt")),
        cluster_signing_key_file: Some(pki.join("ca.key")),
        ..Default::default()
    };
    let client = kube::Client::try_from(own).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(rkube_controller_manager::run(
        config,
        client,
        None,
        stop.clone().cancelled_owned(),
    ));
    (stop, task)
}

/// `(signer, requester)` of every CSR, sorted.
async fn csrs(client: &kube::Client) -> Vec<(String, String)> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let mut out: Vec<(String, String)> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| (c.spec.signer_name, c.spec.username.unwrap_or_default()))
        .collect();
    out.sort();
    out
}

/// A whole join in-process with the real controller manager signing: three certificates
/// (two asked for with the bootstrap token, the serving one by the node), files owner-only;
/// at the next start they are reused without the server's help — the token may even be
/// revoked by then; a new node IP makes the node ask for a serving certificate for it, and
/// keeps its client certificates.
#[tokio::test]
async fn a_join_is_kept_and_the_serving_certificate_follows_the_node_ip() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start(Backend::Embedded).await;
    let (stop, manager) = controller_manager(&server).await;
    let client = server.client().await;
    let ca = server.pki().ca_der().unwrap();
    let t = token::create(&client, "", None).await.unwrap();
    let bootstrap_user = format!("system:bootstrap:{}", t.id);
    let jt = JoinToken {
        ca_hash: token::ca_hash(&ca),
        token: t,
    };
    let data = tempfile::tempdir().unwrap();
    let layout = Layout::new(&data.path().join("data"));
    let first = join(&server, &jt, Duration::from_secs(60))
        .credentials(&layout)
        .await
        .unwrap();
    let subject = |pem: &str| {
        let der = rkube_apiserver::pki::pem_der(pem, Path::new("cert")).unwrap();
        rkube_apiserver::pki::subject_of(&der).unwrap()
    };
    assert_eq!(
        subject(&first.kubelet.cert_pem).common_name,
        "system:node:node-x"
    );
    assert_eq!(
        subject(&first.kubelet.cert_pem).organizations,
        ["system:nodes"]
    );
    assert_eq!(
        subject(&first.proxy.cert_pem).common_name,
        "system:kube-proxy"
    );
    assert_eq!(
        subject(&first.serving.cert_pem).common_name,
        "system:node:node-x"
    );
    assert_eq!(
        csrs(&client).await,
        [
            (
                "kubernetes.io/kube-apiserver-client".into(),
                bootstrap_user.clone()
            ),
            (
                "kubernetes.io/kube-apiserver-client-kubelet".into(),
                bootstrap_user.clone()
            ),
            (
                "kubernetes.io/kubelet-serving".into(),
                "system:node:node-x".into()
            ),
        ]
    );
    let agent = layout.agent();
    for f in [
        "pki/ca.crt",
        "pki/kubelet-client.key",
        "pki/proxy.crt",
        "kubelet.kubeconfig",
    ] {
        let mode = std::fs::metadata(agent.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    // The kubelet's kubeconfig works: it is the node.
    let node = rkube::server::client_from(&agent.join("kubelet.kubeconfig"))
        .await
        .unwrap();
    let review = node
        .request_text(
            http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
                .header("content-type", "application/json")
                .body(
                    br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#
                        .to_vec(),
                )
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(
        review.contains("\"username\":\"system:node:node-x\""),
        "{review}"
    );

    // Reused: no new CSR, even with the token revoked.
    token::delete(&client, &jt.token.id).await.unwrap();
    let again = join(&server, &jt, Duration::from_secs(60))
        .credentials(&layout)
        .await
        .unwrap();
    assert_eq!(again.kubelet.cert_pem, first.kubelet.cert_pem);
    assert_eq!(again.serving.cert_pem, first.serving.cert_pem);
    assert_eq!(csrs(&client).await.len(), 3);

    // A new node IP: a new serving certificate, asked for by the node.
    let mut moved = join(&server, &jt, Duration::from_secs(60));
    moved.node_ip = "127.0.0.2".parse().unwrap();
    let third = moved.credentials(&layout).await.unwrap();
    assert_eq!(third.kubelet.cert_pem, first.kubelet.cert_pem);
    assert_eq!(third.proxy.cert_pem, first.proxy.cert_pem);
    assert_ne!(third.serving.cert_pem, first.serving.cert_pem);
    let all = csrs(&client).await;
    assert_eq!(all.len(), 4);
    assert_eq!(
        all.iter()
            .filter(|(s, u)| s == "kubernetes.io/kubelet-serving" && u == "system:node:node-x")
            .count(),
        2
    );
    stop.cancel();
    manager.await.unwrap().unwrap();
}

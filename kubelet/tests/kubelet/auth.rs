//! The kubelet's API is HTTPS with a certificate of the cluster CA and answers authorized
//! users only (a hollow kubelet: the API is the same on every runtime): anonymous requests and
//! bad tokens get 401; users get what the API server's SubjectAccessReview allows on
//! `nodes/<subresource>` of this node — 403 with Kubernetes' message otherwise, access
//! following RBAC as it changes; client certificates of the CA and bearer tokens (checked with
//! TokenReview) authenticate, a certificate of another CA does not even connect; the API
//! server reaches it as `kube-apiserver-kubelet-client`; `/healthz` is open on the loopback
//! health port only; and without certificate files the kubelet serves a self-signed one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rkube_kubelet::hollow::FakeConfig;
use rkube_kubelet::{Config, Kubelet, RuntimeMode};
use rkube_testkit::apiserver::Identity;

use crate::harness::*;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A hollow kubelet for `name` on 127.0.0.1, acting as its node.
async fn hollow(cluster: &Cluster, name: &str, dir: &std::path::Path) -> Config {
    let mut cfg = Config::new(name, dir.join(name));
    cfg.client = Some(cluster.api.client_as(&Identity::node(name)).await);
    cfg.runtime = RuntimeMode::Fake(FakeConfig::default());
    cfg.listen = SocketAddr::from((LOCAL, 0));
    cfg.node_ip = Some(LOCAL);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_api_answers_authorized_users_only() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = hollow(&cluster, "guarded", dir.path()).await;
    cfg.serving = serving_of_cluster_ca(&cluster, "guarded", LOCAL, &dir.path().join("certs"));
    let kubelet = Kubelet::start(cfg).await.expect("hollow kubelet");
    let port = kubelet.port();
    let get = |id: Identity, path: &'static str| {
        let cluster = &cluster;
        async move {
            kubelet_get(cluster, &id, LOCAL, port, path)
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        }
    };

    // Without credentials, or with a token the API server does not know: 401. (The client
    // verifies the kubelet's certificate against the cluster CA: the answer proves it.)
    for path in ["/pods", "/stats/summary", "/metrics", "/healthz"] {
        assert_eq!(get(Identity::Anonymous, path).await.0, 401, "{path}");
    }
    assert_eq!(
        get(Identity::Token("not-a-token".into()), "/pods").await,
        (401, "Unauthorized".to_string())
    );

    // An authenticated user without rights on this node: 403, Kubernetes' message.
    let jane = Identity::user("jane", &["dev"]);
    assert_eq!(
        get(jane.clone(), "/stats/summary").await,
        (
            403,
            "Forbidden (user=jane, verb=get, resource=nodes, subresource=stats)".to_string()
        )
    );
    assert_eq!(
        get(jane.clone(), "/containerLogs/default/p/c").await.1,
        "Forbidden (user=jane, verb=get, resource=nodes, subresource=proxy)"
    );
    // Granted stats (and only stats) by RBAC: the next request is let through (denials are
    // not cached), the other subresources still not.
    cluster.api.kubectl_ok(&[
        "create",
        "clusterrole",
        "stats",
        "--verb=get",
        "--resource=nodes/stats",
    ]);
    cluster.api.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "jane-stats",
        "--clusterrole=stats",
        "--user=jane",
    ]);
    let (code, body) = get(jane.clone(), "/stats/summary").await;
    assert_eq!(code, 200, "{body}");
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["node"]["nodeName"], "guarded");
    assert_eq!(get(jane.clone(), "/metrics").await.0, 403);
    assert_eq!(get(jane, "/pods").await.0, 403);

    // A ServiceAccount token, checked with a TokenReview, authorized like anyone.
    let bot = Identity::service_account("default", "bot");
    assert_eq!(get(bot.clone(), "/pods").await.0, 403);
    cluster.api.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "bot-kubelet-admin",
        "--clusterrole=system:kubelet-api-admin",
        "--serviceaccount=default:bot",
    ]);
    let (code, body) = get(bot, "/pods").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"kind\":\"PodList\""), "{body}");

    // The cluster admin and the API server's own kubelet client identity may do anything.
    assert_eq!(get(Identity::Admin, "/metrics").await.0, 200);
    let apiserver = Identity::user("kube-apiserver-kubelet-client", &[]);
    assert_eq!(get(apiserver, "/stats/summary").await.0, 200);
    // ... which is how the API server's node proxy reaches it, verifying its certificate.
    eventually("the pods through the API server's node proxy", || async {
        let (code, _, v) = cluster
            .api
            .http("GET", "/api/v1/nodes/guarded/proxy/pods", &[], vec![])
            .await;
        (code == 200 && v["kind"] == "PodList").then_some(())
    })
    .await;

    // A client certificate of another CA is refused during the handshake.
    let other = tempfile::tempdir().unwrap();
    let foreign = rkube_apiserver::pki::Pki::load_or_create(other.path()).unwrap();
    let cert = foreign
        .issue_client(
            "admin",
            &["system:masters".into()],
            std::time::Duration::from_secs(600),
        )
        .unwrap();
    let config = rkube_machinery::https::client_config(
        &rkube_machinery::https::ServerTrust::Roots(
            rkube_machinery::https::parse_certs(cluster.api.pki().ca_pem(), "ca").unwrap(),
        ),
        Some((
            rkube_machinery::https::parse_certs(&cert.cert_pem, "cert").unwrap(),
            rkube_machinery::https::parse_key(&cert.key_pem, "key").unwrap(),
        )),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect((LOCAL, port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let refused = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = connector
            .connect(LOCAL.into(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        // TLS 1.3: the server's verdict on the client certificate comes with the first read.
        tls.write_all(b"GET /pods HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        match tls.read(&mut buf).await {
            Ok(0) => Err("closed".to_string()),
            Ok(n) => Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
    .await;
    assert!(
        refused.is_err(),
        "a foreign client certificate got {refused:?}"
    );

    // Plain /healthz on the loopback health port, for anyone.
    let healthz = kubelet.healthz_port().expect("health port");
    assert_eq!(
        http_get(LOCAL, healthz, "/healthz").await.unwrap(),
        (200, "ok".to_string())
    );
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_certificate_files_the_kubelet_serves_a_self_signed_one() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = hollow(&cluster, "selfsigned", dir.path()).await;
    cfg.serving.healthz_port = None;
    let kubelet = Kubelet::start(cfg).await.expect("hollow kubelet");
    let cert = dir
        .path()
        .join("selfsigned")
        .join("pki")
        .join("kubelet.crt");
    assert!(cert.exists(), "{}", cert.display());
    // Not of the cluster CA: a client trusting the CA refuses it …
    let e = kubelet_get(&cluster, &Identity::Admin, LOCAL, kubelet.port(), "/pods")
        .await
        .unwrap_err();
    assert!(e.contains("certificate"), "{e}");
    // … and so does the API server, which verifies kubelets against the CA here.
    let refused = eventually("the node's kubelet address", || async {
        let (code, _, v) = cluster
            .api
            .http("GET", "/api/v1/nodes/selfsigned/proxy/pods", &[], vec![])
            .await;
        // (400 until the kubelet reported its address.)
        (code != 400).then_some((code, v))
    })
    .await;
    assert_eq!(refused.0, 500, "{}", refused.1);
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{}",
        refused.1
    );
    // A restart keeps the certificate.
    let before = std::fs::read(&cert).unwrap();
    kubelet.stop().await;
    let mut cfg = hollow(&cluster, "selfsigned", dir.path()).await;
    cfg.serving.healthz_port = None;
    let kubelet = Kubelet::start(cfg).await.expect("hollow kubelet");
    assert_eq!(std::fs::read(&cert).unwrap(), before);
    kubelet.stop().await;
}

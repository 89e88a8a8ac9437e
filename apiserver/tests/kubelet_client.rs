//! The API server as kubelets use it and as their client: TokenReview (whom a bearer token
//! authenticates — a static token, a ServiceAccount token, a refused one), and `nodes/proxy`
//! and `pods/log` reaching a kubelet (here a stand-in serving HTTPS with a certificate of the
//! cluster CA) with the `kube-apiserver-kubelet-client` certificate, the kubelet's certificate
//! verified against `--kubelet-certificate-authority` — one of another CA is refused — and
//! the proxy authorized as `get` on `nodes/proxy`, an unreachable kubelet a 500 (as
//! Kubernetes answers; no retry advised).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::Request;
use axum::http::Extensions;
use common::{Backend, Identity, TestServer};
use rkube_apiserver::pki::{ServingNames, subject_of};
use rkube_machinery::https;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const JSON: (&str, &str) = ("content-type", "application/json");

/// The CN of the client certificate a connection to the stand-in kubelet presented.
#[derive(Clone)]
struct Peer(String);

/// A stand-in kubelet on 127.0.0.1 serving `cert`/`key`, answering every GET with what it
/// saw: the client certificate's CN, the path and the query (as JSON); stopped on drop.
struct FakeKubelet {
    port: u16,
    stop: CancellationToken,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn fake_kubelet(cert_pem: &str, key_pem: &str, client_ca_pem: &str) -> FakeKubelet {
    let tls = https::server_config(
        https::parse_certs(cert_pem, "kubelet.crt").unwrap(),
        https::parse_key(key_pem, "kubelet.key").unwrap(),
        Some(&https::parse_certs(client_ca_pem, "ca.crt").unwrap()),
    )
    .unwrap();
    let app = axum::Router::new().fallback(|req: Request| async move {
        let peer = req
            .extensions()
            .get::<Peer>()
            .map(|p| p.0.clone())
            .unwrap_or_default();
        axum::Json(json!({
            "user": peer,
            "path": req.uri().path(),
            "query": req.uri().query().unwrap_or_default(),
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    tokio::spawn(https::serve(
        listener,
        std::sync::Arc::new(tls),
        app,
        stop.clone(),
        Duration::from_secs(1),
        |tls: &rustls::ServerConnection, _: SocketAddr| {
            let mut ext = Extensions::new();
            if let Some(der) = tls.peer_certificates().and_then(|c| c.first()) {
                ext.insert(Peer(subject_of(der).unwrap().common_name));
            }
            ext
        },
    ));
    FakeKubelet { port, stop }
}

/// Registers node `name` with its kubelet at 127.0.0.1:`port`.
async fn register_node(s: &TestServer, name: &str, port: u16) {
    let (code, _, v) = s
        .http(
            "POST",
            "/api/v1/nodes",
            &[JSON],
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Node",
                                       "metadata": {"name": name}}))
            .unwrap(),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }});
    let (code, _, v) = s
        .http(
            "PATCH",
            &format!("/api/v1/nodes/{name}/status"),
            &[("content-type", "application/merge-patch+json")],
            serde_json::to_vec(&status).unwrap(),
        )
        .await;
    assert_eq!(code, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_reviews_say_whom_a_token_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "jane-token,jane,1001,\"dev,qa\"\n").unwrap();
    let s = TestServer::start_with(Backend::Embedded, |c| c.token_auth_file = Some(tokens)).await;
    // A kubelet may ask (system:node), as it does to authenticate its clients.
    let node = Identity::node("n1");
    let review = |token: &str| {
        serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1",
                                   "kind": "TokenReview", "spec": {"token": token}}))
        .unwrap()
    };
    let path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let (code, _, v) = s
        .http_as(&node, "POST", path, &[JSON], review("jane-token"))
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["kind"], "TokenReview");
    assert_eq!(v["status"]["authenticated"], true);
    assert_eq!(v["status"]["user"]["username"], "jane");
    assert_eq!(v["status"]["user"]["uid"], "1001");
    assert_eq!(
        v["status"]["user"]["groups"],
        json!(["dev", "qa", "system:authenticated"])
    );
    let sa = s.service_account_token("default", "bot", None).await;
    let (_, _, v) = s.http_as(&node, "POST", path, &[JSON], review(&sa)).await;
    assert_eq!(v["status"]["authenticated"], true);
    assert_eq!(
        v["status"]["user"]["username"],
        "system:serviceaccount:default:bot"
    );
    for bad in ["nope", "a.b.c"] {
        let (code, _, v) = s.http_as(&node, "POST", path, &[JSON], review(bad)).await;
        assert_eq!(code, 201);
        assert_eq!(v["status"]["authenticated"], false, "{bad}");
        assert!(!v["status"]["error"].as_str().unwrap().is_empty());
    }
    let (code, _, _) = s.http_as(&node, "POST", path, &[JSON], review("")).await;
    assert_eq!(code, 422, "a review without a token is invalid");
    // Whoever has no right to create TokenReviews may not probe tokens.
    let (code, _, _) = s
        .http_as(
            &Identity::Token("jane-token".into()),
            "POST",
            path,
            &[JSON],
            review("jane-token"),
        )
        .await;
    assert_eq!(code, 403);
    // The API is discoverable, as kube-rs and client-go expect.
    let (_, _, v) = s
        .http("GET", "/apis/authentication.k8s.io/v1", &[], vec![])
        .await;
    assert!(
        v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "tokenreviews" && r["verbs"] == json!(["create"])),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_proxy_and_logs_reach_kubelets_over_verified_https() {
    let s = TestServer::start_with(Backend::Embedded, |c| {
        c.kubelet_client.certificate_authority = Some(c.data_dir.join("pki").join("ca.crt"));
    })
    .await;
    let pki = s.pki();
    let names = ServingNames {
        dns: vec!["localhost".into()],
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
    };
    let serving = pki.issue_serving("system:node:n1", &names).unwrap();
    let kubelet = fake_kubelet(&serving.cert_pem, &serving.key_pem, pki.ca_pem()).await;
    register_node(&s, "n1", kubelet.port).await;

    let (code, _, v) = s
        .http(
            "GET",
            "/api/v1/nodes/n1/proxy/stats/summary?only_cpu_and_memory=true",
            &[],
            vec![],
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v,
        json!({"user": "kube-apiserver-kubelet-client", "path": "/stats/summary",
               "query": "only_cpu_and_memory=true"})
    );
    let (code, _, v) = s.http("GET", "/api/v1/nodes/n1/proxy", &[], vec![]).await;
    assert_eq!((code, &v["path"]), (200, &json!("/")));
    // The real kubectl reads through the proxy as well.
    let raw = s.kubectl_ok(&["get", "--raw", "/api/v1/nodes/n1/proxy/metrics"]);
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["path"], "/metrics");

    // pods/log: the container log path of the pod's node, the options passed on.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                     "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}});
    let (code, _, _) = s
        .http(
            "POST",
            "/api/v1/namespaces/default/pods",
            &[JSON],
            serde_json::to_vec(&pod).unwrap(),
        )
        .await;
    assert_eq!(code, 201);
    let (code, _, v) = s
        .http(
            "GET",
            "/api/v1/namespaces/default/pods/web/log?tailLines=3&ignored=x",
            &[],
            vec![],
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["path"], "/containerLogs/default/web/c");
    assert_eq!(v["query"], "tailLines=3");
    assert_eq!(v["user"], "kube-apiserver-kubelet-client");

    // Authorized as get on nodes/proxy: a user without the right is refused by the API server.
    let jane = Identity::user("jane", &[]);
    let (code, _, v) = s
        .http_as(
            &jane,
            "GET",
            "/api/v1/nodes/n1/proxy/stats/summary",
            &[],
            vec![],
        )
        .await;
    assert_eq!(code, 403);
    assert_eq!(
        v["message"],
        "nodes \"n1\" is forbidden: User \"jane\" cannot get resource \"nodes/proxy\" in API group \"\" at the cluster scope"
    );

    // A kubelet whose certificate is not of the cluster CA is not trusted.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let foreign = params.self_signed(&key).unwrap();
    let impostor = fake_kubelet(&foreign.pem(), &key.serialize_pem(), pki.ca_pem()).await;
    register_node(&s, "n2", impostor.port).await;
    let (code, _, v) = s
        .http("GET", "/api/v1/nodes/n2/proxy/stats/summary", &[], vec![])
        .await;
    assert_eq!(code, 500, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("error trying to reach the kubelet on n2")
            && message.contains("UnknownIssuer"),
        "{v}"
    );
    // A node without a kubelet listening: 500 as well, without Retry-After (clients would
    // retry in vain).
    drop(kubelet);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, headers, _) = s
        .http("GET", "/api/v1/nodes/n1/proxy/stats/summary", &[], vec![])
        .await;
    assert_eq!(code, 500);
    assert!(headers.get("retry-after").is_none());
    let (code, _, _) = s
        .http(
            "GET",
            "/api/v1/nodes/missing/proxy/stats/summary",
            &[],
            vec![],
        )
        .await;
    assert_eq!(code, 404);
}

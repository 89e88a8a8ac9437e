//! The csrapproving and csrsigning controllers against a real API server (with the real
//! kubectl): a bootstrap token turns into a node credential — its node client CSR is approved
//! after a SubjectAccessReview and signed by the cluster CA, and the certificate authenticates
//! as `system:node:<name>` in `system:nodes` — then the node gets a serving certificate for the
//! SANs it asks for, the proxy its client certificate, and the node renews its own; requests
//! nobody may approve automatically stay pending for `kubectl certificate approve|deny`, and
//! what a signer may not sign fails with a reason.

mod common;

use std::time::Duration;

use common::Cluster;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rkube_machinery::certificates::{self as certs, KeyPair};
use rkube_testkit::apiserver::Identity;
use serde_json::{Value, json};

const TOKEN: &str = "abcdef.0123456789abcdef";
const CLIENT: &[&str] = &["digital signature", "key encipherment", "client auth"];
const SERVING: &[&str] = &["digital signature", "key encipherment", "server auth"];

/// A request for a new key; the key as PEM.
struct Ask<'a> {
    name: &'a str,
    cn: &'a str,
    orgs: &'a [&'a str],
    dns: &'a [&'a str],
    ips: &'a [&'a str],
    signer: &'a str,
    usages: &'a [&'a str],
}

async fn request(client: &Client, a: Ask<'_>) -> String {
    let key = KeyPair::generate().unwrap();
    let orgs: Vec<String> = a.orgs.iter().map(|s| s.to_string()).collect();
    let dns: Vec<String> = a.dns.iter().map(|s| s.to_string()).collect();
    let ips: Vec<std::net::IpAddr> = a.ips.iter().map(|s| s.parse().unwrap()).collect();
    let pem = certs::request_pem(&key, a.cn, &orgs, &dns, &ips).unwrap();
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(a.name.into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: a.signer.into(),
            usages: Some(a.usages.iter().map(|s| s.to_string()).collect()),
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        status: None,
    };
    Api::<CertificateSigningRequest>::all(client.clone())
        .create(&PostParams::default(), &csr)
        .await
        .unwrap_or_else(|e| panic!("creating CSR {}: {e}", a.name));
    key.serialize_pem()
}

/// Polls CSR `name` (as the admin) until `done` holds (60 s at most, generous under load).
async fn wait_for(
    cluster: &Cluster,
    name: &str,
    what: &str,
    done: impl Fn(&CertificateSigningRequest) -> bool,
) -> CertificateSigningRequest {
    let api: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let c = api.get(name).await.unwrap();
        if done(&c) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "CSR {name} never became {what}: {:?}",
            c.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn certificate(c: &CertificateSigningRequest) -> Option<String> {
    c.status
        .as_ref()?
        .certificate
        .as_ref()
        .map(|b| String::from_utf8(b.0.clone()).unwrap())
}

fn conditions(c: &CertificateSigningRequest) -> Vec<(String, String, String)> {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            (
                c.type_,
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default(),
            )
        })
        .collect()
}

async fn issued(cluster: &Cluster, name: &str) -> (CertificateSigningRequest, String) {
    let c = wait_for(cluster, name, "issued", |c| certificate(c).is_some()).await;
    let pem = certificate(&c).unwrap();
    (c, pem)
}

/// `kubectl auth whoami` with a client certificate: (user, groups).
async fn whoami(cluster: &Cluster, name: &str, cert_pem: &str, key_pem: &str) -> (String, Value) {
    let id = Identity::Certificate {
        name: name.into(),
        cert_pem: cert_pem.into(),
        key_pem: key_pem.into(),
    };
    let kc = cluster.server.kubeconfig_for(&id).await;
    let out = cluster
        .server
        .kubectl_in(&kc, &["auth", "whoami", "-o", "json"], None, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["status"]["userInfo"]["username"]
            .as_str()
            .unwrap()
            .to_string(),
        v["status"]["userInfo"]["groups"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bootstrap_token_turns_into_node_credentials() {
    let cluster = Cluster::start_for(|s, c| {
        c.cluster_signing_cert_file = Some(s.dir.path().join("pki/ca.crt"));
        c.cluster_signing_key_file = Some(s.dir.path().join("pki/ca.key"));
    })
    .await;
    let s = &cluster.server;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                       "usage-bootstrap-authentication": "true"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(cluster.client.clone(), "kube-system")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let boot = s.client_as(&Identity::Token(TOKEN.into())).await;

    // First a request the approver must leave alone (an admin certificate through the
    // kubelet signer), then the node's client certificate.
    request(
        &boot,
        Ask {
            name: "rogue",
            cn: "admin",
            orgs: &["system:masters"],
            dns: &[],
            ips: &[],
            signer: certs::KUBE_APISERVER_CLIENT_KUBELET,
            usages: CLIENT,
        },
    )
    .await;
    let node_key = request(
        &boot,
        Ask {
            name: "node-client-n1",
            cn: "system:node:n1",
            orgs: &["system:nodes"],
            dns: &[],
            ips: &[],
            signer: certs::KUBE_APISERVER_CLIENT_KUBELET,
            usages: CLIENT,
        },
    )
    .await;
    let (csr, node_cert) = issued(&cluster, "node-client-n1").await;
    assert_eq!(
        conditions(&csr),
        [(
            "Approved".to_string(),
            "AutoApproved".to_string(),
            "Auto approving kubelet client certificate after SubjectAccessReview.".to_string()
        )]
    );
    assert_eq!(
        csr.spec.username.as_deref(),
        Some("system:bootstrap:abcdef")
    );
    let info = certs::certificate_info(node_cert.as_bytes()).unwrap();
    assert_eq!(info.common_name, "system:node:n1");
    assert_eq!(info.organizations, ["system:nodes"]);
    assert!(info.client_auth && !info.server_auth);
    let left = info.not_after.unix_timestamp() - jiff::Timestamp::now().as_second();
    assert!(
        (3300..=3600).contains(&left),
        "expirationSeconds 3600 honoured: {left} s left"
    );
    // The certificate is the node's credential.
    let (user, groups) = whoami(&cluster, "system:node:n1", &node_cert, &node_key).await;
    assert_eq!(user, "system:node:n1");
    assert_eq!(groups, json!(["system:nodes", "system:authenticated"]));

    // The rogue request is still pending; its requester cannot approve it (403).
    let csrs_boot: Api<CertificateSigningRequest> = Api::all(boot.clone());
    let mut rogue = csrs_boot.get("rogue").await.unwrap();
    assert!(conditions(&rogue).is_empty(), "{:?}", rogue.status);
    rogue.status = Some(
        serde_json::from_value(
            json!({"conditions": [{"type": "Approved", "status": "True", "reason": "Self"}]}),
        )
        .unwrap(),
    );
    let err = csrs_boot
        .replace_subresource("approval", "rogue", &PostParams::default(), &rogue)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err}"
    );
    let table = cluster.kubectl(&["get", "csr"]).await;
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {table}"))
            .trim_end()
            .to_string()
    };
    assert!(
        row("node-client-n1").ends_with("Approved,Issued"),
        "{table}"
    );
    assert!(row("rogue").ends_with("Pending"), "{table}");
    assert!(row("rogue").contains("system:bootstrap:abcdef"), "{table}");

    // A person approves it anyway: the kubelet signer refuses to sign it (Failed, with why).
    cluster.kubectl(&["certificate", "approve", "rogue"]).await;
    let failed = wait_for(&cluster, "rogue", "failed", |c| {
        conditions(c).iter().any(|(t, _, _)| t == "Failed")
    })
    .await;
    let (_, reason, message) = conditions(&failed)
        .into_iter()
        .find(|(t, _, _)| t == "Failed")
        .unwrap();
    assert_eq!(reason, "SignerValidationFailure");
    assert!(message.contains("organization"), "{message}");
    assert!(certificate(&failed).is_none());
    let out = cluster
        .kubectl(&["get", "csr", "rogue", "--no-headers"])
        .await;
    assert!(out.trim_end().ends_with("Approved,Failed"), "{out}");

    // The node, as itself, asks for a serving certificate (and one for another node, which
    // stays pending), then the proxy's client certificate, and renews its own.
    let node = s
        .client_as(&Identity::Certificate {
            name: "system:node:n1".into(),
            cert_pem: node_cert.clone(),
            key_pem: node_key.clone(),
        })
        .await;
    request(
        &node,
        Ask {
            name: "serving-n2",
            cn: "system:node:n2",
            orgs: &["system:nodes"],
            dns: &["n2"],
            ips: &[],
            signer: certs::KUBELET_SERVING,
            usages: SERVING,
        },
    )
    .await;
    request(
        &node,
        Ask {
            name: "serving-n1",
            cn: "system:node:n1",
            orgs: &["system:nodes"],
            dns: &["n1", "n1.lab"],
            ips: &["10.0.0.5"],
            signer: certs::KUBELET_SERVING,
            usages: SERVING,
        },
    )
    .await;
    let (_, serving) = issued(&cluster, "serving-n1").await;
    let info = certs::certificate_info(serving.as_bytes()).unwrap();
    assert_eq!(info.common_name, "system:node:n1");
    assert_eq!(info.dns_names, ["n1", "n1.lab"]);
    assert_eq!(
        info.ip_addresses,
        ["10.0.0.5".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(info.server_auth && !info.client_auth);
    let other = Api::<CertificateSigningRequest>::all(cluster.client.clone())
        .get("serving-n2")
        .await
        .unwrap();
    assert!(conditions(&other).is_empty(), "{:?}", other.status);

    let proxy_key = request(
        &boot,
        Ask {
            name: "proxy-n1",
            cn: "system:kube-proxy",
            orgs: &[],
            dns: &[],
            ips: &[],
            signer: certs::KUBE_APISERVER_CLIENT,
            usages: &["client auth"],
        },
    )
    .await;
    let (_, proxy_cert) = issued(&cluster, "proxy-n1").await;
    let (user, _) = whoami(&cluster, "system:kube-proxy", &proxy_cert, &proxy_key).await;
    assert_eq!(user, "system:kube-proxy");

    request(
        &node,
        Ask {
            name: "node-client-n1-renewal",
            cn: "system:node:n1",
            orgs: &["system:nodes"],
            dns: &[],
            ips: &[],
            signer: certs::KUBE_APISERVER_CLIENT_KUBELET,
            usages: CLIENT,
        },
    )
    .await;
    let (renewed, _) = issued(&cluster, "node-client-n1-renewal").await;
    assert_eq!(
        conditions(&renewed)[0].2,
        "Auto approving self kubelet client certificate after SubjectAccessReview."
    );

    // Other client certificates wait for a person: approved → signed, denied → never.
    for name in ["jane", "mallory"] {
        request(
            &cluster.client,
            Ask {
                name,
                cn: name,
                orgs: &["dev"],
                dns: &[],
                ips: &[],
                signer: certs::KUBE_APISERVER_CLIENT,
                usages: &["client auth"],
            },
        )
        .await;
    }
    cluster.kubectl(&["certificate", "deny", "mallory"]).await;
    let out = cluster.kubectl(&["certificate", "approve", "jane"]).await;
    assert!(out.contains("approved"), "{out}");
    let (_, jane) = issued(&cluster, "jane").await;
    assert_eq!(
        certs::certificate_info(jane.as_bytes())
            .unwrap()
            .common_name,
        "jane"
    );
    let denied = wait_for(&cluster, "mallory", "denied", |c| {
        conditions(c).iter().any(|(t, _, _)| t == "Denied")
    })
    .await;
    assert!(certificate(&denied).is_none());
    let described = cluster.kubectl(&["describe", "csr", "jane"]).await;
    assert!(described.contains("Approved"), "{described}");
}

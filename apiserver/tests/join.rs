//! Joining a cluster, the API side, with the real kubectl against the HTTPS API server:
//! bootstrap tokens authenticate as `system:bootstrap:<id>` while their Secret is valid (a
//! deleted, expired, mismatched, wrongly typed or non-authentication token gets 401), and the
//! `certificates.k8s.io/v1` CertificateSigningRequest API — the requester recorded by the
//! server, validation, `kubectl get/describe csr`, `kubectl certificate approve/deny` through the
//! `approval` subresource guarded by the `approve` verb on signers, the `status` subresource
//! guarded by `sign`. (Approval and signing by the controllers are tested in the controller
//! manager's `certificates` test.)

mod common;

use common::{Backend, Identity, TestServer};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use rkube_machinery::certificates::{self as certs, KeyPair};
use serde_json::{Value, json};

const JSON: (&str, &str) = ("content-type", "application/json");
const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Creates the bootstrap token Secret of `id` with `fields` (stringData) and `type_`.
async fn token_secret(s: &TestServer, id: &str, type_: &str, fields: &[(&str, &str)]) {
    let mut data = serde_json::Map::new();
    for (k, v) in fields {
        data.insert(k.to_string(), json!(v));
    }
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": type_,
        "stringData": data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(s.client().await, "kube-system")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// A valid token Secret's fields for `id.secret`.
fn fields<'a>(id: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("token-id", id),
        ("token-secret", secret),
        ("usage-bootstrap-authentication", "true"),
        ("usage-bootstrap-signing", "true"),
    ]
}

const TYPE: &str = "bootstrap.kubernetes.io/token";

async fn status_of(s: &TestServer, token: &str) -> u16 {
    s.http_as(
        &Identity::Token(token.into()),
        "GET",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        &[],
        vec![],
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_tokens_authenticate_until_revoked() {
    let s = TestServer::start(Backend::Embedded).await;
    let mut valid = fields("abcdef", "0123456789abcdef");
    valid.push((
        "auth-extra-groups",
        "system:bootstrappers:rkube:default-node-token",
    ));
    valid.push(("expiration", "2099-01-01T00:00:00Z"));
    token_secret(&s, "abcdef", TYPE, &valid).await;

    // kubectl with the token: who it is, what it may do.
    let token = Identity::Token("abcdef.0123456789abcdef".into());
    let kc = s.kubeconfig_for(&token).await;
    let out = s.kubectl_in(&kc, &["auth", "whoami", "-o", "json"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let who: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:bootstrap:abcdef"
    );
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:rkube:default-node-token",
            "system:authenticated"
        ])
    );
    let can = |args: &[&str]| {
        stdout(&s.kubectl_in(&kc, args, None, &[]))
            .trim()
            .to_string()
    };
    assert_eq!(
        can(&["auth", "can-i", "create", "certificatesigningrequests"]),
        "yes"
    );
    assert_eq!(
        can(&["auth", "can-i", "list", "secrets", "-n", "kube-system"]),
        "no"
    );
    assert_eq!(
        can(&[
            "auth",
            "can-i",
            "update",
            "certificatesigningrequests/approval"
        ]),
        "no"
    );
    let out = s.kubectl_in(&kc, &["get", "secrets", "-n", "kube-system"], None, &[]);
    assert!(
        stderr(&out).contains("cannot list resource \"secrets\""),
        "{}",
        stderr(&out)
    );

    // Mismatched secret, a token that is not for authentication, the wrong Secret type, an
    // expired token, groups outside system:bootstrappers, no Secret at all: 401.
    assert_eq!(status_of(&s, "abcdef.0123456789abcdef").await, 200);
    assert_eq!(status_of(&s, "abcdef.0123456789abcdee").await, 401);
    let mut not_auth = fields("bbbbbb", "0123456789abcdef");
    not_auth[2] = ("usage-bootstrap-authentication", "false");
    token_secret(&s, "bbbbbb", TYPE, &not_auth).await;
    assert_eq!(status_of(&s, "bbbbbb.0123456789abcdef").await, 401);
    token_secret(
        &s,
        "cccccc",
        "Opaque",
        &fields("cccccc", "0123456789abcdef"),
    )
    .await;
    assert_eq!(status_of(&s, "cccccc.0123456789abcdef").await, 401);
    let mut expired = fields("dddddd", "0123456789abcdef");
    expired.push(("expiration", "2020-01-01T00:00:00Z"));
    token_secret(&s, "dddddd", TYPE, &expired).await;
    assert_eq!(status_of(&s, "dddddd.0123456789abcdef").await, 401);
    let mut masters = fields("eeeeee", "0123456789abcdef");
    masters.push(("auth-extra-groups", "system:masters"));
    token_secret(&s, "eeeeee", TYPE, &masters).await;
    assert_eq!(status_of(&s, "eeeeee.0123456789abcdef").await, 401);
    assert_eq!(status_of(&s, "ffffff.0123456789abcdef").await, 401);

    // TokenReview says the same (what kubelets ask about bearer tokens).
    let (code, _, review) = s
        .http(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &[JSON],
            serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview", "spec": {"token": "abcdef.0123456789abcdef"}}))
            .unwrap(),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(
        review["status"]["user"]["username"],
        "system:bootstrap:abcdef"
    );

    // Revoking = deleting the Secret: the very next request is refused.
    Api::<Secret>::namespaced(s.client().await, "kube-system")
        .delete("bootstrap-token-abcdef", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status_of(&s, "abcdef.0123456789abcdef").await, 401);
    let out = s.kubectl_in(&kc, &["auth", "whoami"], None, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("You must be logged in to the server"),
        "{}",
        stderr(&out)
    );
}

/// A CSR body for a new key: subject `cn`/`orgs`, `signer`, `usages`.
fn csr_body(name: &str, cn: &str, orgs: &[&str], signer: &str, usages: &[&str]) -> Value {
    let key = KeyPair::generate().unwrap();
    let orgs: Vec<String> = orgs.iter().map(|s| s.to_string()).collect();
    let pem = certs::request_pem(&key, cn, &orgs, &[], &[]).unwrap();
    json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64_of(pem.as_bytes()),
            "signerName": signer,
            "usages": usages,
        },
    })
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Grants `user` the rules `rules` (a ClusterRole and a binding named after it).
async fn grant(s: &TestServer, user: &str, rules: Value) {
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": format!("test-{user}")}, "rules": rules});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("test-{user}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("test-{user}")},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]});
    for (path, body) in [
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            binding,
        ),
    ] {
        let (code, _, v) = s
            .http("POST", path, &[JSON], serde_json::to_vec(&body).unwrap())
            .await;
        assert_eq!(code, 201, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificate_signing_requests_with_kubectl() {
    let s = TestServer::start(Backend::Embedded).await;
    token_secret(&s, "abcdef", TYPE, &fields("abcdef", "0123456789abcdef")).await;
    let boot = Identity::Token("abcdef.0123456789abcdef".into());
    let client_usages = &["digital signature", "key encipherment", "client auth"];

    // The requester is who the server says, whatever the client wrote; status is dropped.
    let mut body = csr_body(
        "node-csr-1",
        "system:node:n1",
        &["system:nodes"],
        certs::KUBE_APISERVER_CLIENT_KUBELET,
        client_usages,
    );
    body["spec"]["username"] = json!("admin");
    body["spec"]["groups"] = json!(["system:masters"]);
    body["spec"]["expirationSeconds"] = json!(3600);
    body["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
    let (code, _, v) = s
        .http_as(
            &boot,
            "POST",
            CSRS,
            &[JSON],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["spec"]["username"], "system:bootstrap:abcdef");
    assert_eq!(
        v["spec"]["groups"],
        json!(["system:bootstrappers", "system:authenticated"])
    );
    assert!(v["status"].get("conditions").is_none(), "{v}");

    // Bad requests: a request that is not PEM, no usages, an unknown usage, no signer, the
    // legacy signer; and system:masters through kube-apiserver-client.
    let mut bad = csr_body("bad", "x", &[], certs::KUBE_APISERVER_CLIENT, &[]);
    bad["spec"]["request"] = json!(base64_of(b"hello"));
    bad["spec"]["signerName"] = json!("");
    let (code, _, v) = s
        .http("POST", CSRS, &[JSON], serde_json::to_vec(&bad).unwrap())
        .await;
    assert_eq!(code, 422, "{v}");
    let causes: Vec<&str> = v["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        causes,
        ["spec.request", "spec.signerName", "spec.usages"],
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("CERTIFICATE REQUEST"),
        "{v}"
    );
    let legacy = csr_body("legacy", "x", &[], certs::LEGACY_UNKNOWN, &["flying"]);
    let (code, _, v) = s
        .http("POST", CSRS, &[JSON], serde_json::to_vec(&legacy).unwrap())
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("legacy signerName"),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("spec.usages[0]"),
        "{v}"
    );
    let masters = csr_body(
        "masters",
        "root",
        &["system:masters"],
        certs::KUBE_APISERVER_CLIENT,
        &["client auth"],
    );
    let (code, _, v) = s
        .http("POST", CSRS, &[JSON], serde_json::to_vec(&masters).unwrap())
        .await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("system:masters group is not allowed")
    );

    // kubectl get and describe, with kubectl's columns.
    let table = s.kubectl_ok(&["get", "csr"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    let row = table.lines().find(|l| l.starts_with("node-csr-1")).unwrap();
    assert!(
        row.contains("system:bootstrap:abcdef") && row.contains("60m"),
        "{row}"
    );
    assert!(row.trim_end().ends_with("Pending"), "{row}");
    let described = s.kubectl_ok(&["describe", "csr", "node-csr-1"]);
    assert!(described.contains("system:node:n1"), "{described}");
    assert!(described.contains("system:bootstrap:abcdef"), "{described}");
    assert!(
        s.kubectl_ok(&["api-resources", "--api-group=certificates.k8s.io"])
            .contains("csr"),
        "short name served"
    );

    // The requester cannot approve its own request (no rights on approval).
    let approve = |name: &str| {
        json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Manual"}]}})
    };
    let path = format!("{CSRS}/node-csr-1/approval");
    let (code, _, v) = s
        .http_as(
            &boot,
            "PUT",
            &path,
            &[JSON],
            serde_json::to_vec(&approve("node-csr-1")).unwrap(),
        )
        .await;
    assert_eq!(code, 403, "{v}");
    // Rights on the approval subresource are not enough: approving needs `approve` on the
    // signer (by name or `<domain>/*`).
    let lite = Identity::user("approver", &[]);
    grant(
        &s,
        "approver",
        json!([{"apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests", "certificatesigningrequests/approval"],
                "verbs": ["get", "list", "update"]}]),
    )
    .await;
    let (code, _, v) = s
        .http_as(
            &lite,
            "PUT",
            &path,
            &[JSON],
            serde_json::to_vec(&approve("node-csr-1")).unwrap(),
        )
        .await;
    assert_eq!(code, 403, "{v}");
    assert_eq!(
        v["message"],
        "certificatesigningrequests.certificates.k8s.io \"node-csr-1\" is forbidden: user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client-kubelet\""
    );
    grant(
        &s,
        "approver2",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"], "verbs": ["update"]},
               {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["approve"],
                "resourceNames": ["kubernetes.io/*"]}]),
    )
    .await;
    let (code, _, v) = s
        .http_as(
            &Identity::user("approver2", &[]),
            "PUT",
            &path,
            &[JSON],
            serde_json::to_vec(&approve("node-csr-1")).unwrap(),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"]["conditions"][0]["type"], "Approved");
    assert!(
        v["status"]["conditions"][0]["lastUpdateTime"].is_string(),
        "{v}"
    );
    assert_eq!(
        v["spec"]["username"], "system:bootstrap:abcdef",
        "spec unchanged"
    );

    // kubectl certificate approve and deny (the approval subresource).
    for name in ["csr-a", "csr-d"] {
        let b = csr_body(
            name,
            "jane",
            &["dev"],
            certs::KUBE_APISERVER_CLIENT,
            &["client auth"],
        );
        let (code, _, v) = s
            .http("POST", CSRS, &[JSON], serde_json::to_vec(&b).unwrap())
            .await;
        assert_eq!(code, 201, "{v}");
    }
    let out = s.kubectl_ok(&["certificate", "approve", "csr-a"]);
    assert!(out.contains("approved"), "{out}");
    let out = s.kubectl_ok(&["certificate", "deny", "csr-d"]);
    assert!(out.contains("denied"), "{out}");
    let api: Api<CertificateSigningRequest> = Api::all(s.client().await);
    let cond = |c: &CertificateSigningRequest| {
        c.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].clone()
    };
    let a = api.get("csr-a").await.unwrap();
    assert_eq!(cond(&a).type_, "Approved");
    assert_eq!(cond(&a).reason.as_deref(), Some("KubectlApprove"));
    assert_eq!(cond(&api.get("csr-d").await.unwrap()).type_, "Denied");
    let table = s.kubectl_ok(&["get", "csr", "csr-a", "csr-d", "--no-headers"]);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .trim_end()
            .ends_with("Approved"),
        "{table}"
    );
    assert!(
        table.lines().nth(1).unwrap().trim_end().ends_with("Denied"),
        "{table}"
    );
    // A denied request cannot also be approved, nor have its decision removed.
    let (code, _, v) = s
        .http(
            "PUT",
            &format!("{CSRS}/csr-d/approval"),
            &[JSON],
            serde_json::to_vec(&approve("csr-d")).unwrap(),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("remove a condition of type \"Denied\""),
        "{v}"
    );

    // status: a certificate must be PEM certificates; the approval cannot change through it;
    // setting one needs `sign` on the signer.
    let mut st = serde_json::to_value(api.get("csr-a").await.unwrap()).unwrap();
    st["status"]["certificate"] = json!(base64_of(b"not a certificate"));
    let (code, _, v) = s
        .http(
            "PUT",
            &format!("{CSRS}/csr-a/status"),
            &[JSON],
            serde_json::to_vec(&st).unwrap(),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("status.certificate"),
        "{v}"
    );
    let pki = s.pki();
    let issued = pki
        .issue_client(
            "jane",
            &["dev".into()],
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
    st["status"]["certificate"] = json!(base64_of(issued.cert_pem.as_bytes()));
    st["status"]["conditions"] = json!([]);
    grant(
        &s,
        "nosigner",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/status"], "verbs": ["update"]}]),
    )
    .await;
    let (code, _, v) = s
        .http_as(
            &Identity::user("nosigner", &[]),
            "PUT",
            &format!("{CSRS}/csr-a/status"),
            &[JSON],
            serde_json::to_vec(&st).unwrap(),
        )
        .await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("not permitted to sign"),
        "{v}"
    );
    let (code, _, v) = s
        .http(
            "PUT",
            &format!("{CSRS}/csr-a/status"),
            &[JSON],
            serde_json::to_vec(&st).unwrap(),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["status"]["conditions"][0]["type"], "Approved",
        "kept: {v}"
    );
    let row = s.kubectl_ok(&["get", "csr", "csr-a", "--no-headers"]);
    assert!(row.trim_end().ends_with("Approved,Issued"), "{row}");
}

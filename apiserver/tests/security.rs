//! Security by default, proven with real clients: the real kubectl and kube-rs against the
//! HTTPS API server — 401 without or with bad credentials, RBAC decisions and Kubernetes'
//! forbidden messages, `kubectl auth can-i`/`whoami`/`create token`, ServiceAccount tokens
//! bound to their ServiceAccount and pod, the Node authorizer, the escalation check, Secrets
//! encrypted in etcd and in the embedded file, the audit log, and the watch limit.

mod common;

use std::time::Duration;

use common::{Backend, Identity, TestServer};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::json;

const JSON: (&str, &str) = ("content-type", "application/json");

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server with a static token file naming `jane` (token `jane-token`, group `dev`).
async fn with_tokens(backend: Backend) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "jane-token,jane,1001,\"dev,qa\"\nbob-token,bob,1002\n",
    )
    .unwrap();
    let s = TestServer::start_with(backend, |c| c.token_auth_file = Some(tokens)).await;
    (s, dir)
}

fn jane() -> Identity {
    Identity::Token("jane-token".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anonymous_and_bad_credentials_get_401() {
    let (s, _t) = with_tokens(Backend::Embedded).await;
    let anon = Identity::Anonymous;
    let (code, _, v) = s
        .http_as(&anon, "GET", "/api/v1/namespaces", &[], vec![])
        .await;
    assert_eq!(code, 401);
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "Unauthorized");
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (code, _, _) = s.http_as(&anon, "GET", path, &[], vec![]).await;
        assert_eq!(code, 200, "{path} is public");
    }
    for path in ["/metrics", "/api", "/openapi/v2"] {
        let (code, _, _) = s.http_as(&anon, "GET", path, &[], vec![]).await;
        assert_eq!(code, 401, "{path} needs credentials");
    }
    let bad = Identity::Token("not-a-token".into());
    let (code, _, _) = s
        .http_as(&bad, "GET", "/api/v1/namespaces", &[], vec![])
        .await;
    assert_eq!(code, 401);
    let forged = Identity::Token("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln".into());
    let (code, _, _) = s
        .http_as(&forged, "GET", "/api/v1/namespaces", &[], vec![])
        .await;
    assert_eq!(code, 401);
    // A certificate of another CA is not accepted: the connection stays anonymous.
    let other_ca = tempfile::tempdir().unwrap();
    let foreign = rkube_apiserver::pki::Pki::load_or_create(other_ca.path())
        .unwrap()
        .issue_client(
            "admin",
            &["system:masters".into()],
            Duration::from_secs(3600),
        )
        .unwrap();
    let kc = other_ca.path().join("foreign.kubeconfig");
    rkube_apiserver::kubeconfig::write_text(
        &kc,
        &rkube_apiserver::kubeconfig::render(
            &s.url,
            s.pki().ca_pem(),
            "admin",
            &rkube_apiserver::kubeconfig::Credentials::Certificate {
                cert_pem: foreign.cert_pem,
                key_pem: foreign.key_pem,
            },
        ),
    )
    .unwrap();
    let out = s.kubectl_in(&kc, &["get", "ns"], None, &[]);
    assert!(!out.status.success(), "a foreign certificate must not work");
    // The real kubectl with a token nobody issued (without any credentials it would prompt).
    let kc = s.kubeconfig_for(&bad).await;
    let out = s.kubectl_in(&kc, &["get", "pods"], None, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("You must be logged in to the server"),
        "kubectl says why: {}",
        stderr(&out)
    );
    // The admin kubeconfig is TLS with a client certificate: kubectl and kube-rs use it as is.
    assert!(s.url.starts_with("https://"));
    let text = std::fs::read_to_string(&s.kubeconfig).unwrap();
    assert!(text.contains("certificate-authority-data") && text.contains("client-key-data"));
    assert!(
        s.kubectl_ok(&["get", "ns", "default", "-o", "name"])
            .contains("namespace/default")
    );
    assert_eq!(
        s.kubectl_ok(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}"
        ]),
        "admin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_auth_can_i_and_forbidden_messages() {
    let (s, _t) = with_tokens(Backend::Embedded).await;
    let kc = s.kubeconfig_for(&jane()).await;
    let jane_kubectl = |args: &[&str]| s.kubectl_in(&kc, args, None, &[]);
    // Authenticated but granted nothing yet.
    let out = jane_kubectl(&["auth", "can-i", "list", "pods"]);
    assert_eq!(stdout(&out).trim(), "no");
    let out = jane_kubectl(&["get", "pods", "-n", "kube-system"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
        ),
        "{}",
        stderr(&out)
    );
    let out = jane_kubectl(&["auth", "whoami", "-o", "json"]);
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "jane");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        json!(["dev", "qa", "system:authenticated"])
    );
    // view in default, through the group.
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "dev-view",
        "--clusterrole=view",
        "--group=dev",
        "-n",
        "default",
    ]);
    assert_eq!(
        stdout(&jane_kubectl(&["auth", "can-i", "list", "pods"])).trim(),
        "yes"
    );
    assert_eq!(
        stdout(&jane_kubectl(&["auth", "can-i", "create", "pods"])).trim(),
        "no"
    );
    assert_eq!(
        stdout(&jane_kubectl(&["auth", "can-i", "get", "secrets"])).trim(),
        "no"
    );
    assert_eq!(
        stdout(&jane_kubectl(&[
            "auth",
            "can-i",
            "list",
            "pods",
            "-n",
            "kube-system"
        ]))
        .trim(),
        "no"
    );
    assert!(jane_kubectl(&["get", "pods"]).status.success());
    let list = stdout(&jane_kubectl(&["auth", "can-i", "--list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{list}"
    );
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    let out = jane_kubectl(&["create", "configmap", "x", "--from-literal=a=b"]);
    assert!(
        stderr(&out).contains(
            "configmaps is forbidden: User \"jane\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        stderr(&out)
    );
    // Cluster-scoped requests.
    let out = jane_kubectl(&["get", "nodes"]);
    assert!(
        stderr(&out)
            .contains("cannot list resource \"nodes\" in API group \"\" at the cluster scope")
    );
    // SubjectAccessReview by the admin, about jane.
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "jane", "groups": ["dev"], "resourceAttributes":
            {"namespace": "default", "verb": "watch", "resource": "pods"}}});
    let (code, _, v) = s
        .http(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &[JSON],
            serde_json::to_vec(&sar).unwrap(),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"]["allowed"], true);
    assert!(v["status"]["reason"].as_str().unwrap().contains("dev-view"));
    // jane may not ask about others.
    let (code, _, _) = s
        .http_as(
            &jane(),
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &[JSON],
            serde_json::to_vec(&sar).unwrap(),
        )
        .await;
    assert_eq!(code, 403);
    // Removing the binding takes the permission away at once.
    s.kubectl_ok(&["delete", "rolebinding", "dev-view", "-n", "default"]);
    assert_eq!(
        stdout(&jane_kubectl(&["auth", "can-i", "list", "pods"])).trim(),
        "no"
    );
    // Discovery and the RBAC kinds are served like Kubernetes'.
    let out = s.kubectl_ok(&[
        "api-resources",
        "--api-group=rbac.authorization.k8s.io",
        "-o",
        "name",
    ]);
    for r in [
        "clusterrolebindings",
        "clusterroles",
        "rolebindings",
        "roles",
    ] {
        assert!(out.contains(r), "{out}");
    }
    let roles = s.kubectl_ok(&["get", "clusterroles", "-o", "name"]);
    for r in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:node",
        "system:kube-scheduler",
        "system:kube-controller-manager",
        "system:node-proxier",
        "system:volume-scheduler",
        "system:kube-dns",
        "system:controller:replicaset-controller",
        "system:basic-user",
        "system:discovery",
    ] {
        assert!(
            roles.contains(&format!("clusterrole.rbac.authorization.k8s.io/{r}\n")),
            "{r}: {roles}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_account_tokens_are_bound() {
    let s = TestServer::start(Backend::Embedded).await;
    s.kubectl_ok(&["create", "serviceaccount", "bot"]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "bot-view",
        "--clusterrole=view",
        "--serviceaccount=default:bot",
    ]);
    // kubectl create token: a JWT the server accepts.
    let token = s
        .kubectl_ok(&["create", "token", "bot", "--duration=15m"])
        .trim()
        .to_string();
    assert_eq!(token.split('.').count(), 3);
    let id = Identity::Token(token.clone());
    let bot = s.client_as(&id).await;
    let pods: Api<Pod> = Api::namespaced(bot.clone(), "default");
    pods.list(&ListParams::default()).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(bot.clone(), "default");
    let err = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(e) if e.code == 403),
        "{err}"
    );
    let (code, _, who) = s
        .http_as(
            &id,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &[JSON],
            br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:default:bot"
    );
    assert!(
        who["status"]["userInfo"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("system:serviceaccounts:default"))
    );
    // Too short a lifetime is refused.
    let out = s.kubectl(&["create", "token", "bot", "--duration=1m"]);
    assert!(!out.status.success());
    // A token bound to a pod dies with the pod.
    s.kubectl_ok(&[
        "run",
        "p",
        "--image=busybox",
        "--restart=Never",
        "--overrides",
        r#"{"spec":{"serviceAccountName":"bot"}}"#,
    ]);
    let bound = s
        .kubectl_ok(&[
            "create",
            "token",
            "bot",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
        ])
        .trim()
        .to_string();
    let bound_id = Identity::Token(bound);
    let (code, _, _) = s
        .http_as(
            &bound_id,
            "GET",
            "/api/v1/namespaces/default/pods",
            &[],
            vec![],
        )
        .await;
    assert_eq!(code, 200);
    s.kubectl_ok(&["delete", "pod", "p", "--grace-period=0", "--force"]);
    wait_for_code(&s, &bound_id, 401).await;
    // Deleting the ServiceAccount revokes its tokens (a re-created one has another uid).
    s.kubectl_ok(&["delete", "serviceaccount", "bot"]);
    s.kubectl_ok(&["create", "serviceaccount", "bot"]);
    wait_for_code(&s, &id, 401).await;
}

async fn wait_for_code(s: &TestServer, id: &Identity, want: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, _) = s
            .http_as(id, "GET", "/api/v1/namespaces/default/pods", &[], vec![])
            .await;
        if code == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {code}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pod_on(name: &str, node: &str, secret: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox",
            "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}]}]}
    }))
    .unwrap()
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"k": "v"}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_reach_only_their_own_objects() {
    let s = TestServer::start(Backend::Embedded).await;
    let admin = s.client().await;
    let pp = PostParams::default();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "default");
    secrets.create(&pp, &secret("s1")).await.unwrap();
    secrets.create(&pp, &secret("s2")).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    pods.create(&pp, &pod_on("p1", "n1", "s1")).await.unwrap();
    pods.create(&pp, &pod_on("p2", "n2", "s2")).await.unwrap();
    let n1 = s.client_as(&Identity::Node("n1".into())).await;
    let nodes: Api<Node> = Api::all(n1.clone());
    let node = |name: &str| -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    nodes.create(&pp, &node("n1")).await.unwrap();
    let forbidden =
        |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(e)) if e.code == 403);
    assert!(
        forbidden(nodes.create(&pp, &node("n2")).await.map(|_| ())),
        "only its own Node"
    );
    Api::<Node>::all(admin.clone())
        .create(&pp, &node("n2"))
        .await
        .unwrap();
    let label = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    nodes
        .patch("n1", &PatchParams::default(), &label)
        .await
        .unwrap();
    assert!(forbidden(
        nodes
            .patch("n2", &PatchParams::default(), &label)
            .await
            .map(|_| ())
    ));
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2,
        "may read all nodes"
    );
    // Secrets: only those of its pods, one by one.
    let node_secrets: Api<Secret> = Api::namespaced(n1.clone(), "default");
    assert_eq!(
        node_secrets.get("s1").await.unwrap().data.unwrap()["k"].0,
        b"v"
    );
    assert!(forbidden(node_secrets.get("s2").await.map(|_| ())));
    assert!(forbidden(
        node_secrets.list(&ListParams::default()).await.map(|_| ())
    ));
    // A list or a watch naming one of its pods' Secrets by field selector (how a kubelet
    // watches what its pods use); not another node's, not without the name.
    let by_name = |n: &str| ListParams::default().fields(&format!("metadata.name={n}"));
    let listed = node_secrets.list(&by_name("s1")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(forbidden(
        node_secrets.list(&by_name("s2")).await.map(|_| ())
    ));
    let watched = node_secrets
        .watch(&WatchParams::default().fields("metadata.name=s1"), "0")
        .await;
    assert!(watched.is_ok(), "a watch of its pod's Secret by name");
    assert!(forbidden(
        node_secrets
            .watch(&WatchParams::default().fields("metadata.name=s2"), "0")
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        node_secrets
            .watch(&WatchParams::default().fields("type=Opaque"), "0")
            .await
            .map(|_| ())
    ));
    // Pods: status of its own only.
    let node_pods: Api<Pod> = Api::namespaced(n1.clone(), "default");
    let status = Patch::Merge(json!({"status": {"phase": "Running"}}));
    node_pods
        .patch_status("p1", &PatchParams::default(), &status)
        .await
        .unwrap();
    assert!(forbidden(
        node_pods
            .patch_status("p2", &PatchParams::default(), &status)
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        node_pods
            .delete("p2", &Default::default())
            .await
            .map(|_| ())
    ));
    // Leases: its own in kube-node-lease.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(n1.clone(), "kube-node-lease");
    let lease = |n: &str| {
        serde_json::from_value(json!({"metadata": {"name": n}, "spec": {"holderIdentity": n}}))
            .unwrap()
    };
    leases.create(&pp, &lease("n1")).await.unwrap();
    assert!(forbidden(
        leases.create(&pp, &lease("n2")).await.map(|_| ())
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rbac_writes_cannot_escalate() {
    let s = TestServer::start(Backend::Embedded).await;
    s.kubectl_ok(&["create", "namespace", "team"]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "lead-admin",
        "--clusterrole=admin",
        "--user=lead",
        "-n",
        "team",
    ]);
    let lead = s.kubeconfig_for(&Identity::user("lead", &[])).await;
    let run = |args: &[&str]| s.kubectl_in(&lead, args, None, &[]);
    // A namespace admin may grant what it holds…
    let out = run(&[
        "create",
        "rolebinding",
        "dev-edit",
        "--clusterrole=edit",
        "--user=dev",
        "-n",
        "team",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=pods",
        "-n",
        "team",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // …but not more.
    let out = run(&[
        "create",
        "rolebinding",
        "dev-root",
        "--clusterrole=cluster-admin",
        "--user=dev",
        "-n",
        "team",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("attempting to grant RBAC permissions not currently held"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "create",
        "role",
        "nodes",
        "--verb=get",
        "--resource=nodes",
        "-n",
        "team",
    ]);
    assert!(!out.status.success(), "a role with rules the writer lacks");
    let out = run(&[
        "create",
        "rolebinding",
        "elsewhere",
        "--clusterrole=view",
        "--user=dev",
        "-n",
        "default",
    ]);
    assert!(
        stderr(&out).contains("cannot create resource \"rolebindings\""),
        "{}",
        stderr(&out)
    );
    // roleRef is immutable.
    let out = s.kubectl(&[
        "patch",
        "rolebinding",
        "dev-edit",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"name":"view"}}"#,
    ]);
    assert!(
        stderr(&out).contains("cannot change roleRef"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_are_encrypted_in_etcd() {
    let s = TestServer::start(Backend::Etcd).await;
    let secrets: Api<Secret> = Api::namespaced(s.client().await, "default");
    let mut sec = secret("db");
    sec.string_data = Some([("password".to_string(), "hunter2-plaintext".to_string())].into());
    secrets.create(&PostParams::default(), &sec).await.unwrap();
    let etcd = s.etcd.as_ref().unwrap();
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.endpoint(),
            "get",
            "/registry/secrets/default/db",
            "--print-value-only",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let raw = out.stdout;
    assert!(
        raw.starts_with(b"k8s:enc:aesgcm:v1:key1:"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        !text.contains("hunter2") && !text.contains("aHVudGVyMi"),
        "plaintext in etcd"
    );
    // The API returns the plaintext; configmaps stay readable JSON in etcd.
    let got = secrets.get("db").await.unwrap();
    assert_eq!(got.data.unwrap()["password"].0, b"hunter2-plaintext");
    s.kubectl_ok(&["create", "configmap", "plain", "--from-literal=a=b"]);
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.endpoint(),
            "get",
            "/registry/configmaps/default/plain",
            "--print-value-only",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("{\"apiVersion\":\"v1\""));
    // Watches see the plaintext too.
    let out = s.kubectl_ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
    assert_eq!(out, "aHVudGVyMi1wbGFpbnRleHQ=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_are_encrypted_in_the_embedded_file_and_audited() {
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_path = audit_dir.path().join("audit.log");
    let path = audit_path.clone();
    let mut s = TestServer::start_with(Backend::Embedded, move |c| {
        c.audit = Some(rkube_apiserver::audit::AuditConfig {
            path,
            max_size: 1024 * 1024,
            max_backups: 2,
        });
    })
    .await;
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2-plaintext",
    ]);
    let (code, _, _) = s
        .http_as(&Identity::Anonymous, "GET", "/api/v1/secrets", &[], vec![])
        .await;
    assert_eq!(code, 401);
    s.stop().await;
    let store = rkube_apiserver::storage::embedded::EmbeddedStorage::open(
        rkube_apiserver::storage::embedded::EmbeddedConfig::new(s.dir.path().join("rkube.db")),
    )
    .unwrap();
    use rkube_apiserver::storage::Storage;
    let kv = store
        .get("/registry/secrets/default/db")
        .await
        .unwrap()
        .unwrap();
    assert!(kv.value.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
    assert!(!String::from_utf8_lossy(&kv.value).contains("hunter2"));
    drop(store);
    // The audit log: who did what, with which result.
    let text = std::fs::read_to_string(&audit_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| {
        l["user"] == "admin"
            && l["verb"] == "create"
            && l["resource"] == "secrets"
            && l["namespace"] == "default"
            && l["code"] == 201
            && l["groups"]
                .as_array()
                .unwrap()
                .contains(&json!("system:masters"))
    }));
    assert!(
        lines
            .iter()
            .any(|l| l["code"] == 401 && l["user"] == "" && l["requestUri"] == "/api/v1/secrets")
    );
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_per_user_are_limited() {
    let s = TestServer::start_with(Backend::Embedded, |c| c.max_watches_per_user = 2).await;
    let c = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    use futures::StreamExt;
    let w1 = cms.watch(&Default::default(), "0").await.unwrap().boxed();
    let w2 = cms.watch(&Default::default(), "0").await.unwrap().boxed();
    let (code, headers, v) = s
        .http(
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=1",
            &[],
            vec![],
        )
        .await;
    assert_eq!(code, 429, "{v}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(v["reason"], "TooManyRequests");
    // Another user is not affected; closing a watch frees a slot.
    let (code, _, _) = s
        .http_as(
            &Identity::user("other", &["system:masters"]),
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
            &[],
            vec![],
        )
        .await;
    assert_eq!(code, 200);
    drop(w1);
    drop(w2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, _) = s
            .http(
                "GET",
                "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
                &[],
                vec![],
            )
            .await;
        if code == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slots were not released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With TLS and authentication on, any address may be served: here every interface.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_every_address_with_tls() {
    let s = TestServer::start_listening(Backend::Embedded, "0.0.0.0:0", |_| {}).await;
    assert!(
        s.kubectl_ok(&["get", "ns", "default", "-o", "name"])
            .contains("namespace/default")
    );
    // The serving certificate names the host's addresses and the kubernetes Service IP.
    let pem = std::fs::read_to_string(s.dir.path().join("pki/apiserver.crt")).unwrap();
    let der = rkube_apiserver::pki::pem_der(&pem, std::path::Path::new("apiserver.crt")).unwrap();
    let ips = |ip: [u8; 4]| {
        der.windows(6)
            .any(|w| w == [0x87, 4, ip[0], ip[1], ip[2], ip[3]])
    };
    assert!(
        ips([127, 0, 0, 1]) && ips([10, 96, 0, 1]),
        "SANs of the serving certificate"
    );
    let (code, _, v) = s
        .http_as(&Identity::Anonymous, "GET", "/version", &[], vec![])
        .await;
    assert_eq!((code, v["minor"].as_str()), (200, Some("33")));
}

/// Past `--max-requests-inflight` requests at once, the next gets 429 with `Retry-After`: a
/// real curl holds one request open by streaming its body slowly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_in_flight_are_limited() {
    let s = TestServer::start_with(Backend::Embedded, |c| c.max_requests_inflight = 1).await;
    let pki = s.dir.path().join("pki");
    let mut curl = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http1.1",
            "-X",
            "POST",
            "-T",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("admin.crt"))
        .arg("--key")
        .arg(pki.join("admin.key"))
        .args(["-H", "content-type: application/json"])
        .arg(format!("{}/api/v1/namespaces/default/configmaps", s.url))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run curl");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // While curl's request is open, the one slot is taken.
    let (headers, v) = loop {
        let (code, headers, v) = s
            .http("GET", "/api/v1/namespaces/default/configmaps", &[], vec![])
            .await;
        if code == 429 {
            break (headers, v);
        }
        assert_eq!(code, 200);
        if let Some(status) = curl.try_wait().unwrap() {
            panic!("curl ended early ({status}) instead of holding its request open");
        }
        assert!(tokio::time::Instant::now() < deadline, "never limited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(v["reason"], "TooManyRequests");
    let (code, _, _) = s
        .http(
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
            &[],
            vec![],
        )
        .await;
    assert_eq!(
        code, 200,
        "watches are not limited by max-requests-inflight"
    );
    {
        use std::io::Write;
        let mut stdin = curl.stdin.take().unwrap();
        stdin.write_all(br#"{"metadata":{"name":"held"}}"#).unwrap();
    }
    let out = curl.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201");
    let (code, _, _) = s
        .http(
            "GET",
            "/api/v1/namespaces/default/configmaps/held",
            &[],
            vec![],
        )
        .await;
    assert_eq!(code, 200, "the slot is free again");
}

/// `kubectl --as`: impersonation needs the `impersonate` verb on the user, its groups and uid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn impersonation_is_authorized() {
    let (s, _t) = with_tokens(Backend::Embedded).await;
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "dev-view",
        "--clusterrole=view",
        "--group=dev",
    ]);
    let can = |args: &[&str]| stdout(&s.kubectl(args)).trim().to_string();
    assert_eq!(can(&["auth", "can-i", "list", "pods", "--as=jane"]), "no");
    assert_eq!(
        can(&[
            "auth",
            "can-i",
            "list",
            "pods",
            "--as=jane",
            "--as-group=dev"
        ]),
        "yes"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "auth",
            "whoami",
            "--as=system:serviceaccount:default:default",
            "-o",
            "jsonpath={.status.userInfo.groups}"
        ]),
        r#"["system:serviceaccounts","system:serviceaccounts:default","system:authenticated"]"#
    );
    // jane may not impersonate anyone.
    let kc = s.kubeconfig_for(&jane()).await;
    let out = s.kubectl_in(&kc, &["get", "pods", "--as=admin"], None, &[]);
    assert!(
        stderr(&out).contains("users \"admin\" is forbidden: User \"jane\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"),
        "{}",
        stderr(&out)
    );
}

/// The components' kubeconfigs written next to admin.kubeconfig act as their identities, which
/// the default roles authorize for what each does and no more; `rkube-apiserver kubeconfig`
/// issues one for any user (here a kubelet's).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn component_kubeconfigs_act_as_their_identities() {
    let s = TestServer::start(Backend::Embedded).await;
    let can = |kubeconfig: &std::path::Path, args: &[&str]| -> String {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        let out = tokio::task::block_in_place(|| s.kubectl_in(kubeconfig, &a, None, &[]));
        stdout(&out).trim().to_string()
    };
    let file = |name: &str| s.dir.path().join(format!("{name}.kubeconfig"));
    let scheduler = file("scheduler");
    assert_eq!(
        can(&scheduler, &["create", "pods", "--subresource=binding"]),
        "yes"
    );
    assert_eq!(can(&scheduler, &["create", "pods"]), "no");
    let manager = file("controller-manager");
    assert_eq!(can(&manager, &["watch", "deployments.apps", "-A"]), "yes");
    assert_eq!(
        can(
            &manager,
            &[
                "create",
                "serviceaccounts",
                "--subresource=token",
                "-n",
                "kube-system"
            ]
        ),
        "yes"
    );
    assert_eq!(can(&manager, &["create", "pods"]), "no");
    let proxy = file("kube-proxy");
    assert_eq!(
        can(&proxy, &["watch", "endpointslices.discovery.k8s.io", "-A"]),
        "yes"
    );
    assert_eq!(can(&proxy, &["get", "secrets"]), "no");

    // A kubelet's kubeconfig from the binary, with the CA of the server's data directory.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rkube-apiserver"))
        .args(["kubeconfig", "--data-dir"])
        .arg(s.dir.path())
        .args([
            "--user",
            "system:node:n9",
            "--group",
            "system:nodes",
            "--server",
            &s.url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let node = s.dir.path().join("n9.kubeconfig");
    std::fs::write(&node, &out.stdout).unwrap();
    let who = tokio::task::block_in_place(|| {
        s.kubectl_in(
            &node,
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
            None,
            &[],
        )
    });
    assert_eq!(stdout(&who), "system:node:n9", "{}", stderr(&who));
    assert_eq!(can(&node, &["create", "nodes"]), "yes");
    assert_eq!(
        can(&node, &["list", "secrets"]),
        "no - node \"n9\" can only read individual secrets of its pods"
    );
    // Without a CA there is nothing to sign with.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rkube-apiserver"))
        .args(["kubeconfig", "--user", "x", "--data-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no cluster CA"), "{}", stderr(&out));
}

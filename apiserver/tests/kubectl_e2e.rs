//! The real kubectl (/usr/bin/kubectl, which picks its 1.33 binary from our /version) against
//! an API server started in-process, on the embedded store and on a real etcd: apply, re-apply
//! after an edit, get (tables, yaml, json, wide, name), describe, watch, the three patch types,
//! edit, label, annotate, scale, delete, api-resources, explain, server-side apply, dry runs.
//! Assertions are on kubectl's output, not only its exit status.

mod common;

use std::time::Duration;

use common::{Backend, TestServer};

fn header_columns(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn run_workflow(s: &TestServer) {
    let examples = TestServer::manifests("examples");

    // apply: everything created, in kubectl's words.
    let out = s.kubectl_ok(&["apply", "-f", &examples]);
    for line in [
        "namespace/demo created",
        "configmap/web-config created",
        "secret/web-secret created",
        "deployment.apps/web created",
        "service/web created",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // Applying again changes nothing.
    let out = s.kubectl_ok(&["apply", "-f", &examples]);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");

    // Re-apply after an edit: the change lands and a removed field is removed.
    let original = std::fs::read_to_string(format!("{examples}/30-deployment.yaml")).unwrap();
    let edited = original
        .replace("replicas: 2", "replicas: 3")
        .replace("        - name: MODE\n          value: demo\n", "");
    assert_ne!(edited, original);
    let path = s.dir.path().join("deployment.yaml");
    std::fs::write(&path, edited).unwrap();
    let out = s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let replicas = s.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "demo",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "3");
    let env = s.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "demo",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[*].name}",
    ]);
    assert_eq!(env, "GREETING", "MODE should be gone");

    // get: the server's table columns.
    let out = s.kubectl_ok(&["get", "deploy", "-n", "demo"]);
    assert_eq!(
        header_columns(&out),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert!(out.lines().nth(1).unwrap().starts_with("web "), "{out}");
    assert!(out.contains("0/3"), "{out}");
    let out = s.kubectl_ok(&["get", "svc", "-n", "demo"]);
    assert_eq!(
        header_columns(&out),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[1], "ClusterIP");
    assert!(
        row[2].starts_with("10."),
        "cluster IP allocated from the range: {out}"
    );
    assert_eq!(row[4], "80/TCP");
    let out = s.kubectl_ok(&["get", "ns"]);
    assert_eq!(header_columns(&out), ["NAME", "STATUS", "AGE"]);
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "demo",
    ] {
        assert!(out.contains(ns), "{out}");
    }
    // Chunked lists: kubectl pages through them; a page says how many objects follow it.
    let all = s.kubectl_ok(&["get", "ns", "-o", "name"]).lines().count();
    let chunked = s.kubectl_ok(&["get", "ns", "-o", "name", "--chunk-size=2"]);
    assert_eq!(chunked.lines().count(), all, "{chunked}");
    let page: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "--raw", "/api/v1/namespaces?limit=2"]))
            .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["metadata"]["remainingItemCount"],
        all as u64 - 2,
        "{page}"
    );
    assert!(page["metadata"]["continue"].is_string(), "{page}");
    let out = s.kubectl_ok(&["get", "cm,secret", "-n", "demo"]);
    assert!(
        out.contains("configmap/web-config") && out.contains("secret/web-secret"),
        "{out}"
    );
    let out = s.kubectl_ok(&["get", "deploy", "-n", "demo", "-o", "wide"]);
    assert!(
        header_columns(&out).contains(&"IMAGES".to_string()),
        "{out}"
    );
    assert!(
        out.contains("busybox:1.35") && out.contains("app=web"),
        "{out}"
    );
    let out = s.kubectl_ok(&["get", "deploy,svc", "-n", "demo", "-o", "name"]);
    assert_eq!(out.trim(), "deployment.apps/web\nservice/web");
    let yaml = s.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "yaml"]);
    for needle in [
        "kind: Deployment",
        "resourceVersion:",
        "uid:",
        "generation: 2",
        "maxSurge: 25%",
        "imagePullPolicy: IfNotPresent",
    ] {
        assert!(yaml.contains(needle), "missing {needle:?} in yaml");
    }
    let json: serde_json::Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "secret",
        "web-secret",
        "-n",
        "demo",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        json["data"]["password"], "czNjcjN0",
        "stringData merged into data"
    );
    assert_eq!(json["type"], "Opaque");
    let out = s.kubectl_ok(&["get", "all", "-n", "demo"]);
    assert!(
        out.contains("deployment.apps/web") && out.contains("service/web"),
        "{out}"
    );

    // describe.
    let out = s.kubectl_ok(&["describe", "deploy", "web", "-n", "demo"]);
    for needle in [
        "Name:                   web",
        "Namespace:              demo",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
        "GREETING",
    ] {
        assert!(
            out.contains(needle),
            "missing {needle:?} in describe:\n{out}"
        );
    }
    let out = s.kubectl_ok(&["describe", "svc", "web", "-n", "demo"]);
    assert!(
        out.contains("Selector:") && out.contains("app=web"),
        "{out}"
    );

    // get -w sees a change made while watching.
    let mut watch = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["get", "cm", "-n", "demo", "-w", "--request-timeout=20s"])
        .env("HOME", s.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    s.kubectl_ok(&["apply", "-f", &format!("{examples}/10-configmap.yaml")]);
    s.kubectl_ok(&["label", "cm", "web-config", "-n", "demo", "watched=yes"]);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.matches("web-config").count() >= 2,
        "the watch saw the initial object and the change:\n{text}"
    );

    // patch: json, merge and strategic.
    s.kubectl_ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "demo",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    s.kubectl_ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"patched":"merge"}}}"#,
    ]);
    s.kubectl_ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "demo",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:1.36"}]}}}}"#,
    ]);
    let out = s.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o",
        "jsonpath={.spec.replicas} {.metadata.labels.patched} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].command[0]}"]);
    assert_eq!(
        out, "4 merge busybox:1.36 httpd",
        "strategic merge kept the other container fields"
    );

    // edit through KUBE_EDITOR.
    let editor = s.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/greeting: hello from rkube/greeting: edited/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = s.kubectl_with(
        &["edit", "cm", "web-config", "-n", "demo"],
        None,
        &[("KUBE_EDITOR", editor.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "edit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configmap/web-config edited"));
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "web-config",
            "-n",
            "demo",
            "-o",
            "jsonpath={.data.greeting}"
        ]),
        "edited"
    );

    // label, annotate, scale.
    assert!(
        s.kubectl_ok(&["label", "deploy", "web", "-n", "demo", "tier=front"])
            .contains("deployment.apps/web labeled")
    );
    assert!(
        s.kubectl_ok(&["annotate", "deploy", "web", "-n", "demo", "note=hello"])
            .contains("deployment.apps/web annotated")
    );
    assert!(
        s.kubectl_ok(&["scale", "deploy", "web", "-n", "demo", "--replicas=1"])
            .contains("deployment.apps/web scaled")
    );
    let out = s.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.labels.tier} {.metadata.annotations.note} {.spec.replicas}",
    ]);
    assert_eq!(out, "front hello 1");
    let out = s.kubectl_ok(&[
        "get",
        "deploy",
        "-n",
        "demo",
        "-l",
        "tier=front",
        "--show-labels",
    ]);
    assert!(out.contains("tier=front"), "{out}");
    let out = s.kubectl_ok(&["get", "deploy", "-n", "demo", "-l", "tier=back"]);
    assert!(out.trim().is_empty(), "{out}");

    // Server-side apply: the edit above made kubectl-edit the owner of data.greeting, so
    // applying the manifest's other value conflicts, naming the field and its manager…
    let manifest = format!("{examples}/10-configmap.yaml");
    let err = s.kubectl_err(&["apply", "--server-side", "-f", &manifest]);
    assert!(
        err.contains("conflict with \"kubectl-edit\"") && err.contains(".data.greeting"),
        "{err}"
    );
    // …until forced; the apply then owns it (managedFields say so).
    let out = s.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &manifest,
    ]);
    assert!(
        out.contains("configmap/web-config serverside-applied"),
        "{out}"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "web-config",
            "-n",
            "demo",
            "-o",
            "jsonpath={.data.greeting}"
        ]),
        "hello from rkube"
    );
    let yaml = s.kubectl_ok(&[
        "get",
        "cm",
        "web-config",
        "-n",
        "demo",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(
        yaml.contains("manager: kubectl") && yaml.contains("operation: Apply"),
        "{yaml}"
    );
    assert!(yaml.contains("f:greeting: {}"), "{yaml}");
    // Applying the same values again is not a conflict.
    let out = s.kubectl_ok(&["apply", "--server-side", "-f", &manifest]);
    assert!(out.contains("serverside-applied"), "{out}");
    let out = s.kubectl_ok(&[
        "apply",
        "--dry-run=server",
        "-f",
        &format!("{examples}/00-namespace.yaml"),
    ]);
    assert!(out.contains("(server dry run)"), "{out}");
    let dry = s.dir.path().join("dry.yaml");
    std::fs::write(&dry, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: demo\ndata:\n  a: b\n").unwrap();
    let out = s.kubectl_ok(&["apply", "--dry-run=server", "-f", dry.to_str().unwrap()]);
    assert!(
        out.contains("configmap/dry created (server dry run)"),
        "{out}"
    );
    let err = s.kubectl_err(&["get", "cm", "dry", "-n", "demo"]);
    assert!(err.contains("not found"), "a dry run stores nothing: {err}");

    // api-resources and explain.
    let out = s.kubectl_ok(&["api-resources"]);
    for needle in [
        "deployments",
        "deploy",
        "apps/v1",
        "pods",
        "po",
        "services",
        "svc",
        "leases",
        "endpointslices",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in api-resources");
    }
    let out = s.kubectl_ok(&["explain", "deployment.spec"]);
    assert!(
        out.contains("KIND:       Deployment")
            && out.contains("replicas")
            && out.contains("template"),
        "{out}"
    );

    // delete -f: everything goes (the namespace stays Terminating until the namespace
    // controller empties it, as in Kubernetes).
    let out = s.kubectl_ok(&["delete", "-f", &examples, "--wait=false"]);
    for line in [
        "configmap \"web-config\" deleted",
        "deployment.apps \"web\" deleted",
        "service \"web\" deleted",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let err = s.kubectl_err(&["get", "deploy", "web", "-n", "demo"]);
    assert!(err.contains("not found"), "{err}");
    let out = s.kubectl_ok(&["get", "ns", "demo"]);
    assert!(out.contains("Terminating"), "{out}");
}

/// kubectl's typed clients send protobuf bodies: `create <kind>`, `run`, `create token`…
fn typed_client_commands(s: &TestServer) {
    let out = s.kubectl_ok(&["create", "namespace", "typed"]);
    assert!(out.contains("namespace/typed created"), "{out}");
    let out = s.kubectl_ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "typed",
        "--from-literal=k=v",
        "--from-literal=x=y",
    ]);
    assert!(out.contains("configmap/cfg created"), "{out}");
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "cfg",
            "-n",
            "typed",
            "-o",
            "jsonpath={.data.k}{.data.x}"
        ]),
        "vy"
    );
    let out = s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "-n",
        "typed",
        "--from-literal=password=hunter2",
    ]);
    assert!(out.contains("secret/sec created"), "{out}");
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "secret",
            "sec",
            "-n",
            "typed",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "aHVudGVyMg=="
    );
    let out = s.kubectl_ok(&[
        "create",
        "deployment",
        "nginx",
        "-n",
        "typed",
        "--image=nginx:1.25",
        "--replicas=2",
        "--port=80",
    ]);
    assert!(out.contains("deployment.apps/nginx created"), "{out}");
    let out = s.kubectl_ok(&["get", "deploy", "nginx", "-n", "typed", "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}"]);
    assert_eq!(out, "2 nginx:1.25 80");
    let out = s.kubectl_ok(&[
        "expose",
        "deployment",
        "nginx",
        "-n",
        "typed",
        "--port=80",
        "--target-port=80",
    ]);
    assert!(out.contains("service/nginx exposed"), "{out}");
    let out = s.kubectl_ok(&[
        "run",
        "box",
        "-n",
        "typed",
        "--image=busybox:1.35",
        "--restart=Never",
        "--",
        "sleep",
        "60",
    ]);
    assert!(out.contains("pod/box created"), "{out}");
    let out = s.kubectl_ok(&["get", "pod", "box", "-n", "typed"]);
    assert_eq!(
        header_columns(&out),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert!(out.contains("0/1") && out.contains("Pending"), "{out}");
    let out = s.kubectl_ok(&[
        "create",
        "job",
        "once",
        "-n",
        "typed",
        "--image=busybox:1.35",
        "--",
        "true",
    ]);
    assert!(out.contains("job.batch/once created"), "{out}");
    let out = s.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "typed"]);
    assert!(out.contains("serviceaccount/robot created"), "{out}");
    let out = s.kubectl_ok(&["delete", "pod", "box", "-n", "typed"]);
    assert!(out.contains("pod \"box\" deleted"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_typed_commands_send_protobuf() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || typed_client_commands(&s))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_workflow_on_embedded_store() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || run_workflow(&s))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_workflow_on_etcd() {
    let s = TestServer::start(Backend::Etcd).await;
    tokio::task::spawn_blocking(move || {
        run_workflow(&s);
        // The objects are in etcd under /registry/, readable with etcdctl.
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &s.etcd.as_ref().unwrap().endpoint(),
                "get",
                "--prefix",
                "--keys-only",
                "/registry/",
            ])
            .output()
            .expect("etcdctl");
        let keys = String::from_utf8_lossy(&out.stdout);
        assert!(keys.contains("/registry/namespaces/demo"), "{keys}");
        assert!(
            keys.contains("/registry/serviceaccounts/demo/default"),
            "{keys}"
        );
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &s.etcd.as_ref().unwrap().endpoint(),
                "get",
                "--print-value-only",
                "/registry/namespaces/demo",
            ])
            .output()
            .expect("etcdctl");
        let value: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("JSON value in etcd");
        assert_eq!(value["kind"], "Namespace");
        assert_eq!(value["status"]["phase"], "Terminating");
    })
    .await
    .unwrap();
}

/// Unknown fields, nested in lists, reach the real kubectl as Kubernetes words them: its
/// default (`--validate=strict`) refuses the object, `--validate=warn` creates it and prints
/// a warning per field, `--validate=false` says nothing.
fn unknown_fields(s: &TestServer) {
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    imagePullPolicyy: Always\n    ports:\n    - containerPort: 80\n      protocoll: TCP\n  tolerations:\n  - key: k\n    operator: Exists\n    effectt: NoSchedule\n"
        )
    };
    let fields = [
        "spec.containers[0].imagePullPolicyy",
        "spec.containers[0].ports[0].protocoll",
        "spec.tolerations[0].effectt",
    ];
    let strict = pod("strict");
    let out = s.kubectl_with(&["create", "-f", "-"], Some(&strict), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("strict decoding error"), "{err}");
    for f in fields {
        assert!(
            err.contains(&format!("unknown field \"{f}\"")),
            "{f}: {err}"
        );
    }
    s.kubectl_err(&["get", "pod", "strict"]);

    let warn = pod("warned");
    let out = s.kubectl_with(&["create", "--validate=warn", "-f", "-"], Some(&warn), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for f in fields {
        assert!(
            err.contains(&format!("Warning: unknown field \"{f}\"")),
            "{f}: {err}"
        );
    }
    let policy = s.kubectl_ok(&[
        "get",
        "pod",
        "warned",
        "-o",
        "jsonpath={.spec.containers[0].imagePullPolicy}",
    ]);
    assert_eq!(policy, "IfNotPresent", "the misspelt field is dropped");

    let ignore = pod("ignored");
    let out = s.kubectl_with(
        &["create", "--validate=false", "-f", "-"],
        Some(&ignore),
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("unknown field"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_unknown_fields() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || unknown_fields(&s))
        .await
        .unwrap();
}

/// `kubectl debug` patches the pod's `ephemeralcontainers` subresource, which is not served:
/// kubectl must get Kubernetes' answer for a missing subresource (a 404 with empty details)
/// and say so, not crash on a 404 without details; the pod is left as it was.
fn debug_without_ephemeral_containers(s: &TestServer) {
    s.kubectl_ok(&["run", "dbg", "--image=busybox:1.35", "--", "sleep", "60"]);
    let before = s.kubectl_ok(&[
        "get",
        "pod",
        "dbg",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let out = s.kubectl(&[
        "debug",
        "dbg",
        "--image=busybox:1.35",
        "--profile=general",
        "--",
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("panic"), "{err}");
    assert!(
        err.contains("ephemeral containers are disabled for this cluster"),
        "{err}"
    );
    let after = s.kubectl_ok(&[
        "get",
        "pod",
        "dbg",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(before, after, "the pod is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_debug_reports_ephemeral_containers_unavailable() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || debug_without_ephemeral_containers(&s))
        .await
        .unwrap();
}

/// A `v1/List` — what `kubectl get -o yaml` writes for several objects — is validated by kubectl
/// itself against the protobuf Swagger 2.0 document (`/openapi/v2`), since a List has no
/// OpenAPI v3 operation that offers server-side validation. kubectl must be able to read that
/// document: a list applies, what `get -o yaml` printed applies back, and a misspelt field in
/// an item is refused by kubectl before anything is created.
fn lists(s: &TestServer) {
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: listed\n  data:\n    k: v\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: listed\n  spec:\n    replicas: 2\n    selector:\n      matchLabels:\n        app: listed\n    template:\n      metadata:\n        labels:\n          app: listed\n      spec:\n        containers:\n        - name: c\n          image: busybox:1.36\n          ports:\n          - containerPort: 80\n";
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(list), &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("configmap/listed created"), "{stdout}");
    assert!(
        stdout.contains("deployment.apps/listed created"),
        "{stdout}"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "listed", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );

    // What `get -o yaml` prints (status, managedFields and all) passes validation and applies
    // back unchanged; `create -f` of JSON lists is validated the same way.
    let printed = s.kubectl_ok(&["get", "configmap,deployment", "-o", "yaml"]);
    assert!(printed.contains("kind: List"), "{printed}");
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(&printed), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json_list = serde_json::json!({
        "apiVersion": "v1", "kind": "List",
        "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "listed"},
                   "stringData": {"password": "x"}}]
    })
    .to_string();
    let out = s.kubectl_with(&["create", "-f", "-"], Some(&json_list), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // kubectl's own validation names the misspelt field; nothing of the list is created.
    let bad = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: fine\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: misspelt\n  spec:\n    portz:\n    - port: 80\n";
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(bad), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("unknown field \"portz\" in io.k8s.api.core.v1.ServiceSpec"),
        "{stderr}"
    );
    s.kubectl_err(&["get", "configmap", "fine"]);
    s.kubectl_err(&["get", "service", "misspelt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_applies_lists() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || lists(&s))
        .await
        .unwrap();
}

/// CronJobs (batch/v1) through the real kubectl: `kubectl create cronjob` and the defaults the
/// API server gives, the columns of `kubectl get`, Kubernetes' validation of the schedule, the
/// time zone and the name, and `kubectl create job --from=cronjob/…`.
fn cronjobs(s: &TestServer) {
    let out = s.kubectl_ok(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox:1.36",
        "--schedule=30 2 * * MON-FRI",
        "--",
        "date",
    ]);
    assert!(out.contains("cronjob.batch/nightly created"), "{out}");
    let spec = s.kubectl_ok(&[
        "get",
        "cj",
        "nightly",
        "-o",
        "jsonpath={.spec.concurrencyPolicy} {.spec.suspend} {.spec.successfulJobsHistoryLimit} {.spec.failedJobsHistoryLimit} {.spec.jobTemplate.spec.template.spec.restartPolicy}",
    ]);
    assert_eq!(spec, "Allow false 3 1 OnFailure");
    let table = s.kubectl_ok(&["get", "cronjobs"]);
    let mut lines = table.lines();
    assert_eq!(
        header_columns(lines.next().unwrap()),
        [
            "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"
        ]
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with("nightly"), "{table}");
    assert!(row.contains("30 2 * * MON-FRI"), "{table}");
    assert!(row.contains("<none>") && row.contains("False"), "{table}");
    let all = s.kubectl_ok(&["get", "all"]);
    assert!(all.contains("cronjob.batch/nightly"), "{all}");

    // kubectl's manual run: a Job from the template, owned by the CronJob.
    let out = s.kubectl_ok(&["create", "job", "now", "--from=cronjob/nightly"]);
    assert!(out.contains("job.batch/now created"), "{out}");
    let owner = s.kubectl_ok(&[
        "get",
        "job",
        "now",
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    ]);
    assert_eq!(owner, "CronJob/nightly");

    // Validation, as Kubernetes words it.
    let bad = |name: &str, schedule: &str, extra: &str| {
        format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: \"{schedule}\"\n{extra}  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: c\n            image: busybox:1.36\n"
        )
    };
    for (manifest, expected) in [
        (
            bad("six", "0 0 * * * *", ""),
            "spec.schedule: Invalid value: \"0 0 * * * *\"",
        ),
        (
            bad("minute", "61 * * * *", ""),
            "spec.schedule: Invalid value: \"61 * * * *\"",
        ),
        (
            bad("tz", "TZ=UTC 0 * * * *", ""),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ),
        (
            bad("zone", "0 * * * *", "  timeZone: Mars/Olympus\n"),
            "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus",
        ),
        (
            bad("policy", "0 * * * *", "  concurrencyPolicy: Sometimes\n"),
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\"",
        ),
        (
            bad(&"n".repeat(53), "0 * * * *", ""),
            "must be no more than 52 characters",
        ),
    ] {
        let out = s.kubectl_with(&["apply", "-f", "-"], Some(&manifest), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{manifest}");
        assert!(err.contains("is invalid"), "{err}");
        assert!(err.contains(expected), "{expected}: {err}");
    }
    // The new kinds are in the OpenAPI documents: explained, and unknown fields refused.
    for field in [
        "cronjob.spec.schedule",
        "pdb.spec.minAvailable",
        "ingress.spec.rules",
        "networkpolicy.spec.podSelector",
        "storageclass.provisioner",
        "resourcequota.spec.hard",
    ] {
        let out = s.kubectl_ok(&["explain", field]);
        assert!(out.contains("FIELD:"), "{field}: {out}");
    }
    let misspelt = bad("misspelt", "0 * * * *", "  suspendd: true\n");
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(&misspelt), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("unknown field \"spec.suspendd\""), "{err}");

    let zoned = bad("berlin", "0 9 * * *", "  timeZone: Europe/Berlin\n");
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(&zoned), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = s.kubectl_ok(&["get", "cj", "berlin", "--no-headers"]);
    assert!(row.contains("Europe/Berlin"), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_cronjobs() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || cronjobs(&s))
        .await
        .unwrap();
}

/// networking.k8s.io/v1 through the real kubectl: `kubectl create ingress`, IngressClasses and
/// NetworkPolicies (with their defaults), their columns and `describe`, and Kubernetes'
/// validation of each.
fn networking(s: &TestServer) {
    let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\nspec:\n  controller: k8s.io/ingress-nginx\n";
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(class), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.kubectl_ok(&[
        "create",
        "ingress",
        "web",
        "--class=nginx",
        "--rule=foo.example.com/=web:80",
        "--rule=bar.example.com/api*=api:8080,tls=bar-cert",
    ]);
    assert!(
        out.contains("ingress.networking.k8s.io/web created"),
        "{out}"
    );
    let table = s.kubectl_ok(&["get", "ing"]);
    let mut lines = table.lines();
    assert_eq!(
        header_columns(lines.next().unwrap()),
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with("web"), "{table}");
    assert!(row.contains("nginx"), "{table}");
    assert!(row.contains("foo.example.com,bar.example.com"), "{table}");
    assert!(row.contains("80, 443"), "{table}");
    let path_type = s.kubectl_ok(&[
        "get",
        "ing",
        "web",
        "-o",
        "jsonpath={.spec.rules[1].http.paths[0].pathType} {.spec.rules[1].http.paths[0].backend.service.port.number}",
    ]);
    assert_eq!(path_type, "Prefix 8080");
    let described = s.kubectl_ok(&["describe", "ingress", "web"]);
    assert!(described.contains("foo.example.com"), "{described}");
    let classes = s.kubectl_ok(&["get", "ingressclass", "--no-headers"]);
    assert!(classes.contains("k8s.io/ingress-nginx"), "{classes}");

    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: db\nspec:\n  podSelector:\n    matchLabels:\n      app: db\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels:\n          app: web\n    ports:\n    - port: 5432\n";
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(policy), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let defaults = s.kubectl_ok(&[
        "get",
        "netpol",
        "db",
        "-o",
        "jsonpath={.spec.policyTypes} {.spec.ingress[0].ports[0].protocol}",
    ]);
    assert_eq!(defaults, "[\"Ingress\"] TCP");
    let row = s.kubectl_ok(&["get", "networkpolicies", "--no-headers"]);
    assert!(row.starts_with("db") && row.contains("app=db"), "{row}");
    let described = s.kubectl_ok(&["describe", "netpol", "db"]);
    assert!(described.contains("app=web"), "{described}");

    for (manifest, expected) in [
        (
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: nopath\nspec:\n  rules:\n  - http:\n      paths:\n      - path: /\n        backend:\n          service:\n            name: web\n            port:\n              number: 80\n",
            "spec.rules[0].http.paths[0].pathType: Required value",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: empty\nspec:\n  ingressClassName: nginx\n",
            "either `defaultBackend` or `rules` must be specified",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: cidr\nspec:\n  podSelector: {}\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/33\n",
            "spec.egress[0].to[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\"",
        ),
    ] {
        let out = s.kubectl_with(&["apply", "-f", "-"], Some(manifest), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{manifest}");
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_networking() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || networking(&s))
        .await
        .unwrap();
}

/// StorageClasses through the real kubectl: the default class is marked in `kubectl get sc`,
/// a claim without `storageClassName` gets it (DefaultStorageClass admission), one with `""`
/// keeps none, and the class's provisioner cannot change.
fn storage_classes(s: &TestServer) {
    let class = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local-path\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: rancher.io/local-path\nvolumeBindingMode: WaitForFirstConsumer\n";
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(class), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = s.kubectl_ok(&["get", "sc"]);
    let mut lines = table.lines();
    assert_eq!(
        header_columns(lines.next().unwrap()),
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        [
            "local-path",
            "(default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ],
        "{table}"
    );
    let claim = |name: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n"
        )
    };
    for (name, class, expected) in [
        ("defaulted", "", "local-path"),
        ("classless", "  storageClassName: \"\"\n", ""),
    ] {
        let out = s.kubectl_with(&["apply", "-f", "-"], Some(&claim(name, class)), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = s.kubectl_ok(&[
            "get",
            "pvc",
            name,
            "-o",
            "jsonpath={.spec.storageClassName}",
        ]);
        assert_eq!(got, expected, "{name}");
    }
    let changed = class.replace("rancher.io/local-path", "example.com/other");
    let out = s.kubectl_with(&["apply", "-f", "-"], Some(&changed), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("updates to provisioner are forbidden"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_storage_classes() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || storage_classes(&s))
        .await
        .unwrap();
}

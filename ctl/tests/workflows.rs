//! rkubectl's longer workflows against an in-process API server: rollout history, undo and
//! status on Deployments and the ReplicaSets a test creates the way the controller would;
//! wait; cordon, uncordon and drain; edit with a scripted editor (also an invalid edit that
//! re-opens with the error); kubeconfig handling; paging of large lists; start-up commands.

mod common;

use common::*;

fn deployment(s: &TestServer, name: &str, image: &str) {
    s.kubectl_ok(&["create", "deployment", name, &format!("--image={image}")]);
}

/// A ReplicaSet of `deploy` with the given revision and image, owned like the controller's.
fn replicaset(s: &TestServer, deploy: &str, revision: u32, image: &str, replicas: u32) {
    let uid = rk_ok(
        s,
        &["get", "deploy", deploy, "-o", "jsonpath={.metadata.uid}"],
    );
    let rs = format!(
        "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {deploy}-r{revision}
  annotations:
    deployment.kubernetes.io/revision: \"{revision}\"
  labels:
    app: {deploy}
    pod-template-hash: r{revision}
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: {deploy}
    uid: {uid}
    controller: true
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {deploy}
      pod-template-hash: r{revision}
  template:
    metadata:
      labels:
        app: {deploy}
        pod-template-hash: r{revision}
    spec:
      containers:
      - name: nginx
        image: {image}
"
    );
    let f = write(s, &format!("{deploy}-rs{revision}.yaml"), &rs);
    rk_ok(s, &["create", "-f", &f]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_history_undo_and_status() {
    let s = server().await;
    deployment(&s, "web", "nginx:1.24");
    deployment(&s, "twin", "nginx:1.24");
    for d in ["web", "twin"] {
        replicaset(&s, d, 1, "nginx:1.24", 0);
        replicaset(&s, d, 2, "nginx:1.25", 1);
        s.kubectl_ok(&["set", "image", &format!("deploy/{d}"), "nginx=nginx:1.25"]);
        // The controller marks the deployment with its revision (undo replaces the
        // annotations, which a JSON patch can do only when they exist).
        s.kubectl_ok(&[
            "annotate",
            &format!("deploy/{d}"),
            "deployment.kubernetes.io/revision=2",
        ]);
    }
    golden(&s, &["rollout", "history", "deploy/web"]);
    golden(&s, &["rollout", "history", "deploy/web", "--revision=1"]);
    // Undo to the previous revision: the template of revision 1 comes back.
    let mine = rk(&s, &["rollout", "undo", "deploy/web"]);
    let theirs = kc(&s, &["rollout", "undo", "deploy/twin"]);
    assert_eq!(mine.stdout, theirs.stdout.replace("twin", "web"));
    assert_eq!(
        rk_ok(
            &s,
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}"
            ]
        ),
        "nginx:1.24"
    );
    let again = rk(&s, &["rollout", "undo", "deploy/web", "--to-revision=1"]);
    assert_eq!(
        again.stdout,
        "deployment.apps/web skipped rollback (current template already matches revision 1)\n"
    );
    golden(&s, &["rollout", "undo", "deploy/web", "--to-revision=7"]);

    // Status: the controller's progress, reported line by line, until done.
    rk_ok(
        &s,
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            "{\"status\":{\"observedGeneration\":100,\"replicas\":1,\"updatedReplicas\":0}}",
        ],
    );
    let out = rk_ok(&s, &["rollout", "status", "deploy/web", "--watch=false"]);
    assert_eq!(
        out,
        "Waiting for deployment \"web\" rollout to finish: 0 out of 1 new replicas have been updated...\n"
    );
    let err = rk_err(&s, &["rollout", "status", "deploy/web", "--timeout=1s"]);
    assert_eq!(err, "error: timed out waiting for the condition\n");
    // Following: a line now, then one per change of the status, until done.
    let follow = Spawned::start(&s, &["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert_eq!(
        follow.next_line(),
        "Waiting for deployment \"web\" rollout to finish: 0 out of 1 new replicas have been updated..."
    );
    rk_ok(
        &s,
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            "{\"status\":{\"updatedReplicas\":1,\"availableReplicas\":0}}",
        ],
    );
    assert_eq!(
        follow.next_line(),
        "Waiting for deployment \"web\" rollout to finish: 0 of 1 updated replicas are available..."
    );
    rk_ok(
        &s,
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            "{\"status\":{\"availableReplicas\":1}}",
        ],
    );
    assert_eq!(
        follow.next_line(),
        "deployment \"web\" successfully rolled out"
    );
    let end = follow.finish();
    assert!(end.ok, "{end:?}");
    assert_eq!(end.stdout, "");
    // A revision other than the running one is an error.
    rk_ok(
        &s,
        &[
            "annotate",
            "deploy",
            "web",
            "deployment.kubernetes.io/revision=3",
            "--overwrite",
        ],
    );
    assert_eq!(
        rk_err(&s, &["rollout", "status", "deploy/web", "--revision=2"]),
        "error: desired revision (2) is different from the running revision (3)\n"
    );
    assert_eq!(
        rk_ok(&s, &["rollout", "status", "deploy/web", "--revision=3"]),
        "deployment \"web\" successfully rolled out\n"
    );
    // A deadline exceeded fails.
    rk_ok(
        &s,
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            "{\"status\":{\"conditions\":[{\"type\":\"Progressing\",\"status\":\"False\",\"reason\":\"ProgressDeadlineExceeded\"}]}}",
        ],
    );
    assert_eq!(
        rk_err(&s, &["rollout", "status", "deploy/web"]),
        "error: deployment \"web\" exceeded its progress deadline\n"
    );
    // Pause blocks restart and undo, as in kubectl.
    rk_ok(&s, &["rollout", "pause", "deploy/web"]);
    assert_eq!(
        rk_err(&s, &["rollout", "pause", "deploy/web"]),
        "error: deployments.apps \"web\" is already paused\n"
    );
    assert!(
        rk_err(&s, &["rollout", "restart", "deploy/web"])
            .contains("can't restart paused deployment")
    );
    rk_ok(&s, &["rollout", "resume", "deploy/web"]);
    assert_eq!(
        rk_ok(&s, &["rollout", "restart", "deploy/web"]),
        "deployment.apps/web restarted\n"
    );
    let restarted = rk_ok(
        &s,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
        ],
    );
    assert!(
        restarted.ends_with('Z') && restarted.len() == 20,
        "{restarted}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_conditions_jsonpath_and_delete() {
    let s = server().await;
    deployment(&s, "web", "nginx");
    assert_eq!(
        rk_err(
            &s,
            &[
                "wait",
                "deploy/web",
                "--for=condition=Available",
                "--timeout=1s"
            ]
        ),
        "error: timed out waiting for the condition on deployments.apps/web\n"
    );
    rk_ok(
        &s,
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            "{\"status\":{\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"}]}}",
        ],
    );
    golden(
        &s,
        &[
            "wait",
            "deploy/web",
            "--for=condition=Available",
            "--timeout=5s",
        ],
    );
    assert_eq!(
        rk_ok(
            &s,
            &["wait", "deploy/web", "--for=jsonpath={.spec.replicas}=1"]
        ),
        "deployment.apps/web condition met\n"
    );
    s.kubectl_ok(&["run", "p", "--image=nginx"]);
    let handle = {
        let bin = env!("CARGO_BIN_EXE_rkubectl");
        let kc = s.kubeconfig.clone();
        std::thread::spawn(move || {
            std::process::Command::new(bin)
                .args([
                    "--kubeconfig",
                    kc.to_str().unwrap(),
                    "wait",
                    "pod/p",
                    "--for=delete",
                    "--timeout=20s",
                ])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(700));
    rk_ok(&s, &["delete", "pod", "p"]);
    let out = handle.join().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pod/p condition met\n"
    );
}

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels:\n    kubernetes.io/hostname: n1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_uncordon_and_drain() {
    let s = server().await;
    let f = write(&s, "node.yaml", NODE);
    rk_ok(&s, &["create", "-f", &f]);
    golden(&s, &["get", "nodes"]);
    assert_eq!(rk_ok(&s, &["cordon", "n1"]), "node/n1 cordoned\n");
    golden(&s, &["cordon", "n1"]);
    golden(&s, &["get", "nodes"]);
    assert_eq!(rk_ok(&s, &["uncordon", "n1"]), "node/n1 uncordoned\n");
    golden(&s, &["uncordon", "n1"]);
    // An unmanaged pod on the node blocks the drain.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lone\nspec:\n  nodeName: n1\n  containers:\n  - name: c\n    image: nginx\n";
    let f = write(&s, "pod.yaml", pod);
    rk_ok(&s, &["create", "-f", &f]);
    let r = rk(&s, &["drain", "n1"]);
    assert!(!r.ok);
    assert_eq!(r.stdout, "node/n1 cordoned\n");
    assert!(
        r.stderr.contains(
            "cannot delete Pods that declare no controller (use --force to override): default/lone"
        ),
        "{}",
        r.stderr
    );
    // Forced: the pod is evicted (the eviction sets its deletion; a kubelet would finish it).
    let r = rk(&s, &["drain", "n1", "--force", "--timeout=2s"]);
    assert!(
        r.stdout
            .starts_with("node/n1 already cordoned\nevicting pod default/lone\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("Warning: deleting Pods that declare no controller: default/lone"),
        "{}",
        r.stderr
    );
    let deleting = rk_ok(
        &s,
        &[
            "get",
            "pod",
            "lone",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ],
    );
    assert!(
        !deleting.is_empty(),
        "the eviction marked the pod for deletion"
    );
    let clean = write(&s, "n2.yaml", &NODE.replace("n1", "n2"));
    rk_ok(&s, &["create", "-f", &clean]);
    assert_eq!(
        rk_ok(&s, &["drain", "n2"]),
        "node/n2 cordoned\nnode/n2 drained\n"
    );
    golden(&s, &["describe", "node", "n2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_with_an_editor_and_reopen_on_errors() {
    let s = server().await;
    deployment(&s, "web", "nginx");
    // An editor script that changes the image.
    let editor = write(
        &s,
        "editor.sh",
        "#!/bin/sh\nsed -i 's/image: nginx/image: nginx:1.27/' \"$1\"\n",
    );
    std::process::Command::new("chmod")
        .args(["+x", &editor])
        .status()
        .unwrap();
    let r = rk_with(
        &s,
        &["edit", "deploy/web"],
        None,
        &[("KUBE_EDITOR", &editor)],
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout, "deployment.apps/web edited\n");
    assert_eq!(
        rk_ok(
            &s,
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}"
            ]
        ),
        "nginx:1.27"
    );
    // An editor that makes an invalid change first, then fixes it after seeing the error.
    let state = s.dir.path().join("count");
    let script = format!(
        "#!/bin/sh\nif [ ! -f {c} ]; then touch {c}; sed -i 's/replicas: 1/replicas: -1/' \"$1\"; else cp \"$1\" {c}.seen; sed -i 's/replicas: -1/replicas: 2/' \"$1\"; fi\n",
        c = state.display()
    );
    let editor2 = write(&s, "editor2.sh", &script);
    std::process::Command::new("chmod")
        .args(["+x", &editor2])
        .status()
        .unwrap();
    let r = rk_with(
        &s,
        &["edit", "deploy", "web"],
        None,
        &[("EDITOR", &editor2), ("KUBE_EDITOR", "")],
    );
    let r = if r.ok {
        r
    } else {
        rk_with(
            &s,
            &["edit", "deploy", "web"],
            None,
            &[("KUBE_EDITOR", &editor2)],
        )
    };
    assert!(r.ok, "{r:?}");
    let seen = std::fs::read_to_string(format!("{}.seen", state.display())).unwrap();
    assert!(
        seen.contains("# deployments.apps \"web\" was not valid:"),
        "{seen}"
    );
    assert!(seen.contains("spec.replicas"), "{seen}");
    assert_eq!(
        rk_ok(
            &s,
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]
        ),
        "2"
    );
    // No change: cancelled.
    let r = rk_with(
        &s,
        &["edit", "deploy/web"],
        None,
        &[("KUBE_EDITOR", "true")],
    );
    assert_eq!(r.stdout, "Edit cancelled, no changes made.\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_handling_like_kubectl() {
    let s = server().await;
    // For --server and --token: a kubeconfig with the cluster's CA, no
    // credentials and a wrong server, completed by a ServiceAccount token allowed to read
    // namespaces (`view`) and the real server. The CA stays in use with --server.
    s.kubectl_ok(&["create", "serviceaccount", "reader"]);
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "reader-view",
        "--clusterrole=view",
        "--serviceaccount=default:reader",
    ]);
    let token = s.service_account_token("default", "reader", None).await;
    let anonymous = s.kubeconfig_for(&Identity::Anonymous).await;
    let text = std::fs::read_to_string(&anonymous)
        .unwrap()
        .replace(&s.url, "https://127.0.0.1:1");
    std::fs::write(&anonymous, text).unwrap();
    let main = std::fs::read_to_string(&s.kubeconfig).unwrap();
    // A second file with another context pointing at the same server.
    let extra = main
        .replace("name: rkube", "name: other")
        .replace("cluster: rkube", "cluster: other")
        .replace("current-context: rkube", "current-context: other")
        .replace("user: admin", "user: admin\n    namespace: kube-system");
    let extra_path = write(&s, "extra.kubeconfig", &extra);
    let merged = format!("{}:{extra_path}", s.kubeconfig.display());
    let run = |tool: &str, args: &[&str]| -> Run {
        let bin = if tool == "rk" {
            env!("CARGO_BIN_EXE_rkubectl")
        } else {
            "kubectl"
        };
        std::process::Command::new(bin)
            .args(args)
            .env("KUBECONFIG", &merged)
            .env("HOME", s.dir.path())
            .output()
            .unwrap()
            .into()
    };
    for args in [
        &["config", "get-contexts"][..],
        &["config", "current-context"],
        &["config", "view"],
        &["config", "view", "--minify"],
        &["config", "view", "-o", "json"],
        &["get", "sa"],
        &["get", "sa", "--context", "other"],
        &["get", "sa", "--context", "other", "-n", "default"],
        &["get", "sa", "--context", "nope"],
    ] {
        let a = run("rk", args);
        let b = run("kc", args);
        assert_eq!(normalise(&a.stdout), normalise(&b.stdout), "{args:?}");
        assert_eq!(a.ok, b.ok, "{args:?}: {} / {}", a.stderr, b.stderr);
    }
    // use-context and set-context write where kubectl writes.
    assert_eq!(
        run("rk", &["config", "use-context", "other"]).stdout,
        "Switched to context \"other\".\n"
    );
    assert_eq!(run("kc", &["config", "current-context"]).stdout, "other\n");
    assert_eq!(
        run(
            "rk",
            &["config", "set-context", "--current", "--namespace=default"]
        )
        .stdout,
        "Context \"other\" modified.\n"
    );
    assert_eq!(
        run("kc", &["config", "get-contexts", "other", "-o", "name"]).stdout,
        "other\n"
    );
    let view = run(
        "kc",
        &[
            "config",
            "view",
            "-o",
            "jsonpath={.contexts[?(@.name==\"other\")].context.namespace}",
        ],
    );
    assert_eq!(view.stdout, "default");
    assert_eq!(
        run(
            "rk",
            &[
                "config",
                "set-context",
                "fresh",
                "--cluster=rkube",
                "--user=admin"
            ]
        )
        .stdout,
        "Context \"fresh\" created.\n"
    );
    assert_eq!(
        run("kc", &["config", "get-contexts", "-o", "name"]).stdout,
        "fresh\nother\nrkube\n"
    );
    assert!(!run("rk", &["config", "use-context", "missing"]).ok);
    // --server and --token override the kubeconfig (the kubeconfig and token are set up at
    // the start, before the admin kubeconfig's context changes).
    let with = |tool: &str, token: Option<&str>| -> Run {
        let bin = if tool == "rk" {
            env!("CARGO_BIN_EXE_rkubectl")
        } else {
            "kubectl"
        };
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("--kubeconfig")
            .arg(&anonymous)
            .args(["get", "ns", "default", "-o", "name", "--server", &s.url]);
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        cmd.env_remove("KUBECONFIG")
            .env("HOME", s.dir.path())
            .output()
            .unwrap()
            .into()
    };
    for tool in ["rk", "kc"] {
        let r = with(tool, Some(&token));
        assert_eq!(r.stdout, "namespace/default\n", "{tool}: {}", r.stderr);
        let r = with(tool, Some("not-a-token"));
        assert!(!r.ok, "{tool}");
        assert_eq!(
            r.stderr, "error: You must be logged in to the server (Unauthorized)\n",
            "{tool}"
        );
        // Without a token the kubeconfig's (lack of) credentials count: anonymous is refused.
        let r = with(tool, None);
        assert!(!r.ok, "{tool}: {}", r.stdout);
    }
    // No configuration at all: localhost:8080, as kubectl.
    let r: Run = std::process::Command::new(env!("CARGO_BIN_EXE_rkubectl"))
        .args(["get", "pods"])
        .env_remove("KUBECONFIG")
        .env("HOME", s.dir.path().join("nohome"))
        .output()
        .unwrap()
        .into();
    assert_eq!(
        r.stderr,
        "The connection to the server localhost:8080 was refused - did you specify the right host or port?\n"
    );
}

/// The API server's count of pod list requests (from /metrics, as the admin).
async fn list_requests(s: &TestServer) -> u64 {
    let (code, _, body) = s
        .http_raw(&Identity::Admin, "GET", "/metrics", &[], Vec::new())
        .await;
    assert_eq!(code, 200);
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{verb=\"list\",resource=\"pods\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_lists_stream_in_pages() {
    let s = server().await;
    // 1,200 pods, created concurrently through kube-rs.
    let client = s.client().await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "default");
    let mut tasks = Vec::new();
    for chunk in 0..12 {
        let pods = pods.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let p: k8s_openapi::api::core::v1::Pod =
                    serde_json::from_value(serde_json::json!({
                        "metadata": {"name": format!("p-{chunk:02}-{i:03}")},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                    }))
                    .unwrap();
                pods.create(&Default::default(), &p).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let before = list_requests(&s).await;
    let out = rk_ok(&s, &["get", "pods", "--chunk-size=500"]);
    assert_eq!(out.lines().count(), 1201);
    assert_eq!(list_requests(&s).await - before, 3, "three pages of 500");
    let first_row = out.lines().nth(1).unwrap();
    assert!(
        first_row.starts_with("p-00-000   0/1     Pending"),
        "{first_row}"
    );
    let names = rk_ok(&s, &["get", "pods", "-o", "name"]);
    assert_eq!(names.lines().count(), 1200);
    assert_eq!(
        rk_ok(&s, &["get", "pods", "--chunk-size=0", "--no-headers"])
            .lines()
            .count(),
        1200
    );
}

#[test]
fn client_commands_need_no_server() {
    let run = |args: &[&str]| -> Run {
        std::process::Command::new(env!("CARGO_BIN_EXE_rkubectl"))
            .args(args)
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap()
            .into()
    };
    let v = run(&["version", "--client"]);
    assert!(v.ok);
    assert_eq!(v.stdout, "Client Version: v0.1.0\n");
    let j = run(&["version", "--client", "-o", "json"]);
    assert!(
        j.stdout.contains("\"gitVersion\": \"v0.1.0\""),
        "{}",
        j.stdout
    );
    for shell in ["bash", "zsh", "fish"] {
        let c = run(&["completion", shell]);
        assert!(
            c.ok && c.stdout.contains("rkubectl") && c.stdout.contains("rollout"),
            "{shell}"
        );
    }
    assert!(!run(&["completion", "tcsh"]).ok);
    // Start-up: `version --client` builds no runtime and reads no kubeconfig (it succeeds
    // with KUBECONFIG pointing nowhere); the time is reported, not asserted (no timed
    // assertions: CI machines are shared).
    let start = std::time::Instant::now();
    for _ in 0..20 {
        assert!(run(&["version", "--client"]).ok);
    }
    eprintln!(
        "rkubectl version --client: {:?} on average over 20 runs",
        start.elapsed() / 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_follows_changes_like_kubectl() {
    let s = server().await;
    s.kubectl_ok(&["run", "p", "--image=nginx", "--labels=app=w"]);
    for (round, args) in [
        &["get", "pods", "-w"][..],
        &["get", "pods", "-l", "app=w", "--watch"],
        &["get", "pods", "-w", "-o", "name"],
        &[
            "get",
            "pod",
            "p",
            "-w",
            "-o",
            "jsonpath={.metadata.labels.tier}{\"\\n\"}",
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let mine = Spawned::start(&s, args);
        let theirs = Spawned::kubectl(&s, args);
        // The list first (each has listed when it printed it; its watch starts from there).
        let first = if args.contains(&"-o") { 1 } else { 2 };
        for _ in 0..first {
            assert_eq!(
                normalise(&mine.next_line()),
                normalise(&theirs.next_line()),
                "{args:?}"
            );
        }
        // A change: one more line each.
        let tier = format!("tier=t{round}");
        s.kubectl_ok(&["label", "pod", "p", &tier, "--overwrite"]);
        assert_eq!(
            normalise(&mine.next_line()),
            normalise(&theirs.next_line()),
            "{args:?}"
        );
    }
}

/// A DaemonSet or StatefulSet (`kind`) running busybox:1.36.
fn workload(s: &TestServer, kind: &str, name: &str) {
    let extra = if kind == "StatefulSet" {
        "  serviceName: db\n  replicas: 2\n"
    } else {
        ""
    };
    let manifest = format!(
        "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{extra}  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: busybox:1.36\n"
    );
    let f = write(s, &format!("{name}.yaml"), &manifest);
    rk_ok(s, &["apply", "-f", &f]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_of_daemonsets_and_statefulsets_matches_kubectl() {
    let s = server().await;
    for (kind, name) in [
        ("DaemonSet", "agent"),
        ("DaemonSet", "twin"),
        ("StatefulSet", "db"),
    ] {
        workload(&s, kind, name);
    }
    s.kubectl_ok(&["create", "deployment", "web", "--image=nginx"]);
    let rs = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: x\nspec:\n  selector:\n    matchLabels:\n      app: x\n  template:\n    metadata:\n      labels:\n        app: x\n    spec:\n      containers:\n      - name: c\n        image: nginx\n";
    let f = write(&s, "rs.yaml", rs);
    rk_ok(&s, &["create", "-f", &f]);
    // Status from what the controllers would report.
    for (res, name, status) in [
        (
            "ds",
            "agent",
            "{\"status\":{\"observedGeneration\":1,\"desiredNumberScheduled\":2,\"updatedNumberScheduled\":2,\"numberAvailable\":1,\"currentNumberScheduled\":2,\"numberMisscheduled\":0,\"numberReady\":1}}",
        ),
        (
            "sts",
            "db",
            "{\"status\":{\"observedGeneration\":1,\"replicas\":2,\"readyReplicas\":1}}",
        ),
    ] {
        rk_ok(
            &s,
            &[
                "patch",
                res,
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                status,
            ],
        );
    }
    // (rkube serves no ControllerRevisions, so the history of daemon and stateful sets is an
    // error from the server for both tools.)
    for args in [
        &["rollout", "status", "ds/agent", "--watch=false"][..],
        &["rollout", "status", "sts/db", "--watch=false"],
        &["rollout", "history", "rs/x"],
        &["rollout", "undo", "rs/x"],
        &["rollout", "status", "rs/x"],
        &["rollout", "restart", "rs/x"],
        &["rollout", "pause", "ds/agent"],
        &["rollout", "resume", "sts/db"],
        &["rollout", "history", "deploy/web"],
        &["rollout", "history", "ds/agent"],
        &["rollout", "undo", "sts/db"],
    ] {
        golden(&s, args);
    }
    // A change, on twins.
    let a = rk(&s, &["rollout", "restart", "ds/agent"]);
    let b = kc(&s, &["rollout", "restart", "ds/twin"]);
    assert_eq!(
        (a.ok, a.stdout.clone()),
        (b.ok, b.stdout.replace("twin", "agent")),
        "{} / {}",
        a.stderr,
        b.stderr
    );
    let restarted = rk_ok(
        &s,
        &[
            "get",
            "ds",
            "agent",
            "-o",
            "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
        ],
    );
    assert!(restarted.ends_with('Z'), "{restarted}");
}

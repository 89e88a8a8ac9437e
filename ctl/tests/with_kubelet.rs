//! rkubectl against an API server with a real rkubelet on its hollow runtime (the kubelet's
//! in-process CRI runtime, whose containers write a log line when they start): `logs` in its
//! forms, `describe` of a running pod and of a registered node (lease, capacity, allocated
//! resources), compared with the real kubectl's output for the same state.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use rkube_kubelet::config::Capacity;
use rkube_kubelet::hollow::FakeConfig;
use rkube_kubelet::{Config, Kubelet, RuntimeMode};

/// An API server with one hollow node, `n1`, Ready.
async fn cluster() -> (TestServer, Kubelet) {
    let s = server().await;
    let k = node(&s, "n1").await;
    (s, k)
}

/// Starts a hollow kubelet for node `name` and waits until the node is Ready.
async fn node(s: &TestServer, name: &str) -> Kubelet {
    let mut cfg = Config::new(name, s.dir.path().join(format!("kubelet-{name}")));
    // The kubelet's own identity, under the Node authorizer.
    cfg.client = Some(s.client_as(&Identity::node(name)).await);
    cfg.runtime = RuntimeMode::Fake(FakeConfig::default());
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.node_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    // Many kubelets in one process: no health port. A serving certificate of the cluster CA
    // and its client CA, so that the API server's client certificate authenticates.
    cfg.serving.healthz_port = None;
    let (cert, key, ca) = s.kubelet_serving_files(
        name,
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        &s.dir.path().join(format!("kubelet-{name}-certs")),
    );
    cfg.serving.tls_cert_file = Some(cert);
    cfg.serving.tls_private_key_file = Some(key);
    cfg.serving.client_ca_file = Some(ca);
    cfg.capacity = Some(Capacity {
        cpu_milli: 4000,
        memory: 8 << 30,
        ephemeral_storage: 100 << 30,
    });
    cfg.max_pods = 20;
    cfg.node_status_update_frequency = Duration::from_secs(1);
    cfg.lease_renew_interval = Duration::from_secs(1);
    let kubelet = Kubelet::start(cfg).await.expect("hollow kubelet");
    eventually(s, &format!("node {name} Ready"), |s| {
        rk(
            s,
            &[
                "get",
                "node",
                name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        )
        .stdout
            == "True"
    });
    kubelet
}

/// Polls until `cond` holds (two minutes at most: CI machines are busy).
fn eventually(s: &TestServer, what: &str, cond: impl Fn(&TestServer) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond(s) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn running(s: &TestServer, pod: &str) {
    eventually(s, &format!("pod {pod} Running"), |s| {
        rk(s, &["get", "pod", pod, "-o", "jsonpath={.status.phase}"]).stdout == "Running"
    });
}

const PODS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: one
  labels:
    app: x
spec:
  nodeName: n1
  containers:
  - name: c
    image: busybox:1.35
    resources:
      requests:
        cpu: 250m
        memory: 64Mi
      limits:
        memory: 128Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: two
  labels:
    app: x
spec:
  nodeName: n1
  containers:
  - name: a
    image: busybox:1.35
  - name: b
    image: busybox:1.35
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: w
        image: busybox:1.35
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels:
    app: web
spec:
  nodeName: n1
  containers:
  - name: w
    image: busybox:1.35
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_match_kubectl() {
    let (s, kubelet) = cluster().await;
    let f = write(&s, "pods.yaml", PODS);
    rk_ok(&s, &["apply", "-f", &f]);
    for p in ["one", "two", "web-1"] {
        running(&s, p);
    }
    for args in [
        &["logs", "one"][..],
        &["logs", "one", "--timestamps"],
        &["logs", "one", "--tail=1"],
        &["logs", "one", "--since=1h"],
        &["logs", "pod/one", "c"],
        &["logs", "two"],
        &["logs", "two", "-c", "b"],
        &["logs", "two", "--all-containers"],
        &["logs", "two", "--all-containers", "--prefix"],
        &["logs", "-l", "app=x"],
        &["logs", "-l", "app=x", "--prefix"],
        &["logs", "deploy/web"],
        &["logs", "one", "--previous"],
        &["logs", "one", "-c", "nope"],
        &["logs", "nope"],
        &["logs", "deploy/nope"],
        &["logs", "-l", "app=none"],
    ] {
        golden(&s, args);
    }
    assert_eq!(
        rk_ok(&s, &["logs", "one"]),
        "started by the hollow runtime\n"
    );
    // Following prints lines as they come (here the one line; then it keeps waiting).
    let follow = Spawned::start(&s, &["logs", "-f", "one"]);
    assert_eq!(follow.next_line(), "started by the hollow runtime");
    drop(follow);
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_running_pods_and_nodes_match_kubectl() {
    let (s, kubelet) = cluster().await;
    let f = write(&s, "pods.yaml", PODS);
    rk_ok(&s, &["apply", "-f", &f]);
    for p in ["one", "two", "web-1"] {
        running(&s, p);
    }
    for args in [
        &["describe", "pod", "one"][..],
        &["describe", "pod", "two"],
        &["describe", "node", "n1"],
        &["get", "pods", "-o", "wide"],
        &["get", "nodes", "-o", "wide"],
    ] {
        golden(&s, args);
    }
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_reads_the_kubelets_stats() {
    let (s, kubelet) = cluster().await;
    let f = write(&s, "pods.yaml", PODS);
    rk_ok(&s, &["apply", "-f", &f]);
    for p in ["one", "two", "web-1"] {
        running(&s, p);
    }
    // The node's figures are the machine's (the hollow node runs on it): check the layout
    // and that they are figures.
    let out = rk_ok(&s, &["top", "nodes"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "NAME   CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)   ",
        "{out}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "n1", "{out}");
    assert!(
        row[1].ends_with('m') && row[1].trim_end_matches('m').parse::<u64>().is_ok(),
        "{out}"
    );
    assert!(row[2].ends_with('%'), "{out}");
    let mem: u64 = row[3].trim_end_matches("Mi").parse().expect("memory in Mi");
    assert!(mem > 0, "{out}");
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(rk_ok(&s, &["top", "node", "n1"]).lines().count(), 2);
    // (kubectl says "Metrics API not available" here: rkube serves none.)
    assert_eq!(
        rk_err(&s, &["top", "node", "nope"]),
        "Error from server (NotFound): nodes \"nope\" not found\n"
    );
    // Pods: each hollow container reports a thousandth of a core and 1 MiB.
    assert_eq!(
        rk_ok(&s, &["top", "pods"]),
        "NAME    CPU(cores)   MEMORY(bytes)   \n\
         one     1m           1Mi             \n\
         two     2m           2Mi             \n\
         web-1   1m           1Mi             \n"
    );
    assert_eq!(
        rk_ok(&s, &["top", "pod", "two", "-A"]),
        "NAMESPACE   NAME   CPU(cores)   MEMORY(bytes)   \n\
         default     two    2m           2Mi             \n"
    );
    assert_eq!(
        rk_err(&s, &["top", "pod", "nope"]),
        "error: pods \"nope\" not found in namespace \"default\"\n"
    );
    // A kubelet that is gone: its node shows <unknown>.
    kubelet.stop().await;
    let r = rk(&s, &["top", "nodes"]);
    assert!(!r.ok, "{r:?}");
    assert!(
        r.stderr
            .contains("Warning: no stats from the kubelet of node n1: Error from server (InternalError): error trying to reach the kubelet on n1 (127.0.0.1:"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.ends_with("error: metrics not available yet\n"),
        "{}",
        r.stderr
    );
}

/// A pod on `node` owned by a ReplicaSet (the drain's "managed" pods).
fn managed_pod(s: &TestServer, name: &str, node: &str) {
    let rs = format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}-rs\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: busybox:1.35\n"
    );
    let f = write(s, &format!("{name}-rs.yaml"), &rs);
    rk_ok(s, &["apply", "-f", &f]);
    let uid = rk_ok(
        s,
        &[
            "get",
            "rs",
            &format!("{name}-rs"),
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    );
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\n  ownerReferences:\n  - apiVersion: apps/v1\n    kind: ReplicaSet\n    name: {name}-rs\n    uid: {uid}\n    controller: true\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:1.35\n  volumes:\n  - name: scratch\n    emptyDir: {{}}\n"
    );
    let f = write(s, &format!("{name}.yaml"), &pod);
    rk_ok(s, &["apply", "-f", &f]);
    running(s, name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_evicts_through_the_kubelet_like_kubectl() {
    let s = server().await;
    let k1 = node(&s, "n1").await;
    let k2 = node(&s, "n2").await;
    managed_pod(&s, "a", "n1");
    managed_pod(&s, "b", "n2");
    // Local storage blocks both, with the same words.
    let mine = rk(&s, &["drain", "n1"]);
    let theirs = kc(&s, &["drain", "n2"]);
    let fix = |t: &str| t.replace("n2", "n1").replace("default/b", "default/a");
    assert!(!mine.ok && !theirs.ok);
    assert_eq!(mine.stdout, fix(&theirs.stdout));
    assert_eq!(mine.stderr, fix(&theirs.stderr));
    // Allowed: the pods are evicted, the kubelets stop them, the drains finish.
    let mine = rk(
        &s,
        &["drain", "n1", "--delete-emptydir-data", "--timeout=120s"],
    );
    let theirs = kc(
        &s,
        &["drain", "n2", "--delete-emptydir-data", "--timeout=120s"],
    );
    assert!(mine.ok, "{mine:?}");
    assert_eq!(mine.stdout, fix(&theirs.stdout).replace("pod/b", "pod/a"));
    assert_eq!(
        mine.stdout,
        "node/n1 already cordoned\nevicting pod default/a\npod/a evicted\nnode/n1 drained\n"
    );
    assert!(!rk(&s, &["get", "pod", "a"]).ok, "the pod is gone");
    golden(&s, &["get", "nodes"]);
    k1.stop().await;
    k2.stop().await;
}

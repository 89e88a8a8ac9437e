//! Scenario 2: rollouts and rollbacks — a rolling update (an environment change) with
//! `maxUnavailable: 0` while a client pod sends a request every ~100 ms through the Service:
//! not one fails; `kubectl rollout undo` brings the first template (the same ReplicaSet) back,
//! again without a failed request.
//!
//! Old pods stop gracefully: a preStop hook gives the endpoints and the proxy time to stop
//! sending them new connections before httpd ends, as a production Deployment would.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use rkube_e2e::cluster::{Cluster, WAIT};

use crate::common::{self, name};

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: roll
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: roll
spec:
  replicas: 3
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      app: echo
  template:
    metadata:
      labels:
        app: echo
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: httpd
        image: busybox:1.35
        env:
        - name: VERSION
          value: v1
        command: ["sh", "-c", "mkdir -p /www && echo \"$VERSION $(hostname)\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe:
          httpGet:
            path: /
            port: 8080
          periodSeconds: 1
        lifecycle:
          preStop:
            exec:
              command: ["sleep", "4"]
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: roll
spec:
  selector:
    app: echo
  ports:
  - port: 80
    targetPort: 8080
"#;

/// The client's lines `got VERSION POD` (or `got FAIL`).
fn client_log(c: &Cluster) -> String {
    c.logs("roll", "client", "client")
}

/// The answers of the client's log after its first `skip` lines: (version, pod) pairs, and
/// the failures.
fn versions(log: &str, skip: usize) -> (Vec<(String, String)>, usize) {
    let mut ok = Vec::new();
    let mut failed = 0;
    for l in log.lines().skip(skip) {
        match l.strip_prefix("got ").map(|r| r.split_once(' ')) {
            Some(Some((v, pod))) => ok.push((v.to_string(), pod.to_string())),
            _ => failed += 1,
        }
    }
    (ok, failed)
}

/// Waits until the client has had `n` answers in a row, after its first `skip` lines, from
/// pods of version `version` only; returns the log's line count.
fn answered_by(c: &Cluster, version: &str, skip: usize, n: usize) -> usize {
    c.eventually(&format!("{n} answers in a row from {version}"), |c| {
        let log = client_log(c);
        let lines = log.lines().count();
        let (ok, _) = versions(&log, skip);
        (ok.len() >= n && ok[ok.len() - n..].iter().all(|(v, _)| v == version)).then_some(lines)
    })
}

fn template_hash(pods: &[Pod]) -> String {
    let hashes: Vec<String> = pods
        .iter()
        .filter_map(|p| {
            p.metadata
                .labels
                .as_ref()?
                .get("pod-template-hash")
                .cloned()
        })
        .collect();
    assert!(
        hashes.len() == pods.len() && hashes.windows(2).all(|w| w[0] == w[1]),
        "{hashes:?}"
    );
    hashes[0].clone()
}

fn rollout_status(c: &Cluster) {
    c.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/echo",
        "-n",
        "roll",
        &format!("--timeout={}s", WAIT.as_secs()),
    ]);
}

#[test]
fn rolling_update_without_failed_requests_and_undo() {
    let c = Cluster::start(common::spec());
    c.apply(APP);
    let v1 = common::rolled_out(&c, "roll", "echo", 3);
    let v1_hash = template_hash(&v1);
    let names: Vec<String> = v1.iter().map(name).collect();
    common::wait_endpoints(&c, "roll", "echo", &names);
    let ip = c
        .get::<Service>(&["service", "-n", "roll", "echo"])
        .and_then(|s| s.spec?.cluster_ip)
        .expect("a ClusterIP");

    // The client polls the ClusterIP throughout.
    let client = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": "roll"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "client",
                "image": "busybox:1.35",
                "command": ["sh", "-c", format!(
                    "while true; do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80 \
                     | tail -n 1); echo \"got ${{r:-FAIL}}\"; sleep 0.1; done"
                )],
            }],
        },
    });
    c.apply(&client.to_string());
    let start = answered_by(&c, "v1", 0, 10);

    // The update: a new environment value.
    c.kubectl_ok(&["set", "env", "deployment/echo", "-n", "roll", "VERSION=v2"]);
    rollout_status(&c);
    let v2 = common::rolled_out(&c, "roll", "echo", 3);
    assert_ne!(template_hash(&v2), v1_hash);
    let updated = answered_by(&c, "v2", start, 10);

    // Undo: the first template again — its ReplicaSet scaled back up.
    let t = std::time::Instant::now();
    c.kubectl_ok(&["rollout", "undo", "deployment/echo", "-n", "roll"]);
    rollout_status(&c);
    eprintln!("TIMING rollout undo of 3 pods: {:.2?}", t.elapsed());
    let back = common::rolled_out(&c, "roll", "echo", 3);
    assert_eq!(template_hash(&back), v1_hash);
    let d: Deployment = c.get(&["deployment", "-n", "roll", "echo"]).unwrap();
    let env = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.env)
        .unwrap_or_default();
    assert_eq!(env[0].value.as_deref(), Some("v1"));
    answered_by(&c, "v1", updated, 10);

    // Not one request failed.
    let log = client_log(&c);
    let (ok, failed) = versions(&log, 0);
    assert_eq!(failed, 0, "failed requests during the rollouts:\n{log}");
    eprintln!("{} requests during the rollouts, none failed", ok.len());
}

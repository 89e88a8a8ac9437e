//! Scenarios 1 and 9: service discovery and load balancing — the README's example
//! `manifests/examples/web.yaml` (three busybox httpd answering with their pod's name, and a
//! Service) applied with rkubectl and the real kubectl, its pods Running (on every worker
//! node), and a client pod reaching it by ClusterIP and by DNS name with the requests spread
//! over every replica; on the embedded store and on a real etcd.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Pod, Service};
use rkube_e2e::cluster::Cluster;

use crate::common::{self, answers, name, node_of};

/// The example users apply.
fn web_yaml() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/web.yaml")
}

/// Requests per way of reaching the Service: a replica missing from 30 answers over three
/// happens with a probability of 3·(2/3)^30 ≈ 2·10⁻⁵.
const REQUESTS: u32 = 30;

/// Applies the example — with `first` (`rkubectl` or `kubectl`), then again with the other
/// one, server-side, which must find nothing to change — and checks it end to end.
fn web_app(c: &Cluster, first: &str) {
    let file = web_yaml();
    let file = file.to_str().expect("a UTF-8 path");
    let applied = Instant::now();
    let out = match first {
        "rkubectl" => c.rkubectl_ok(&["apply", "-f", file]),
        _ => c.kubectl_ok(&["apply", "-f", file]),
    };
    assert!(
        out.contains("deployment.apps/web") && out.contains("service/web"),
        "{out}"
    );
    let pods = common::rolled_out(c, "default", "web", 3);
    eprintln!(
        "TIMING {first} apply → 3 pods Running and Ready: {:.2?}",
        applied.elapsed()
    );
    let generation = |c: &Cluster| {
        c.get::<serde_json::Value>(&["deployment", "web"])
            .map(|d| d["metadata"]["generation"].clone())
    };
    let before = generation(c);
    let again = match first {
        "rkubectl" => c.kubectl_ok(&["apply", "--server-side", "-f", file]),
        _ => c.rkubectl_ok(&["apply", "-f", file]),
    };
    assert!(again.contains("deployment.apps/web"), "{again}");
    assert_eq!(generation(c), before, "re-applying changed the Deployment");

    // Both clients see the same three pods.
    let names: Vec<String> = pods.iter().map(name).collect();
    let listed = c.rkubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    let mut listed: Vec<String> = listed
        .lines()
        .map(|l| l.trim_start_matches("pod/").to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, names);

    // Spread over the workers (one node: all there; two agents: both).
    let nodes: BTreeSet<String> = pods.iter().map(node_of).collect();
    let workers: BTreeSet<String> = c.workers().into_iter().collect();
    assert_eq!(nodes, workers, "web pods on {nodes:?}");
    if !c.agents.is_empty() {
        assert!(
            !nodes.contains("server"),
            "a pod on the tainted server node"
        );
    }

    common::wait_endpoints(c, "default", "web", &names);
    let svc: Service = c.get(&["service", "web"]).expect("service web");
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP");

    // A client pod made by `kubectl run`: by ClusterIP, by the short name (the search path)
    // and by the full name.
    let script = format!(
        "n=0; until nslookup web.default.svc.cluster.local >/dev/null 2>&1; do \
         n=$((n+1)); [ $n -gt 30 ] && echo NO-DNS && exit 1; sleep 1; done; {}; {}; {}",
        common::requests("ip", &ip, 80, REQUESTS),
        common::requests("short", "web", 80, REQUESTS),
        common::requests("fqdn", "web.default.svc.cluster.local", 80, REQUESTS),
    );
    c.kubectl_ok(&[
        "run",
        "client",
        "--image=busybox:1.35",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let phase = c.eventually("the client pod ending", |c| {
        let p: Pod = c.get(&["pod", "client"])?;
        let phase = p.status?.phase?;
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    });
    let log = c.rkubectl_ok(&["logs", "client"]);
    assert_eq!(phase, "Succeeded", "{log}");
    let expected: BTreeSet<&String> = names.iter().collect();
    for tag in ["ip", "short", "fqdn"] {
        let got = answers(&log, tag);
        assert_eq!(
            got.values().sum::<usize>(),
            REQUESTS as usize,
            "{tag}: {log}"
        );
        assert!(!got.contains_key("FAIL"), "{tag}: failed requests: {log}");
        let served: BTreeSet<&String> = got.keys().collect();
        assert_eq!(served, expected, "{tag}: answers {got:?}");
    }
    c.kubectl_ok(&["delete", "pod", "client", "--wait=false"]);
}

/// Scenario 1: on the embedded store, applied with rkubectl first. Then the README's other
/// example, the whole `manifests/examples/` directory with kubectl: the `demo` namespace's web
/// server serves its ConfigMap through its Service.
#[test]
fn web_service_reached_by_ip_and_name_on_every_replica() {
    let c = Cluster::start(common::spec());
    web_app(&c, "rkubectl");

    let examples = web_yaml().parent().expect("examples").to_path_buf();
    c.kubectl_ok(&["apply", "-f", examples.to_str().expect("a UTF-8 path")]);
    let pods = common::rolled_out(&c, "demo", "web", 2);
    let names: Vec<String> = pods.iter().map(name).collect();
    common::wait_endpoints(&c, "demo", "web", &names);
    let run = c.run_pod(
        "demo",
        "client",
        None,
        &common::requests("got", "web", 80, 3),
    );
    assert_eq!(
        answers(&run.log, "got").into_iter().collect::<Vec<_>>(),
        [("<h1>rkube</h1>".to_string(), 3)],
        "{}",
        run.log
    );
}

/// Scenario 9: scenario 1 with the API server on a real etcd (started on the server's
/// machine), applied with the real kubectl first; the objects are in etcd.
#[test]
fn web_service_on_etcd() {
    let c = Cluster::start(common::spec().on_etcd());
    web_app(&c, "kubectl");
    let key = "/registry/apps/deployments/default/web";
    let out = c.etcdctl(&["get", key, "--keys-only"]);
    assert_eq!(out.trim(), key);
    assert!(!c.server.data().join("rkube.db").exists());
}

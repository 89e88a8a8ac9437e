//! Timing harness for server-side apply and managed fields tracking (not a test): prints the
//! µs per call of `track_update` (create and one-field updates of a pod and a deployment) and
//! `apply` (create and re-apply of a deployment).
//!
//! Run with `cargo run --release --example apply_perf -p rkube-machinery`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rkube_machinery::apply::{Manager, apply, track_update};
use rkube_machinery::schema::{SchemaRef, Schemas};
use serde_json::{Value, json};

const T1: &str = "2025-01-01T00:00:01Z";
const T2: &str = "2025-01-01T00:00:02Z";

/// A pod as the API server stores it after a create (defaults and server fields), ~1.3 KiB.
fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c8f5-x2x9q", "namespace": "default",
            "uid": "0b7c1a7e-3f34-4c7e-9d0b-7f4a1f0b2c11", "resourceVersion": "1234",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f5"},
            "annotations": {"example.com/owner": "team-a"}
        },
        "spec": {
            "containers": [{
                "name": "web", "image": "nginx:1.27",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "prod"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"}
    })
}

/// A deployment as the API server stores it after a create.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default", "uid": "6b1f", "resourceVersion": "7",
            "generation": 1, "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": "web"}
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "securityContext": {},
                    "schedulerName": "default-scheduler"
                }
            }
        },
        "status": {}
    })
}

/// The configuration `kubectl apply` sends for the deployment.
fn deployment_config(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": image,
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "MODE", "value": "prod"}]
                }]}
            }
        }
    })
}

fn manager<'a>(name: &'a str, api_version: &'a str, time: &'a str) -> Manager<'a> {
    Manager {
        name,
        api_version,
        subresource: None,
        time,
    }
}

/// Runs `f` on fresh copies of `input` (the copies are made outside the timing) until about
/// `budget` has passed; returns µs per call (best of a few rounds).
fn time<F: FnMut(&mut Value)>(input: &Value, budget: Duration, mut f: F) -> f64 {
    const BATCH: usize = 200;
    let mut best = f64::MAX;
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < budget || rounds < 3 {
        let mut inputs: Vec<Value> = (0..BATCH).map(|_| input.clone()).collect();
        let t = Instant::now();
        for value in &mut inputs {
            f(value);
        }
        let elapsed = t.elapsed().as_secs_f64() * 1e6 / BATCH as f64;
        drop(black_box(inputs));
        best = best.min(elapsed);
        rounds += 1;
    }
    best
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("APPLY_PERF_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1500),
    );
    let schemas = Schemas::builtin();
    let pod_schema: Option<SchemaRef<'_>> = schemas.for_kind("", "v1", "Pod");
    let dep_schema = schemas.for_kind("apps", "v1", "Deployment");
    let pod = pod();
    let dep = deployment();
    println!(
        "pod: {} bytes",
        serde_json::to_string(&pod).unwrap_or_default().len()
    );

    // Create: no old object.
    let creator = manager("kubectl-create", "v1", T1);
    let create_pod = time(&pod, budget, |new| {
        let _ = black_box(track_update(None, new, &creator, pod_schema));
    });

    // Update of a created pod: one label changed by another manager.
    let mut created_pod = pod.clone();
    let _ = track_update(None, &mut created_pod, &creator, pod_schema);
    let mut changed_pod = created_pod.clone();
    changed_pod["metadata"]["labels"]["tier"] = json!("front");
    let labeler = manager("labeler", "v1", T2);
    let update_pod = time(&changed_pod, budget, |new| {
        let _ = black_box(track_update(Some(&created_pod), new, &labeler, pod_schema));
    });

    // Update of a created deployment: replicas changed by another manager.
    let dep_creator = manager("kubectl-create", "apps/v1", T1);
    let mut created_dep = dep.clone();
    let _ = track_update(None, &mut created_dep, &dep_creator, dep_schema);
    let mut changed_dep = created_dep.clone();
    changed_dep["spec"]["replicas"] = json!(3);
    let scaler = manager("scaler", "apps/v1", T2);
    let update_dep = time(&changed_dep, budget, |new| {
        let _ = black_box(track_update(Some(&created_dep), new, &scaler, dep_schema));
    });

    // Apply: create, then re-apply with a new image.
    let kubectl = manager("kubectl", "apps/v1", T1);
    let config = deployment_config(2, "nginx:1.27");
    let apply_create = time(&config, budget, |config| {
        let _ = black_box(apply(None, config, &kubectl, false, dep_schema));
    });
    let live = apply(None, &config, &kubectl, false, dep_schema).unwrap_or(Value::Null);
    let config2 = deployment_config(2, "nginx:1.28");
    let kubectl2 = manager("kubectl", "apps/v1", T2);
    let apply_update = time(&config2, budget, |config| {
        let _ = black_box(apply(Some(&live), config, &kubectl2, false, dep_schema));
    });

    println!("track_update create pod:          {create_pod:8.2} µs");
    println!("track_update update pod (label):  {update_pod:8.2} µs");
    println!("track_update update deployment:   {update_dep:8.2} µs");
    println!("apply create deployment:          {apply_create:8.2} µs");
    println!("apply update deployment (image):  {apply_update:8.2} µs");
}

//! Scenario 3: self-healing — a container whose process is killed (from its node, by cgroup)
//! is restarted; a pod whose liveness probe fails is restarted; a pod whose readiness probe
//! fails leaves the Service's endpoints (and no request reaches it) until it passes again; a
//! deleted pod is replaced.
//!
//! The probes read a control directory (a hostPath of the machine, the same path on every
//! node) where the test drops `sick-POD` and `unready-POD` files.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use rkube_e2e::cluster::Cluster;

use crate::common::{self, answers, name};

// The probes' control directory is a hostPath: the namespace's Pod Security level must allow
// it (the default, baseline, refuses hostPath volumes).
const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: heal
  labels:
    pod-security.kubernetes.io/enforce: privileged
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: heal
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:1.35
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        livenessProbe:
          exec:
            command: ["sh", "-c", "test ! -f /control/sick-$(hostname)"]
          periodSeconds: 1
          failureThreshold: 2
        readinessProbe:
          exec:
            command: ["sh", "-c", "test ! -f /control/unready-$(hostname)"]
          periodSeconds: 1
          failureThreshold: 1
        volumeMounts:
        - name: control
          mountPath: /control
          readOnly: true
      volumes:
      - name: control
        hostPath:
          path: CONTROL_DIR
          type: Directory
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: heal
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
"#;

fn pod(c: &Cluster, name: &str) -> Option<Pod> {
    c.get(&["pod", "-n", "heal", name])
}

/// Waits until pod `name` runs Ready again with another container instance than `before`
/// (its container's ID and restart count read before the test acted: the kubelet may restart
/// it before the test reads the pod again); returns its (container ID, restart count).
fn restarted(
    c: &Cluster,
    name: &str,
    before: (String, i32),
    what: &str,
    control: &Path,
    flag: Option<&str>,
) -> (String, i32) {
    c.eventually(&format!("{name} restarted after {what}"), |c| {
        let p = pod(c, name)?;
        let (id, restarts) = common::first_container(&p);
        if restarts > before.1 {
            // Healthy again: the probe would otherwise restart it once more.
            if let Some(flag) = flag {
                let _ = std::fs::remove_file(control.join(flag));
            }
        }
        (restarts > before.1 && id != before.0 && common::running_ready(&p))
            .then_some((id, restarts))
    })
}

#[test]
fn killed_unhealthy_unready_and_deleted_pods_heal() {
    let c = Cluster::start(common::spec());
    let control = c.dir().join("control");
    std::fs::create_dir(&control).unwrap();
    c.apply(&APP.replace("CONTROL_DIR", control.to_str().unwrap()));
    let pods = common::rolled_out(&c, "heal", "web", 2);
    let (a, b) = (name(&pods[0]), name(&pods[1]));
    let uid_a = pods[0].metadata.uid.clone();
    common::wait_endpoints(&c, "heal", "web", &[a.clone(), b.clone()]);

    // The process killed from the node: the kubelet starts the container again.
    let before = common::first_container(&pod(&c, &a).expect("the pod"));
    let pids = c.container_pids("heal", &a);
    assert!(!pids.is_empty(), "no processes found for {a}");
    for pid in &pids {
        rkube_testkit::host::kill(*pid);
    }
    let (_, restarts) = restarted(&c, &a, before, "its process was killed", &control, None);
    assert_eq!(restarts, 1);
    let p = pod(&c, &a).unwrap();
    assert_eq!(p.metadata.uid, uid_a, "the same pod");
    let last = p
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.last_state)
        .and_then(|s| s.terminated)
        .expect("the killed container's last state");
    assert_eq!(last.exit_code, 137, "{last:?}");

    // A failing liveness probe: restarted by the kubelet.
    let before = common::first_container(&pod(&c, &b).expect("the pod"));
    std::fs::write(control.join(format!("sick-{b}")), "").unwrap();
    let sick = format!("sick-{b}");
    restarted(
        &c,
        &b,
        before,
        "its liveness probe failed",
        &control,
        Some(&sick),
    );
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "heal",
        "--field-selector",
        &format!("involvedObject.name={b}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(events.contains("Liveness probe failed"), "{events}");

    // A failing readiness probe: out of the endpoints, not restarted, no requests; back in
    // once it passes.
    common::wait_endpoints(&c, "heal", "web", &[a.clone(), b.clone()]);
    let restarts_a = common::first_container(&pod(&c, &a).unwrap()).1;
    std::fs::write(control.join(format!("unready-{a}")), "").unwrap();
    common::wait_endpoints(&c, "heal", "web", std::slice::from_ref(&b));
    let run = c.run_pod(
        "heal",
        "client",
        None,
        &common::requests("got", "web", 80, 10),
    );
    let got = answers(&run.log, "got");
    assert_eq!(got.keys().collect::<Vec<_>>(), [&b], "{}", run.log);
    let p = pod(&c, &a).unwrap();
    assert_eq!(
        common::first_container(&p).1,
        restarts_a,
        "unready is not restarted"
    );
    assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    std::fs::remove_file(control.join(format!("unready-{a}"))).unwrap();
    common::wait_endpoints(&c, "heal", "web", &[a.clone(), b.clone()]);

    // A deleted pod: replaced by a new one.
    c.kubectl_ok(&["delete", "pod", "-n", "heal", &b, "--wait=false"]);
    let now = c.eventually(&format!("{b} replaced"), |c| {
        let pods = c.pods("heal", "app=web");
        let ready: Vec<String> = pods
            .iter()
            .filter(|p| common::running_ready(p))
            .map(name)
            .collect();
        (pods.len() == 2 && ready.len() == 2 && !ready.contains(&b)).then_some(ready)
    });
    assert!(now.contains(&a), "{now:?}");
    common::wait_endpoints(&c, "heal", "web", &now);
}

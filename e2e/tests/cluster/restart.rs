//! Scenario 8: the whole server restarted (SIGTERM, then started again on its data, embedded
//! store) — the cluster's state is intact (the same objects, uids, ClusterIP, data), the
//! running pods are untouched (same containers, no restarts) — the agents' and one on the
//! server's own node, which the restarted server's kubelet adopts —, the Service still
//! answers, and the control plane works on (a scale-up after the restart).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use rkube_e2e::cluster::Cluster;

use crate::common::{self, name};

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: keep
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: keep
data:
  color: blue
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: keep
stringData:
  password: s3cr3t
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: keep
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
        readinessProbe:
          tcpSocket:
            port: 8080
          periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: keep
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: on-server
  namespace: keep
spec:
  nodeName: server
  terminationGracePeriodSeconds: 1
  tolerations:
  - key: node-role.kubernetes.io/control-plane
    operator: Exists
  containers:
  - name: c
    image: busybox:1.35
    command: ["sleep", "3600"]
"#;

/// Pod name → (uid, first container's ID, restart count).
fn identities(pods: &[Pod]) -> BTreeMap<String, (String, String, i32)> {
    pods.iter()
        .map(|p| {
            let (id, restarts) = common::first_container(p);
            (
                name(p),
                (p.metadata.uid.clone().unwrap_or_default(), id, restarts),
            )
        })
        .collect()
}

/// One request to the Service from a client pod: the name of the pod that answered.
fn ask(c: &Cluster, pod: &str) -> String {
    let run = c.run_pod(
        "keep",
        pod,
        None,
        &common::requests("got", "web.keep.svc.cluster.local", 80, 3),
    );
    assert_eq!(run.phase, "Succeeded", "{}", run.log);
    run.log
}

#[test]
fn server_restart_keeps_state_and_running_pods() {
    let mut c = Cluster::start(common::spec());
    c.apply(APP);
    let pods = common::rolled_out(&c, "keep", "web", 2);
    let before = identities(&pods);
    let on_server = |c: &Cluster| -> Option<Pod> {
        let p: Pod = c.get(&["pod", "-n", "keep", "on-server"])?;
        common::running_ready(&p).then_some(p)
    };
    let server_pod = identities(&[c.eventually("on-server Running", on_server)]);
    let names: Vec<String> = pods.iter().map(name).collect();
    common::wait_endpoints(&c, "keep", "web", &names);
    let svc: Service = c.get(&["service", "-n", "keep", "web"]).unwrap();
    let cm: ConfigMap = c.get(&["configmap", "-n", "keep", "settings"]).unwrap();
    let secret: Secret = c.get(&["secret", "-n", "keep", "creds"]).unwrap();
    let log = ask(&c, "before");
    assert!(!log.contains("FAIL"), "{log}");

    let t = std::time::Instant::now();
    c.restart_server();
    let api = t.elapsed();
    // Its kubelet runs again (and adopts the pod on its node).
    c.server.wait_log("kubelet started");
    c.eventually("every node Ready", |c| {
        let ready = c.ready_nodes();
        c.node_names()
            .iter()
            .all(|n| ready.contains(n))
            .then_some(())
    });
    eprintln!(
        "TIMING server restart: API serving again {api:.2?} after SIGTERM, kubelet started {:.2?}",
        t.elapsed()
    );

    // The same objects.
    let svc2: Service = c.get(&["service", "-n", "keep", "web"]).unwrap();
    assert_eq!(svc2.metadata.uid, svc.metadata.uid);
    assert_eq!(
        svc2.spec.and_then(|s| s.cluster_ip),
        svc.spec.and_then(|s| s.cluster_ip)
    );
    let cm2: ConfigMap = c.get(&["configmap", "-n", "keep", "settings"]).unwrap();
    assert_eq!(cm2.metadata.uid, cm.metadata.uid);
    assert_eq!(cm2.data, cm.data);
    let secret2: Secret = c.get(&["secret", "-n", "keep", "creds"]).unwrap();
    assert_eq!(secret2.data, secret.data);
    assert_eq!(
        secret2.metadata.resource_version,
        secret.metadata.resource_version
    );

    // The same pods, containers and restart counts, Running and Ready.
    let pods2 = common::rolled_out(&c, "keep", "web", 2);
    assert_eq!(identities(&pods2), before);
    let adopted = c.eventually("on-server Running again", on_server);
    assert_eq!(identities(&[adopted]), server_pod);
    // The restarted kubelet manages it: deleted, its container is stopped and it is gone.
    c.kubectl_ok(&["delete", "pod", "-n", "keep", "on-server", "--wait=false"]);
    c.eventually("on-server removed by the server's kubelet", |c| {
        c.get::<Pod>(&["pod", "-n", "keep", "on-server"])
            .is_none()
            .then_some(())
    });
    common::wait_endpoints(&c, "keep", "web", &names);
    let log = ask(&c, "after");
    assert!(!log.contains("FAIL"), "{log}");
    assert!(
        common::answers(&log, "got")
            .keys()
            .all(|k| names.contains(k)),
        "{log}"
    );

    // The control plane carries on.
    c.kubectl_ok(&["scale", "deployment", "web", "-n", "keep", "--replicas=3"]);
    let pods3 = common::rolled_out(&c, "keep", "web", 3);
    for (pod, id) in &before {
        assert_eq!(identities(&pods3).get(pod), Some(id), "{pod} changed");
    }
}

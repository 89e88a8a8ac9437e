//! Scenario 6: secrets and configuration, storage volumes — a ConfigMap and a Secret as
//! environment variables and as volumes (and a ConfigMap change reaching the volume), an
//! emptyDir shared by two containers of a pod, and a hostPath the node's machine and the pod
//! both see.

use k8s_openapi::api::core::v1::Pod;
use rkube_e2e::cluster::Cluster;

use crate::common::{self, node_of};

// hostPath volumes need a namespace whose Pod Security level allows them (the default,
// baseline, refuses them).
const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: config
  labels:
    pod-security.kubernetes.io/enforce: privileged
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: config
data:
  color: blue
  app.conf: |
    mode=fast
    level=3
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: config
type: Opaque
stringData:
  password: s3cr3t-pw
  token: t0k3n
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: config
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: writer
    image: busybox:1.35
    env:
    - name: COLOR
      valueFrom:
        configMapKeyRef:
          name: settings
          key: color
    - name: PASSWORD
      valueFrom:
        secretKeyRef:
          name: creds
          key: password
    envFrom:
    - prefix: CFG_
      configMapRef:
        name: settings
    - prefix: SEC_
      secretRef:
        name: creds
    command:
    - sh
    - -c
    - |
      echo "ENV color=$COLOR password=$PASSWORD cfg=$CFG_color token=$SEC_token"
      echo "CONF $(tr '\n' ' ' < /etc/settings/app.conf)"
      echo "SECRET-FILE $(cat /etc/creds/password) mode $(stat -L -c %a /etc/creds/password)"
      echo "HOST $(cat /host/from-host)"
      echo "written by $(hostname)" > /host/from-pod
      echo "shared by the writer" > /shared/message
      while true; do echo "COLOR-FILE $(cat /etc/settings/color)"; sleep 1; done
    volumeMounts:
    - name: settings
      mountPath: /etc/settings
    - name: creds
      mountPath: /etc/creds
      readOnly: true
    - name: shared
      mountPath: /shared
    - name: host
      mountPath: /host
  - name: reader
    image: busybox:1.35
    command:
    - sh
    - -c
    - until [ -s /data/message ]; do sleep 0.2; done; echo "SHARED $(cat /data/message)"; exec sleep 3600
    volumeMounts:
    - name: shared
      mountPath: /data
  volumes:
  - name: settings
    configMap:
      name: settings
  - name: creds
    secret:
      secretName: creds
      defaultMode: 0400
  - name: shared
    emptyDir: {}
  - name: host
    hostPath:
      path: HOST_DIR
      type: Directory
"#;

/// Waits until container `container` of `config/app` logged a line starting with `prefix`;
/// returns the last such line.
fn line(c: &Cluster, container: &str, prefix: &str) -> String {
    c.eventually(&format!("{container} logging {prefix:?}"), |c| {
        c.logs("config", "app", container)
            .lines()
            .rfind(|l| l.starts_with(prefix))
            .map(str::to_string)
    })
}

#[test]
fn configmap_secret_emptydir_and_hostpath() {
    let c = Cluster::start(common::spec());
    // The hostPath: a directory of the (shared) machine, the same path on every node.
    let host_dir = c.dir().join("hostpath");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "hello from the node\n").unwrap();
    c.apply(&APP.replace("HOST_DIR", host_dir.to_str().unwrap()));
    let pod = c.eventually("config/app Running", |c| {
        let p: Pod = c.get(&["pod", "-n", "config", "app"])?;
        common::running_ready(&p).then_some(p)
    });
    assert!(c.workers().contains(&node_of(&pod)));

    assert_eq!(
        line(&c, "writer", "ENV "),
        "ENV color=blue password=s3cr3t-pw cfg=blue token=t0k3n"
    );
    assert_eq!(line(&c, "writer", "CONF "), "CONF mode=fast level=3 ");
    assert_eq!(
        line(&c, "writer", "SECRET-FILE "),
        "SECRET-FILE s3cr3t-pw mode 400"
    );
    assert_eq!(line(&c, "writer", "HOST "), "HOST hello from the node");
    assert_eq!(line(&c, "reader", "SHARED "), "SHARED shared by the writer");
    let from_pod = c.eventually("the pod's file in the hostPath", |_| {
        std::fs::read_to_string(host_dir.join("from-pod")).ok()
    });
    assert_eq!(from_pod, "written by app\n");

    // A changed ConfigMap reaches the mounted volume (the environment stays as it was).
    assert_eq!(line(&c, "writer", "COLOR-FILE "), "COLOR-FILE blue");
    c.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "config",
        "--type=merge",
        "-p",
        r#"{"data":{"color":"green"}}"#,
    ]);
    assert_eq!(
        line(&c, "writer", "COLOR-FILE green"),
        "COLOR-FILE green",
        "the volume was not updated"
    );
    let restarts = common::first_container(&c.get(&["pod", "-n", "config", "app"]).unwrap()).1;
    assert_eq!(restarts, 0);
}

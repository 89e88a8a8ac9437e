//! Scenario 7: scaling a Deployment 3 → 10 → 0, and deleting Deployments with each
//! propagation policy — Background (the Deployment goes at once, the garbage collector removes
//! its ReplicaSet and pods), Foreground (the Deployment stays, with the `foregroundDeletion`
//! finalizer, until its dependents are gone) and Orphan (the ReplicaSet and its pods stay,
//! released from their owner).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use rkube_e2e::cluster::Cluster;

use crate::common::{self, name};

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: scale
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.35
        command: ["sleep", "3600"]
"#
    )
}

fn pods(c: &Cluster, app: &str) -> Vec<Pod> {
    c.pods("scale", &format!("app={app}"))
}

fn replicasets(c: &Cluster, app: &str) -> Vec<ReplicaSet> {
    c.list(&["replicasets", "-n", "scale", "-l", &format!("app={app}")])
}

#[test]
fn scale_and_delete_with_each_propagation_policy() {
    let c = Cluster::start(common::spec());
    c.kubectl_ok(&["create", "namespace", "scale"]);

    // 3 → 10 → 0.
    c.apply(&deployment("counter", 3));
    common::rolled_out(&c, "scale", "counter", 3);
    let t = std::time::Instant::now();
    c.rkubectl_ok(&[
        "scale",
        "deployment",
        "counter",
        "-n",
        "scale",
        "--replicas=10",
    ]);
    let ten = common::rolled_out(&c, "scale", "counter", 10);
    eprintln!("TIMING scale 3 → 10 Running: {:.2?}", t.elapsed());
    let mut names: Vec<String> = ten.iter().map(name).collect();
    names.dedup();
    assert_eq!(names.len(), 10);
    c.kubectl_ok(&[
        "scale",
        "deployment",
        "counter",
        "-n",
        "scale",
        "--replicas=0",
    ]);
    c.eventually("counter scaled to 0: no pods left", |c| {
        let d: Deployment = c.get(&["deployment", "-n", "scale", "counter"])?;
        let s = d.status?;
        (pods(c, "counter").is_empty() && s.replicas.unwrap_or(0) == 0).then_some(())
    });

    // One Deployment per policy.
    for app in ["background", "foreground", "orphan"] {
        c.apply(&deployment(app, 2));
    }
    for app in ["background", "foreground", "orphan"] {
        common::rolled_out(&c, "scale", app, 2);
    }

    // Background: the Deployment is gone at once; its ReplicaSet and pods follow.
    c.kubectl_ok(&[
        "delete",
        "deployment",
        "background",
        "-n",
        "scale",
        "--cascade=background",
    ]);
    assert!(
        c.get::<Deployment>(&["deployment", "-n", "scale", "background"])
            .is_none()
    );
    c.eventually("the background Deployment's dependents deleted", |c| {
        (replicasets(c, "background").is_empty() && pods(c, "background").is_empty()).then_some(())
    });

    // Foreground: the Deployment waits, marked, for its dependents.
    c.kubectl_ok(&[
        "delete",
        "deployment",
        "foreground",
        "-n",
        "scale",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let marked: Deployment = c
        .get(&["deployment", "-n", "scale", "foreground"])
        .expect("the Deployment stays while its dependents exist");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(
        marked
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    c.eventually(
        "the foreground Deployment and its dependents deleted",
        |c| {
            let gone = c
                .get::<Deployment>(&["deployment", "-n", "scale", "foreground"])
                .is_none();
            (gone && replicasets(c, "foreground").is_empty() && pods(c, "foreground").is_empty())
                .then_some(())
        },
    );

    // Orphan: the ReplicaSet and pods stay, without an owner, and keep running.
    let before: Vec<String> = pods(&c, "orphan").iter().map(name).collect();
    c.kubectl_ok(&[
        "delete",
        "deployment",
        "orphan",
        "-n",
        "scale",
        "--cascade=orphan",
    ]);
    c.eventually("the orphaned ReplicaSet released", |c| {
        let rs = replicasets(c, "orphan");
        (c.get::<Deployment>(&["deployment", "-n", "scale", "orphan"])
            .is_none()
            && rs.len() == 1
            && rs[0]
                .metadata
                .owner_references
                .as_deref()
                .unwrap_or_default()
                .is_empty())
        .then_some(())
    });
    let after = pods(&c, "orphan");
    assert_eq!(after.iter().map(name).collect::<Vec<_>>(), before);
    assert!(after.iter().all(common::running_ready));
    // The ReplicaSet still manages them: a deleted pod is replaced.
    c.kubectl_ok(&["delete", "pod", "-n", "scale", &before[0], "--wait=false"]);
    c.eventually("the orphaned ReplicaSet replacing a pod", |c| {
        let now = pods(c, "orphan");
        let ready: Vec<&Pod> = now.iter().filter(|p| common::running_ready(p)).collect();
        (ready.len() == 2 && ready.iter().all(|p| name(p) != before[0])).then_some(())
    });
}

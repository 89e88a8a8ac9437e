//! The Deployment flows driven by the real kubectl against a real API server and the controller
//! manager (a stand-in kubelet marks pods Running and Ready): `apply`, `rollout status`,
//! `set image`, `rollout history`, `rollout undo`, `scale`, `rollout restart`, `rollout
//! pause`/`resume`, `describe` showing the controllers' events, and `rollout status` failing on a
//! Deployment that exceeds its progress deadline.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Client;
use kube::api::{Api, ListParams};

const T: Duration = Duration::from_secs(30);

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: kc
  annotations:
    kubernetes.io/change-cause: first release
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: app
        image: nginx:1.25
"#;

const STUCK: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
  namespace: stuck
spec:
  replicas: 2
  progressDeadlineSeconds: 2
  selector:
    matchLabels: {app: stuck}
  template:
    metadata:
      labels: {app: stuck}
    spec:
      containers:
      - name: app
        image: nginx:1.25
"#;

/// The images of the active pods of `web`, sorted.
async fn images(c: &Client) -> Vec<String> {
    let mut v: Vec<String> = active_pods(c, "kc", "app=web")
        .await
        .iter()
        .filter_map(|p| p.spec.as_ref()?.containers[0].image.clone())
        .collect();
    v.sort();
    v
}

/// Waits until `web` runs exactly `n` active pods of `image`.
async fn wait_pods(c: &Client, n: usize, image: &str) {
    wait_for(&format!("{n} pods of {image}"), T, || async {
        let got = images(c).await;
        (got.len() == n && got.iter().all(|i| i == image)).then_some(())
    })
    .await;
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn template_image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_rolls_out_scales_undoes_restarts_and_pauses() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("kc").await;
    let _kubelet = Kubelet::start(c, "kc", Duration::from_millis(50), None);
    let d_api: Api<Deployment> = Api::namespaced(c.clone(), "kc");
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.clone(), "kc");
    let status = [
        "rollout",
        "status",
        "-n",
        "kc",
        "deployment/web",
        "--timeout=60s",
    ];

    // apply + rollout status.
    cluster.kubectl_stdin(&["apply", "-f", "-"], MANIFEST).await;
    let out = cluster.kubectl(&status).await;
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    wait_pods(c, 3, "nginx:1.25").await;

    // set image: revision 2, rolled out by rollout status' measure.
    cluster
        .kubectl(&[
            "set",
            "image",
            "-n",
            "kc",
            "deployment/web",
            "app=nginx:1.26",
        ])
        .await;
    let out = cluster.kubectl(&status).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_pods(c, 3, "nginx:1.26").await;
    let history = cluster
        .kubectl(&["rollout", "history", "-n", "kc", "deployment/web"])
        .await;
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    assert!(history.contains("first release"), "{history}");

    // rollout undo: back to the first template; its ReplicaSet becomes revision 3.
    let out = cluster
        .kubectl(&["rollout", "undo", "-n", "kc", "deployment/web"])
        .await;
    assert!(out.contains("rolled back"), "{out}");
    cluster.kubectl(&status).await;
    wait_pods(c, 3, "nginx:1.25").await;
    let d = d_api.get("web").await.unwrap();
    assert_eq!(template_image(&d), "nginx:1.25");
    assert_eq!(
        annotation(&d.metadata, "deployment.kubernetes.io/revision"),
        Some("3")
    );
    let rses = rs_api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(rses.len(), 2, "the old ReplicaSet is reused");
    let first = rses
        .iter()
        .find(|rs| {
            rs.spec
                .as_ref()
                .unwrap()
                .template
                .as_ref()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .image
                .as_deref()
                == Some("nginx:1.25")
        })
        .unwrap();
    assert_eq!(
        annotation(&first.metadata, "deployment.kubernetes.io/revision"),
        Some("3")
    );
    assert_eq!(
        annotation(&first.metadata, "deployment.kubernetes.io/revision-history"),
        Some("1")
    );

    // scale (the scale subresource).
    cluster
        .kubectl(&["scale", "-n", "kc", "deployment/web", "--replicas=5"])
        .await;
    cluster.kubectl(&status).await;
    wait_pods(c, 5, "nginx:1.25").await;

    // rollout restart: a template annotation, hence a new ReplicaSet and new pods.
    let before: Vec<String> = active_pods(c, "kc", "app=web")
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    cluster
        .kubectl(&["rollout", "restart", "-n", "kc", "deployment/web"])
        .await;
    cluster.kubectl(&status).await;
    let d = d_api.get("web").await.unwrap();
    let restarted = d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
    assert!(annotation(restarted, "kubectl.kubernetes.io/restartedAt").is_some());
    wait_for("every pod replaced", T, || async {
        let now = active_pods(c, "kc", "app=web").await;
        (now.len() == 5
            && now
                .iter()
                .all(|p| !before.contains(p.metadata.name.as_ref().unwrap())))
        .then_some(())
    })
    .await;
    assert_eq!(
        rs_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    // rollout pause: a template change waits (no new ReplicaSet); resume rolls it out.
    cluster
        .kubectl(&["rollout", "pause", "-n", "kc", "deployment/web"])
        .await;
    cluster
        .kubectl(&[
            "set",
            "image",
            "-n",
            "kc",
            "deployment/web",
            "app=nginx:1.27",
        ])
        .await;
    wait_for("the paused deployment to be observed", T, || async {
        let d = d_api.get("web").await.ok()?;
        let st = d.status.as_ref()?;
        let progressing = st
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Progressing")?;
        (st.observed_generation >= d.metadata.generation
            && progressing.reason.as_deref() == Some("DeploymentPaused"))
        .then_some(())
    })
    .await;
    assert_eq!(
        rs_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3,
        "no ReplicaSet for the paused template"
    );
    assert!(images(c).await.iter().all(|i| i == "nginx:1.25"));
    cluster
        .kubectl(&["rollout", "resume", "-n", "kc", "deployment/web"])
        .await;
    cluster.kubectl(&status).await;
    wait_pods(c, 5, "nginx:1.27").await;

    // describe: the controllers' events read as Kubernetes' do.
    let out = cluster
        .kubectl(&["describe", "-n", "kc", "deployment/web"])
        .await;
    assert!(out.contains("ScalingReplicaSet"), "{out}");
    assert!(out.contains("Scaled up replica set web-"), "{out}");
    assert!(out.contains("Scaled down replica set web-"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollout_status_fails_once_the_progress_deadline_passes() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("stuck").await;
    // Pods run but never become ready.
    let kubelet = Kubelet::start(c, "stuck", Duration::from_millis(20), None);
    kubelet.ready.store(false, Ordering::SeqCst);
    cluster.kubectl_stdin(&["apply", "-f", "-"], STUCK).await;
    let out = cluster
        .kubectl_raw(&[
            "rollout",
            "status",
            "-n",
            "stuck",
            "deployment/stuck",
            "--timeout=60s",
        ])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("deployment \"stuck\" exceeded its progress deadline"),
        "{stderr}"
    );
    let d = Api::<Deployment>::namespaced(c.clone(), "stuck")
        .get("stuck")
        .await
        .unwrap();
    let progressing = d
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
}

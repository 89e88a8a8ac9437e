//! ResourceQuotas end to end: the API server's ResourceQuota admission and the controller
//! manager's resourcequota-controller against a real API server, through the real kubectl and
//! kube-rs — a quota's status is filled, creates beyond it are refused with Kubernetes' words,
//! pods must declare the compute resources it limits, and deleting objects gives their usage
//! back.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{Api, DeleteParams, PostParams};

const T: Duration = Duration::from_secs(30);

fn pod(name: &str, cpu: Option<&str>) -> Pod {
    let resources = cpu.map_or(
        serde_json::json!({}),
        |c| serde_json::json!({"requests": {"cpu": c}, "limits": {"cpu": c}}),
    );
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.35", "resources": resources}]}
    }))
    .unwrap()
}

/// The quota's `status.used[resource]`, once the controller has written it.
async fn used(api: &Api<ResourceQuota>, resource: &str, expected: &str) {
    wait_for(&format!("used {resource} = {expected}"), T, || async {
        let q = api.get("compute").await.ok()?;
        let used = q.status?.used?;
        let got = used.get(resource)?.0.clone();
        (got == expected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_limits_creates_and_gives_back_what_deleted_pods_used() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("quota").await;
    cluster
        .kubectl(&[
            "create",
            "quota",
            "compute",
            "-n",
            "quota",
            "--hard=pods=2,requests.cpu=1,configmaps=3",
        ])
        .await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.clone(), "quota");
    used(&quotas, "pods", "0").await;
    let status = quotas.get("compute").await.unwrap().status.unwrap();
    assert_eq!(status.hard.unwrap().len(), 3, "hard copied from the spec");
    assert!(status.used.unwrap().contains_key("configmaps"));

    let pods: Api<Pod> = Api::namespaced(c.clone(), "quota");
    pods.create(&PostParams::default(), &pod("a", Some("500m")))
        .await
        .unwrap();
    // A pod without the cpu request the quota limits is refused.
    let err = pods
        .create(&PostParams::default(), &pod("bare", None))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                "pods \"bare\" is forbidden: failed quota: compute: must specify requests.cpu for: c"
            );
        }
        other => panic!("{other}"),
    }
    // More cpu than is left is refused, and nothing is charged for it.
    let err = pods
        .create(&PostParams::default(), &pod("big", Some("600m")))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                "pods \"big\" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
            );
        }
        other => panic!("{other}"),
    }
    pods.create(&PostParams::default(), &pod("b", Some("500m")))
        .await
        .unwrap();
    used(&quotas, "requests.cpu", "1").await;
    // kubectl sees the refusal and the quota's columns.
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n  namespace: quota\nspec:\n  containers:\n  - name: c\n    image: busybox:1.35\n    resources:\n      requests:\n        cpu: 100m\n";
    let out = cluster
        .kubectl_input(&["apply", "-f", "-"], Some(manifest))
        .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("exceeded quota: compute"), "{err}");
    let table = cluster.kubectl(&["get", "quota", "-n", "quota"]).await;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("pods: 2/2"), "{table}");
    assert!(table.contains("requests.cpu: 1/1"), "{table}");
    let described = cluster
        .kubectl(&["describe", "quota", "compute", "-n", "quota"])
        .await;
    assert!(described.contains("requests.cpu"), "{described}");

    // Deleting a pod gives its share back.
    pods.delete("a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    used(&quotas, "pods", "1").await;
    used(&quotas, "requests.cpu", "500m").await;
    pods.create(&PostParams::default(), &pod("d", Some("500m")))
        .await
        .unwrap();
}

//! PodDisruptionBudgets end to end: a real API server with the controller manager (the
//! disruption controller computing budgets, the Deployment and ReplicaSet controllers making
//! pods), a stand-in kubelet making the pods Running and Ready, budgets made and listed with
//! the real kubectl, and evictions through kube-rs that the budget allows or refuses.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, PostParams};
use rkube_testkit::apiserver::Identity;

const T: Duration = Duration::from_secs(30);

/// `kubectl get` output as rows of cells (columns are separated by two or more spaces).
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn condition(pdb: &PodDisruptionBudget) -> Option<(String, String)> {
    pdb.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evictions_respect_a_budget_made_with_kubectl() {
    let cluster = Cluster::start().await;
    let ns = "budgets";
    cluster.namespace(ns).await;
    let client = cluster.client.clone();
    let kubelet = Kubelet::start(&client, ns, Duration::from_millis(50), None);
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &deployment("web", 3, "busybox:1.35"),
        )
        .await
        .unwrap();
    wait_for("3 ready pods", T, || async {
        let pods = active_pods(&client, ns, "app=web").await;
        (pods.len() == 3 && pods.iter().all(is_ready)).then_some(())
    })
    .await;
    // From now on new pods stay Pending: an evicted pod's replacement does not become
    // healthy, so the budget stays spent.
    drop(kubelet);

    cluster
        .kubectl(&[
            "-n",
            ns,
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--min-available=2",
        ])
        .await;
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let pdb = wait_for("the budget's status", T, || async {
        let p = budgets.get("web").await.ok()?;
        let st = p.status.as_ref()?;
        (st.observed_generation == p.metadata.generation
            && st.disruptions_allowed == 1
            && st.current_healthy == 3)
            .then_some(p)
    })
    .await;
    let st = pdb.status.clone().unwrap();
    assert_eq!((st.expected_pods, st.desired_healthy), (3, 2));
    assert_eq!(
        condition(&pdb),
        Some(("True".into(), "SufficientPods".into()))
    );

    let rows = table(&cluster.kubectl(&["-n", ns, "get", "pdb"]).await);
    assert_eq!(
        rows[0],
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(rows[1][..4], ["web", "2", "N/A", "1"]);

    // Evictions through a client that does not retry a 429 itself (kube-rs' default client
    // would, for minutes), as `kubectl drain` handles refusals on its own.
    let mut config = cluster.server.config_as(&Identity::Admin).await;
    config.default_retry = false;
    let evictor = rkube_machinery::client::client(config).unwrap();
    let pods_api: Api<Pod> = Api::namespaced(evictor, ns);
    let mut names: Vec<String> = active_pods(&client, ns, "app=web")
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();

    // A dry run is allowed and changes nothing.
    let dry = EvictParams {
        post_options: PostParams {
            dry_run: true,
            ..Default::default()
        },
        ..Default::default()
    };
    pods_api.evict(&names[0], &dry).await.unwrap();
    let after_dry = budgets.get("web").await.unwrap();
    assert_eq!(
        after_dry.metadata.resource_version, pdb.metadata.resource_version,
        "a dry run wrote the budget"
    );
    assert!(pods_api.get_opt(&names[0]).await.unwrap().is_some());

    // The first eviction spends the one disruption allowed; the next is refused.
    pods_api
        .evict(&names[0], &EvictParams::default())
        .await
        .unwrap();
    let err = pods_api
        .evict(&names[1], &EvictParams::default())
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 429, "{status:?}");
    assert_eq!(status.reason, "TooManyRequests");
    assert_eq!(
        status.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    assert_eq!(causes.len(), 1, "{status:?}");
    assert_eq!(causes[0].reason, "DisruptionBudget");
    assert!(
        causes[0]
            .message
            .starts_with("The disruption budget web needs 2 healthy pods and has "),
        "{}",
        causes[0].message
    );
    assert!(
        pods_api.get_opt(&names[0]).await.unwrap().is_none(),
        "evicted"
    );
    assert!(pods_api.get_opt(&names[1]).await.unwrap().is_some(), "kept");

    // The controller agrees: two healthy pods (the replacement is not ready), none to spare.
    let pdb = wait_for("the budget to be recomputed", T, || async {
        let p = budgets.get("web").await.ok()?;
        let st = p.status.as_ref()?;
        (st.current_healthy == 2 && st.disruptions_allowed == 0 && st.expected_pods == 3)
            .then_some(p)
    })
    .await;
    assert_eq!(
        condition(&pdb),
        Some(("False".into(), "InsufficientPods".into()))
    );
    let rows = table(&cluster.kubectl(&["-n", ns, "get", "pdb", "web"]).await);
    assert_eq!(rows[1][..4], ["web", "2", "N/A", "0"]);

    // Budgets are validated as Kubernetes does.
    let out = cluster
        .kubectl_raw(&[
            "-n",
            ns,
            "create",
            "pdb",
            "bad",
            "--selector=app=web",
            "--max-unavailable=150%",
        ])
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.maxUnavailable") && stderr.contains("must not be greater than 100%"),
        "{stderr}"
    );
}

/// Binds every pod of `ns` labelled `app=web` that has no node yet to `node` (a stand-in
/// scheduler, run once).
async fn bind_all(client: &kube::Client, ns: &str, node: &str) -> usize {
    let mut bound = 0;
    for p in active_pods(client, ns, "app=web").await {
        let unbound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none();
        if unbound {
            bind(client, ns, p.metadata.name.as_deref().unwrap(), node)
                .await
                .unwrap();
            bound += 1;
        }
    }
    bound
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_drain_stops_at_the_budget() {
    // No node monitoring: the node here never reports, and its pods must stay Ready.
    let cluster = Cluster::start_with(|c| {
        c.controllers = vec![
            "*".into(),
            "-node-lifecycle".into(),
            "-taint-eviction".into(),
        ];
    })
    .await;
    let ns = "drain";
    cluster.namespace(ns).await;
    let client = cluster.client.clone();
    let node = k8s_openapi::api::core::v1::Node {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("node-1".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let _kubelet = Kubelet::start(&client, ns, Duration::from_millis(50), Some("node-1"));
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &deployment("web", 3, "busybox:1.35"),
        )
        .await
        .unwrap();
    wait_for("3 pods on node-1", T, || async {
        bind_all(&client, ns, "node-1").await;
        let pods = active_pods(&client, ns, "app=web").await;
        (pods.len() == 3 && pods.iter().all(is_ready)).then_some(())
    })
    .await;
    let originals: Vec<String> = active_pods(&client, ns, "app=web")
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    cluster
        .kubectl(&[
            "-n",
            ns,
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--max-unavailable=1",
        ])
        .await;
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    wait_for("the budget to allow one disruption", T, || async {
        let p = budgets.get("web").await.ok()?;
        let st = p.status.as_ref()?;
        // maxUnavailable 1 of the Deployment's 3 replicas.
        (st.observed_generation == p.metadata.generation
            && st.expected_pods == 3
            && st.desired_healthy == 2
            && st.disruptions_allowed == 1)
            .then_some(())
    })
    .await;

    // The replacement of an evicted pod is never scheduled: drain can evict one pod, and the
    // budget refuses the others until drain gives up.
    let out = cluster
        .kubectl_raw(&["drain", "node-1", "--timeout=8s"])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "drain finished: {stderr}");
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );
    let node = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .get("node-1")
        .await
        .unwrap();
    assert_eq!(
        node.spec.and_then(|s| s.unschedulable),
        Some(true),
        "cordoned"
    );
    let left: Vec<String> = active_pods(&client, ns, "app=web")
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .filter(|n| originals.contains(n))
        .collect();
    assert_eq!(left.len(), 2, "exactly one pod evicted: {left:?}");
}

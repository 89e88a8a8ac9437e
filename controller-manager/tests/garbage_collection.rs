//! The garbage collector and the namespace controller against a real API server: the three
//! deletion policies of a Deployment, and namespace deletion.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service, ServicePort, ServiceSpec};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};

const T: Duration = Duration::from_secs(30);

async fn running_deployment(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> (Vec<ReplicaSet>, Vec<Pod>) {
    let c = &cluster.client;
    Api::<Deployment>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &deployment(name, 3, "nginx"))
        .await
        .unwrap();
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.clone(), ns);
    let sel = format!("app={name}");
    wait_for("3 pods", T, || async {
        let rses = rs_api
            .list(&ListParams::default().labels(&sel))
            .await
            .ok()?
            .items;
        let pods = active_pods(c, ns, &sel).await;
        (rses.len() == 1 && pods.len() == 3).then_some((rses, pods))
    })
    .await
}

async fn count(c: &kube::Client, ns: &str, sel: &str) -> (usize, usize) {
    let rses = Api::<ReplicaSet>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(sel))
        .await
        .unwrap()
        .items
        .len();
    let pods = Api::<Pod>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(sel))
        .await
        .unwrap()
        .items
        .len();
    (rses, pods)
}

fn policy(p: PropagationPolicy) -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(p),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_deployment_keeps_each_policys_promise() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("gc").await;
    let d_api: Api<Deployment> = Api::namespaced(c.clone(), "gc");

    // Background: the Deployment goes at once, the collector removes its ReplicaSet and pods.
    running_deployment(&cluster, "gc", "bg").await;
    d_api
        .delete("bg", &policy(PropagationPolicy::Background))
        .await
        .unwrap();
    assert!(d_api.get_opt("bg").await.unwrap().is_none());
    wait_for("background cascade", T, || async {
        (count(c, "gc", "app=bg").await == (0, 0)).then_some(())
    })
    .await;

    // Foreground: the Deployment stays, with the foregroundDeletion finalizer, until its
    // ReplicaSet and pods are gone.
    running_deployment(&cluster, "gc", "fg").await;
    let pending = d_api
        .delete("fg", &policy(PropagationPolicy::Foreground))
        .await
        .unwrap();
    let pending = pending
        .left()
        .expect("the deployment is kept while its dependents go");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(
        pending.metadata.finalizers.as_deref(),
        Some(&["foregroundDeletion".to_string()][..])
    );
    wait_for("foreground deletion to finish", T, || async {
        // The owner first: once it is gone, its dependents must be gone already.
        let owner = d_api.get_opt("fg").await.unwrap();
        let left = count(c, "gc", "app=fg").await;
        if owner.is_some() {
            return None;
        }
        assert_eq!(left, (0, 0), "the owner went last");
        Some(())
    })
    .await;

    // Orphan: the Deployment goes, its ReplicaSet stays without an owner and keeps its pods.
    let (rses, _) = running_deployment(&cluster, "gc", "or").await;
    d_api
        .delete("or", &policy(PropagationPolicy::Orphan))
        .await
        .unwrap();
    wait_for("the orphaning deletion", T, || async {
        d_api.get_opt("or").await.unwrap().is_none().then_some(())
    })
    .await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.clone(), "gc");
    let rs = rs_api
        .get(rses[0].metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    assert!(
        rs.metadata
            .owner_references
            .as_ref()
            .is_none_or(|r| r.is_empty()),
        "released: {:?}",
        rs.metadata.owner_references
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pods = active_pods(c, "gc", "app=or").await;
    assert_eq!(pods.len(), 3, "the pods stay");
    for p in &pods {
        assert!(
            p.metadata
                .owner_references
                .as_ref()
                .unwrap()
                .iter()
                .any(|r| Some(&r.uid) == rs.metadata.uid.as_ref())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_namespace_empties_it_first() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("doomed").await;
    running_deployment(&cluster, "doomed", "web").await;
    let svc = Service {
        metadata: kube::api::ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels(&[("app", "web")])),
            ports: Some(vec![ServicePort {
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    Api::<Service>::namespaced(c.clone(), "doomed")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
    let mut held = ConfigMap::default();
    held.metadata.name = Some("held".into());
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();

    let ns_api: Api<Namespace> = Api::all(c.clone());
    ns_api
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    // Everything but the held ConfigMap goes; the namespace stays Terminating and says why.
    let ns = wait_for("the namespace to report what remains", T, || async {
        let ns = ns_api.get("doomed").await.ok()?;
        let conds = ns.status.as_ref()?.conditions.clone()?;
        let remaining = conds.iter().find(|c| c.type_ == "NamespaceContentRemaining")?;
        let fins = conds.iter().find(|c| c.type_ == "NamespaceFinalizersRemaining")?;
        (remaining.message.as_deref() == Some("Some resources are remaining: configmaps. has 1 resource instances")
            && fins.message.as_deref() == Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"))
        .then_some(ns)
    })
    .await;
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert!(
        Api::<Pod>::namespaced(c.clone(), "doomed")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        Api::<Deployment>::namespaced(c.clone(), "doomed")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let out = cluster
        .kubectl(&[
            "get",
            "namespace",
            "doomed",
            "-o",
            "jsonpath={.status.phase}",
        ])
        .await;
    assert_eq!(out, "Terminating");

    // Releasing the finalizer lets the namespace go.
    let patch = serde_json::json!({"metadata": {"finalizers": null}});
    cms.patch("held", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for("the namespace to be gone", T, || async {
        ns_api
            .get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

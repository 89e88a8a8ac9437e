//! The ReplicaSet and Deployment controllers against a real API server (no kubelets: a
//! stand-in marks pods Running and Ready through the status subresource).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;

const T: Duration = Duration::from_secs(30);

async fn deployment_ready(d_api: &Api<Deployment>, name: &str, replicas: i32) -> Deployment {
    wait_for(
        &format!("deployment {name} to have {replicas} available"),
        T,
        || async {
            let d = d_api.get(name).await.ok()?;
            let st = d.status.clone()?;
            let gen_ok = st.observed_generation >= d.metadata.generation;
            (gen_ok
                && st.updated_replicas.unwrap_or(0) == replicas
                && st.replicas.unwrap_or(0) == replicas
                && st.available_replicas.unwrap_or(0) == replicas)
                .then_some(d)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_converges_scales_and_rolls_within_its_bounds() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("roll").await;
    let _kubelet = Kubelet::start(c, "roll", Duration::from_millis(100), None);
    let d_api: Api<Deployment> = Api::namespaced(c.clone(), "roll");
    d_api
        .create(&PostParams::default(), &deployment("web", 3, "nginx:1.25"))
        .await
        .unwrap();

    // A Deployment of 3 converges.
    let d = deployment_ready(&d_api, "web", 3).await;
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    let conds = d.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Progressing"
                && c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    );
    let pods = active_pods(c, "roll", "app=web").await;
    assert_eq!(pods.len(), 3);
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.clone(), "roll");
    let rses = rs_api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(rses.len(), 1);
    let hash = rses[0].metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    for p in &pods {
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()["pod-template-hash"],
            hash
        );
        assert!(
            p.metadata
                .name
                .as_ref()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
    }

    // Scaling to 10 and to 0 through the scale subresource.
    let scale = |n: i32| serde_json::json!({"spec": {"replicas": n}});
    d_api
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&scale(10)))
        .await
        .unwrap();
    deployment_ready(&d_api, "web", 10).await;
    assert_eq!(active_pods(c, "roll", "app=web").await.len(), 10);
    d_api
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&scale(0)))
        .await
        .unwrap();
    deployment_ready(&d_api, "web", 0).await;
    wait_for("all pods gone", T, || async {
        active_pods(c, "roll", "app=web")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    d_api
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&scale(3)))
        .await
        .unwrap();
    deployment_ready(&d_api, "web", 3).await;

    // A template change with maxSurge 1 / maxUnavailable 0: watch every pod event and check
    // that there are never more than 4 pods nor fewer than 3 ready ones.
    let seen = Arc::new(Mutex::new((0usize, usize::MAX, 0usize)));
    let monitor = {
        let seen = seen.clone();
        let api: Api<Pod> = Api::namespaced(c.clone(), "roll");
        tokio::spawn(async move {
            let mut pods = std::collections::BTreeMap::<String, Pod>::new();
            let mut stream = watcher(api, watcher::Config::default().labels("app=web")).boxed();
            let mut synced = false;
            while let Some(Ok(ev)) = stream.next().await {
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        pods.insert(p.metadata.name.clone().unwrap(), p);
                    }
                    watcher::Event::Delete(p) => {
                        pods.remove(p.metadata.name.as_deref().unwrap());
                    }
                    watcher::Event::InitDone => synced = true,
                    watcher::Event::Init => {}
                }
                if !synced {
                    continue;
                }
                let active: Vec<&Pod> = pods
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let ready = active.iter().filter(|p| is_ready(p)).count();
                let mut s = seen.lock().unwrap();
                s.0 = s.0.max(active.len());
                s.1 = s.1.min(ready);
                s.2 += 1;
            }
        })
    };
    wait_for("the pod monitor to sync", T, || async {
        (seen.lock().unwrap().2 > 0).then_some(())
    })
    .await;
    let patch = serde_json::json!({"spec": {
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}
    }});
    d_api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let d = wait_for("the rollout to finish", T, || async {
        let d = d_api.get("web").await.ok()?;
        let st = d.status.clone()?;
        let progressing = st
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Progressing")?;
        (st.observed_generation >= d.metadata.generation
            && st.updated_replicas == Some(3)
            && st.replicas == Some(3)
            && st.available_replicas == Some(3)
            && d.metadata
                .annotations
                .as_ref()?
                .get("deployment.kubernetes.io/revision")?
                == "2"
            && progressing.reason.as_deref() == Some("NewReplicaSetAvailable"))
        .then_some(d)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    monitor.abort();
    let (max_pods, min_ready, events) = *seen.lock().unwrap();
    assert!(events > 6, "the monitor saw the rollout ({events} events)");
    assert!(
        max_pods <= 4,
        "never more than replicas + maxSurge pods: saw {max_pods}"
    );
    assert!(
        min_ready >= 3,
        "never fewer than replicas - maxUnavailable ready: saw {min_ready}"
    );
    let pods = active_pods(c, "roll", "app=web").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert_eq!(
            p.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("nginx:1.26")
        );
    }
    // Two ReplicaSets: the old one kept at 0 for rollbacks.
    let mut rses = rs_api.list(&ListParams::default()).await.unwrap().items;
    rses.sort_by_key(|r| {
        r.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"].clone()
    });
    assert_eq!(rses.len(), 2);
    assert_eq!(rses[0].spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(rses[1].spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(d.status.unwrap().unavailable_replicas.unwrap_or(0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_set_replaces_deleted_pods_and_adopts_orphans() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("rs").await;
    let _kubelet = Kubelet::start(c, "rs", Duration::from_millis(50), None);
    // An orphan pod that matches the selector is there first.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "rs");
    let mut orphan = Pod::default();
    orphan.metadata.name = Some("orphan".into());
    orphan.metadata.labels = Some(labels(&[("app", "db")]));
    orphan.spec = deployment("db", 1, "redis").spec.unwrap().template.spec;
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.clone(), "rs");
    let d = deployment("db", 3, "redis");
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "db"},
        "spec": {"replicas": 3, "selector": d.spec.as_ref().unwrap().selector, "template": d.spec.as_ref().unwrap().template}
    }))
    .unwrap();
    let rs = rs_api.create(&PostParams::default(), &rs).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();
    // The controller may create pods before its cache has seen the orphan (as upstream's can);
    // it then adopts the orphan and deletes a surplus pod. Wait for that to settle.
    wait_for("3 ready replicas, the orphan adopted", T, || async {
        let rs = rs_api.get("db").await.ok()?;
        let st = rs.status?;
        let orphan = pods.get("orphan").await.ok()?;
        let adopted = orphan
            .metadata
            .owner_references
            .is_some_and(|o| !o.is_empty());
        let active = active_pods(c, "rs", "app=db").await.len();
        (st.ready_replicas == Some(3)
            && st.available_replicas == Some(3)
            && st.fully_labeled_replicas == Some(3)
            && adopted
            && active == 3)
            .then_some(())
    })
    .await;
    let all = active_pods(c, "rs", "app=db").await;
    assert_eq!(all.len(), 3, "the orphan counts: two created");
    let adopted = pods.get("orphan").await.unwrap();
    let owner = &adopted.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (uid.as_str(), Some(true))
    );

    // A deleted pod is replaced.
    let victim = all
        .iter()
        .find(|p| p.metadata.name.as_deref() != Some("orphan"))
        .unwrap();
    pods.delete(
        victim.metadata.name.as_deref().unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    wait_for("a replacement", T, || async {
        let now = active_pods(c, "rs", "app=db").await;
        (now.len() == 3 && now.iter().all(|p| p.metadata.name != victim.metadata.name))
            .then_some(())
    })
    .await;

    // Relabeling a pod releases it, and the ReplicaSet makes another.
    let patch = serde_json::json!({"metadata": {"labels": {"app": "db-debug"}}});
    pods.patch("orphan", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for("the relabeled pod released and replaced", T, || async {
        let released = pods.get("orphan").await.ok()?;
        let free = released
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|r| r.is_empty());
        (free && active_pods(c, "rs", "app=db").await.len() == 3).then_some(())
    })
    .await;

    // Events as kubectl describe shows them.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.clone(), "rs");
    wait_for("a SuccessfulCreate event of the ReplicaSet", T, || async {
        let evs = events.list(&ListParams::default()).await.ok()?.items;
        evs.iter()
            .any(|e| {
                e.reason.as_deref() == Some("SuccessfulCreate")
                    && e.involved_object.name.as_deref() == Some("db")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("Created pod: db-"))
                    && e.source.as_ref().and_then(|s| s.component.as_deref())
                        == Some("replicaset-controller")
            })
            .then_some(())
    })
    .await;
}

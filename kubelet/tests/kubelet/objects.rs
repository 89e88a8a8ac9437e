//! The kubelet's watched ConfigMaps and Secrets ([`WatchedObjects`]) against a real API
//! server, as a node's identity: the first read lists the object and later reads come from
//! its watch (no request per read, counted on the API server's `/metrics`), updates, deletes
//! and late creations are followed, an object no pod of the node uses is refused, and a watch
//! nobody reads stops.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rkube_kubelet::watched::WatchedObjects;
use rkube_testkit::apiserver::Identity;

use crate::harness::*;

/// Requests of `verb` on `resource` the API server has answered.
async fn requests(client: &kube::Client, verb: &str, resource: &str) -> u64 {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new()).unwrap())
        .await
        .unwrap();
    let prefix = format!("apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn value(cm: &ConfigMap) -> Option<String> {
    cm.data.as_ref()?.get("k").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_objects_follow_the_api_server() {
    let cluster = Cluster::start().await;
    let admin = cluster.client.clone();
    let pp = PostParams::default();
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    let cm = |name: &str, v: &str| -> ConfigMap {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": v}}))
            .unwrap()
    };
    cms.create(&pp, &cm("cfg", "one")).await.unwrap();
    cms.create(&pp, &cm("other", "x")).await.unwrap();
    Api::<Secret>::namespaced(admin.clone(), "default")
        .create(
            &pp,
            &serde_json::from_value(
                serde_json::json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    // A pod on node n1 uses cfg, later (not created yet) and the Secret s.
    let env = serde_json::json!([
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "k", "optional": true}}},
        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]);
    let p: Pod = pod(
        "n1",
        "user",
        serde_json::json!({"containers": [{"name": "app", "image": "busybox", "env": env}]}),
    );
    Api::<Pod>::namespaced(admin.clone(), "default")
        .create(&pp, &p)
        .await
        .unwrap();

    let node = cluster.api.client_as(&Identity::Node("n1".into())).await;
    let watched = WatchedObjects::<ConfigMap>::new(node.clone(), Duration::from_secs(1));
    let lists = requests(&admin, "list", "configmaps").await;
    let got = watched.get("default", "cfg").await.unwrap().unwrap();
    assert_eq!(value(&got).as_deref(), Some("one"));
    assert_eq!(
        requests(&admin, "list", "configmaps").await,
        lists + 1,
        "the first read lists the object"
    );

    // Further reads are answered by the watch: no gets, no lists.
    let (gets, lists) = (
        requests(&admin, "get", "configmaps").await,
        requests(&admin, "list", "configmaps").await,
    );
    for _ in 0..20 {
        let got = watched.get("default", "cfg").await.unwrap().unwrap();
        assert_eq!(value(&got).as_deref(), Some("one"));
    }
    assert_eq!(requests(&admin, "get", "configmaps").await, gets);
    assert_eq!(requests(&admin, "list", "configmaps").await, lists);
    assert_eq!(watched.watched(), 1);

    // An update reaches the cache.
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"k": "two"}})),
    )
    .await
    .unwrap();
    eventually("the update", async || {
        let got = watched.get("default", "cfg").await.unwrap()?;
        (value(&got).as_deref() == Some("two")).then_some(())
    })
    .await;

    // A missing object reads as absent, then appears once created.
    assert!(watched.get("default", "later").await.unwrap().is_none());
    cms.create(&pp, &cm("later", "late")).await.unwrap();
    eventually("the late ConfigMap", async || {
        watched.get("default", "later").await.unwrap()
    })
    .await;

    // A delete is seen as absence.
    cms.delete("cfg", &DeleteParams::default()).await.unwrap();
    eventually("the delete", async || {
        watched
            .get("default", "cfg")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // Secrets the same way.
    let secrets = WatchedObjects::<Secret>::new(node.clone(), Duration::from_secs(1));
    let s = secrets.get("default", "s").await.unwrap().unwrap();
    assert_eq!(s.data.as_ref().unwrap()["k"].0, b"v");

    // An object no pod of the node uses: refused by the Node authorizer.
    let err = watched
        .get("default", "other")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no relationship"), "{err}");

    // Nobody reads for longer than the idle time: the watches stop; a read starts one again.
    assert!(watched.watched() >= 2);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(watched.watched(), 0);
    assert_eq!(secrets.watched(), 0);
    assert!(watched.get("default", "later").await.unwrap().is_some());
    assert_eq!(watched.watched(), 1);
}

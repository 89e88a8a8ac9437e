//! API machinery semantics through kube-rs: the status subresource, generation, graceful pod
//! deletion, finalizers and propagation policies, dry runs of every write, deletecollection,
//! bindings and evictions, ClusterIP/NodePort allocation (unique under concurrent creates,
//! released on delete), watch selectors, bookmarks and timeouts, health and metrics.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Backend, TestServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use serde_json::json;

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}}
    }))
    .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}], "terminationGracePeriodSeconds": 30}
    }))
    .unwrap()
}

/// Binds pod `default/<pod>` to `node` through the binding subresource: the status code and
/// the body.
async fn bind(s: &TestServer, pod: &str, node: &str) -> (u16, serde_json::Value) {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let (code, _, body) = s
        .http(
            "POST",
            &format!("/api/v1/namespaces/default/pods/{pod}/binding"),
            &[("content-type", "application/json")],
            serde_json::to_vec(&binding).unwrap(),
        )
        .await;
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_subresource_and_generation() {
    let s = TestServer::start(Backend::Embedded).await;
    let deploys: Api<Deployment> = Api::namespaced(s.client().await, "default");
    let d = deploys
        .create(&PostParams::default(), &deployment("gen"))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    // A status sent with the object on create or update is ignored.
    let with_status = deploys
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.status.and_then(|s| s.replicas), None);
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "no spec change, no new generation"
    );
    // Writes to /status change only the status.
    let st = deploys
        .patch_status(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(st.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(st.metadata.generation, Some(1));
    // A spec change bumps the generation; the status is kept.
    let next = deploys
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(next.metadata.generation, Some(2));
    assert_eq!(next.status.and_then(|s| s.replicas), Some(3));
    // Metadata-only changes keep the generation.
    let labelled = deploys
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_pod_deletion_bindings_and_evictions() {
    let s = TestServer::start(Backend::Embedded).await;
    let client = s.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("bound"))
        .await
        .unwrap();
    let created_rv = created.metadata.resource_version.unwrap();
    // Bind it to a node, once.
    let (code, body) = bind(&s, "bound", "n1").await;
    assert_eq!(code, 201, "{body}");
    let p = pods.get("bound").await.unwrap();
    assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
    let scheduled = p.status.unwrap().conditions.unwrap();
    assert!(
        scheduled
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );
    // The node and the condition are one write: the first change a watch sees after the
    // create already carries both.
    let first = pods
        .watch(
            &WatchParams::default().fields("metadata.name=bound"),
            &created_rv,
        )
        .await
        .unwrap()
        .boxed()
        .try_next()
        .await
        .unwrap();
    let Some(WatchEvent::Modified(first)) = first else {
        panic!("expected the binding's change, got {first:?}");
    };
    assert_eq!(first.metadata.resource_version, p.metadata.resource_version);
    assert_eq!(first.spec.unwrap().node_name.as_deref(), Some("n1"));
    assert!(
        first
            .status
            .unwrap()
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "PodScheduled")
    );
    let (code, body) = bind(&s, "bound", "n1").await;
    assert_eq!(code, 409, "a pod is bound only once: {body}");

    // A bound pod is deleted gracefully: it stays, marked, until deleted with grace 0.
    pods.delete("bound", &DeleteParams::default())
        .await
        .unwrap();
    let p = pods.get("bound").await.unwrap();
    assert!(p.metadata.deletion_timestamp.is_some());
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
    // A shorter grace period may follow; the kubelet finishes with 0.
    pods.delete("bound", &DeleteParams::default().grace_period(5))
        .await
        .unwrap();
    assert_eq!(
        pods.get("bound")
            .await
            .unwrap()
            .metadata
            .deletion_grace_period_seconds,
        Some(5)
    );
    pods.delete("bound", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("bound").await.unwrap().is_none());

    // Eviction deletes (gracefully) through the policy/v1 Eviction subresource.
    pods.create(&PostParams::default(), &pod("evicted"))
        .await
        .unwrap();
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": {"name": "evicted", "namespace": "default"}});
    let (code, _, body) = s
        .http(
            "POST",
            "/api/v1/namespaces/default/pods/evicted/eviction",
            &[("content-type", "application/json")],
            serde_json::to_vec(&eviction).unwrap(),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert!(
        pods.get_opt("evicted").await.unwrap().is_none(),
        "unbound: deleted at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finalizers_and_propagation_policies() {
    let s = TestServer::start(Backend::Embedded).await;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let held = cms.get("held").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "a finalizer holds the object"
    );
    // New finalizers cannot be added while deleting, but removing the last one deletes it.
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
                {"op": "remove", "path": "/metadata/finalizers"}
            ]))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());

    // Propagation policies leave the finalizers the garbage collector reads.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("fg"))
        .await
        .unwrap();
    deploys
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    let fg = deploys.get("fg").await.unwrap();
    assert_eq!(
        fg.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    deploys
        .create(&PostParams::default(), &deployment("orphan"))
        .await
        .unwrap();
    deploys
        .delete("orphan", &DeleteParams::orphan())
        .await
        .unwrap();
    assert_eq!(
        deploys.get("orphan").await.unwrap().metadata.finalizers,
        Some(vec!["orphan".to_string()])
    );
    deploys
        .create(&PostParams::default(), &deployment("bg"))
        .await
        .unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    deploys.delete("bg", &dp).await.unwrap();
    assert!(deploys.get_opt("bg").await.unwrap().is_none());

    // Namespaces: Terminating until their spec.finalizers are cleared through /finalize.
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let doomed = nss.get("doomed").await.unwrap();
    assert_eq!(doomed.status.unwrap().phase.as_deref(), Some("Terminating"));
    let err = cms
        .clone()
        .pipe_namespace(&client, "doomed")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref st) if st.code == 403),
        "{err}"
    );
    let mut finalized = nss.get("doomed").await.unwrap();
    finalized.spec.as_mut().unwrap().finalizers = Some(vec![]);
    let (code, _, body) = s
        .http(
            "PUT",
            "/api/v1/namespaces/doomed/finalize",
            &[("content-type", "application/json")],
            serde_json::to_vec(&finalized).unwrap(),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(nss.get_opt("doomed").await.unwrap().is_none());
}

trait PipeNamespace {
    fn pipe_namespace(self, client: &kube::Client, ns: &str) -> Api<ConfigMap>;
}

impl PipeNamespace for Api<ConfigMap> {
    fn pipe_namespace(self, client: &kube::Client, ns: &str) -> Api<ConfigMap> {
        Api::namespaced(client.clone(), ns)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_runs_write_nothing() {
    let s = TestServer::start(Backend::Embedded).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "d"}, "data": {"a": "1"}})).unwrap();
    let out = cms.create(&dry, &cm).await.unwrap();
    assert_eq!(out.data.unwrap()["a"], "1");
    assert!(cms.get_opt("d").await.unwrap().is_none());
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let before = cms.get("d").await.unwrap();
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let patched = cms
        .patch("d", &pp, &Patch::Merge(json!({"data": {"a": "2"}})))
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["a"], "2");
    let mut replaced = before.clone();
    replaced.data = Some([("a".to_string(), "3".to_string())].into());
    cms.replace("d", &dry, &replaced).await.unwrap();
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    cms.delete("d", &dp).await.unwrap();
    let after = cms.get("d").await.unwrap();
    assert_eq!(after.data.unwrap()["a"], "1");
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    // deletecollection with a selector.
    for i in 0..3 {
        let c: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("l{i}"), "labels": {"batch": "x"}}}),
        )
        .unwrap();
        cms.create(&PostParams::default(), &c).await.unwrap();
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=x"),
    )
    .await
    .unwrap();
    let left = cms.list(&ListParams::default()).await.unwrap();
    let names: Vec<_> = left
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert!(
        names.contains(&"d".to_string()) && !names.iter().any(|n| n.starts_with('l')),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_allocations_are_unique_and_released() {
    let s = TestServer::start_with(Backend::Embedded, |c| {
        c.settings.service_cidr = "10.100.0.0/27".parse().unwrap();
        c.settings.node_ports = 30000..=30019;
    })
    .await;
    let svcs: Api<Service> = Api::namespaced(s.client().await, "default");
    let svc = |name: String, node_port: bool| -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"type": if node_port { "NodePort" } else { "ClusterIP" },
                     "selector": {"app": "x"}, "ports": [{"port": 80}]}
        }))
        .unwrap()
    };
    // 20 concurrent NodePort services: 20 distinct IPs and 20 distinct ports (the whole range).
    let mut tasks = Vec::new();
    for i in 0..20 {
        let svcs = svcs.clone();
        let body = svc(format!("s{i}"), true);
        tasks.push(tokio::spawn(async move {
            svcs.create(&PostParams::default(), &body).await.unwrap()
        }));
    }
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for t in tasks {
        let created = t.await.unwrap();
        let spec = created.spec.unwrap();
        assert!(ips.insert(spec.cluster_ip.unwrap()));
        assert!(ports.insert(spec.ports.unwrap()[0].node_port.unwrap()));
    }
    assert_eq!((ips.len(), ports.len()), (20, 20));
    // The port range is exhausted: a clear 422.
    let err = svcs
        .create(&PostParams::default(), &svc("extra".into(), true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref st) if st.code == 422),
        "{err}"
    );
    // Deleting releases both; the freed values can be requested again.
    let gone = svcs.get("s0").await.unwrap().spec.unwrap();
    svcs.delete("s0", &DeleteParams::default()).await.unwrap();
    let again: Service = serde_json::from_value(json!({
        "metadata": {"name": "again"},
        "spec": {"type": "NodePort", "clusterIP": gone.cluster_ip, "selector": {"app": "x"},
                 "ports": [{"port": 80, "nodePort": gone.ports.unwrap()[0].node_port}]}
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &again).await.unwrap();
    // A requested IP that is taken is refused.
    let taken: Service = serde_json::from_value(json!({
        "metadata": {"name": "taken"},
        "spec": {"clusterIP": ips.iter().nth(1).unwrap(), "selector": {"app": "x"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    let err = svcs
        .create(&PostParams::default(), &taken)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref st) if st.code == 422 && st.message.contains("already allocated")),
        "{err}"
    );
    // Changing NodePort to ClusterIP releases the node port.
    svcs.patch(
        "s1",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": null}]}}),
        ),
    )
    .await
    .unwrap();
    svcs.create(&PostParams::default(), &svc("reuse".into(), true))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_follow_selectors_and_send_bookmarks() {
    let s = TestServer::start(Backend::Embedded).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().labels("team=a").timeout(30);
    let mut w = cms.watch(&wp, &rv).await.unwrap().boxed();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "sel", "labels": {"team": "b"}}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    // Entering the selection is ADDED, leaving it DELETED.
    cms.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
    )
    .await
    .unwrap();
    cms.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    cms.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "c"}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(_) => seen.push("ADDED"),
            WatchEvent::Modified(_) => seen.push("MODIFIED"),
            WatchEvent::Deleted(_) => seen.push("DELETED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);

    // Bookmarks carry a fresh resourceVersion when asked for.
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().timeout(30).labels("none=here");
    let mut w = cms.watch(&wp, &rv).await.unwrap().boxed();
    cms.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"y": "2"}})),
    )
    .await
    .unwrap();
    let bookmark = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(WatchEvent::Bookmark(b)) = w.try_next().await.unwrap() {
                return b.metadata.resource_version;
            }
        }
    })
    .await
    .expect("no bookmark within 20 s");
    assert!(bookmark.parse::<i64>().unwrap() > rv.parse::<i64>().unwrap());

    // timeoutSeconds ends the stream.
    let wp = WatchParams::default().timeout(1);
    let mut w = cms.watch(&wp, &rv).await.unwrap().boxed();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while w.try_next().await.unwrap().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the watch did not end after timeoutSeconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_metrics_and_discovery() {
    let s = TestServer::start(Backend::Embedded).await;
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, _, _) = s.http("GET", path, &[], vec![]).await;
        assert_eq!(code, 200, "{path}");
    }
    // `/version/` is what the official Python client asks for.
    for path in ["/version", "/version/"] {
        let (code, _, v) = s.http("GET", path, &[], vec![]).await;
        assert_eq!(code, 200, "{path}");
        assert_eq!(
            (v["major"].as_str(), v["minor"].as_str()),
            (Some("1"), Some("33")),
            "{path}"
        );
    }
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    cms.list(&ListParams::default()).await.unwrap();
    let _ = cms.get_opt("missing").await.unwrap();
    let resp = reqwest_like_get(&s, "/metrics").await;
    assert!(
        resp.contains(
            "apiserver_request_total{verb=\"list\",resource=\"configmaps\",code=\"200\"}"
        ),
        "{resp}"
    );
    assert!(
        resp.contains("apiserver_request_total{verb=\"get\",resource=\"configmaps\",code=\"404\"}"),
        "{resp}"
    );
    assert!(resp.contains("apiserver_request_duration_seconds_bucket{verb=\"list\",resource=\"configmaps\",le=\"0.005\"}"), "{resp}");
    // The store's latency, and the watch cache's watchers and queues.
    assert!(
        resp.contains("etcd_request_duration_seconds_count{operation=\"get\",type=\"configmaps\"}"),
        "{resp}"
    );
    // The embedded store's commits: how many writes each carried.
    let commits = resp
        .lines()
        .find_map(|l| l.strip_prefix("rkube_embedded_store_commit_writes_count "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no commit count in:\n{resp}"));
    assert!(commits > 0, "the bootstrap objects were committed");
    let gauge = |text: &str, name: &str| -> Option<i64> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{{resource=\"configmaps\"}} ")))
            .and_then(|v| v.parse().ok())
    };
    let before = gauge(&resp, "apiserver_watch_cache_watchers").unwrap_or(0);
    let mut watch = cms
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let _ = tokio::time::timeout(Duration::from_millis(200), watch.try_next()).await;
    let resp = reqwest_like_get(&s, "/metrics").await;
    assert_eq!(
        gauge(&resp, "apiserver_watch_cache_watchers"),
        Some(before + 1),
        "{resp}"
    );
    assert!(
        gauge(&resp, "apiserver_watch_cache_queue_length").is_some(),
        "{resp}"
    );
    assert!(
        gauge(&resp, "apiserver_watch_cache_objects").is_some_and(|n| n >= 1),
        "{resp}"
    );
    drop(watch);
    let (code, headers, v) = s
        .http("GET", "/apis", &[("accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")], vec![])
        .await;
    assert_eq!(code, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .contains("as=APIGroupDiscoveryList")
    );
    assert_eq!(v["kind"], "APIGroupDiscoveryList");
    let (code, _, v) = s.http("GET", "/openapi/v3", &[], vec![]).await;
    assert_eq!(code, 200);
    let apps = v["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, doc) = s.http("GET", &apps, &[], vec![]).await;
    assert_eq!(code, 200);
    assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());
}

async fn reqwest_like_get(s: &TestServer, path: &str) -> String {
    let (_, _, body) = s
        .http_raw(&common::Identity::Admin, "GET", path, &[], vec![])
        .await;
    String::from_utf8_lossy(&body).into_owned()
}

/// Stopping the server ends open watches cleanly (the stream finishes) and the server returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_closes_watches() {
    let mut s = TestServer::start(Backend::Embedded).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let mut w = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let stopping = tokio::spawn(async move {
        s.stop().await;
        s
    });
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match w.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch stayed open after shutdown");
    let s = tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("server did not stop")
        .unwrap();
    let addr = s.addr().to_string();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens after shutdown"
    );
}

/// `pods/exec`, `pods/attach` and `pods/portforward` check the request before anything is
/// relayed to a kubelet: a Status for a pod with no node, an exec without a command, a
/// container the pod lacks, a request that is no upgrade, a finished pod; and discovery lists
/// them. (The streams themselves run in e2e `streams`, through a real kubelet and containerd.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_streams_are_checked_before_they_are_relayed() {
    let s = TestServer::start(Backend::Embedded).await;
    let pods: Api<Pod> = Api::namespaced(s.client().await, "default");
    pods.create(&PostParams::default(), &pod("pending"))
        .await
        .unwrap();
    let mut bound = pod("bound");
    bound.spec.as_mut().unwrap().node_name = Some("n1".into());
    pods.create(&PostParams::default(), &bound).await.unwrap();
    let upgrade = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")];
    let exec =
        |pod: &str, query: &str| format!("/api/v1/namespaces/default/pods/{pod}/exec?{query}");
    let cases = [
        (
            exec("missing", "command=ls"),
            &upgrade[..],
            404,
            "not found",
        ),
        (
            exec("pending", "command=ls"),
            &upgrade[..],
            400,
            "does not have a host assigned",
        ),
        (
            exec("bound", "container=c"),
            &upgrade[..],
            400,
            "at least one command",
        ),
        (
            exec("bound", "command=ls&container=x"),
            &upgrade[..],
            400,
            "container x is not valid",
        ),
        (
            exec("bound", "command=ls"),
            &[][..],
            400,
            "Upgrade request required",
        ),
        (
            "/api/v1/namespaces/default/pods/bound/attach?container=c".into(),
            &[][..],
            400,
            "Upgrade request required",
        ),
    ];
    for (path, headers, code, message) in cases {
        let (got, _, v) = s.http("POST", &path, headers, vec![]).await;
        assert_eq!(got, code, "{path}: {v}");
        assert_eq!(v["kind"], "Status", "{path}: {v}");
        let text = v["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{path}: {v}");
    }
    pods.patch_status(
        "bound",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    let (code, _, v) = s
        .http(
            "GET",
            "/api/v1/namespaces/default/pods/bound/portforward?port=80",
            &upgrade,
            vec![],
        )
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("completed pod; current phase is Succeeded"),
        "{v}"
    );

    let (_, _, v) = s.http("GET", "/api/v1", &[], vec![]).await;
    for sub in ["exec", "attach", "portforward"] {
        let r = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == format!("pods/{sub}"))
            .unwrap_or_else(|| panic!("pods/{sub} in discovery: {v}"));
        assert_eq!(r["verbs"], json!(["create", "get"]), "{r}");
    }
}

/// A watch of one node's pods (`spec.nodeName=<node>`, what every kubelet runs; served by the
/// watch cache's index of pods by node) sees a pod created on the node, a pending pod bound
/// to it (ADDED: it enters the selection), their changes and a deletion; pods of another node
/// and pods not yet scheduled do not reach it. kube-rs and kubectl alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_of_one_nodes_pods() {
    let s = TestServer::start(Backend::Embedded).await;
    let pods: Api<Pod> = Api::namespaced(s.client().await, "default");
    let on = |name: &str, node: &str| {
        let mut p = pod(name);
        p.spec.as_mut().unwrap().node_name = Some(node.into());
        p
    };
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut w = pods
        .watch(&WatchParams::default().fields("spec.nodeName=n1"), &rv)
        .await
        .unwrap()
        .boxed();
    let kubectl = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args([
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=n1",
            "-w",
            "-o",
            "name",
            "--request-timeout=30s",
        ])
        .env("HOME", s.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let pp = PostParams::default();
    pods.create(&pp, &pod("pending")).await.unwrap();
    pods.create(&pp, &on("elsewhere", "n2")).await.unwrap();
    pods.create(&pp, &on("here", "n1")).await.unwrap();
    let (code, body) = bind(&s, "pending", "n1").await;
    assert_eq!(code, 201, "{body}");
    let label = Patch::Merge(json!({"metadata": {"labels": {"seen": "yes"}}}));
    for name in ["elsewhere", "here"] {
        pods.patch(name, &PatchParams::default(), &label)
            .await
            .unwrap();
    }
    pods.delete("here", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();

    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = w.try_next().await.unwrap().expect("the watch ended");
            let (kind, p) = match ev {
                WatchEvent::Added(p) => ("ADDED", p),
                WatchEvent::Modified(p) => ("MODIFIED", p),
                WatchEvent::Deleted(p) => ("DELETED", p),
                other => panic!("{other:?}"),
            };
            let name = p.metadata.name.unwrap();
            let done = kind == "DELETED" && name == "here";
            seen.push(format!("{kind} {name}"));
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no deletion of `here`; saw {seen:?}"));
    assert_eq!(
        seen.first().map(String::as_str),
        Some("ADDED here"),
        "{seen:?}"
    );
    assert!(seen.contains(&"ADDED pending".to_string()), "{seen:?}");
    assert!(seen.contains(&"MODIFIED here".to_string()), "{seen:?}");
    assert!(
        seen.iter()
            .all(|e| e.ends_with(" here") || e == "ADDED pending"),
        "only n1's pods: {seen:?}"
    );

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut kubectl = kubectl;
    let _ = kubectl.kill();
    let out = kubectl.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("pod/here") && text.contains("pod/pending"),
        "{text}"
    );
    assert!(!text.contains("pod/elsewhere"), "{text}");
}

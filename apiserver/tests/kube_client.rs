//! kube-rs against the API server: typed `Api` create/get/list/watch/patch (Apply, Merge, Json,
//! Strategic)/delete, pagination, `kube::runtime::watcher` recovering from a 410 Gone by
//! relisting, and metadata-only gets, lists and watches.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Backend, TestServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

async fn api_roundtrip(backend: Backend) {
    let s = TestServer::start(backend).await;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // Every namespace has the cluster CA, published by the API server (for in-cluster clients).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let root_ca = loop {
        if let Some(c) = cms.get_opt("kube-root-ca.crt").await.unwrap() {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "no kube-root-ca.crt");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(root_ca.data.unwrap()["ca.crt"], s.pki().ca_pem());

    // create / get / list
    let created = cms
        .create(&PostParams::default(), &cm("a", &[("k", "v")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.resource_version.is_some());
    let got = cms.get("a").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "v");
    let err = cms
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("{other}"),
    }
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("page-{i}"), &[]))
            .await
            .unwrap();
    }
    let all = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 7);

    // Pagination: pages of 2 joined by continue tokens, each saying how many objects follow.
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(2);
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        let follow = 7 - names.len() as i64;
        assert_eq!(
            page.metadata.remaining_item_count,
            (follow > 0).then_some(follow),
            "page {pages}"
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    names.sort();
    assert_eq!(
        names,
        [
            "a",
            "kube-root-ca.crt",
            "page-0",
            "page-1",
            "page-2",
            "page-3",
            "page-4"
        ]
    );

    // Label selectors.
    cms.patch(
        "page-0",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata":{"labels":{"sel":"yes"}}})),
    )
    .await
    .unwrap();
    let selected = cms
        .list(&ListParams::default().labels("sel=yes"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
    let not = cms
        .list(&ListParams::default().labels("sel!=yes"))
        .await
        .unwrap();
    assert_eq!(not.items.len(), 6);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=a"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    // Patches of every type.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"m": "1"}})),
    )
    .await
    .unwrap();
    let json_patch: json_patch_v4::Patch = serde_json::from_value(serde_json::json!([
        {"op": "add", "path": "/data/j", "value": "2"}
    ]))
    .unwrap();
    cms.patch("a", &PatchParams::default(), &Patch::<()>::Json(json_patch))
        .await
        .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Strategic(serde_json::json!({"data": {"s": "3"}})),
    )
    .await
    .unwrap();
    let applied = cms
        .patch(
            "a",
            &PatchParams::apply("kube-rs-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a"},
                "data": {"applied": "4"}
            })),
        )
        .await
        .unwrap();
    let data = applied.data.unwrap();
    for (k, v) in [
        ("k", "v"),
        ("m", "1"),
        ("j", "2"),
        ("s", "3"),
        ("applied", "4"),
    ] {
        assert_eq!(data.get(k).map(String::as_str), Some(v), "{k} in {data:?}");
    }
    // Apply creates when absent.
    let fresh = cms
        .patch(
            "applied-new",
            &PatchParams::apply("kube-rs-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied-new"}, "data": {"x": "y"}
            })),
        )
        .await
        .unwrap();
    assert_eq!(fresh.data.unwrap()["x"], "y");

    // Typed workloads with defaults filled by the server.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "busybox"}]}}}
    }))
    .unwrap();
    let d = deploys.create(&PostParams::default(), &d).await.unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.template.spec.unwrap().containers[0]
            .image_pull_policy
            .as_deref(),
        Some("Always")
    );
    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(
        deploys.get("web").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );

    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    let svc = svcs.create(&PostParams::default(), &svc).await.unwrap();
    let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert!((30000..=32767).contains(&port.node_port.unwrap()));

    // delete: gone at once, a ConfigMap is answered with a success Status naming it (most
    // kinds), a pod with the pod (Kubernetes' ReturnDeletedObject).
    let uid = cms.get("a").await.unwrap().metadata.uid;
    let status = cms
        .delete("a", &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .expect("a Status for a deleted ConfigMap");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    let details = status.details.expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.kind.as_str(),
            Some(details.uid)
        ),
        ("a", "configmaps", uid)
    );
    assert!(matches!(cms.get("a").await, Err(kube::Error::Api(s)) if s.code == 404));

    // watch: events after a resourceVersion, in order.
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("w", &[]))
        .await
        .unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"a": "b"}})),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Added(c)) => kinds.push(("ADDED", c.metadata.name.unwrap())),
            Some(WatchEvent::Modified(c)) => kinds.push(("MODIFIED", c.metadata.name.unwrap())),
            Some(WatchEvent::Deleted(c)) => kinds.push(("DELETED", c.metadata.name.unwrap())),
            Some(WatchEvent::Bookmark(_)) => {}
            Some(WatchEvent::Error(e)) => panic!("watch error {e:?}"),
            None => panic!("watch ended"),
        }
    }
    assert_eq!(
        kinds,
        vec![
            ("ADDED", "w".to_string()),
            ("MODIFIED", "w".to_string()),
            ("DELETED", "w".to_string())
        ]
    );

    // Pods: graceful deletion only once bound to a node.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));
    let spec = pod.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    assert_eq!(
        spec.tolerations.unwrap().len(),
        2,
        "DefaultTolerationSeconds"
    );
    let deleted = pods
        .delete("p", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("a deleted pod is answered with the pod");
    assert_eq!(deleted.metadata.name.as_deref(), Some("p"));
    assert!(
        pods.get_opt("p").await.unwrap().is_none(),
        "an unbound pod goes at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kube_rs_api_on_embedded_store() {
    Box::pin(api_roundtrip(Backend::Embedded)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kube_rs_api_on_etcd() {
    Box::pin(api_roundtrip(Backend::Etcd)).await;
}

/// The watcher gets 410 Gone after the history it would resume from was compacted while the
/// server was down, and recovers by relisting: it sees what changed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watcher_relists_after_gone() {
    let mut s = TestServer::start(Backend::Embedded).await;
    let addr: std::net::SocketAddr = s.addr().parse().unwrap();
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("before", &[]))
        .await
        .unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // As real controllers do: back off between retries while the server is away.
    let stream = watcher(cms.clone(), watcher::Config::default()).default_backoff();
    tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            let _ = tx.send(ev.map_err(|e| e.to_string()));
        }
    });
    // The initial list.
    let mut seen: BTreeMap<String, bool> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains_key("before") {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let Ok(watcher::Event::InitApply(c) | watcher::Event::Apply(c)) = ev {
            seen.insert(c.metadata.name.unwrap(), true);
        }
    }

    // Stop the server; change and compact the store behind the watcher's back.
    s.stop().await;
    {
        use rkube_apiserver::storage::Storage;
        let store = rkube_apiserver::storage::embedded::EmbeddedStorage::open(
            rkube_apiserver::storage::embedded::EmbeddedConfig::new(s.dir.path().join("rkube.db")),
        )
        .unwrap();
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "during", "namespace": "default", "uid": "u-during",
                         "creationTimestamp": "2024-01-01T00:00:00Z"}});
        store
            .create(
                "/registry/configmaps/default/during",
                serde_json::to_vec(&body).unwrap().into(),
            )
            .await
            .unwrap();
        // A second write, so the watcher's position is strictly older than what stays.
        let mut more = body.clone();
        more["metadata"]["name"] = "during-2".into();
        more["metadata"]["uid"] = "u-during-2".into();
        store
            .create(
                "/registry/configmaps/default/during-2",
                serde_json::to_vec(&more).unwrap().into(),
            )
            .await
            .unwrap();
        let rev = store.current_revision().await.unwrap();
        store.compact(rev).await.unwrap();
    }
    // Start again on the same address and data.
    let dir = s.dir.path().to_path_buf();
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let (_tx2, rx2) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        rkube_apiserver::server::run(rkube_apiserver::server::Config::new(dir), listener, async {
            let _ = rx2.await;
        })
        .await
        .unwrap();
    });

    // The watcher's resume is Gone; it relists and sees the object created meanwhile.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut restarted = false;
    while !seen.contains_key("during") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher never relisted"
        );
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the watcher never relisted")
            .unwrap();
        match ev {
            Ok(watcher::Event::Init) => restarted = true,
            Ok(watcher::Event::InitApply(c) | watcher::Event::Apply(c)) => {
                seen.insert(c.metadata.name.unwrap(), true);
            }
            _ => {}
        }
    }
    assert!(restarted, "the object arrived through a relist");
}

/// events.k8s.io/v1 (what kube-rs' recorder writes) and core/v1 events are one store: an event
/// recorded through one API is read through the other and shows in `kubectl describe`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_shared_between_the_two_apis() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let s = TestServer::start(Backend::Embedded).await;
    let client = s.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "evented"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "rkube-test".into(),
            instance: Some("t1".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("recorded by kube-rs".into()),
        action: "Test".into(),
        secondary: None,
    };
    let reference = pod.object_ref(&());
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();

    let new_api: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let new_events = new_api.list(&ListParams::default()).await.unwrap();
    assert_eq!(new_events.items.len(), 1);
    assert_eq!(
        new_events.items[0].series.as_ref().map(|s| s.count),
        Some(2)
    );

    let core_api: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let core = core_api
        .list(&ListParams::default().fields("involvedObject.name=evented"))
        .await
        .unwrap();
    assert_eq!(core.items.len(), 1);
    let e = &core.items[0];
    assert_eq!(e.reason.as_deref(), Some("Tested"));
    assert_eq!(e.message.as_deref(), Some("recorded by kube-rs"));
    assert_eq!(e.reporting_component.as_deref(), Some("rkube-test"));
    assert_eq!(e.involved_object.uid, pod.metadata.uid);

    let out = tokio::task::spawn_blocking(move || {
        let out = s.kubectl_ok(&["describe", "pod", "evented"]);
        let events = s.kubectl_ok(&["get", "events"]);
        (out, events)
    })
    .await
    .unwrap();
    assert!(
        out.0.contains("Events:")
            && out.0.contains("Tested")
            && out.0.contains("recorded by kube-rs"),
        "{}",
        out.0
    );
    assert!(
        out.1.contains("pod/evented") && out.1.contains("Tested"),
        "{}",
        out.1
    );
}

/// Metadata-only requests (`as=PartialObjectMetadata[List]`), as kube-rs' `get_metadata`,
/// `list_metadata`, `watch_metadata` and `Api<PartialObjectMeta<K>>` (and client-go's metadata
/// informers) make them: the objects' metadata and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_only_get_list_and_watch() {
    let s = TestServer::start(Backend::Embedded).await;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for name in ["m1", "m2", "m3"] {
        let mut c = cm(name, &[("big", "x")]);
        c.metadata.labels = Some(BTreeMap::from([("set".to_string(), "m".to_string())]));
        cms.create(&PostParams::default(), &c).await.unwrap();
    }
    let one = cms.get_metadata("m1").await.unwrap();
    assert_eq!(one.metadata.name.as_deref(), Some("m1"));
    assert_eq!(one.metadata.labels.unwrap()["set"], "m");
    assert!(one.metadata.resource_version.is_some() && one.metadata.uid.is_some());
    assert_eq!(
        one.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );

    // Lists page and select as usual.
    let page = cms
        .list_metadata(&ListParams::default().labels("set=m").limit(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    // With a selector the count of what follows is unknown, so not given.
    assert_eq!(page.metadata.remaining_item_count, None);
    let rest = cms
        .list_metadata(
            &ListParams::default()
                .labels("set=m")
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    let rv = page.metadata.resource_version.clone().unwrap();

    // The wire form holds no data.
    let (code, _, body) = s
        .http(
            "GET",
            "/api/v1/namespaces/default/configmaps?labelSelector=set%3Dm",
            &[(
                "accept",
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            )],
            Vec::new(),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "PartialObjectMetadataList");
    assert_eq!(body["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    assert!(body["items"][0].get("data").is_none());
    assert_eq!(body["items"][0]["kind"], "PartialObjectMetadata");

    // Watches carry metadata only, and the watcher of kube::runtime runs on them.
    let mut events = cms
        .watch_metadata(&WatchParams::default().labels("set=m"), &rv)
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "m2",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"seen": "yes"}}})),
    )
    .await
    .unwrap();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Modified(m)) => {
            assert_eq!(m.metadata.name.as_deref(), Some("m2"));
            assert_eq!(m.metadata.annotations.unwrap()["seen"], "yes");
        }
        other => panic!("expected m2's change, got {other:?}"),
    }
    // kube 5: an `Api` of `PartialObjectMeta<K>` makes metadata-only requests by itself.
    let metas: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(client.clone(), "default");
    assert_eq!(
        metas.get("m3").await.unwrap().metadata.name.as_deref(),
        Some("m3")
    );
    let names: Vec<String> = watcher(metas, watcher::Config::default().labels("set=m"))
        .applied_objects()
        .take(3)
        .map_ok(|m| m.metadata.name.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["m1", "m2", "m3"]);
}

/// Events expire `--event-ttl` after their last write, on both backends: one recorded by
/// kube-rs (events.k8s.io/v1) and one created by kubectl (v1) are deleted — a kube-rs watch of
/// events (served by the store: events are not in the watch cache) sees them go — while an
/// event written again keeps living; other objects are untouched.
async fn events_expire(backend: Backend) {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let ttl = Duration::from_secs(3);
    let s = TestServer::start_with(backend, |c| c.event_ttl = ttl).await;
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = cms
        .create(&PostParams::default(), &cm("evented", &[("a", "b")]))
        .await
        .unwrap();
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let mut watch = watcher(events.clone(), watcher::Config::default()).boxed();

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "rkube-test".into(),
            instance: None,
        },
    );
    let note = |n: &str| Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some(n.into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder
        .publish(&note("recorded by kube-rs"), &cm.object_ref(&()))
        .await
        .unwrap();
    let yaml = r#"apiVersion: v1
kind: Event
metadata:
  name: from-kubectl
  namespace: default
involvedObject:
  kind: ConfigMap
  name: evented
  namespace: default
reason: Created
message: created by kubectl
type: Normal
"#;
    let s = tokio::task::spawn_blocking(move || {
        let out = s.kubectl_with(&["create", "-f", "-"], Some(yaml), &[]);
        assert!(out.status.success(), "{out:?}");
        s
    })
    .await
    .unwrap();
    // Both arrive through the watch (served by the store, not the watch cache).
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), watch.try_next())
            .await
            .expect("the events watch answers")
            .unwrap()
            .unwrap()
    };
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let watcher::Event::Apply(e) | watcher::Event::InitApply(e) = next().await {
            seen.push(e.message.unwrap_or_default());
        }
    }
    seen.sort();
    assert_eq!(seen, ["created by kubectl", "recorded by kube-rs"]);

    // Written again every second, the kube-rs event outlives the TTL; the other goes.
    let start = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        recorder
            .publish(&note("recorded by kube-rs"), &cm.object_ref(&()))
            .await
            .unwrap();
        let left = events.list(&ListParams::default()).await.unwrap().items;
        let names: Vec<String> = left
            .iter()
            .filter_map(|e| e.metadata.name.clone())
            .collect();
        if !names.iter().any(|n| n == "from-kubectl") {
            assert_eq!(left.len(), 1, "{names:?}");
            assert!(
                left[0]
                    .series
                    .as_ref()
                    .is_some_and(|x| x.count.unwrap_or(0) >= 2)
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the kubectl event never expired: {names:?}"
        );
    }
    assert!(
        start.elapsed() >= ttl - Duration::from_secs(1),
        "expired before its TTL"
    );
    // The watch saw it deleted.
    loop {
        if let watcher::Event::Delete(e) = next().await
            && e.metadata.name.as_deref() == Some("from-kubectl")
        {
            break;
        }
    }

    // Left alone, it expires too; kubectl then finds no events, and the ConfigMap stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the event never expired"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(cms.get_opt("evented").await.unwrap().is_some());
    let out = tokio::task::spawn_blocking(move || {
        s.kubectl_ok(&["get", "events", "-n", "default", "-o", "name"])
    })
    .await
    .unwrap();
    assert_eq!(out.trim(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_expire_embedded() {
    Box::pin(events_expire(Backend::Embedded)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_expire_etcd() {
    Box::pin(events_expire(Backend::Etcd)).await;
}

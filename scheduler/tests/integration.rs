//! The scheduler against a real API server (nodes are plain Node objects, no kubelets):
//! bin-packing with MostAllocated, a pod that fits nowhere (event, condition) until a node is
//! added, preemption, bound pods (cached without their objects) that attract, repel and hold
//! host ports, and the health/metrics endpoint.

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use rkube_scheduler::SchedulerConfiguration;
use rkube_scheduler::testing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_nodes_reports_unschedulable_and_schedules_when_a_node_is_added() {
    let (server, client) = server().await;
    // Two Ready nodes and one whose kubelet stopped reporting (Ready=Unknown).
    create_node(&client, testing::node("node-a", "4", "8Gi")).await;
    create_node(&client, testing::node("node-b", "4", "8Gi")).await;
    create_node(
        &client,
        testing::node_with_ready("node-c", "4", "8Gi", Some("Unknown")),
    )
    .await;
    let sched = start_scheduler(&server, SchedulerConfiguration::default(), "s1", true).await;

    // Eight pods of 1 cpu, one at a time: MostAllocated fills one node before the next.
    let mut placed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order = Vec::new();
    for i in 0..8 {
        let name = format!("small-{i}");
        create_pod(&client, pod(&name, "1", "1Gi", None)).await;
        let node = bound_node(&client, &name, 30).await;
        placed.entry(node.clone()).or_default().push(name);
        order.push(node);
    }
    assert_eq!(placed.len(), 2, "two nodes used: {placed:?}");
    assert!(order[..4].iter().all(|n| *n == order[0]), "{order:?}");
    assert!(order[4..].iter().all(|n| *n == order[4]), "{order:?}");
    assert_ne!(order[0], order[4]);
    assert!(
        !placed.contains_key("node-c"),
        "the unreachable node is skipped"
    );

    // The binding added the PodScheduled condition and a Scheduled event was recorded.
    let events = eventually(30, "a Scheduled event", || {
        let client = client.clone();
        async move {
            let evs = pod_events(&client, "small-0").await;
            evs.into_iter()
                .find(|e| e.reason.as_deref() == Some("Scheduled"))
        }
    })
    .await;
    assert_eq!(
        events.message.as_deref(),
        Some(format!("Successfully assigned default/small-0 to {}", order[0]).as_str())
    );

    // A pod of 2 cpu fits nowhere: both Ready nodes are full, node-c is unreachable.
    create_pod(&client, pod("big", "2", "1Gi", None)).await;
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint \
                {node.kubernetes.io/unreachable: }, 2 Insufficient cpu.";
    let failed = eventually(30, "a FailedScheduling event", || {
        let client = client.clone();
        async move {
            pod_events(&client, "big")
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
        }
    })
    .await;
    let message = failed.message.clone().unwrap_or_default();
    assert!(message.starts_with(want), "{message}");
    assert!(
        message.contains("preemption: 0/3 nodes are available:"),
        "{message}"
    );
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cond = eventually(30, "PodScheduled=False", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("big").await.ok()?;
            p.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        }
    })
    .await;
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert!(cond.message.unwrap_or_default().starts_with(want));
    // kubectl shows it as the user would see it.
    let described = server.kubectl_ok(&["describe", "pod", "big"]);
    assert!(described.contains("FailedScheduling"), "{described}");
    assert!(described.contains("Insufficient cpu"), "{described}");
    let still = pods.get("big").await.unwrap();
    assert!(still.spec.unwrap().node_name.is_none(), "stays Pending");

    // A node is added: the pod is re-queued by the NodeAdd event and placed there at once
    // (well before the 60 s periodic retry).
    let start = std::time::Instant::now();
    create_node(&client, testing::node("node-d", "4", "8Gi")).await;
    assert_eq!(bound_node(&client, "big", 30).await, "node-d");
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());

    // Health and metrics.
    let (status, body) = http_get(sched.metrics_addr, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "ok");
    let (status, _) = http_get(sched.metrics_addr, "/readyz").await;
    assert!(status.contains("200"), "{status}");
    // The bind task counts a pod after the API answered the binding, which may be a moment
    // after the pod shows up bound.
    let addr = sched.metrics_addr;
    let metrics = eventually(30, "9 scheduled pods in /metrics", || async move {
        let (_, metrics) = http_get(addr, "/metrics").await;
        let done = metrics.contains(
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"} 9",
        ) && metrics.contains("scheduler_pod_scheduling_sli_duration_seconds_count 9");
        done.then_some(metrics)
    })
    .await;
    assert!(
        metrics.contains("scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"unschedulable\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("scheduler_pending_pods{queue=\"unschedulable\"} 0"));
    assert!(metrics.contains("scheduler_cache_size{type=\"nodes\"} 4"));
    let totals = sched.handle.metrics.totals();
    assert_eq!(totals.scheduled, 9);
    sched.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_other_schedulers_and_bound_pods_are_left_alone() {
    let (server, client) = server().await;
    create_node(&client, testing::node("n1", "4", "8Gi")).await;
    let sched = start_scheduler(&server, SchedulerConfiguration::default(), "s1", true).await;
    let mut other = pod("other", "1", "1Gi", None);
    other.spec.as_mut().unwrap().scheduler_name = Some("someone-else".into());
    create_pod(&client, other).await;
    let mut pinned = pod("pinned", "1", "1Gi", None);
    pinned.spec.as_mut().unwrap().node_name = Some("n1".into());
    create_pod(&client, pinned).await;
    create_pod(&client, pod("mine", "1", "1Gi", None)).await;
    assert_eq!(bound_node(&client, "mine", 30).await, "n1");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let other = pods.get("other").await.unwrap();
    assert!(other.spec.unwrap().node_name.is_none());
    assert!(pod_events(&client, "other").await.is_empty());
    // The pinned pod counts on n1: 1 (pinned) + 1 (mine) of 4 cpu; 3 more of 1 cpu do not
    // all fit.
    for i in 0..3 {
        create_pod(&client, pod(&format!("fill-{i}"), "1", "1Gi", None)).await;
    }
    for i in 0..2 {
        bound_node(&client, &format!("fill-{i}"), 30).await;
    }
    let last = eventually(30, "fill-2 to fail", || {
        let client = client.clone();
        async move {
            pod_events(&client, "fill-2")
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
        }
    })
    .await;
    assert!(
        last.message
            .unwrap_or_default()
            .starts_with("0/1 nodes are available: 1 Insufficient cpu."),
    );
    sched.stop().await.unwrap();
}

/// Bound pods are cached without their objects (only what scheduling reads of them, parsed):
/// pods bound before the scheduler started still attract, repel and hold their host ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_pods_keep_their_labels_terms_and_host_ports() {
    let (server, client) = server().await;
    create_node(&client, testing::node("n1", "8", "16Gi")).await;
    create_node(&client, testing::node("n2", "8", "16Gi")).await;
    // Host ports need the privileged Pod Security level.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let label = serde_json::json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}});
    namespaces
        .patch(
            "default",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&label),
        )
        .await
        .unwrap();
    let json = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
    // On n1: a database with a host port, and a pod that keeps pods labeled `noisy` away.
    create_pod(
        &client,
        json(serde_json::json!({
            "metadata": {"name": "db", "labels": {"app": "db"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                "ports": [{"containerPort": 5432, "hostPort": 5432}]}]}
        })),
    )
    .await;
    create_pod(
        &client,
        json(serde_json::json!({
            "metadata": {"name": "quiet"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"noisy": "yes"}},
                    "topologyKey": "kubernetes.io/hostname"}]}}}
        })),
    )
    .await;
    let sched = start_scheduler(&server, SchedulerConfiguration::default(), "s1", true).await;
    let term = |kind: &str, labels: serde_json::Value| {
        serde_json::json!({kind: {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}})
    };
    let cases = [
        // Next to the database (its labels), away from it, off its host port, away from the
        // pod that repels noisy pods (its term).
        (
            "near",
            term("podAffinity", serde_json::json!({"app": "db"})),
            None,
            "n1",
        ),
        (
            "far",
            term("podAntiAffinity", serde_json::json!({"app": "db"})),
            None,
            "n2",
        ),
        ("port", serde_json::json!({}), Some(5432), "n2"),
        ("noisy", serde_json::json!({}), None, "n2"),
    ];
    for (name, affinity, host_port, want) in cases {
        let mut pod = json(serde_json::json!({
            "metadata": {"name": name, "labels": {"noisy": if name == "noisy" { "yes" } else { "no" }}},
            "spec": {"affinity": affinity, "containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": "100m"}}}]}
        }));
        if let Some(port) = host_port {
            pod.spec.as_mut().unwrap().containers[0].ports =
                Some(vec![k8s_openapi::api::core::v1::ContainerPort {
                    container_port: port,
                    host_port: Some(port),
                    ..Default::default()
                }]);
        }
        create_pod(&client, pod).await;
        assert_eq!(bound_node(&client, name, 30).await, want, "{name}");
    }
    sched.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_pod_preempts_a_lower_one() {
    let (server, client) = server().await;
    create_node(&client, testing::node("n1", "2", "4Gi")).await;
    let sched = start_scheduler(&server, SchedulerConfiguration::default(), "s1", true).await;
    for v in [1, 5, 100] {
        create_priority_class(&client, v, false).await;
    }
    create_priority_class(&client, 1000, true).await;
    create_pod(&client, pod("low", "1500m", "1Gi", Some(1))).await;
    create_pod(&client, pod("keep", "500m", "1Gi", Some(5))).await;
    bound_node(&client, "low", 30).await;
    bound_node(&client, "keep", 30).await;
    create_pod(&client, pod("high", "1500m", "1Gi", Some(100))).await;
    assert_eq!(bound_node(&client, "high", 30).await, "n1");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert!(
        pods.get_opt("low").await.unwrap().is_none(),
        "the victim is gone"
    );
    assert!(
        pods.get_opt("keep").await.unwrap().is_some(),
        "only the minimal victims are evicted"
    );
    let preempted = eventually(30, "a Preempted event", || {
        let client = client.clone();
        async move {
            pod_events(&client, "low")
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("Preempted"))
        }
    })
    .await;
    assert_eq!(
        preempted.message.as_deref(),
        Some("Preempted by default/high on node n1")
    );
    let totals = sched.handle.metrics.totals();
    assert_eq!((totals.preemptions, totals.victims), (1, 1));
    // A pod that may not preempt stays pending.
    // Its class says `preemptionPolicy: Never`; admission copies that into the pod.
    let polite = create_pod(&client, pod("polite", "1", "1Gi", Some(1000))).await;
    assert_eq!(
        polite.spec.as_ref().unwrap().preemption_policy.as_deref(),
        Some("Never")
    );
    let failed = eventually(30, "polite to fail", || {
        let client = client.clone();
        async move {
            pod_events(&client, "polite")
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
        }
    })
    .await;
    assert!(
        failed
            .message
            .unwrap_or_default()
            .contains("preemptionPolicy=Never"),
    );
    assert!(pods.get_opt("keep").await.unwrap().is_some());
    sched.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_fold_into_one_event_series() {
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::api::events::v1::Event as EventV1;
    use kube::api::{ListParams, Patch, PatchParams};

    let (server, client) = server().await;
    create_node(&client, testing::node("n1", "4", "8Gi")).await;
    let sched = start_scheduler(&server, SchedulerConfiguration::default(), "s1", true).await;
    create_pod(&client, pod("huge", "8", "1Gi", None)).await;
    let events: Api<EventV1> = Api::namespaced(client.clone(), "default");
    let failures = || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| {
                    e.reason.as_deref() == Some("FailedScheduling")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("huge")
                })
                .collect::<Vec<_>>()
        }
    };
    eventually(30, "a first FailedScheduling event", || async {
        (!failures().await.is_empty()).then_some(())
    })
    .await;
    // Each allocatable change that still leaves the node too small re-queues the pod (a
    // NodeAllocatable event helps pods NodeResourcesFit rejected); every new attempt fails
    // with the same message, which only bumps the series of the first event.
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut milli = 4000;
    let series = loop {
        milli += 10;
        let patch = serde_json::json!({"status": {"allocatable": {"cpu": format!("{milli}m")}}});
        nodes
            .patch_status("n1", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let found = failures().await;
        assert_eq!(found.len(), 1, "one event object: {found:?}");
        if let Some(s) = found[0].series.as_ref().filter(|s| s.count >= 2) {
            break s.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failure was retried: {found:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert!(series.count >= 2);
    assert!(sched.handle.metrics.totals().unschedulable >= 2);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = pods.get("huge").await.unwrap();
    assert!(p.spec.unwrap().node_name.is_none());
    sched.stop().await.unwrap();
}

/// An out-of-tree Bind plugin that rejects the first binding of each pod, then lets the
/// DefaultBinder bind it.
struct FlakyBinder {
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl rkube_scheduler::framework::Plugin for FlakyBinder {
    fn name(&self) -> &'static str {
        "FlakyBinder"
    }
    fn as_bind(&self) -> Option<&dyn rkube_scheduler::framework::BindPlugin> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl rkube_scheduler::framework::BindPlugin for FlakyBinder {
    async fn bind(
        &self,
        pod: &rkube_scheduler::pod_info::PodInfo,
        _node: &str,
    ) -> rkube_scheduler::framework::Status {
        use rkube_scheduler::framework::Status;
        if self.seen.lock().unwrap().insert(pod.name.clone()) {
            Status::error("the first binding of a pod fails")
        } else {
            Status::skip()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_binding_forgets_the_assumed_pod_and_retries() {
    use rkube_scheduler::framework::registry::Registry;
    use std::sync::Arc;

    let (server, client) = server().await;
    // One node with room for exactly one pod: if the failed binding left the pod assumed
    // there, its retry would find the node full.
    create_node(&client, testing::node("only", "1", "2Gi")).await;
    let mut registry = Registry::in_tree();
    registry.register(
        "FlakyBinder",
        Arc::new(|_, _| {
            Ok(Arc::new(FlakyBinder {
                seen: Default::default(),
            })
                as Arc<dyn rkube_scheduler::framework::Plugin>)
        }),
    );
    let config = SchedulerConfiguration::from_yaml(
        "profiles:\n- plugins:\n    bind:\n      enabled:\n      - name: FlakyBinder\n",
    )
    .unwrap();
    let sched = start_scheduler_with(&server, config, "s1", true, registry).await;
    create_pod(&client, pod("p", "1", "1Gi", None)).await;
    assert_eq!(bound_node(&client, "p", 60).await, "only");
    let failed = eventually(30, "the failed binding's event", || {
        let client = client.clone();
        async move {
            pod_events(&client, "p")
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
        }
    })
    .await;
    let message = failed.message.unwrap_or_default();
    assert!(
        message.contains("Binding rejected: the first binding of a pod fails"),
        "{message}"
    );
    let totals = eventually(30, "the binding to be counted", || {
        let m = sched.handle.metrics.clone();
        async move {
            let t = m.totals();
            (t.scheduled == 1).then_some(t)
        }
    })
    .await;
    assert_eq!(totals.errors, 1, "{totals:?}");
    assert_eq!(totals.unschedulable, 0, "the retry found the node free");
    sched.stop().await.unwrap();
}

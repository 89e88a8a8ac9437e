//! Helpers shared by the scheduler's integration tests: an API server, nodes and pods created
//! through the API, an in-process scheduler, and polling with deadlines.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use rkube_scheduler::framework::registry::Registry;
use rkube_scheduler::testing;
use rkube_scheduler::{Options, Scheduler, SchedulerConfiguration, SchedulerHandle};
use rkube_testkit::apiserver::{Backend, Identity, TestServer};

/// Polls `f` every 50 ms until it returns `Some`, failing after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts an API server on the embedded store.
pub async fn server() -> (TestServer, kube::Client) {
    let server = TestServer::start(Backend::Embedded).await;
    let client = server.client().await;
    (server, client)
}

/// Creates a node through the API (with its status: allocatable and the Ready condition).
pub async fn create_node(client: &kube::Client, node: Node) {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.metadata.name.clone().unwrap_or_default();
    let created = api.create(&PostParams::default(), &node).await.unwrap();
    if created.status != node.status {
        // Status is not kept on create: set it through the status subresource.
        let mut with_status = created.clone();
        with_status.status = node.status.clone();
        api.replace_status(&name, &PostParams::default(), &with_status)
            .await
            .unwrap();
    }
}

/// Creates a pod in `default`.
pub async fn create_pod(client: &kube::Client, pod: Pod) -> Pod {
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap()
}

/// A pod requesting cpu and memory, with the given priority: it names the PriorityClass
/// `priority-<value>` (see [`create_priority_class`]); the API server's Priority admission sets
/// `spec.priority` from it, as Kubernetes does.
pub fn pod(name: &str, cpu: &str, memory: &str, priority: Option<i32>) -> Pod {
    let mut p = testing::pod(name, cpu, memory);
    p.metadata.uid = None;
    p.metadata.creation_timestamp = None;
    if let Some(spec) = p.spec.as_mut() {
        spec.priority = None;
        spec.priority_class_name = priority.map(|v| format!("priority-{v}"));
        spec.termination_grace_period_seconds = Some(0);
    }
    p
}

/// Creates the PriorityClass `priority-<value>` (with `preemptionPolicy: Never` when `polite`).
pub async fn create_priority_class(client: &kube::Client, value: i32, polite: bool) {
    let pc: k8s_openapi::api::scheduling::v1::PriorityClass =
        serde_json::from_value(serde_json::json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": format!("priority-{value}")},
            "value": value,
            "preemptionPolicy": if polite { "Never" } else { "PreemptLowerPriority" },
        }))
        .unwrap();
    Api::<k8s_openapi::api::scheduling::v1::PriorityClass>::all(client.clone())
        .create(&PostParams::default(), &pc)
        .await
        .unwrap();
}

/// The node a pod is bound to, once it is.
pub async fn bound_node(client: &kube::Client, name: &str, secs: u64) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually(secs, &format!("pod {name} to be bound"), || {
        let api = api.clone();
        async move {
            api.get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|p| p.spec.and_then(|s| s.node_name))
        }
    })
    .await
}

/// Events about a pod (core/v1 view).
pub async fn pod_events(client: &kube::Client, pod: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
        .await
        .unwrap()
        .items
}

/// A running in-process scheduler.
pub struct Running {
    pub handle: SchedulerHandle,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), rkube_scheduler::Error>>,
    pub metrics_addr: std::net::SocketAddr,
    pub identity: String,
}

impl Running {
    /// Stops the scheduler and returns how it ended.
    pub async fn stop(mut self) -> Result<(), rkube_scheduler::Error> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the scheduler stops")
            .expect("the scheduler task does not panic")
    }
}

/// The scheduler's own client: `system:kube-scheduler`, with the roles Kubernetes gives it.
pub async fn scheduler_client(server: &TestServer) -> kube::Client {
    server.client_as(&Identity::scheduler()).await
}

/// Starts a scheduler (as `system:kube-scheduler`) with a configuration and an identity,
/// waiting until its caches are synced if `wait_synced`.
pub async fn start_scheduler(
    server: &TestServer,
    config: SchedulerConfiguration,
    identity: &str,
    wait_synced: bool,
) -> Running {
    start_scheduler_with(server, config, identity, wait_synced, Registry::in_tree()).await
}

/// Like [`start_scheduler`], with a plugin registry (out-of-tree plugins).
pub async fn start_scheduler_with(
    server: &TestServer,
    config: SchedulerConfiguration,
    identity: &str,
    wait_synced: bool,
    registry: Registry,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    let mut opts = Options::new(scheduler_client(server).await, config);
    opts.registry = registry;
    opts.identity = identity.into();
    opts.listener = Some(listener);
    opts.seed = Some(7);
    let scheduler = Scheduler::new(opts).unwrap();
    let handle = scheduler.handle();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async {
        let _ = rx.await;
    }));
    if wait_synced {
        let mut synced = handle.synced.clone();
        tokio::time::timeout(Duration::from_secs(30), synced.wait_for(|s| *s))
            .await
            .expect("caches sync")
            .unwrap();
    }
    Running {
        handle,
        stop: Some(tx),
        task,
        metrics_addr,
        identity: identity.into(),
    }
}

/// A plain HTTP GET on loopback: (status line, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

//! Test harness: a real API server in-process, the controller manager running against it, and
//! stand-ins for the components that do not exist in these tests — a "kubelet" that marks pods
//! Running and Ready through the status subresource, and a "scheduler" that binds pods.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Binding, Container, ContainerPort, Namespace, ObjectReference, Pod, PodCondition, PodSpec,
    PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use rkube_controller_manager::Config;
use rkube_testkit::apiserver::{Backend, Identity, TestServer};

/// An API server with the controller manager running against it.
pub struct Cluster {
    /// The API server.
    pub server: TestServer,
    /// A client of it.
    pub client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    manager: Option<tokio::task::JoinHandle<Result<(), rkube_controller_manager::Error>>>,
}

/// Controller settings for tests: fast node monitoring.
pub fn test_config() -> Config {
    Config {
        node_monitor_period: Duration::from_millis(200),
        node_monitor_grace_period: Duration::from_secs(2),
        node_startup_grace_period: Duration::from_secs(2),
        node_eviction_rate: 100.0,
        ..Config::default()
    }
}

/// The controller manager's client as Kubernetes runs it: its own identity
/// (`system:kube-controller-manager`) and each controller with its ServiceAccount's
/// credentials (`--use-service-account-credentials`), so that the default roles are what lets
/// the controllers work.
pub async fn manager_client(server: &TestServer, config: &mut Config) -> Client {
    let own = server.config_as(&Identity::controller_manager()).await;
    config.service_account_credentials = Some(own.clone());
    Client::try_from(own).unwrap()
}

impl Cluster {
    /// Starts both with the test settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts both with adjusted controller settings.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_for(|_, c| adjust(c)).await
    }

    /// Starts both with controller settings adjusted knowing the server (e.g. its CA files).
    pub async fn start_for(adjust: impl FnOnce(&TestServer, &mut Config)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let server = TestServer::start(Backend::Embedded).await;
        let client = server.client().await;
        let mut config = test_config();
        adjust(&server, &mut config);
        let manager_client = manager_client(&server, &mut config).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let manager = tokio::spawn(rkube_controller_manager::run(
            config,
            manager_client,
            None,
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            server,
            client,
            stop: Some(tx),
            manager: Some(manager),
        }
    }

    /// Stops the controller manager and waits for it.
    pub async fn stop_manager(&mut self) -> Result<(), rkube_controller_manager::Error> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.manager.take() {
            Some(h) => tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .expect("controller manager stops")
                .expect("controller manager task"),
            None => Ok(()),
        }
    }

    /// Creates a namespace.
    pub async fn namespace(&self, name: &str) {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }

    /// Runs kubectl (blocking, on a blocking thread) and returns stdout; panics on failure.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_raw(args).await;
        assert!(
            out.status.success(),
            "kubectl {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl and returns its output whatever the result.
    pub async fn kubectl_raw(&self, args: &[&str]) -> std::process::Output {
        self.kubectl_input(args, None).await
    }

    /// Runs kubectl with `stdin` (e.g. a manifest for `apply -f -`); panics on failure.
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_input(args, Some(stdin)).await;
        assert!(
            out.status.success(),
            "kubectl {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn kubectl_input(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let kubeconfig = self.server.kubeconfig.clone();
        let home = self.server.dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            use std::process::{Command, Stdio};
            let mut child = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(&args)
                .env_remove("KUBECONFIG")
                .env("HOME", home)
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run kubectl (is /usr/bin/kubectl installed?)");
            if let Some(input) = stdin {
                child
                    .stdin
                    .take()
                    .expect("kubectl stdin")
                    .write_all(input.as_bytes())
                    .expect("write kubectl stdin");
            }
            child.wait_with_output().expect("kubectl output")
        })
        .await
        .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.manager.take() {
            h.abort();
        }
    }
}

/// Polls `f` every 50 ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Deployment of `replicas` pods labelled `app=NAME`, one container `app` with an `http`
/// port 8080.
pub fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", name)])),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[("app", name)])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some(image.into()),
                        ports: Some(vec![ContainerPort {
                            name: Some("http".into()),
                            container_port: 8080,
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    termination_grace_period_seconds: Some(0),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Active (not terminating) pods of a namespace with a label selector.
pub async fn active_pods(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Whether a pod is Ready.
pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A stand-in kubelet: watches the pods of a namespace and, after `delay`, reports each one
/// Running with an IP and Ready (unless readiness is switched off) through the status
/// subresource.
pub struct Kubelet {
    /// Whether new pods become Ready.
    pub ready: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    /// Starts marking pods in `ns` (only pods bound to `node`, when given).
    pub fn start(client: &Client, ns: &str, delay: Duration, node: Option<&str>) -> Self {
        let ready = Arc::new(AtomicBool::new(true));
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let flag = ready.clone();
        let node = node.map(str::to_string);
        static IP: AtomicU32 = AtomicU32::new(1);
        let task = tokio::spawn(async move {
            // Backing off after errors (see the fake scheduler in nodes.rs).
            let mut events = watcher(api.clone(), watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = events.next().await {
                let pods = match ev {
                    Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => vec![p],
                    _ => continue,
                };
                for pod in pods {
                    if pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let bound = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                    if node.is_some() && bound != node {
                        continue;
                    }
                    let want_ready = flag.load(Ordering::SeqCst);
                    let has_ip = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.pod_ip.as_ref())
                        .is_some();
                    if has_ip && is_ready(&pod) == want_ready {
                        continue;
                    }
                    let api = api.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = set_pod_state(&api, &pod.name_any(), want_ready, &IP).await;
                    });
                }
            }
        });
        Self { ready, task }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reports a pod Running with an IP, Ready or not.
pub async fn set_pod_state(
    api: &Api<Pod>,
    name: &str,
    ready: bool,
    ips: &AtomicU32,
) -> Result<(), kube::Error> {
    for _ in 0..5 {
        let Some(mut pod) = api.get_opt(name).await? else {
            return Ok(());
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let status = pod.status.get_or_insert_with(PodStatus::default);
        if status.pod_ip.is_none() {
            let n = ips.fetch_add(1, Ordering::SeqCst);
            status.pod_ip = Some(format!("10.244.{}.{}", n / 250, n % 250 + 2));
        }
        status.phase = Some("Running".into());
        let now = Time(jiff::Timestamp::now());
        let flag = if ready { "True" } else { "False" };
        status.conditions = Some(
            ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
                .iter()
                .map(|t| PodCondition {
                    type_: t.to_string(),
                    status: if *t == "PodScheduled" || *t == "Initialized" {
                        "True".into()
                    } else {
                        flag.into()
                    },
                    last_transition_time: Some(now.clone()),
                    ..Default::default()
                })
                .collect(),
        );
        match api.replace_status(name, &PostParams::default(), &pod).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Binds a pod to a node through the binding subresource, as a scheduler does.
pub async fn bind(client: &Client, ns: &str, pod: &str, node: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            api_version: Some("v1".into()),
            ..Default::default()
        },
    };
    api.create_subresource::<Binding, serde_json::Value>(
        "binding",
        pod,
        &PostParams::default(),
        &binding,
    )
    .await
    .map(|_| ())
}

//! The hollow runtime (`--runtime fake`): an in-process CRI RuntimeService and ImageService
//! that keep sandboxes and containers in memory. Containers "start" after a configurable
//! delay and keep running until stopped; init containers (labelled by the kubelet) exit 0
//! after a short run; every image is present. It serves the generated CRI server traits, and
//! the kubelet talks to it through the same CRI client it uses for containerd — so hundreds of
//! hollow nodes in one process exercise the real kubelet code for scale tests. Never the
//! default.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rkube_cri::v1 as cri;
use rkube_cri::{ImageServiceServer, RuntimeServiceServer};
use tonic::{Request, Response, Status};

use crate::cri::Cri;
use crate::labels;
use crate::metrics::Metrics;

/// How the hollow runtime behaves.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// How long `RunPodSandbox` takes.
    pub sandbox_delay: Duration,
    /// How long `StartContainer` takes before the container is running.
    pub start_delay: Duration,
    /// How long an init container runs before it exits 0 (zero: it has exited when its start
    /// is answered).
    pub init_run_time: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            sandbox_delay: Duration::from_millis(10),
            start_delay: Duration::from_millis(10),
            init_run_time: Duration::from_millis(100),
        }
    }
}

#[derive(Clone)]
struct Sandbox {
    status: cri::PodSandboxStatus,
}

#[derive(Clone)]
struct Container {
    status: cri::ContainerStatus,
    sandbox_id: String,
}

/// The sandboxes and containers of one pod (by the kubelet's pod UID label).
#[derive(Default)]
struct PodIds {
    sandboxes: Vec<String>,
    containers: Vec<String>,
}

#[derive(Default)]
struct State {
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Container>,
    /// Ids by pod UID: the kubelet lists one pod's sandboxes and containers by that label on
    /// every sync, which would otherwise scan the whole node.
    by_pod: HashMap<String, PodIds>,
    images: BTreeMap<String, cri::Image>,
    pod_cidr: Option<ipnet::Ipv4Net>,
    next_ip: u32,
}

/// The pod UID label of a sandbox (empty when it has none).
fn pod_uid(sb: &Sandbox) -> &str {
    sb.status
        .labels
        .get(labels::POD_UID)
        .map_or("", String::as_str)
}

impl State {
    fn add_sandbox(&mut self, sb: Sandbox) {
        let id = sb.status.id.clone();
        self.by_pod
            .entry(pod_uid(&sb).to_owned())
            .or_default()
            .sandboxes
            .push(id.clone());
        self.sandboxes.insert(id, sb);
    }

    /// Removes a sandbox and its containers.
    fn remove_sandbox(&mut self, id: &str) {
        let Some(sb) = self.sandboxes.remove(id) else {
            return;
        };
        let uid = pod_uid(&sb);
        let ids = self.by_pod.get_mut(uid).map(|p| {
            p.sandboxes.retain(|s| s != id);
            std::mem::take(&mut p.containers)
        });
        for c in ids.unwrap_or_default() {
            let keep = self.containers.get(&c).is_some_and(|c| c.sandbox_id != id);
            if keep {
                if let Some(p) = self.by_pod.get_mut(uid) {
                    p.containers.push(c);
                }
            } else {
                self.containers.remove(&c);
            }
        }
        if self
            .by_pod
            .get(uid)
            .is_some_and(|p| p.sandboxes.is_empty() && p.containers.is_empty())
        {
            self.by_pod.remove(uid);
        }
    }

    /// Adds a container of an existing sandbox (its pod is the sandbox's).
    fn add_container(&mut self, c: Container) {
        let uid = self
            .sandboxes
            .get(&c.sandbox_id)
            .map(pod_uid)
            .unwrap_or_default()
            .to_owned();
        let id = c.status.id.clone();
        self.by_pod
            .entry(uid)
            .or_default()
            .containers
            .push(id.clone());
        self.containers.insert(id, c);
    }

    fn remove_container(&mut self, id: &str) {
        let Some(c) = self.containers.remove(id) else {
            return;
        };
        let uid = self
            .sandboxes
            .get(&c.sandbox_id)
            .map(pod_uid)
            .unwrap_or_default();
        if let Some(p) = self.by_pod.get_mut(uid) {
            p.containers.retain(|x| x != id);
        }
    }

    /// The sandboxes a label selector can match: one pod's when it names a pod UID.
    fn sandboxes_for<'a>(
        &'a self,
        selector: &HashMap<String, String>,
    ) -> Box<dyn Iterator<Item = &'a Sandbox> + 'a> {
        self.matching(selector, &self.sandboxes, |p| &p.sandboxes)
    }

    /// The containers a label selector can match: one pod's when it names a pod UID.
    fn containers_for<'a>(
        &'a self,
        selector: &HashMap<String, String>,
    ) -> Box<dyn Iterator<Item = &'a Container> + 'a> {
        self.matching(selector, &self.containers, |p| &p.containers)
    }

    /// The objects of `all` a selector can match: those `ids` lists for the pod it names, or
    /// every one when it names none.
    fn matching<'a, T>(
        &'a self,
        selector: &HashMap<String, String>,
        all: &'a HashMap<String, T>,
        ids: fn(&PodIds) -> &Vec<String>,
    ) -> Box<dyn Iterator<Item = &'a T> + 'a> {
        match selector.get(labels::POD_UID) {
            Some(uid) => Box::new(
                self.by_pod
                    .get(uid)
                    .into_iter()
                    .flat_map(move |p| ids(p).iter())
                    .filter_map(|id| all.get(id)),
            ),
            None => Box::new(all.values()),
        }
    }
}

/// The hollow runtime. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
    config: FakeConfig,
}

fn now_nanos() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn image_id(name: &str) -> String {
    format!(
        "sha256:{:016x}{:048x}",
        crate::util::fnv64(name.as_bytes()),
        0
    )
}

fn selector_matches(
    selector: &std::collections::HashMap<String, String>,
    labels: &std::collections::HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl FakeRuntime {
    /// A hollow runtime with the given behaviour.
    pub fn new(config: FakeConfig) -> Self {
        FakeRuntime {
            state: Default::default(),
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A CRI client that talks to this runtime in-process: the client's requests go, encoded,
    /// straight to the generated gRPC servers (no socket and no HTTP/2 between them — on a
    /// real node the runtime's work is not the control plane's, so a hundred hollow nodes in
    /// one process should not spend the shared cores on framing).
    pub fn client(&self, metrics: Arc<Metrics>) -> Cri {
        let rt = RuntimeServiceServer::new(self.clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let img = ImageServiceServer::new(self.clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        Cri::from_transports(
            crate::cri::transport(rt),
            crate::cri::transport(img),
            metrics,
        )
    }

    /// Makes images known (the hollow side of an images-directory import).
    pub fn add_images(&self, names: &[String]) {
        let mut s = self.lock();
        for n in names {
            let normalized = crate::images::normalize_reference(n);
            s.images.insert(
                normalized.clone(),
                cri::Image {
                    id: image_id(&normalized),
                    repo_tags: vec![normalized],
                    size: 1 << 20,
                    ..Default::default()
                },
            );
        }
    }

    /// The number of containers the runtime holds, by state (for tests).
    pub fn container_count(&self, state: cri::ContainerState) -> usize {
        self.lock()
            .containers
            .values()
            .filter(|c| c.status.state == state as i32)
            .count()
    }

    fn allocate_ip(&self, s: &mut State) -> String {
        let net = s
            .pod_cidr
            .unwrap_or_else(|| "10.88.0.0/16".parse().expect("CIDR"));
        s.next_ip += 1;
        let hosts = (1u64 << (32 - net.prefix_len())).saturating_sub(2).max(1) as u32;
        let offset = (s.next_ip - 1) % hosts + 1;
        Ipv4Addr::from(u32::from(net.network()) + offset).to_string()
    }
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl rkube_cri::RuntimeService for FakeRuntime {
    async fn version(&self, _: Request<cri::VersionRequest>) -> R<cri::VersionResponse> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<cri::RunPodSandboxRequest>,
    ) -> R<cri::RunPodSandboxResponse> {
        let config = req
            .into_inner()
            .config
            .ok_or_else(|| Status::invalid_argument("config is required"))?;
        tokio::time::sleep(self.config.sandbox_delay).await;
        let host_network = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .is_some_and(|n| n.network == cri::NamespaceMode::Node as i32);
        let mut s = self.lock();
        let id = new_id();
        let ip = if host_network {
            String::new()
        } else {
            self.allocate_ip(&mut s)
        };
        let status = cri::PodSandboxStatus {
            id: id.clone(),
            metadata: config.metadata,
            state: cri::PodSandboxState::SandboxReady as i32,
            created_at: now_nanos(),
            network: Some(cri::PodSandboxNetworkStatus {
                ip,
                additional_ips: vec![],
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: config
                        .linux
                        .and_then(|l| l.security_context)
                        .and_then(|s| s.namespace_options),
                }),
            }),
            labels: config.labels,
            annotations: config.annotations,
            runtime_handler: String::new(),
        };
        s.add_sandbox(Sandbox { status });
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<cri::StopPodSandboxRequest>,
    ) -> R<cri::StopPodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        let mut s = self.lock();
        let now = now_nanos();
        for c in s.containers.values_mut().filter(|c| c.sandbox_id == id) {
            if c.status.state != cri::ContainerState::ContainerExited as i32 {
                c.status.state = cri::ContainerState::ContainerExited as i32;
                c.status.finished_at = now;
                c.status.exit_code = 137;
                c.status.reason = "Error".into();
            }
        }
        if let Some(sb) = s.sandboxes.get_mut(&id) {
            sb.status.state = cri::PodSandboxState::SandboxNotready as i32;
        }
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<cri::RemovePodSandboxRequest>,
    ) -> R<cri::RemovePodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        let mut s = self.lock();
        s.remove_sandbox(&id);
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<cri::PodSandboxStatusRequest>,
    ) -> R<cri::PodSandboxStatusResponse> {
        let id = req.into_inner().pod_sandbox_id;
        let s = self.lock();
        let sb = s
            .sandboxes
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("sandbox {id} not found")))?;
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(sb.status.clone()),
            timestamp: now_nanos(),
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<cri::ListPodSandboxRequest>,
    ) -> R<cri::ListPodSandboxResponse> {
        let filter = req.into_inner().filter.unwrap_or_default();
        let s = self.lock();
        let items = s
            .sandboxes_for(&filter.label_selector)
            .filter(|sb| filter.id.is_empty() || sb.status.id == filter.id)
            .filter(|sb| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|st| st.state == sb.status.state)
            })
            .filter(|sb| selector_matches(&filter.label_selector, &sb.status.labels))
            .map(|sb| cri::PodSandbox {
                id: sb.status.id.clone(),
                metadata: sb.status.metadata.clone(),
                state: sb.status.state,
                created_at: sb.status.created_at,
                labels: sb.status.labels.clone(),
                annotations: sb.status.annotations.clone(),
                runtime_handler: String::new(),
            })
            .collect();
        Ok(Response::new(cri::ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        req: Request<cri::CreateContainerRequest>,
    ) -> R<cri::CreateContainerResponse> {
        let req = req.into_inner();
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("config is required"))?;
        let mut s = self.lock();
        let sb = s.sandboxes.get(&req.pod_sandbox_id).ok_or_else(|| {
            Status::not_found(format!("sandbox {} not found", req.pod_sandbox_id))
        })?;
        if sb.status.state != cri::PodSandboxState::SandboxReady as i32 {
            return Err(Status::failed_precondition("sandbox is not ready"));
        }
        let log_dir = req
            .sandbox_config
            .as_ref()
            .map(|c| c.log_directory.clone())
            .unwrap_or_default();
        let id = new_id();
        let image = config.image.clone().unwrap_or_default();
        let status = cri::ContainerStatus {
            id: id.clone(),
            metadata: config.metadata.clone(),
            state: cri::ContainerState::ContainerCreated as i32,
            created_at: now_nanos(),
            image_ref: image_id(&image.image),
            image_id: image_id(&image.image),
            image: Some(image),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            log_path: if log_dir.is_empty() {
                String::new()
            } else {
                format!("{log_dir}/{}", config.log_path)
            },
            ..Default::default()
        };
        s.add_container(Container {
            status,
            sandbox_id: req.pod_sandbox_id,
        });
        Ok(Response::new(cri::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        req: Request<cri::StartContainerRequest>,
    ) -> R<cri::StartContainerResponse> {
        let id = req.into_inner().container_id;
        tokio::time::sleep(self.config.start_delay).await;
        let (is_init, log_path) = {
            let mut s = self.lock();
            let c = s
                .containers
                .get_mut(&id)
                .ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
            if c.status.state != cri::ContainerState::ContainerCreated as i32 {
                return Err(Status::failed_precondition(format!(
                    "container {id} is not in created state"
                )));
            }
            c.status.state = cri::ContainerState::ContainerRunning as i32;
            c.status.started_at = now_nanos();
            (
                c.status
                    .labels
                    .get(labels::CONTAINER_KIND)
                    .map(String::as_str)
                    == Some("init"),
                c.status.log_path.clone(),
            )
        };
        if !log_path.is_empty() {
            let line = format!(
                "{} stdout F started by the hollow runtime\n",
                jiff::Timestamp::now()
            );
            let path = std::path::PathBuf::from(log_path);
            if let Some(parent) = path.parent() {
                let _ = tokio::fs::create_dir_all(parent).await;
            }
            let _ = tokio::fs::write(&path, line).await;
        }
        if is_init {
            let me = self.clone();
            let run = self.config.init_run_time;
            let exit = move |s: &mut State| {
                if let Some(c) = s.containers.get_mut(&id)
                    && c.status.state == cri::ContainerState::ContainerRunning as i32
                {
                    c.status.state = cri::ContainerState::ContainerExited as i32;
                    c.status.finished_at = now_nanos();
                    c.status.exit_code = 0;
                    c.status.reason = "Completed".into();
                }
            };
            if run.is_zero() {
                // Done before the start is answered.
                exit(&mut me.lock());
            } else {
                tokio::spawn(async move {
                    tokio::time::sleep(run).await;
                    exit(&mut me.lock());
                });
            }
        }
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        req: Request<cri::StopContainerRequest>,
    ) -> R<cri::StopContainerResponse> {
        let req = req.into_inner();
        let mut s = self.lock();
        if let Some(c) = s.containers.get_mut(&req.container_id)
            && c.status.state != cri::ContainerState::ContainerExited as i32
        {
            c.status.state = cri::ContainerState::ContainerExited as i32;
            c.status.finished_at = now_nanos();
            // The hollow process honours SIGTERM; a zero grace period is a SIGKILL.
            c.status.exit_code = if req.timeout > 0 { 143 } else { 137 };
            c.status.reason = "Error".into();
        }
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        req: Request<cri::RemoveContainerRequest>,
    ) -> R<cri::RemoveContainerResponse> {
        self.lock().remove_container(&req.into_inner().container_id);
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        req: Request<cri::ListContainersRequest>,
    ) -> R<cri::ListContainersResponse> {
        let f = req.into_inner().filter.unwrap_or_default();
        let s = self.lock();
        let containers = s
            .containers_for(&f.label_selector)
            .filter(|c| f.id.is_empty() || c.status.id == f.id)
            .filter(|c| f.pod_sandbox_id.is_empty() || c.sandbox_id == f.pod_sandbox_id)
            .filter(|c| f.state.as_ref().is_none_or(|st| st.state == c.status.state))
            .filter(|c| selector_matches(&f.label_selector, &c.status.labels))
            .map(|c| cri::Container {
                id: c.status.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: c.status.metadata.clone(),
                image: c.status.image.clone(),
                image_ref: c.status.image_ref.clone(),
                state: c.status.state,
                created_at: c.status.created_at,
                labels: c.status.labels.clone(),
                annotations: c.status.annotations.clone(),
                image_id: c.status.image_id.clone(),
            })
            .collect();
        Ok(Response::new(cri::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        req: Request<cri::ContainerStatusRequest>,
    ) -> R<cri::ContainerStatusResponse> {
        let id = req.into_inner().container_id;
        let s = self.lock();
        let c = s
            .containers
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        Ok(Response::new(cri::ContainerStatusResponse {
            status: Some(c.status.clone()),
            info: Default::default(),
        }))
    }

    async fn update_container_resources(
        &self,
        _: Request<cri::UpdateContainerResourcesRequest>,
    ) -> R<cri::UpdateContainerResourcesResponse> {
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        _: Request<cri::ReopenContainerLogRequest>,
    ) -> R<cri::ReopenContainerLogResponse> {
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(&self, req: Request<cri::ExecSyncRequest>) -> R<cri::ExecSyncResponse> {
        let id = req.into_inner().container_id;
        let s = self.lock();
        match s.containers.get(&id) {
            Some(c) if c.status.state == cri::ContainerState::ContainerRunning as i32 => {
                Ok(Response::new(cri::ExecSyncResponse::default()))
            }
            Some(_) => Err(Status::failed_precondition(format!(
                "container {id} is not running"
            ))),
            None => Err(Status::not_found(format!("container {id} not found"))),
        }
    }

    async fn exec(&self, _: Request<cri::ExecRequest>) -> R<cri::ExecResponse> {
        Err(Status::unimplemented("the hollow runtime has no streaming"))
    }

    async fn attach(&self, _: Request<cri::AttachRequest>) -> R<cri::AttachResponse> {
        Err(Status::unimplemented("the hollow runtime has no streaming"))
    }

    async fn port_forward(
        &self,
        _: Request<cri::PortForwardRequest>,
    ) -> R<cri::PortForwardResponse> {
        Err(Status::unimplemented("the hollow runtime has no streaming"))
    }

    async fn container_stats(
        &self,
        req: Request<cri::ContainerStatsRequest>,
    ) -> R<cri::ContainerStatsResponse> {
        let id = req.into_inner().container_id;
        let s = self.lock();
        let c = s
            .containers
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        Ok(Response::new(cri::ContainerStatsResponse {
            stats: Some(fake_stats(c)),
        }))
    }

    async fn list_container_stats(
        &self,
        _: Request<cri::ListContainerStatsRequest>,
    ) -> R<cri::ListContainerStatsResponse> {
        let s = self.lock();
        let stats = s
            .containers
            .values()
            .filter(|c| c.status.state == cri::ContainerState::ContainerRunning as i32)
            .map(fake_stats)
            .collect();
        Ok(Response::new(cri::ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(
        &self,
        _: Request<cri::PodSandboxStatsRequest>,
    ) -> R<cri::PodSandboxStatsResponse> {
        Err(Status::unimplemented("use ListContainerStats"))
    }

    async fn list_pod_sandbox_stats(
        &self,
        _: Request<cri::ListPodSandboxStatsRequest>,
    ) -> R<cri::ListPodSandboxStatsResponse> {
        Err(Status::unimplemented("use ListContainerStats"))
    }

    async fn update_runtime_config(
        &self,
        req: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> R<cri::UpdateRuntimeConfigResponse> {
        let cidr = req
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        if !cidr.is_empty() {
            let net: ipnet::Ipv4Net = cidr
                .parse()
                .map_err(|_| Status::invalid_argument(format!("bad pod CIDR {cidr}")))?;
            self.lock().pod_cidr = Some(net);
        }
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, _: Request<cri::StatusRequest>) -> R<cri::StatusResponse> {
        let cond = |t: &str| cri::RuntimeCondition {
            r#type: t.into(),
            status: true,
            ..Default::default()
        };
        Ok(Response::new(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![cond("RuntimeReady"), cond("NetworkReady")],
            }),
            ..Default::default()
        }))
    }

    async fn checkpoint_container(
        &self,
        _: Request<cri::CheckpointContainerRequest>,
    ) -> R<cri::CheckpointContainerResponse> {
        Err(Status::unimplemented(
            "no checkpoints in the hollow runtime",
        ))
    }

    type GetContainerEventsStream =
        futures::stream::Empty<Result<cri::ContainerEventResponse, Status>>;

    async fn get_container_events(
        &self,
        _: Request<cri::GetEventsRequest>,
    ) -> R<Self::GetContainerEventsStream> {
        Err(Status::unimplemented("the kubelet relists (PLEG)"))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<cri::ListMetricDescriptorsRequest>,
    ) -> R<cri::ListMetricDescriptorsResponse> {
        Ok(Response::new(Default::default()))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> R<cri::ListPodSandboxMetricsResponse> {
        Ok(Response::new(Default::default()))
    }

    async fn runtime_config(
        &self,
        _: Request<cri::RuntimeConfigRequest>,
    ) -> R<cri::RuntimeConfigResponse> {
        Ok(Response::new(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }
}

fn fake_stats(c: &Container) -> cri::ContainerStats {
    let now = now_nanos();
    let running_for = (now - c.status.started_at).max(0) as u64;
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: c.status.id.clone(),
            metadata: c.status.metadata.clone(),
            labels: c.status.labels.clone(),
            annotations: c.status.annotations.clone(),
        }),
        cpu: Some(cri::CpuUsage {
            timestamp: now,
            // A hollow container uses a thousandth of a core.
            usage_core_nano_seconds: Some(cri::UInt64Value {
                value: running_for / 1000,
            }),
            usage_nano_cores: Some(cri::UInt64Value { value: 1_000_000 }),
        }),
        memory: Some(cri::MemoryUsage {
            timestamp: now,
            working_set_bytes: Some(cri::UInt64Value { value: 1 << 20 }),
            usage_bytes: Some(cri::UInt64Value { value: 1 << 20 }),
            rss_bytes: Some(cri::UInt64Value { value: 1 << 20 }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl rkube_cri::ImageService for FakeRuntime {
    async fn list_images(&self, _: Request<cri::ListImagesRequest>) -> R<cri::ListImagesResponse> {
        Ok(Response::new(cri::ListImagesResponse {
            images: self.lock().images.values().cloned().collect(),
        }))
    }

    async fn image_status(
        &self,
        req: Request<cri::ImageStatusRequest>,
    ) -> R<cri::ImageStatusResponse> {
        // Hollow nodes never need images: every image is present.
        let name = req.into_inner().image.unwrap_or_default().image;
        let normalized = crate::images::normalize_reference(&name);
        let image = self
            .lock()
            .images
            .get(&normalized)
            .cloned()
            .unwrap_or(cri::Image {
                id: image_id(&normalized),
                repo_tags: vec![normalized],
                size: 1 << 20,
                ..Default::default()
            });
        Ok(Response::new(cri::ImageStatusResponse {
            image: Some(image),
            info: Default::default(),
        }))
    }

    async fn pull_image(&self, req: Request<cri::PullImageRequest>) -> R<cri::PullImageResponse> {
        let name = req.into_inner().image.unwrap_or_default().image;
        self.add_images(std::slice::from_ref(&name));
        Ok(Response::new(cri::PullImageResponse {
            image_ref: image_id(&crate::images::normalize_reference(&name)),
        }))
    }

    async fn remove_image(
        &self,
        req: Request<cri::RemoveImageRequest>,
    ) -> R<cri::RemoveImageResponse> {
        let name = req.into_inner().image.unwrap_or_default().image;
        self.lock()
            .images
            .remove(&crate::images::normalize_reference(&name));
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _: Request<cri::ImageFsInfoRequest>,
    ) -> R<cri::ImageFsInfoResponse> {
        Ok(Response::new(cri::ImageFsInfoResponse::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox_config(uid: &str) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "p".into(),
                uid: uid.into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            labels: [(labels::POD_UID.to_string(), uid.to_string())].into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn lifecycle_through_the_cri_client() {
        let fake = FakeRuntime::new(FakeConfig {
            init_run_time: Duration::from_millis(50),
            ..Default::default()
        });
        let cri = fake.client(Default::default());
        assert_eq!(cri.version().await.unwrap().runtime_name, "fake");
        cri.update_pod_cidr("10.244.7.0/24").await.unwrap();
        let sb = cri.run_pod_sandbox(sandbox_config("u1"), "").await.unwrap();
        let st = cri.pod_sandbox_status(&sb).await.unwrap();
        assert!(st.network.unwrap().ip.starts_with("10.244.7."));
        let mk = |name: &str, kind: &str| cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            labels: [(labels::CONTAINER_KIND.to_string(), kind.to_string())].into(),
            ..Default::default()
        };
        let app = cri
            .create_container(&sb, mk("app", "app"), sandbox_config("u1"))
            .await
            .unwrap();
        let init = cri
            .create_container(&sb, mk("init", "init"), sandbox_config("u1"))
            .await
            .unwrap();
        cri.start_container(&app).await.unwrap();
        cri.start_container(&init).await.unwrap();
        assert_eq!(
            cri.container_status(&app).await.unwrap().state,
            cri::ContainerState::ContainerRunning as i32
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let st = cri.container_status(&init).await.unwrap();
        assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);
        assert_eq!(st.exit_code, 0);
        assert_eq!(
            cri.list_containers(&[(labels::CONTAINER_KIND, "app")])
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            cri.exec_sync(&app, vec!["true".into()], 1)
                .await
                .unwrap()
                .exit_code,
            0
        );
        cri.stop_container(&app, 30).await.unwrap();
        assert_eq!(cri.container_status(&app).await.unwrap().exit_code, 143);
        cri.stop_pod_sandbox(&sb).await.unwrap();
        cri.remove_pod_sandbox(&sb).await.unwrap();
        assert!(cri.list_containers(&[]).await.unwrap().is_empty());
        assert!(cri.container_status(&app).await.unwrap_err().is_not_found());
        assert!(cri.image_status("nginx:1.25").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn lists_by_pod_uid_see_that_pods_objects_only() {
        let fake = FakeRuntime::default();
        let cri = fake.client(Default::default());
        cri.update_pod_cidr("10.244.7.0/24").await.unwrap();
        let app = |uid: &str| cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "app".into(),
                attempt: 0,
            }),
            labels: [
                (labels::CONTAINER_KIND.to_string(), "app".to_string()),
                (labels::POD_UID.to_string(), uid.to_string()),
            ]
            .into(),
            ..Default::default()
        };
        let mut ids = HashMap::new();
        for uid in ["u1", "u2"] {
            let mut mine = Vec::new();
            for _ in 0..2 {
                let sb = cri.run_pod_sandbox(sandbox_config(uid), "").await.unwrap();
                let c = cri
                    .create_container(&sb, app(uid), sandbox_config(uid))
                    .await
                    .unwrap();
                mine.push((sb, c));
            }
            ids.insert(uid, mine);
        }
        let of = |uid: &'static str| [(labels::POD_UID, uid)];
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        for uid in ["u1", "u2"] {
            let sbs = cri.list_pod_sandbox(&of(uid)).await.unwrap();
            let want: Vec<_> = ids[uid].iter().map(|(sb, _)| sb.clone()).collect();
            assert_eq!(
                sorted(sbs.into_iter().map(|s| s.id).collect()),
                sorted(want)
            );
            let cs = cri.list_containers(&of(uid)).await.unwrap();
            let want: Vec<_> = ids[uid].iter().map(|(_, c)| c.clone()).collect();
            assert_eq!(sorted(cs.into_iter().map(|c| c.id).collect()), sorted(want));
        }
        assert!(cri.list_pod_sandbox(&of("u3")).await.unwrap().is_empty());
        // Other labels still filter, with or without the pod's.
        let both = [(labels::POD_UID, "u1"), (labels::CONTAINER_KIND, "init")];
        assert!(cri.list_containers(&both).await.unwrap().is_empty());
        assert_eq!(cri.list_containers(&[]).await.unwrap().len(), 4);

        // Removing a container, then a sandbox (with its container), leaves the rest listed.
        let (sb0, c0) = ids["u1"][0].clone();
        let (sb1, c1) = ids["u1"][1].clone();
        cri.remove_container(&c0).await.unwrap();
        let cs = cri.list_containers(&of("u1")).await.unwrap();
        assert_eq!(cs.into_iter().map(|c| c.id).collect::<Vec<_>>(), [c1]);
        cri.remove_pod_sandbox(&sb1).await.unwrap();
        assert!(cri.list_containers(&of("u1")).await.unwrap().is_empty());
        let sbs = cri.list_pod_sandbox(&of("u1")).await.unwrap();
        let ids: Vec<_> = sbs.into_iter().map(|s| s.id).collect();
        assert_eq!(ids, std::slice::from_ref(&sb0));
        cri.remove_pod_sandbox(&sb0).await.unwrap();
        assert!(cri.list_pod_sandbox(&of("u1")).await.unwrap().is_empty());
        assert_eq!(cri.list_containers(&of("u2")).await.unwrap().len(), 2);
        assert!(
            !fake.lock().by_pod.contains_key("u1"),
            "an empty pod is forgotten"
        );
    }
}

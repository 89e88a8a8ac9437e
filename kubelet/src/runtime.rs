//! The runtime view of pods: sandboxes and containers as the CRI reports them, grouped by pod
//! UID and decoded from the kubelet's labels and annotations. Status calls are cached per
//! (id, state), so a relist of an unchanged node costs two list calls.

use std::collections::HashMap;
use std::sync::Mutex;

use rkube_cri::v1 as cri;

use crate::cri::{Cri, CriError};
use crate::labels;

/// Where a container comes from in the pod spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `spec.initContainers`.
    Init,
    /// `spec.containers`.
    App,
}

/// A container's runtime state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited,
    /// The runtime does not know.
    Unknown,
}

impl State {
    fn from_cri(s: i32) -> State {
        match cri::ContainerState::try_from(s) {
            Ok(cri::ContainerState::ContainerCreated) => State::Created,
            Ok(cri::ContainerState::ContainerRunning) => State::Running,
            Ok(cri::ContainerState::ContainerExited) => State::Exited,
            _ => State::Unknown,
        }
    }
}

/// One sandbox.
#[derive(Clone, Debug)]
pub struct SandboxInfo {
    /// The runtime's id.
    pub id: String,
    /// The attempt number.
    pub attempt: u32,
    /// Ready (running with its network).
    pub ready: bool,
    /// Creation time (ns).
    pub created_at: i64,
    /// The pod IP (empty for host-network sandboxes).
    pub ip: String,
    /// Further pod IPs.
    pub additional_ips: Vec<String>,
    /// Uses the node's network namespace.
    pub host_network: bool,
}

/// One container.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    /// The runtime's id.
    pub id: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// The container name in the pod spec.
    pub name: String,
    /// Init or app container.
    pub kind: Kind,
    /// The CRI attempt (the restart count when it was created).
    pub attempt: u32,
    /// Its state.
    pub state: State,
    /// Creation time (ns).
    pub created_at: i64,
    /// Start time (ns, 0 if never started).
    pub started_at: i64,
    /// Finish time (ns, 0 if not finished).
    pub finished_at: i64,
    /// Exit code.
    pub exit_code: i32,
    /// The runtime's reason (`OOMKilled`, `Completed`, `Error`).
    pub reason: String,
    /// The runtime's message.
    pub message: String,
    /// The image as the spec named it.
    pub image: String,
    /// The image's digest reference.
    pub image_ref: String,
    /// The spec hash it was created from.
    pub hash: u64,
    /// The restart count it was created with.
    pub restart_count: i32,
    /// Its log file.
    pub log_path: String,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// Annotations.
    pub annotations: HashMap<String, String>,
}

/// Everything the runtime has for one pod, newest first.
#[derive(Clone, Debug, Default)]
pub struct PodRuntime {
    /// Sandboxes, newest first.
    pub sandboxes: Vec<SandboxInfo>,
    /// Containers of all sandboxes, newest first.
    pub containers: Vec<ContainerInfo>,
    /// Pod name from the labels.
    pub name: String,
    /// Pod namespace from the labels.
    pub namespace: String,
}

impl PodRuntime {
    /// The newest sandbox.
    pub fn latest_sandbox(&self) -> Option<&SandboxInfo> {
        self.sandboxes.first()
    }

    /// Containers with this name (and kind), newest first.
    pub fn named<'a>(
        &'a self,
        name: &'a str,
        kind: Kind,
    ) -> impl Iterator<Item = &'a ContainerInfo> + 'a {
        self.containers
            .iter()
            .filter(move |c| c.name == name && c.kind == kind)
    }

    /// The newest container with this name.
    pub fn latest(&self, name: &str, kind: Kind) -> Option<&ContainerInfo> {
        self.containers
            .iter()
            .find(|c| c.name == name && c.kind == kind)
    }

    /// Whether anything is running (a ready sandbox or a running container).
    pub fn is_running(&self) -> bool {
        self.sandboxes.iter().any(|s| s.ready)
            || self
                .containers
                .iter()
                .any(|c| matches!(c.state, State::Running | State::Created | State::Unknown))
    }

    /// Whether the runtime has nothing for the pod.
    pub fn is_empty(&self) -> bool {
        self.sandboxes.is_empty() && self.containers.is_empty()
    }

    /// A short fingerprint of ids and states, to see whether anything changed.
    pub fn fingerprint(&self) -> Vec<(String, u8)> {
        let mut v: Vec<(String, u8)> = self
            .sandboxes
            .iter()
            .map(|s| (s.id.clone(), u8::from(s.ready)))
            .chain(self.containers.iter().map(|c| {
                (
                    c.id.clone(),
                    match c.state {
                        State::Created => 10,
                        State::Running => 11,
                        State::Exited => 12,
                        State::Unknown => 13,
                    },
                )
            }))
            .collect();
        v.sort();
        v
    }
}

fn decode_sandbox(s: &cri::PodSandboxStatus) -> SandboxInfo {
    let net = s.network.clone().unwrap_or_default();
    let host_network = s
        .linux
        .as_ref()
        .and_then(|l| l.namespaces.as_ref())
        .and_then(|n| n.options.as_ref())
        .is_some_and(|o| o.network == cri::NamespaceMode::Node as i32);
    SandboxInfo {
        id: s.id.clone(),
        attempt: s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
        ready: s.state == cri::PodSandboxState::SandboxReady as i32,
        created_at: s.created_at,
        ip: net.ip,
        additional_ips: net.additional_ips.into_iter().map(|i| i.ip).collect(),
        host_network,
    }
}

fn decode_container(s: &cri::ContainerStatus, sandbox_id: &str) -> ContainerInfo {
    let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
    let ann = |k: &str| s.annotations.get(k).cloned().unwrap_or_default();
    ContainerInfo {
        id: s.id.clone(),
        sandbox_id: sandbox_id.to_string(),
        name: s
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| label(labels::CONTAINER_NAME)),
        kind: if label(labels::CONTAINER_KIND) == "init" {
            Kind::Init
        } else {
            Kind::App
        },
        attempt: s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
        state: State::from_cri(s.state),
        created_at: s.created_at,
        started_at: s.started_at,
        finished_at: s.finished_at,
        exit_code: s.exit_code,
        reason: s.reason.clone(),
        message: s.message.clone(),
        image: s
            .image
            .as_ref()
            .map(|i| {
                if i.user_specified_image.is_empty() {
                    i.image.clone()
                } else {
                    i.user_specified_image.clone()
                }
            })
            .unwrap_or_default(),
        image_ref: if s.image_ref.is_empty() {
            s.image_id.clone()
        } else {
            s.image_ref.clone()
        },
        hash: u64::from_str_radix(&ann(labels::CONTAINER_HASH), 16).unwrap_or(0),
        restart_count: ann(labels::RESTART_COUNT).parse().unwrap_or(0),
        log_path: s.log_path.clone(),
        labels: s.labels.clone(),
        annotations: s.annotations.clone(),
    }
}

/// Reads pods' runtime state through the CRI, caching status calls.
pub struct RuntimeCache {
    cri: Cri,
    sandboxes: Mutex<HashMap<String, (i32, SandboxInfo)>>,
    containers: Mutex<HashMap<String, (i32, ContainerInfo)>>,
}

impl RuntimeCache {
    /// A cache over a CRI client.
    pub fn new(cri: Cri) -> Self {
        RuntimeCache {
            cri,
            sandboxes: Default::default(),
            containers: Default::default(),
        }
    }

    async fn build(
        &self,
        sandboxes: Vec<cri::PodSandbox>,
        containers: Vec<cri::Container>,
    ) -> HashMap<String, PodRuntime> {
        let mut pods: HashMap<String, PodRuntime> = HashMap::new();
        for sb in sandboxes {
            let Some(uid) = sb.labels.get(labels::POD_UID).cloned() else {
                continue;
            };
            let cached = {
                let c = self.sandboxes.lock().unwrap_or_else(|e| e.into_inner());
                c.get(&sb.id)
                    .filter(|(state, _)| *state == sb.state)
                    .map(|(_, i)| i.clone())
            };
            let info = match cached {
                Some(i) => i,
                None => match self.cri.pod_sandbox_status(&sb.id).await {
                    Ok(st) => {
                        let i = decode_sandbox(&st);
                        self.sandboxes
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(sb.id.clone(), (sb.state, i.clone()));
                        i
                    }
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, sandbox = %sb.id, "sandbox status");
                        continue;
                    }
                },
            };
            let p = pods.entry(uid).or_default();
            p.name = sb.labels.get(labels::POD_NAME).cloned().unwrap_or_default();
            p.namespace = sb
                .labels
                .get(labels::POD_NAMESPACE)
                .cloned()
                .unwrap_or_default();
            p.sandboxes.push(info);
        }
        for c in containers {
            let Some(uid) = c.labels.get(labels::POD_UID).cloned() else {
                continue;
            };
            let cached = {
                let m = self.containers.lock().unwrap_or_else(|e| e.into_inner());
                m.get(&c.id)
                    .filter(|(state, _)| *state == c.state)
                    .map(|(_, i)| i.clone())
            };
            let info = match cached {
                Some(i) => i,
                None => match self.cri.container_status(&c.id).await {
                    Ok(st) => {
                        let i = decode_container(&st, &c.pod_sandbox_id);
                        // Cache under the listed state: a status read just after an exit
                        // must not be mistaken for the final one.
                        if State::from_cri(st.state) == State::from_cri(c.state) {
                            self.containers
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(c.id.clone(), (c.state, i.clone()));
                        }
                        i
                    }
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, container = %c.id, "container status");
                        continue;
                    }
                },
            };
            let p = pods.entry(uid).or_default();
            if p.name.is_empty() {
                p.name = c.labels.get(labels::POD_NAME).cloned().unwrap_or_default();
                p.namespace = c
                    .labels
                    .get(labels::POD_NAMESPACE)
                    .cloned()
                    .unwrap_or_default();
            }
            p.containers.push(info);
        }
        for p in pods.values_mut() {
            p.sandboxes.sort_by(|a, b| {
                b.created_at
                    .cmp(&a.created_at)
                    .then(b.attempt.cmp(&a.attempt))
            });
            p.containers.sort_by(|a, b| {
                b.created_at
                    .cmp(&a.created_at)
                    .then(b.attempt.cmp(&a.attempt))
            });
        }
        pods
    }

    /// The runtime state of one pod.
    pub async fn pod(&self, uid: &str) -> Result<PodRuntime, CriError> {
        let sel = [(labels::POD_UID, uid)];
        let (sandboxes, containers) = tokio::try_join!(
            self.cri.list_pod_sandbox(&sel),
            self.cri.list_containers(&sel)
        )?;
        Ok(self
            .build(sandboxes, containers)
            .await
            .remove(uid)
            .unwrap_or_default())
    }

    /// The runtime state of every pod; forgets cached statuses of objects that are gone.
    pub async fn all(&self) -> Result<HashMap<String, PodRuntime>, CriError> {
        let (sandboxes, containers) = tokio::try_join!(
            self.cri.list_pod_sandbox(&[]),
            self.cri.list_containers(&[])
        )?;
        let sandbox_ids: std::collections::HashSet<String> =
            sandboxes.iter().map(|s| s.id.clone()).collect();
        let container_ids: std::collections::HashSet<String> =
            containers.iter().map(|c| c.id.clone()).collect();
        let pods = self.build(sandboxes, containers).await;
        self.sandboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| sandbox_ids.contains(id));
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| container_ids.contains(id));
        Ok(pods)
    }
}

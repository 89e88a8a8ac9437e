//! The pod worker: one task per pod that drives the runtime toward the pod spec. Each sync
//! reads the pod's runtime state, sets up volumes, makes sure a ready sandbox exists (a new
//! one when it died), restarts containers whose liveness probe failed or whose spec changed,
//! runs init containers in order, then starts or restarts app containers as restartPolicy and
//! the crash-loop back-off allow, garbage-collects old instances, and reports the pod status
//! when it changed. On deletion it runs preStop hooks, stops containers within the grace
//! period, reports the final status, removes everything the pod has on the node (containers,
//! sandboxes, volumes, logs, cgroups) and then deletes the pod object (grace 0, UID
//! precondition).
//!
//! A sync runs when the pod changes, when the PLEG sees a runtime change, when a probe result
//! changes, when a back-off ends, and every sync period.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::container::{self, Params};
use crate::context::Context;
use crate::env;
use crate::events::EventType;
use crate::hooks;
use crate::labels;
use crate::probes::{PodProbes, Running};
use crate::qos;
use crate::runtime::{ContainerInfo, Kind, PodRuntime, SandboxInfo, State};
use crate::sandbox;
use crate::status;

/// What a worker is told.
#[derive(Debug)]
pub enum Msg {
    /// The pod changed.
    Update(Arc<Pod>),
    /// The pod is gone from the API.
    Removed,
    /// Something in the runtime changed; sync.
    Wake,
    /// The PLEG's relist found the pod's sandboxes and containers in this state (ids and
    /// states, [`PodRuntime::fingerprint`]), changed since its previous relist.
    Relisted(Vec<(String, u8)>),
}

/// The manager's handle on a worker.
pub struct Handle {
    /// Sends to the worker.
    pub tx: mpsc::UnboundedSender<Msg>,
    /// A number telling workers of the same pod apart.
    pub generation: u64,
}

/// Why a worker syncs (ordered: an update among other causes counts as an update).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cause {
    /// A runtime change, a probe result, a back-off's end or the sync period.
    Other,
    /// The pod changed (or is gone from the API).
    Update,
}

enum Next {
    At(Instant),
    Done,
}

/// The tokio Instant of a CRI wall-clock time (ns).
pub fn instant_of(nanos: i64) -> Instant {
    let now_wall = jiff::Timestamp::now().as_nanosecond() as i64;
    let age = Duration::from_nanos((now_wall - nanos).max(0) as u64);
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}m0s", s / 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn field_path(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Init => format!("spec.initContainers{{{name}}}"),
        Kind::App => format!("spec.containers{{{name}}}"),
    }
}

struct Worker {
    ctx: Arc<Context>,
    uid: String,
    generation: u64,
    pod: Arc<Pod>,
    removed: bool,
    probes: PodProbes,
    crash: Backoff<String>,
    /// Why containers wait, by name.
    waiting: HashMap<String, (String, String)>,
    /// Termination messages by container id.
    messages: HashMap<String, String>,
    /// The kubelet-owned status fields last written.
    last_sent: Option<BTreeMap<String, serde_json::Value>>,
    /// The status last computed (for transition times between informer updates).
    last_status: Option<k8s_openapi::api::core::v1::PodStatus>,
    /// The runtime state (its fingerprint) the status was last computed from.
    reported_runtime: Option<Vec<(String, u8)>>,
    seen_at: Instant,
    start_recorded: bool,
    volumes: HashMap<String, crate::volumes::HostVolume>,
    volume_error: Option<String>,
    wakeups: Vec<Instant>,
    sandbox_retry: Option<(Instant, Duration)>,
    /// The last container instance a BackOff event was sent for.
    backoff_events: HashMap<String, String>,
    terminating: bool,
}

/// A pod's spec, borrowed from a shared pod (the default spec when the pod has none).
struct SpecRef(Arc<Pod>);

impl std::ops::Deref for SpecRef {
    type Target = PodSpec;

    fn deref(&self) -> &PodSpec {
        crate::pods::spec_of(&self.0)
    }
}

/// Starts a worker for a pod.
pub fn spawn(ctx: Arc<Context>, pod: Arc<Pod>, generation: u64) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let worker = Worker {
        probes: PodProbes::new(ctx.prober.clone(), ctx.events.clone()),
        crash: Backoff::new(ctx.config.crash_backoff.0, ctx.config.crash_backoff.1),
        ctx,
        uid,
        generation,
        pod,
        removed: false,
        waiting: HashMap::new(),
        messages: HashMap::new(),
        last_sent: None,
        last_status: None,
        reported_runtime: None,
        seen_at: Instant::now(),
        start_recorded: false,
        volumes: HashMap::new(),
        volume_error: None,
        wakeups: Vec::new(),
        sandbox_retry: None,
        backoff_events: HashMap::new(),
        terminating: false,
    };
    let tasks = worker.ctx.runtime_tasks.clone();
    tasks.spawn(worker.run(rx));
    Handle { tx, generation }
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut next = Instant::now();
        let mut first = true;
        loop {
            // Why this sync runs; `None` while nothing calls for one.
            let mut cause = Some(Cause::Other);
            if next > Instant::now() {
                let changed = self.probes.changed.clone();
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => cause = self.apply(m),
                        None => return,
                    },
                    _ = changed.notified() => {}
                    _ = tokio::time::sleep_until(next) => {}
                    _ = self.ctx.cancel.cancelled() => return,
                }
            }
            while let Ok(m) = rx.try_recv() {
                cause = cause.max(self.apply(m));
            }
            if self.ctx.cancel.is_cancelled() {
                return;
            }
            let Some(cause) = cause else {
                continue;
            };
            let operation = if self.removed || self.pod.metadata.deletion_timestamp.is_some() {
                "kill"
            } else if first {
                "create"
            } else if cause == Cause::Update {
                "update"
            } else {
                "sync"
            };
            first = false;
            self.wakeups.clear();
            let started = std::time::Instant::now();
            let outcome = Box::pin(self.sync()).await;
            self.ctx
                .metrics
                .pod_worker_synced(operation, started.elapsed());
            match outcome {
                Next::At(t) => next = t,
                Next::Done => {
                    self.ctx.pods.worker_done(&self.uid, self.generation);
                    return;
                }
            }
        }
    }

    /// Takes in a message and says why it calls for a sync — `None` for an update that only
    /// brings back the status this worker wrote (Kubernetes' kubelet reconciles such a pod
    /// without syncing it).
    fn apply(&mut self, m: Msg) -> Option<Cause> {
        match m {
            Msg::Update(p) => {
                let echo = self.is_own_status_echo(&p);
                self.pod = p;
                (!echo).then_some(Cause::Update)
            }
            Msg::Removed => {
                self.removed = true;
                Some(Cause::Update)
            }
            Msg::Wake => Some(Cause::Other),
            // The worker has seen this state already (it made it, then reported it).
            Msg::Relisted(seen) => {
                (self.reported_runtime.as_ref() != Some(&seen)).then_some(Cause::Other)
            }
        }
    }

    /// Whether `new` differs from the pod this worker has only in a status that holds exactly
    /// the kubelet-owned fields it last wrote (its own status write coming back through the
    /// watch). A change of the spec, labels, annotations or deletion, or of the status by
    /// anyone else (a readiness gate's condition, a phase written by another client), is not.
    fn is_own_status_echo(&self, new: &Pod) -> bool {
        let (old, last_sent) = (&self.pod, self.last_sent.as_ref());
        let Some(last_sent) = last_sent else {
            return false;
        };
        let (om, nm) = (&old.metadata, &new.metadata);
        if old.spec != new.spec
            || om.labels != nm.labels
            || om.annotations != nm.annotations
            || om.deletion_timestamp != nm.deletion_timestamp
            || om.deletion_grace_period_seconds != nm.deletion_grace_period_seconds
        {
            return false;
        }
        let (Some(os), Some(ns)) = (&old.status, &new.status) else {
            return false;
        };
        status::same_not_owned(os, ns) && &status::owned_json(ns) == last_sent
    }

    fn wake_at(&mut self, t: Instant) {
        self.wakeups.push(t);
    }

    fn next_wakeup(&self) -> Instant {
        let jitter = Duration::from_millis(rand::random::<u64>() % 1000);
        let resync = Instant::now() + self.ctx.config.sync_frequency + jitter;
        self.wakeups.iter().copied().fold(resync, Instant::min)
    }

    /// The pod's spec, shared with the pod (not copied: a worker reads it many times a sync).
    fn spec(&self) -> SpecRef {
        SpecRef(self.pod.clone())
    }

    fn restart_policy(&self) -> String {
        self.spec()
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into())
    }

    fn env_context(&self, rt: &PodRuntime) -> env::Context {
        self.env_context_for(rt.latest_sandbox())
    }

    /// What env values and downward API files see, with the pod IPs of sandbox `sb`.
    fn env_context_for(&self, sb: Option<&SandboxInfo>) -> env::Context {
        let node = self.ctx.node();
        let host_network = self.spec().host_network.unwrap_or(false);
        let pod_ips = if host_network {
            node.ips.clone()
        } else {
            sb.filter(|s| !s.ip.is_empty())
                .map(|s| {
                    std::iter::once(s.ip.clone())
                        .chain(s.additional_ips.iter().cloned())
                        .collect()
                })
                .unwrap_or_default()
        };
        env::Context {
            pod_ips,
            host_ips: node.ips.clone(),
            allocatable_cpu_milli: node.cpu_milli,
            allocatable_memory: node.memory,
            allocatable_storage: node.storage,
        }
    }

    async fn refetch(&self) -> Option<PodRuntime> {
        match self.ctx.runtime.pod(&self.uid).await {
            Ok(rt) => Some(rt),
            Err(e) => {
                tracing::warn!(pod = %pod_desc(&self.pod), error = %e, "reading the pod's runtime state");
                None
            }
        }
    }

    async fn sync(&mut self) -> Next {
        let Some(mut rt) = self.refetch().await else {
            return Next::At(Instant::now() + Duration::from_secs(2));
        };
        if self.removed || self.pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(rt).await;
        }
        let api_phase = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let last_phase = self
            .last_status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if matches!(api_phase.as_str(), "Succeeded" | "Failed")
            || matches!(last_phase.as_str(), "Succeeded" | "Failed")
        {
            // Finished: nothing runs any more; keep containers for their logs.
            self.probes.stop();
            if self.stop_all(&rt, Some(0), false).await {
                rt = self.refetch().await.unwrap_or(rt);
            }
            self.report(&rt).await;
            return Next::At(self.next_wakeup());
        }
        let spec = self.spec();
        let host_network = spec.host_network.unwrap_or(false);

        // Volumes (also refreshes configMap/secret/downwardAPI contents).
        let env_ctx = self.env_context(&rt);
        match self.ctx.volumes.setup(&self.pod, &env_ctx).await {
            Ok(v) => {
                self.volumes = v;
                self.volume_error = None;
            }
            Err(e) => {
                let msg = e.to_string();
                if self.volume_error.as_deref() != Some(msg.as_str()) {
                    self.ctx
                        .events
                        .pod(&self.pod, None, EventType::Warning, "FailedMount", &msg);
                }
                self.volume_error = Some(msg);
                if !rt.latest_sandbox().is_some_and(|s| s.ready) {
                    self.report(&rt).await;
                    return Next::At(Instant::now() + Duration::from_secs(2));
                }
            }
        }

        // The sandbox.
        let need_sandbox = match rt.latest_sandbox() {
            None => true,
            Some(s) => {
                !s.ready || s.host_network != host_network || (!host_network && s.ip.is_empty())
            }
        };
        if need_sandbox {
            let old = rt.latest_sandbox().cloned();
            if old.is_some() {
                let app_ran = rt.containers.iter().any(|c| c.kind == Kind::App);
                if self.restart_policy() == "Never" && app_ran {
                    // Its containers ran once; a Never pod is not started again.
                    self.stop_all(&rt, Some(0), true).await;
                    let rt = self.refetch().await.unwrap_or(rt);
                    self.report(&rt).await;
                    return Next::At(self.next_wakeup());
                }
                self.ctx.events.pod(
                    &self.pod,
                    None,
                    EventType::Normal,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                );
                self.stop_all(&rt, Some(0), true).await;
            }
            if let Some((t, _)) = self.sandbox_retry
                && Instant::now() < t
            {
                self.report(&rt).await;
                return Next::At(t);
            }
            let attempt = old.map(|s| s.attempt + 1).unwrap_or(0);
            let (config, warning) = sandbox::sandbox_config(&self.pod, attempt, &self.ctx.sandbox);
            if let Some(w) = warning {
                self.ctx
                    .events
                    .pod(&self.pod, None, EventType::Warning, "MissingClusterDNS", &w);
            }
            let _ = std::fs::create_dir_all(&config.log_directory);
            match self.ctx.cri.run_pod_sandbox(config, "").await {
                Ok(id) => {
                    tracing::debug!(pod = %pod_desc(&self.pod), sandbox = %id, "sandbox created");
                    self.sandbox_retry = None;
                }
                Err(e) => {
                    let msg = format!("Failed to create pod sandbox: {e}");
                    self.ctx.events.pod(
                        &self.pod,
                        None,
                        EventType::Warning,
                        "FailedCreatePodSandBox",
                        &msg,
                    );
                    let delay = self
                        .sandbox_retry
                        .map(|(_, d)| (d * 2).min(Duration::from_secs(60)))
                        .unwrap_or(Duration::from_secs(1));
                    self.sandbox_retry = Some((Instant::now() + delay, delay));
                    self.report(&rt).await;
                    return Next::At(Instant::now() + delay);
                }
            }
            match self.refetch().await {
                Some(r) => rt = r,
                None => return Next::At(Instant::now() + Duration::from_secs(2)),
            }
        }
        let Some(sb) = rt.latest_sandbox().cloned() else {
            return Next::At(Instant::now() + Duration::from_secs(1));
        };
        let pod_dir = self.ctx.volumes.pod_dir(&self.uid);
        let hosts = pod_dir.join("etc-hosts");
        if !host_network {
            let text = sandbox::hosts_file(
                &self.pod,
                &std::iter::once(sb.ip.clone())
                    .chain(sb.additional_ips.iter().cloned())
                    .collect::<Vec<_>>(),
                &self.ctx.config.cluster_domain,
            );
            if std::fs::read_to_string(&hosts).ok().as_deref() != Some(text.as_str()) {
                let _ = std::fs::create_dir_all(&pod_dir);
                if let Err(e) = std::fs::write(&hosts, text) {
                    tracing::warn!(error = %e, "writing the pod's hosts file");
                }
            }
        }
        let pod_ip = if host_network {
            self.ctx.node().ips.first().cloned().unwrap_or_default()
        } else {
            sb.ip.clone()
        };

        // Probes, liveness failures and spec changes.
        self.sync_probes(&rt, &sb.id, &pod_ip);
        let mut killed = false;
        for c in &spec.containers {
            let Some(cur) = rt.latest(&c.name, Kind::App).cloned() else {
                continue;
            };
            if cur.state != State::Running || cur.sandbox_id != sb.id {
                continue;
            }
            let reason = if let Some((kind, _)) = self.probes.failed(c, &cur.id) {
                Some(format!(
                    "Container {} failed {} probe, will be restarted",
                    c.name,
                    match kind {
                        crate::probes::Kind::Startup => "startup",
                        _ => "liveness",
                    }
                ))
            } else if cur.hash != 0 && cur.hash != container::container_hash(c) {
                Some(format!(
                    "Container {} definition changed, will be restarted",
                    c.name
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                self.ctx.events.pod(
                    &self.pod,
                    Some(&field_path(Kind::App, &c.name)),
                    EventType::Normal,
                    "Killing",
                    &reason,
                );
                let grace = spec.termination_grace_period_seconds.unwrap_or(30);
                self.stop_container(&cur, Some(c), grace, &pod_ip, true)
                    .await;
                killed = true;
            }
        }
        if killed {
            match self.refetch().await {
                Some(r) => rt = r,
                None => return Next::At(Instant::now() + Duration::from_secs(2)),
            }
        }

        // Init containers, in order.
        let mut acted = false;
        let mut init_done = true;
        for c in spec.init_containers.iter().flatten() {
            let cur = rt
                .named(&c.name, Kind::Init)
                .find(|x| x.sandbox_id == sb.id)
                .cloned();
            match cur {
                Some(x) if x.state == State::Exited && x.exit_code == 0 => {
                    self.waiting.remove(&c.name);
                    self.read_termination_message(&x, c);
                    continue;
                }
                Some(x) if x.state == State::Running => {
                    init_done = false;
                    break;
                }
                Some(x) if x.state == State::Exited => {
                    self.read_termination_message(&x, c);
                    init_done = false;
                    if self.restart_policy() != "Never" {
                        acted |= self
                            .restart_with_backoff(c, Kind::Init, &x, &sb, &pod_ip)
                            .await;
                    }
                    break;
                }
                Some(x) => {
                    // Created but never started (or unknown): replace it.
                    let _ = self.ctx.cri.remove_container(&x.id).await;
                    self.start(c, Kind::Init, x.restart_count, &sb, &pod_ip)
                        .await;
                    acted = true;
                    init_done = false;
                    break;
                }
                None => {
                    let rc = rt
                        .latest(&c.name, Kind::Init)
                        .map(|l| l.restart_count + 1)
                        .unwrap_or(0);
                    self.start(c, Kind::Init, rc, &sb, &pod_ip).await;
                    acted = true;
                    init_done = false;
                    break;
                }
            }
        }

        // App containers.
        if init_done {
            let policy = self.restart_policy();
            for c in &spec.containers {
                let latest = rt.latest(&c.name, Kind::App).cloned();
                match latest {
                    None => {
                        self.start(c, Kind::App, 0, &sb, &pod_ip).await;
                        acted = true;
                    }
                    Some(x) if x.sandbox_id != sb.id => {
                        if x.state == State::Exited {
                            self.read_termination_message(&x, c);
                        }
                        let ran_ok = x.state == State::Exited && x.exit_code == 0;
                        if policy == "Always" || (policy == "OnFailure" && !ran_ok) {
                            self.start(c, Kind::App, x.restart_count + 1, &sb, &pod_ip)
                                .await;
                            acted = true;
                        }
                    }
                    Some(x) => match x.state {
                        State::Running => {
                            self.waiting.remove(&c.name);
                        }
                        State::Created => {
                            let _ = self.ctx.cri.remove_container(&x.id).await;
                            self.start(c, Kind::App, x.restart_count, &sb, &pod_ip)
                                .await;
                            acted = true;
                        }
                        State::Exited | State::Unknown => {
                            self.read_termination_message(&x, c);
                            let restart =
                                policy == "Always" || (policy == "OnFailure" && x.exit_code != 0);
                            if restart {
                                acted |= self
                                    .restart_with_backoff(c, Kind::App, &x, &sb, &pod_ip)
                                    .await;
                            } else {
                                self.waiting.remove(&c.name);
                            }
                        }
                    },
                }
            }
        }

        let mut settled = true;
        if acted && let Some(r) = self.refetch().await {
            rt = r;
            settled = self.settled(&rt, &sb.id);
        }
        self.sync_probes(&rt, &sb.id, &pod_ip);
        self.gc(&rt).await;
        self.report(&rt).await;
        if !settled {
            // Read back after acting, and a sync would act on it (an init container that
            // finished at once, a container that exited at once): a relist finding this
            // state must still sync the pod.
            self.reported_runtime = None;
        }
        Next::At(self.next_wakeup())
    }

    /// Whether a sync of `rt` (read back after this sync acted) would leave the containers
    /// as they are: every init container up to a running one exited 0, and, once all did,
    /// every app container runs in sandbox `sandbox_id`.
    fn settled(&self, rt: &PodRuntime, sandbox_id: &str) -> bool {
        let spec = self.spec();
        for c in spec.init_containers.iter().flatten() {
            match rt.latest(&c.name, Kind::Init) {
                Some(x) if x.sandbox_id == sandbox_id && x.state == State::Running => {
                    return true;
                }
                Some(x)
                    if x.sandbox_id == sandbox_id
                        && x.state == State::Exited
                        && x.exit_code == 0 => {}
                _ => return false,
            }
        }
        spec.containers.iter().all(|c| {
            rt.latest(&c.name, Kind::App)
                .is_some_and(|x| x.sandbox_id == sandbox_id && x.state == State::Running)
        })
    }

    fn sync_probes(&mut self, rt: &PodRuntime, sandbox_id: &str, pod_ip: &str) {
        let spec = self.spec();
        let running: Vec<Running> = spec
            .containers
            .iter()
            .filter_map(|c| {
                let cur = rt.latest(&c.name, Kind::App)?;
                (cur.state == State::Running && cur.sandbox_id == sandbox_id).then(|| Running {
                    container: c.clone(),
                    id: cur.id.clone(),
                    started: instant_of(cur.started_at),
                })
            })
            .collect();
        self.probes.sync(&self.pod, &running, pod_ip);
    }

    /// Reads the termination message of an exited instance (once).
    fn read_termination_message(&mut self, x: &ContainerInfo, c: &Container) {
        if self.messages.contains_key(&x.id) {
            return;
        }
        let mut msg = x
            .annotations
            .get(labels::TERMINATION_MESSAGE_HOST_PATH)
            .and_then(|p| std::fs::read(p).ok())
            .map(|mut b| {
                b.truncate(4096);
                String::from_utf8_lossy(&b).into_owned()
            })
            .unwrap_or_default();
        let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        if msg.is_empty() && fallback && x.exit_code != 0 && !x.log_path.is_empty() {
            msg = tail_log(&x.log_path, 80, 2048);
        }
        self.messages.insert(x.id.clone(), msg);
    }

    /// Restarts an exited container unless it is backing off; whether it acted.
    async fn restart_with_backoff(
        &mut self,
        c: &Container,
        kind: Kind,
        x: &ContainerInfo,
        sb: &SandboxInfo,
        pod_ip: &str,
    ) -> bool {
        let key = format!("{}_{:x}", c.name, container::container_hash(c));
        let finished = if x.finished_at > 0 {
            instant_of(x.finished_at)
        } else {
            Instant::now()
        };
        if let Some(until) = self.crash.in_backoff_since(&key, finished) {
            let window = self.crash.current(&key).unwrap_or_default();
            let msg = format!(
                "back-off {} restarting failed container={} pod={}",
                human(window),
                c.name,
                pod_desc(&self.pod)
            );
            if self.backoff_events.get(&c.name) != Some(&x.id) {
                self.backoff_events.insert(c.name.clone(), x.id.clone());
                self.ctx.events.pod(
                    &self.pod,
                    Some(&field_path(kind, &c.name)),
                    EventType::Warning,
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {} in pod {}",
                        c.name,
                        pod_desc(&self.pod)
                    ),
                );
            }
            self.waiting
                .insert(c.name.clone(), ("CrashLoopBackOff".into(), msg));
            self.wake_at(until);
            return false;
        }
        self.crash.next(&key);
        self.start(c, kind, x.restart_count + 1, sb, pod_ip).await;
        true
    }

    async fn pull_secrets(&self) -> Vec<Secret> {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let mut out = Vec::new();
        for r in self.spec().image_pull_secrets.iter().flatten() {
            match self.ctx.objects.secret(&ns, &r.name).await {
                Ok(Some(s)) => out.push(s),
                Ok(None) => self.ctx.events.pod(
                    &self.pod,
                    None,
                    EventType::Warning,
                    "FailedToRetrieveImagePullSecret",
                    &format!(
                        "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                        r.name
                    ),
                ),
                Err(e) => tracing::warn!(error = %e, "reading an image pull secret"),
            }
        }
        out
    }

    /// Creates and starts one container instance; on failure records why it waits.
    async fn start(
        &mut self,
        c: &Container,
        kind: Kind,
        restart_count: i32,
        sb: &SandboxInfo,
        pod_ip: &str,
    ) {
        let fp = field_path(kind, &c.name);
        let retry = Instant::now() + Duration::from_secs(2);
        self.waiting
            .insert(c.name.clone(), ("ContainerCreating".into(), String::new()));
        let sandbox_id = sb.id.as_str();
        let (sandbox_config, _) = sandbox::sandbox_config(&self.pod, sb.attempt, &self.ctx.sandbox);
        let secrets = self.pull_secrets().await;
        let image_id = match self
            .ctx
            .images
            .ensure(&self.pod, c, &fp, &secrets, Some(&sandbox_config))
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.waiting
                    .insert(c.name.clone(), (e.reason().into(), e.to_string()));
                self.wake_at(Instant::now() + Duration::from_secs(5));
                return;
            }
        };
        let image = match self.ctx.cri.image_status(&image_id).await {
            Ok(Some(i)) => i,
            _ => rkube_cri::v1::Image {
                id: image_id.clone(),
                ..Default::default()
            },
        };
        let env_ctx = self.env_context_for(Some(sb));
        let envs = match env::resolve(&self.pod, c, self.ctx.objects.as_ref(), &env_ctx).await {
            Ok(e) => e,
            Err(e) => {
                self.config_error(c, &fp, &e.to_string());
                self.wake_at(retry);
                return;
            }
        };
        let command = env::expand_command(c, &envs);
        let pod_dir = self.ctx.volumes.pod_dir(&self.uid);
        let hosts = pod_dir.join("etc-hosts");
        let host_network = self.spec().host_network.unwrap_or(false);
        let params = Params {
            pod: &self.pod,
            container: c,
            kind,
            restart_count,
            image: &image,
            env: &envs,
            command,
            volumes: &self.volumes,
            pod_dir: &pod_dir,
            hosts_file: (!host_network && hosts.exists()).then_some(hosts.as_path()),
            qos: qos::qos_class(&self.pod),
            memory_capacity: self.ctx.node().memory,
            allow_privileged: self.ctx.config.allow_privileged,
            seccomp_root: &self.ctx.config.data_dir.join("seccomp"),
        };
        let config = match container::container_config(&params) {
            Ok((cfg, _)) => cfg,
            Err(e) => {
                self.config_error(c, &fp, &e.to_string());
                self.wake_at(retry);
                return;
            }
        };
        let id = match self
            .ctx
            .cri
            .create_container(sandbox_id, config, sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let msg = e.to_string();
                self.ctx.events.pod(
                    &self.pod,
                    Some(&fp),
                    EventType::Warning,
                    "Failed",
                    &format!("Error: {msg}"),
                );
                self.waiting
                    .insert(c.name.clone(), ("CreateContainerError".into(), msg));
                self.wake_at(retry);
                return;
            }
        };
        self.ctx.events.pod(
            &self.pod,
            Some(&fp),
            EventType::Normal,
            "Created",
            &format!("Created container: {}", c.name),
        );
        if let Err(e) = self.ctx.cri.start_container(&id).await {
            let msg = e.to_string();
            self.ctx.events.pod(
                &self.pod,
                Some(&fp),
                EventType::Warning,
                "Failed",
                &format!("Error: failed to start container \"{}\": {msg}", c.name),
            );
            self.waiting
                .insert(c.name.clone(), ("RunContainerError".into(), msg));
            self.wake_at(retry);
            return;
        }
        self.ctx.events.pod(
            &self.pod,
            Some(&fp),
            EventType::Normal,
            "Started",
            &format!("Started container {}", c.name),
        );
        self.waiting.remove(&c.name);
        if let Some(post) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let grace = self.spec().termination_grace_period_seconds.unwrap_or(30);
            if let Err(msg) = hooks::run(
                &self.ctx.cri,
                post,
                Some(c),
                &id,
                pod_ip,
                Duration::from_secs(grace.max(2) as u64),
            )
            .await
            {
                self.ctx.events.pod(
                    &self.pod,
                    Some(&fp),
                    EventType::Warning,
                    "FailedPostStartHook",
                    &format!("PostStartHook failed: {msg}"),
                );
                let _ = self.ctx.cri.stop_container(&id, grace).await;
            }
        }
    }

    fn config_error(&mut self, c: &Container, fp: &str, msg: &str) {
        let changed = self
            .waiting
            .get(&c.name)
            .is_none_or(|(r, m)| r != "CreateContainerConfigError" || m != msg);
        if changed {
            self.ctx.events.pod(
                &self.pod,
                Some(fp),
                EventType::Warning,
                "Failed",
                &format!("Error: {msg}"),
            );
        }
        self.waiting.insert(
            c.name.clone(),
            ("CreateContainerConfigError".into(), msg.to_string()),
        );
    }

    /// Stops one container: preStop hook first (when asked), then StopContainer with what is
    /// left of the grace period.
    async fn stop_container(
        &self,
        x: &ContainerInfo,
        spec: Option<&Container>,
        grace: i64,
        pod_ip: &str,
        hooks_too: bool,
    ) {
        stop_one(&self.ctx, &self.pod, x, spec, grace, pod_ip, hooks_too).await;
    }

    /// Stops every running container (and the sandboxes when `sandboxes`); whether anything
    /// was running.
    async fn stop_all(&self, rt: &PodRuntime, grace: Option<i64>, sandboxes: bool) -> bool {
        let spec = self.spec();
        let grace = grace.unwrap_or_else(|| spec.termination_grace_period_seconds.unwrap_or(30));
        let running: Vec<&ContainerInfo> = rt
            .containers
            .iter()
            .filter(|c| matches!(c.state, State::Running | State::Created | State::Unknown))
            .collect();
        let any = !running.is_empty() || (sandboxes && rt.sandboxes.iter().any(|s| s.ready));
        let pod_ip = rt
            .latest_sandbox()
            .map(|s| s.ip.clone())
            .unwrap_or_default();
        let futs = running.into_iter().map(|x| {
            let c = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| c.name == x.name);
            stop_one(&self.ctx, &self.pod, x, c, grace, &pod_ip, grace > 0)
        });
        futures::future::join_all(futs).await;
        if sandboxes {
            for s in rt.sandboxes.iter().filter(|s| s.ready) {
                if let Err(e) = self.ctx.cri.stop_pod_sandbox(&s.id).await {
                    tracing::warn!(error = %e, sandbox = %s.id, "stopping a sandbox");
                }
            }
        }
        any
    }

    /// Removes instances no longer needed: all but the two newest per container, and dead
    /// sandboxes other than the newest once they hold no containers.
    async fn gc(&self, rt: &PodRuntime) {
        let mut seen: HashMap<(String, bool), usize> = HashMap::new();
        let mut removed: Vec<String> = Vec::new();
        for c in &rt.containers {
            let n = seen
                .entry((c.name.clone(), c.kind == Kind::Init))
                .or_default();
            *n += 1;
            if *n > 2 && c.state == State::Exited {
                if let Err(e) = self.ctx.cri.remove_container(&c.id).await {
                    tracing::debug!(error = %e, "removing an old container");
                } else {
                    removed.push(c.id.clone());
                }
            }
        }
        let latest = rt.latest_sandbox().map(|s| s.id.clone());
        for s in rt.sandboxes.iter().skip(1) {
            if Some(&s.id) == latest.as_ref() || s.ready {
                continue;
            }
            let holds = rt
                .containers
                .iter()
                .any(|c| c.sandbox_id == s.id && !removed.contains(&c.id));
            if !holds {
                let _ = self.ctx.cri.remove_pod_sandbox(&s.id).await;
            }
        }
    }

    /// Computes the status and writes it when the kubelet's part changed.
    async fn report(&mut self, rt: &PodRuntime) {
        self.reported_runtime = Some(rt.fingerprint());
        let node = self.ctx.node();
        // The status to compute from: the API's, with our last computed status's transition
        // times and phase the informer may not have delivered yet; conditions of others come
        // from the API. (The pod itself is not copied for it.)
        let merged = self.last_status.as_ref().map(|last| {
            let mut s = self.pod.status.clone().unwrap_or_default();
            let others: Vec<_> = s
                .conditions
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !status::OWNED_CONDITIONS.contains(&c.type_.as_str()))
                .collect();
            let mut conds: Vec<_> = last
                .conditions
                .iter()
                .flatten()
                .filter(|c| status::OWNED_CONDITIONS.contains(&c.type_.as_str()))
                .cloned()
                .collect();
            conds.extend(others);
            s.conditions = Some(conds);
            s.start_time = last.start_time.clone().or(s.start_time);
            if matches!(last.phase.as_deref(), Some("Succeeded" | "Failed")) {
                s.phase = last.phase.clone();
                s.reason = last.reason.clone();
                s.message = last.message.clone();
            }
            s
        });
        let old = merged.as_ref().or(self.pod.status.as_ref());
        let probes = (!self.terminating).then_some(&self.probes);
        let mut waiting = self.waiting.clone();
        if let Some(err) = &self.volume_error {
            for c in self.spec().containers.iter() {
                if rt.latest(&c.name, Kind::App).is_none() {
                    waiting.insert(c.name.clone(), ("ContainerCreating".into(), err.clone()));
                }
            }
        }
        let new = status::generate(
            &self.pod,
            old,
            rt,
            &status::Inputs {
                probes,
                waiting: &waiting,
                messages: &self.messages,
                host_ips: &node.ips,
                runtime_name: &self.ctx.runtime_name,
                forced_phase: None,
                terminating: self.terminating,
            },
        );
        self.last_status = Some(new.clone());
        if !self.start_recorded
            && new.phase.as_deref() == Some("Running")
            && new
                .container_statuses
                .iter()
                .flatten()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        {
            self.start_recorded = true;
            self.ctx.metrics.pod_started(self.seen_at.elapsed());
        }
        let owned = status::owned_json(&new);
        if self.last_sent.as_ref() == Some(&owned) {
            return;
        }
        if self.last_sent.is_none()
            && let Some(api) = &self.pod.status
            && status::owned_json(api) == owned
        {
            self.last_sent = Some(owned);
            return;
        }
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let patch = Patch::Merge(status::status_patch(&self.uid, &new));
        match patch_pod_status(&self.ctx.client, &ns, &name, &patch).await {
            Ok(_) => self.last_sent = Some(owned),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                tracing::debug!(pod = %pod_desc(&self.pod), "pod gone while writing its status");
            }
            Err(e) => {
                tracing::warn!(pod = %pod_desc(&self.pod), error = %e, "writing pod status");
                self.last_sent = None;
                self.wake_at(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    /// Stops everything, reports the final status, deletes the pod object and cleans up.
    async fn terminate(&mut self, rt: PodRuntime) -> Next {
        self.terminating = true;
        let spec = self.spec();
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .unwrap_or_else(|| spec.termination_grace_period_seconds.unwrap_or(30))
            .max(0);
        self.probes.stop();
        let was_running = self.stop_all(&rt, Some(grace), true).await;
        let rt = if was_running {
            match self.refetch().await {
                Some(r) => r,
                None => return Next::At(Instant::now() + Duration::from_secs(2)),
            }
        } else {
            rt
        };
        if !self.removed && (was_running || self.last_sent.is_none()) {
            self.report(&rt).await;
        }
        // Everything goes before the pod object does: containers, sandboxes, volumes, logs.
        cleanup(&self.ctx, &self.uid, &rt, Some(&self.pod)).await;
        if !self.removed {
            let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
            let name = self.pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => {
                    tracing::warn!(pod = %pod_desc(&self.pod), error = %e, "deleting the pod object");
                    return Next::At(Instant::now() + Duration::from_secs(2));
                }
            }
        }
        Next::Done
    }
}

/// Patches a pod's `status` subresource, leaving the pod the API server answers with
/// unparsed: a worker has no use for it (its watch delivers the pod), and decoding a whole
/// pod for every status write was a measurable share of a node's work.
async fn patch_pod_status(
    client: &kube::Client,
    ns: &str,
    name: &str,
    patch: &Patch<serde_json::Value>,
) -> Result<(), kube::Error> {
    use kube::Resource as _;
    let req = kube::core::Request::new(Pod::url_path(&(), Some(ns)))
        .patch_subresource("status", name, &PatchParams::default(), patch)
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(req).await.map(drop)
}

/// Stops one container instance.
pub async fn stop_one(
    ctx: &Context,
    pod: &Pod,
    x: &ContainerInfo,
    spec: Option<&Container>,
    grace: i64,
    pod_ip: &str,
    hooks_too: bool,
) {
    let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
    let fp = field_path(x.kind, &x.name);
    let pre_stop = spec
        .and_then(|c| c.lifecycle.as_ref())
        .and_then(|l| l.pre_stop.clone())
        .or_else(|| {
            x.annotations
                .get(labels::PRE_STOP)
                .and_then(|j| serde_json::from_str(j).ok())
        });
    if hooks_too
        && x.state == State::Running
        && let Some(h) = pre_stop
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, hooks::run(&ctx.cri, &h, spec, &x.id, pod_ip, left)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => ctx.events.pod(
                pod,
                Some(&fp),
                EventType::Warning,
                "FailedPreStopHook",
                &format!("PreStopHook failed: {msg}"),
            ),
            Err(_) => ctx.events.pod(
                pod,
                Some(&fp),
                EventType::Warning,
                "FailedPreStopHook",
                "PreStopHook did not finish within the grace period",
            ),
        }
    }
    if x.state == State::Running {
        ctx.events.pod(
            pod,
            Some(&fp),
            EventType::Normal,
            "Killing",
            &format!("Stopping container {}", x.name),
        );
    }
    // Kubernetes gives a container at least 2 seconds after SIGTERM unless the grace is 0.
    let left = deadline.saturating_duration_since(Instant::now()).as_secs() as i64;
    let timeout = if grace == 0 { 0 } else { left.max(2) };
    if let Err(e) = ctx.cri.stop_container(&x.id, timeout).await
        && !e.is_not_found()
    {
        tracing::warn!(container = %x.id, error = %e, "stopping a container");
    }
}

/// Reads the last lines of a CRI log file as plain text (for FallbackToLogsOnError).
fn tail_log(path: &str, lines: usize, max: usize) -> String {
    let Ok(text) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<String> = text
        .lines()
        .filter_map(|l| crate::cri::logs::parse_line(l.as_bytes()).ok())
        .map(|l| String::from_utf8_lossy(&l.content).into_owned())
        .collect();
    let start = all.len().saturating_sub(lines);
    let mut out = all[start..].join("\n");
    if out.len() > max {
        let mut cut = out.len() - max;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = out[cut..].to_string();
    }
    out
}

/// Removes every runtime object, volume, log directory and cgroup of a pod.
pub async fn cleanup(ctx: &Context, uid: &str, rt: &PodRuntime, pod: Option<&Pod>) {
    for c in &rt.containers {
        if let Err(e) = ctx.cri.remove_container(&c.id).await
            && !e.is_not_found()
        {
            tracing::warn!(container = %c.id, error = %e, "removing a container");
        }
    }
    for s in &rt.sandboxes {
        if let Err(e) = ctx.cri.stop_pod_sandbox(&s.id).await
            && !e.is_not_found()
        {
            tracing::warn!(sandbox = %s.id, error = %e, "stopping a sandbox");
        }
        if let Err(e) = ctx.cri.remove_pod_sandbox(&s.id).await
            && !e.is_not_found()
        {
            tracing::warn!(sandbox = %s.id, error = %e, "removing a sandbox");
        }
    }
    if let Err(e) = ctx.volumes.teardown(uid) {
        tracing::warn!(pod = uid, error = %e, "removing the pod's volumes");
    }
    let logs = &ctx.sandbox.logs_root;
    if let Ok(rd) = std::fs::read_dir(logs) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(&format!("_{uid}")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if !ctx.config.hollow() {
        crate::cgroups::remove_pod(&ctx.config.cgroup_root, uid);
    }
    let _ = pod;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_secs(300)), "5m0s");
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(
            &p,
            "2024-01-01T00:00:00Z stdout F a\n2024-01-01T00:00:01Z stderr F boom\n",
        )
        .unwrap();
        assert_eq!(tail_log(p.to_str().unwrap(), 80, 2048), "a\nboom");
        assert_eq!(tail_log(p.to_str().unwrap(), 1, 2048), "boom");
        assert_eq!(tail_log(p.to_str().unwrap(), 80, 3), "oom");
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        let i = instant_of(now - 5_000_000_000);
        let age = Instant::now() - i;
        assert!(age >= Duration::from_secs(5) && age < Duration::from_secs(6));
    }
}

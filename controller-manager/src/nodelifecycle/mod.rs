//! Node lifecycle and taint-based eviction (Kubernetes' node-lifecycle and
//! taint-eviction controllers), run as a periodic loop like Kubernetes' `monitorNodeHealth`.
//!
//! Every `--node-monitor-period` (and whenever a node changes) each node's heartbeat — its
//! `kube-node-lease` Lease renewals and the Ready condition's `lastHeartbeatTime` — is
//! compared with when this controller last saw it move. A node silent for longer than
//! `--node-monitor-grace-period` gets its conditions set to Unknown ("Kubelet stopped posting
//! node status."), its pods marked not ready, and the `node.kubernetes.io/unreachable`
//! NoSchedule and NoExecute taints (NoExecute additions are rate limited per zone and stop when
//! every zone is fully disrupted). Pods on nodes with NoExecute taints they do not tolerate are
//! evicted (deleted, with a `DisruptionTarget` condition) — at once, or when their
//! `tolerationSeconds` run out. When the node reports again the taints go away.

pub mod taints;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Api, Client};

use crate::Shared;
use crate::clock::{Clock, plus_secs};
use crate::events::Recorder;
use crate::informer::ref_in;
use crate::podutil::{is_ready, node_name};
use crate::runner::{is_conflict, is_not_found};
use taints::{Eviction, ZoneState};

/// The node lifecycle controller's name.
pub const NAME: &str = "node-lifecycle-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "node-controller";
/// The taint eviction controller's name.
pub const EVICTION_NAME: &str = "taint-eviction-controller";
/// Nodes beyond which a partially disrupted zone still evicts, slowly.
const LARGE_CLUSTER: usize = 50;
/// The eviction rate of large partially disrupted zones.
const SECONDARY_RATE: f64 = 0.01;

/// Settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Heartbeat grace period.
    pub grace: Duration,
    /// Grace period of nodes that never reported.
    pub startup_grace: Duration,
    /// NoExecute taints per second per healthy zone.
    pub eviction_rate: f64,
    /// Least time before pods without a matching toleration are evicted.
    pub pod_eviction_timeout: Duration,
    /// Run the node health part.
    pub lifecycle: bool,
    /// Run the eviction part.
    pub eviction: bool,
}

#[derive(Debug)]
struct Health {
    probe: jiff::Timestamp,
    heartbeat: Option<jiff::Timestamp>,
    lease: Option<jiff::Timestamp>,
}

struct Bucket {
    tokens: f64,
    at: jiff::Timestamp,
}

#[derive(Default)]
struct State {
    health: HashMap<String, Health>,
    buckets: HashMap<String, Bucket>,
    eviction_start: HashMap<String, jiff::Timestamp>,
    /// Whether every zone was fully disrupted at the last pass (to log only changes).
    all_disrupted: bool,
}

/// What the loop needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// Shared node cache.
    pub nodes: Store<Node>,
    /// Shared cache of kube-node-lease Leases.
    pub leases: Store<Lease>,
    /// Shared pod cache.
    pub pods: Store<Pod>,
    /// Events from the node controller.
    pub node_events: Recorder,
    /// Events from the taint eviction controller.
    pub eviction_events: Recorder,
    /// Clock.
    pub clock: Clock,
    /// Settings.
    pub settings: Settings,
    state: Mutex<State>,
}

/// Why a pass could not finish.
#[derive(Debug, thiserror::Error)]
#[error("{what} {object}: {source}")]
pub struct Error {
    what: &'static str,
    object: String,
    #[source]
    source: kube::Error,
}

fn since(a: jiff::Timestamp, b: jiff::Timestamp) -> Duration {
    Duration::try_from(a.duration_since(b)).unwrap_or(Duration::ZERO)
}

impl Ctx {
    /// A context over the given caches.
    pub fn new(
        client: Client,
        nodes: Store<Node>,
        leases: Store<Lease>,
        pods: Store<Pod>,
        recorder: &Recorder,
        clock: Clock,
        settings: Settings,
    ) -> Self {
        Self {
            client,
            nodes,
            leases,
            pods,
            node_events: recorder.with_component("node-controller"),
            eviction_events: recorder.with_component(EVICTION_NAME),
            clock,
            settings,
            state: Mutex::default(),
        }
    }

    /// Whether the node has been silent past its grace period (updating what was observed).
    fn silent(&self, node: &Node, now: jiff::Timestamp) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ready = taints::condition(node, "Ready");
        let heartbeat = ready
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let lease = self
            .leases
            .get(&ref_in(Some("kube-node-lease"), &name))
            .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
        let mut st = self.state.lock().expect("state");
        let h = st.health.entry(name).or_insert(Health {
            probe: now,
            heartbeat,
            lease,
        });
        if h.heartbeat != heartbeat {
            h.heartbeat = heartbeat;
            h.probe = now;
        }
        if h.lease != lease {
            h.lease = lease;
            h.probe = now;
        }
        let grace = if ready.is_none() {
            self.settings.startup_grace
        } else {
            self.settings.grace
        };
        since(now, h.probe) > grace
    }

    /// Sets the node's conditions Unknown; returns the node as written.
    async fn mark_unknown(&self, node: &Node, now: jiff::Timestamp) -> Result<Option<Node>, Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut next = node.clone();
        let status = next.status.get_or_insert_with(Default::default);
        let conds = status.conditions.get_or_insert_with(Vec::new);
        let t = Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now));
        let mut changed = false;
        if !conds.iter().any(|c| c.type_ == "Ready") {
            conds.push(NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: Some(t.clone()),
                last_transition_time: Some(t.clone()),
            });
            changed = true;
        }
        for c in conds.iter_mut() {
            if !matches!(
                c.type_.as_str(),
                "Ready" | "MemoryPressure" | "DiskPressure" | "PIDPressure"
            ) {
                continue;
            }
            if c.status != "Unknown" {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(t.clone());
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        let api: Api<Node> = Api::all(self.client.clone());
        match api
            .replace_status(&name, &PostParams::default(), &next)
            .await
        {
            Ok(n) => {
                tracing::info!(node = %name, "node stopped reporting; marked Unknown");
                self.node_events.normal(
                    &n,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
                Ok(Some(n))
            }
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(None),
            Err(source) => Err(Error {
                what: "marking unknown",
                object: name,
                source,
            }),
        }
    }

    /// Marks the pods of a node not ready (`MarkPodsNotReady`).
    async fn mark_pods_not_ready(&self, node: &str) {
        let now = Time(
            jiff::Timestamp::from_second(self.clock.now().as_second()).unwrap_or(self.clock.now()),
        );
        for pod in self
            .pods
            .state()
            .into_iter()
            .filter(|p| node_name(p) == node && is_ready(p))
        {
            let mut next = (*pod).clone();
            if let Some(conds) = next.status.as_mut().and_then(|s| s.conditions.as_mut()) {
                for c in conds.iter_mut().filter(|c| c.type_ == "Ready") {
                    c.status = "False".into();
                    c.last_transition_time = Some(now.clone());
                }
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let name = pod.metadata.name.clone().unwrap_or_default();
            match api
                .replace_status(&name, &PostParams::default(), &next)
                .await
            {
                Ok(p) => self
                    .node_events
                    .warning(&p, "NodeNotReady", "Node is not ready".into()),
                Err(e) => tracing::debug!(pod = %name, error = %e, "cannot mark pod not ready"),
            }
        }
    }

    /// Takes a token of a zone's NoExecute rate limiter.
    fn take_token(&self, zone: &str, rate: f64, now: jiff::Timestamp) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let mut st = self.state.lock().expect("state");
        let b = st.buckets.entry(zone.to_string()).or_insert(Bucket {
            tokens: 1.0,
            at: now,
        });
        b.tokens = (b.tokens + since(now, b.at).as_secs_f64() * rate).min(1.0);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// One pass of node health and tainting (`monitorNodeHealth`).
    pub async fn monitor(&self) -> Result<(), Error> {
        let now = self.clock.now();
        // The cached nodes, shared: a pass runs after every burst of node updates, and a
        // node is copied only when it is written.
        let mut nodes: Vec<Arc<Node>> = self.nodes.state();
        for node in nodes.iter_mut() {
            if self.silent(node, now)
                && let Some(updated) = self.mark_unknown(node, now).await?
            {
                self.mark_pods_not_ready(updated.metadata.name.as_deref().unwrap_or_default())
                    .await;
                *node = Arc::new(updated);
            }
        }
        // Zone states decide whether NoExecute taints may be added.
        let mut zones: HashMap<String, Vec<bool>> = HashMap::new();
        for n in &nodes {
            zones
                .entry(taints::zone_of(n))
                .or_default()
                .push(taints::ready_status(n) == "True");
        }
        let states: HashMap<String, (ZoneState, usize)> = zones
            .iter()
            .map(|(z, r)| (z.clone(), (taints::zone_state(r), r.len())))
            .collect();
        let all_disrupted = !states.is_empty()
            && states
                .values()
                .all(|(s, _)| *s == ZoneState::FullDisruption);
        let was_disrupted = std::mem::replace(
            &mut self.state.lock().expect("state").all_disrupted,
            all_disrupted,
        );
        if all_disrupted && !was_disrupted {
            tracing::warn!("every zone is fully disrupted: not tainting nodes NoExecute");
        } else if was_disrupted && !all_disrupted {
            tracing::info!("a zone is healthy again: tainting unreachable nodes NoExecute");
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let stamp = Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now));
        for node in &nodes {
            let zone = taints::zone_of(node);
            let (state, size) = states.get(&zone).copied().unwrap_or((ZoneState::Normal, 0));
            let rate = match state {
                ZoneState::Normal | ZoneState::FullDisruption => self.settings.eviction_rate,
                ZoneState::PartialDisruption if size > LARGE_CLUSTER => SECONDARY_RATE,
                ZoneState::PartialDisruption => 0.0,
            };
            let want_ne = if all_disrupted {
                None
            } else {
                taints::no_execute_key(node)
            };
            let has_ne = |key: &str| {
                node.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| t.iter().any(|t| t.key == key && t.effect == "NoExecute"))
            };
            let needs_new_ne = want_ne.is_some_and(|k| !has_ne(k));
            let may_add = needs_new_ne && self.take_token(&zone, rate, now);
            let Some(next) = taints::reconcile_taints(node, want_ne, may_add, stamp.clone()) else {
                continue;
            };
            let name = node.metadata.name.clone().unwrap_or_default();
            let mut updated = Node::clone(node);
            updated.spec.get_or_insert_with(Default::default).taints =
                (!next.is_empty()).then_some(next);
            match api.replace(&name, &PostParams::default(), &updated).await {
                Ok(_) => {
                    tracing::info!(node = %name, ready = taints::ready_status(node), "node taints updated")
                }
                Err(e) if is_not_found(&e) || is_conflict(&e) => {}
                Err(source) => {
                    return Err(Error {
                        what: "tainting",
                        object: name,
                        source,
                    });
                }
            }
        }
        // Forget nodes that are gone.
        let names: std::collections::HashSet<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        self.state
            .lock()
            .expect("state")
            .health
            .retain(|n, _| names.contains(n));
        Ok(())
    }

    /// One pass of taint-based eviction; returns when the next eviction is due.
    pub async fn evict(&self) -> Result<Option<jiff::Timestamp>, Error> {
        let now = self.clock.now();
        let mut next: Option<jiff::Timestamp> = None;
        let mut live = std::collections::HashSet::new();
        // The NoExecute taints of the nodes that have any: a pass runs after every burst of
        // node updates, and on a healthy cluster it has no pod to look at.
        let tainted: HashMap<String, Vec<Taint>> = self
            .nodes
            .state()
            .iter()
            .filter_map(|n| {
                let no_execute: Vec<Taint> = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_deref())
                    .unwrap_or_default()
                    .iter()
                    .filter(|t| t.effect == "NoExecute")
                    .cloned()
                    .collect();
                let name = n.metadata.name.clone()?;
                (!no_execute.is_empty()).then_some((name, no_execute))
            })
            .collect();
        if !tainted.is_empty() {
            for pod in self.pods.state() {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let Some(no_execute) = tainted.get(node_name(&pod)) else {
                    continue;
                };
                let tolerations = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.tolerations.as_deref())
                    .unwrap_or_default();
                let wait = match taints::eviction(tolerations, no_execute) {
                    Eviction::Never => continue,
                    Eviction::Untolerated => self.settings.pod_eviction_timeout.as_secs() as i64,
                    Eviction::After(s) => s,
                };
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                live.insert(uid.clone());
                let start = *self
                    .state
                    .lock()
                    .expect("state")
                    .eviction_start
                    .entry(uid)
                    .or_insert(now);
                let due = plus_secs(start, wait);
                if due > now {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    continue;
                }
                self.evict_pod(&pod).await?;
            }
        }
        self.state
            .lock()
            .expect("state")
            .eviction_start
            .retain(|u, _| live.contains(u));
        Ok(next)
    }

    async fn evict_pod(&self, pod: &Pod) -> Result<(), Error> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        self.eviction_events.normal(
            pod,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{name}"),
        );
        let mut with_condition = pod.clone();
        let conds = with_condition
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new);
        if !conds.iter().any(|c| c.type_ == "DisruptionTarget") {
            conds.push(PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("DeletionByTaintManager".into()),
                message: Some("Taint manager: deleting due to NoExecute taint".into()),
                last_transition_time: Some(self.clock.time()),
                ..Default::default()
            });
            if let Err(e) = api
                .replace_status(&name, &PostParams::default(), &with_condition)
                .await
            {
                tracing::debug!(pod = %name, error = %e, "cannot add the DisruptionTarget condition");
            }
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{name}"), node = node_name(pod), "evicted from a tainted node");
                Ok(())
            }
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
            Err(source) => Err(Error {
                what: "evicting",
                object: format!("{ns}/{name}"),
                source,
            }),
        }
    }
}

/// Builds the loop and returns the future that runs it.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let c = &shared.config;
    let nodes = shared.informers.all::<Node>();
    let leases = shared.informers.namespaced::<Lease>("kube-node-lease");
    let pods = shared.informers.all::<Pod>();
    let settings = Settings {
        grace: c.node_monitor_grace_period,
        startup_grace: c.node_startup_grace_period,
        eviction_rate: c.node_eviction_rate,
        pod_eviction_timeout: c.pod_eviction_timeout,
        lifecycle: c.enabled("node-lifecycle"),
        eviction: c.enabled("taint-eviction"),
    };
    let ctx = Arc::new(Ctx::new(
        shared.client_for(ACCOUNT),
        nodes.store(),
        leases.store(),
        pods.store(),
        &shared.recorder,
        Clock::new(),
        settings,
    ));
    let period = c.node_monitor_period;
    let metrics = shared.metrics.clone();
    let mut wake = nodes.subscribe().map(|_| ()).boxed();
    let shutdown = shared.shutdown();
    Box::pin(async move {
        loop {
            let started = std::time::Instant::now();
            let mut ok = true;
            if ctx.settings.lifecycle
                && let Err(e) = ctx.monitor().await
            {
                tracing::warn!(error = %e, "node monitor pass failed");
                ok = false;
            }
            let mut due = None;
            if ctx.settings.eviction {
                match ctx.evict().await {
                    Ok(d) => due = d,
                    Err(e) => {
                        tracing::warn!(error = %e, "eviction pass failed");
                        ok = false;
                    }
                }
            }
            metrics.observe(NAME, started.elapsed(), ok);
            let mut sleep = period;
            if let Some(d) = due {
                sleep = sleep.min(ctx.clock.until(d) + Duration::from_millis(10));
            }
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                Some(()) = wake.next() => {
                    // Let a burst of node updates settle.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                () = shutdown.clone() => break,
            }
        }
    })
}

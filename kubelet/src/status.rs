//! The pod status the kubelet reports, computed from the runtime state, the probe results and
//! the reasons the pod worker recorded: phase, conditions (PodScheduled,
//! PodReadyToStartContainers, Initialized, ContainersReady, Ready), host and pod IPs, start time,
//! QoS class and the init and app container statuses (waiting / running / terminated with
//! reasons, exit codes and messages, last state, restart count, ready, started, image ID,
//! container ID). Also the merge patch that writes only the kubelet's fields, and only when
//! they changed.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::probes::PodProbes;
use crate::qos;
use crate::runtime::{ContainerInfo, Kind, PodRuntime, State};
use crate::util::{nanos_time, now_time};

/// Inputs besides the pod and its runtime state.
pub struct Inputs<'a> {
    /// Probe results.
    pub probes: Option<&'a PodProbes>,
    /// Why containers without a running instance wait (`ErrImagePull`, `CrashLoopBackOff`,
    /// `CreateContainerConfigError`, …), by name.
    pub waiting: &'a HashMap<String, (String, String)>,
    /// Termination messages by container id.
    pub messages: &'a HashMap<String, String>,
    /// The node's IPs.
    pub host_ips: &'a [String],
    /// The runtime name for container IDs (`containerd`).
    pub runtime_name: &'a str,
    /// A phase forced by the kubelet (terminal after deletion, or a rejection).
    pub forced_phase: Option<(&'a str, &'a str, &'a str)>,
    /// Set when the pod's containers were all stopped because it is being deleted.
    pub terminating: bool,
}

fn terminated(
    c: &ContainerInfo,
    runtime: &str,
    messages: &HashMap<String, String>,
) -> ContainerState {
    let reason = if !c.reason.is_empty() {
        c.reason.clone()
    } else if c.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    let message = messages
        .get(&c.id)
        .cloned()
        .filter(|m| !m.is_empty())
        .or_else(|| Some(c.message.clone()).filter(|m| !m.is_empty()));
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: c.exit_code,
            reason: Some(reason),
            message,
            started_at: nanos_time(c.started_at),
            finished_at: nanos_time(c.finished_at),
            container_id: Some(format!("{runtime}://{}", c.id)),
            signal: None,
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: Some(message.to_string()).filter(|m| !m.is_empty()),
        }),
        ..Default::default()
    }
}

/// The status of one spec container.
fn container_status(
    c: &Container,
    kind: Kind,
    rt: &PodRuntime,
    inp: &Inputs<'_>,
    default_waiting: &str,
) -> ContainerStatus {
    let instances: Vec<&ContainerInfo> = rt.named(&c.name, kind).collect();
    let current = instances.first().copied();
    let previous = instances.get(1).copied();
    let recorded = inp.waiting.get(&c.name);
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        restart_count: 0,
        ready: false,
        started: Some(false),
        ..Default::default()
    };
    let Some(cur) = current else {
        let (r, m) = recorded
            .map(|(r, m)| (r.as_str(), m.as_str()))
            .unwrap_or((default_waiting, ""));
        st.state = Some(waiting(r, m));
        return st;
    };
    st.restart_count = cur.restart_count;
    st.image_id = cur.image_ref.clone();
    st.container_id = Some(format!("{}://{}", inp.runtime_name, cur.id));
    match cur.state {
        State::Running => {
            st.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: nanos_time(cur.started_at),
                }),
                ..Default::default()
            });
            let probes_say = |f: &dyn Fn(&PodProbes) -> bool, default: bool| {
                inp.probes.map(f).unwrap_or(default)
            };
            st.started = Some(probes_say(&|p| p.started(c, &cur.id), true));
            st.ready = kind == Kind::App
                && probes_say(&|p| p.ready(c, &cur.id), c.readiness_probe.is_none());
            if let Some(prev) = previous
                && prev.state == State::Exited
            {
                st.last_state = Some(terminated(prev, inp.runtime_name, inp.messages));
            }
        }
        State::Created => {
            st.state = Some(waiting(
                recorded
                    .map(|r| r.0.as_str())
                    .unwrap_or("ContainerCreating"),
                recorded.map(|r| r.1.as_str()).unwrap_or(""),
            ));
        }
        State::Exited | State::Unknown => {
            let term = if cur.state == State::Unknown {
                ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 137,
                        reason: Some("ContainerStatusUnknown".into()),
                        message: Some(
                            "The container could not be located when the pod was terminated".into(),
                        ),
                        container_id: Some(format!("{}://{}", inp.runtime_name, cur.id)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            } else {
                terminated(cur, inp.runtime_name, inp.messages)
            };
            match recorded {
                // Waiting to be restarted (back-off, or a failed restart attempt).
                Some((r, m)) => {
                    st.state = Some(waiting(r, m));
                    st.last_state = Some(term);
                }
                None => {
                    st.state = Some(term);
                    if let Some(prev) = previous
                        && prev.state == State::Exited
                    {
                        st.last_state = Some(terminated(prev, inp.runtime_name, inp.messages));
                    }
                }
            }
        }
    }
    if st.last_state.is_none() {
        st.last_state = Some(ContainerState::default());
    }
    st
}

fn condition(
    old: Option<&PodStatus>,
    type_: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let last_transition_time = match previous {
        Some(p) if p.status == status => {
            p.last_transition_time.clone().or_else(|| Some(now_time()))
        }
        _ => Some(now_time()),
    };
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason,
        message,
        last_transition_time,
        last_probe_time: None,
        observed_generation: None,
    }
}

/// Condition types the kubelet owns.
pub const OWNED_CONDITIONS: &[&str] = &[
    "PodScheduled",
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// Whether the pod's init containers have all completed in the current sandbox.
pub fn initialized(pod: &Pod, rt: &PodRuntime) -> (bool, Vec<String>) {
    let spec = crate::pods::spec_of(pod);
    let sandbox = rt.latest_sandbox().map(|s| s.id.clone());
    let mut pending = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let done = rt
            .named(&c.name, Kind::Init)
            .find(|i| Some(&i.sandbox_id) == sandbox.as_ref())
            .is_some_and(|i| i.state == State::Exited && i.exit_code == 0);
        if !done {
            pending.push(c.name.clone());
        }
    }
    (pending.is_empty(), pending)
}

/// Whether an init container failed in a way that fails the pod (restartPolicy Never).
fn init_failed(pod: &Pod, rt: &PodRuntime) -> bool {
    let spec = crate::pods::spec_of(pod);
    if spec.restart_policy.as_deref() != Some("Never") {
        return false;
    }
    spec.init_containers.iter().flatten().any(|c| {
        rt.latest(&c.name, Kind::Init)
            .is_some_and(|i| i.state == State::Exited && i.exit_code != 0)
    })
}

/// The phase from container statuses (Kubernetes' `getPhase`).
pub fn phase(
    pod: &Pod,
    rt: &PodRuntime,
    statuses: &[ContainerStatus],
    init_done: bool,
) -> &'static str {
    if init_failed(pod, rt) {
        return "Failed";
    }
    if !init_done {
        return "Pending";
    }
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let (mut running, mut waiting_n, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if s.last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .is_some()
            {
                stopped += 1;
            } else {
                waiting_n += 1;
            }
        }
    }
    if waiting_n > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// Computes the pod's status. `old` is the status the API holds (for transition times, the
/// start time and the conditions other components own); the pod's own status is not read.
pub fn generate(
    pod: &Pod,
    old: Option<&PodStatus>,
    rt: &PodRuntime,
    inp: &Inputs<'_>,
) -> PodStatus {
    let spec = crate::pods::spec_of(pod);
    let (init_done, init_pending) = initialized(pod, rt);
    let sandbox = rt.latest_sandbox();
    let host_network = spec.host_network.unwrap_or(false);

    let mut init_statuses = Vec::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let default = if i == 0 || rt.latest(&c.name, Kind::Init).is_some() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let mut st = container_status(c, Kind::Init, rt, inp, default);
        st.ready = st
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0);
        init_statuses.push(st);
    }
    let app_default = if init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, Kind::App, rt, inp, app_default))
        .collect();

    let old_phase = old.and_then(|s| s.phase.clone()).unwrap_or_default();
    let mut phase_v = phase(pod, rt, &statuses, init_done).to_string();
    let (mut reason, mut message) = (None, None);
    if let Some((p, r, m)) = inp.forced_phase {
        phase_v = p.into();
        reason = Some(r.to_string()).filter(|r| !r.is_empty());
        message = Some(m.to_string()).filter(|m| !m.is_empty());
    } else if matches!(old_phase.as_str(), "Succeeded" | "Failed") {
        // A terminal phase never changes.
        phase_v = old_phase.clone();
        reason = old.and_then(|s| s.reason.clone());
        message = old.and_then(|s| s.message.clone());
    } else if inp.terminating && phase_v == "Running" {
        let all_ok = statuses.iter().all(|s| {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        });
        phase_v = if all_ok { "Succeeded" } else { "Failed" }.into();
    }
    let terminal = matches!(phase_v.as_str(), "Succeeded" | "Failed");

    let unready: Vec<String> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect();
    let gates_ok = spec.readiness_gates.iter().flatten().all(|g| {
        old.and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == g.condition_type))
            .is_some_and(|c| c.status == "True")
    });
    let containers_ready = unready.is_empty() && !terminal;
    let (cr_reason, cr_msg) = if terminal {
        (Some("PodCompleted".to_string()), None)
    } else if unready.is_empty() {
        (None, None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let (ready_reason, ready_msg) = if containers_ready && !gates_ok {
        (
            Some("ReadinessGatesNotReady".to_string()),
            Some("corresponding condition of pod readiness gate is not true".to_string()),
        )
    } else {
        (cr_reason.clone(), cr_msg.clone())
    };
    let sandbox_ready = sandbox.is_some_and(|s| s.ready);
    let mut conditions = vec![
        condition(old, "PodReadyToStartContainers", sandbox_ready, None, None),
        condition(
            old,
            "Initialized",
            init_done,
            (!init_done).then(|| "ContainersNotInitialized".to_string()),
            (!init_done).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    init_pending.join(" ")
                )
            }),
        ),
        condition(
            old,
            "Ready",
            containers_ready && gates_ok,
            ready_reason,
            ready_msg,
        ),
        condition(old, "ContainersReady", containers_ready, cr_reason, cr_msg),
        condition(old, "PodScheduled", true, None, None),
    ];
    // Keep the conditions other components own.
    for c in old.and_then(|s| s.conditions.clone()).into_iter().flatten() {
        if !OWNED_CONDITIONS.contains(&c.type_.as_str()) {
            conditions.push(c);
        }
    }
    let pod_ips: Vec<String> = if host_network {
        inp.host_ips.to_vec()
    } else {
        sandbox
            .filter(|s| !s.ip.is_empty())
            .map(|s| {
                std::iter::once(s.ip.clone())
                    .chain(s.additional_ips.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let start_time = old
        .and_then(|s| s.start_time.clone())
        .or_else(|| Some(now_time()));
    PodStatus {
        phase: Some(phase_v),
        conditions: Some(conditions),
        reason,
        message,
        host_ip: inp.host_ips.first().cloned(),
        host_ips: Some(
            inp.host_ips
                .iter()
                .map(|ip| HostIP { ip: ip.clone() })
                .collect(),
        )
        .filter(|v: &Vec<HostIP>| !v.is_empty()),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: Some(pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect())
            .filter(|v: &Vec<PodIP>| !v.is_empty()),
        start_time,
        qos_class: Some(qos::qos_class(pod).as_str().into()),
        container_statuses: Some(statuses),
        init_container_statuses: Some(init_statuses).filter(|v| !v.is_empty()),
        ..old.cloned().unwrap_or_default()
    }
}

/// The status fields the kubelet writes.
const OWNED_FIELDS: &[&str] = &[
    "phase",
    "conditions",
    "reason",
    "message",
    "hostIP",
    "hostIPs",
    "podIP",
    "podIPs",
    "startTime",
    "qosClass",
    "containerStatuses",
    "initContainerStatuses",
];

/// The kubelet's part of a status as JSON (every owned field, null when unset).
pub fn owned_json(status: &PodStatus) -> BTreeMap<String, serde_json::Value> {
    let v = serde_json::to_value(status).unwrap_or_default();
    OWNED_FIELDS
        .iter()
        .map(|k| {
            (
                k.to_string(),
                v.get(*k).cloned().unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// Whether two statuses agree in the fields the kubelet does not write (to tell a change by
/// someone else from the kubelet's own writes). Every field is named, so a field added to
/// `PodStatus` has to be sorted here.
pub fn same_not_owned(a: &PodStatus, b: &PodStatus) -> bool {
    fn not_owned(s: &PodStatus) -> impl PartialEq + '_ {
        let PodStatus {
            // Owned (`OWNED_FIELDS`).
            conditions: _,
            container_statuses: _,
            host_ip: _,
            host_ips: _,
            init_container_statuses: _,
            message: _,
            phase: _,
            pod_ip: _,
            pod_ips: _,
            qos_class: _,
            reason: _,
            start_time: _,
            // Written by others.
            ephemeral_container_statuses,
            nominated_node_name,
            observed_generation,
            resize,
            resource_claim_statuses,
        } = s;
        (
            ephemeral_container_statuses,
            nominated_node_name,
            observed_generation,
            resize,
            resource_claim_statuses,
        )
    }
    not_owned(a) == not_owned(b)
}

/// The merge patch writing `new`'s owned fields, with a UID precondition.
pub fn status_patch(uid: &str, new: &PodStatus) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "uid": uid },
        "status": owned_json(new),
    })
}

/// Start time of a container as a Kubernetes `Time` (for tests and the server).
pub fn time_of(nanos: i64) -> Option<Time> {
    nanos_time(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::SandboxInfo;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": spec,
            "status": {"phase": "Pending", "conditions": [
                {"type": "DisruptionTarget", "status": "True"}]}
        }))
        .unwrap()
    }

    fn sandbox() -> SandboxInfo {
        SandboxInfo {
            id: "sb".into(),
            attempt: 0,
            ready: true,
            created_at: 1,
            ip: "10.244.0.9".into(),
            additional_ips: vec![],
            host_network: false,
        }
    }

    fn container(
        name: &str,
        kind: Kind,
        state: State,
        exit: i32,
        created: i64,
        restarts: i32,
    ) -> ContainerInfo {
        ContainerInfo {
            id: format!("{name}-{created}"),
            sandbox_id: "sb".into(),
            name: name.into(),
            kind,
            attempt: restarts as u32,
            state,
            created_at: created,
            started_at: created * 1_000_000_000,
            finished_at: if state == State::Exited {
                (created + 1) * 1_000_000_000
            } else {
                0
            },
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            image: "busybox".into(),
            image_ref: "sha256:1".into(),
            hash: 0,
            restart_count: restarts,
            log_path: String::new(),
            labels: Default::default(),
            annotations: Default::default(),
        }
    }

    fn inputs<'a>(
        waiting: &'a HashMap<String, (String, String)>,
        messages: &'a HashMap<String, String>,
        ips: &'a [String],
    ) -> Inputs<'a> {
        Inputs {
            probes: None,
            waiting,
            messages,
            host_ips: ips,
            runtime_name: "containerd",
            forced_phase: None,
            terminating: false,
        }
    }

    #[test]
    fn running_pod() {
        let p = pod(serde_json::json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let rt = PodRuntime {
            sandboxes: vec![sandbox()],
            containers: vec![container("a", Kind::App, State::Running, 0, 5, 0)],
            ..Default::default()
        };
        let (w, m, ips) = (
            HashMap::new(),
            HashMap::new(),
            vec!["192.168.1.2".to_string()],
        );
        let s = generate(&p, p.status.as_ref(), &rt, &inputs(&w, &m, &ips));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.9"));
        assert_eq!(s.host_ip.as_deref(), Some("192.168.1.2"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("containerd://a-5"));
        assert!(cs.state.as_ref().unwrap().running.is_some());
        let cond = |t: &str| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .status
                .clone()
        };
        assert_eq!(cond("Ready"), "True");
        assert_eq!(cond("Initialized"), "True");
        assert_eq!(cond("PodScheduled"), "True");
        assert_eq!(
            cond("DisruptionTarget"),
            "True",
            "others' conditions are kept"
        );
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn crash_loop_and_phases() {
        let p = pod(serde_json::json!({"containers": [{"name": "a"}]}));
        let rt = PodRuntime {
            sandboxes: vec![sandbox()],
            containers: vec![
                container("a", Kind::App, State::Exited, 1, 9, 2),
                container("a", Kind::App, State::Exited, 1, 5, 1),
            ],
            ..Default::default()
        };
        let w: HashMap<String, (String, String)> = [(
            "a".to_string(),
            (
                "CrashLoopBackOff".to_string(),
                "back-off 20s restarting failed container=a pod=p_ns(u)".to_string(),
            ),
        )]
        .into();
        let (m, ips) = (HashMap::new(), vec![]);
        let s = generate(&p, p.status.as_ref(), &rt, &inputs(&w, &m, &ips));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert_eq!(cs.restart_count, 2);
        assert_eq!(
            s.phase.as_deref(),
            Some("Running"),
            "Always restarts: Running"
        );
        // restartPolicy Never: the failed container fails the pod.
        let never =
            pod(serde_json::json!({"restartPolicy": "Never", "containers": [{"name": "a"}]}));
        let none = HashMap::new();
        let s = generate(&never, never.status.as_ref(), &rt, &inputs(&none, &m, &ips));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        // OnFailure with a clean exit: Succeeded.
        let ok = PodRuntime {
            sandboxes: vec![sandbox()],
            containers: vec![container("a", Kind::App, State::Exited, 0, 9, 0)],
            ..Default::default()
        };
        let of =
            pod(serde_json::json!({"restartPolicy": "OnFailure", "containers": [{"name": "a"}]}));
        let s = generate(&of, of.status.as_ref(), &ok, &inputs(&none, &m, &ips));
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "i1"}, {"name": "i2"}],
            "containers": [{"name": "a"}]}));
        let rt = PodRuntime {
            sandboxes: vec![sandbox()],
            containers: vec![container("i1", Kind::Init, State::Running, 0, 3, 0)],
            ..Default::default()
        };
        let (w, m, ips) = (HashMap::new(), HashMap::new(), vec![]);
        let s = generate(&p, p.status.as_ref(), &rt, &inputs(&w, &m, &ips));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let init = s.init_container_statuses.as_ref().unwrap();
        assert!(init[0].state.as_ref().unwrap().running.is_some());
        assert_eq!(
            init[1]
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        let app = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            app.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        let initialized = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Initialized")
            .unwrap();
        assert_eq!(initialized.status, "False");
        assert_eq!(
            initialized.message.as_deref(),
            Some("containers with incomplete status: [i1 i2]")
        );
    }

    #[test]
    fn patch_has_every_owned_field() {
        let p = pod(serde_json::json!({"containers": [{"name": "a"}]}));
        let (w, m, ips) = (HashMap::new(), HashMap::new(), vec![]);
        let s = generate(
            &p,
            p.status.as_ref(),
            &PodRuntime::default(),
            &inputs(&w, &m, &ips),
        );
        let patch = status_patch("u", &s);
        assert_eq!(patch["metadata"]["uid"], "u");
        assert!(
            patch["status"]["message"].is_null(),
            "unset fields are cleared"
        );
        assert_eq!(
            patch["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
    }
}

//! A pod as the scheduler needs it, parsed once when it arrives from the watch: its requests,
//! host ports, priority, and its pod (anti-)affinity terms with their selectors compiled, so
//! the per-node work of a scheduling cycle does no parsing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, Toleration};
use rkube_machinery::selector::{LabelSelector, Operator, Requirement, SelectorError};

use crate::resources::{Resource, pod_non_zero_requests, pod_requests};

/// `namespace/name` of a pod, cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey(Arc<str>);

impl PodKey {
    /// The key of a pod in a namespace.
    pub fn new(namespace: &str, name: &str) -> Self {
        PodKey(format!("{namespace}/{name}").into())
    }

    /// The key of a pod object.
    pub fn of(pod: &Pod) -> Self {
        Self::new(
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// `namespace/name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host port a pod asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// `0.0.0.0` when not given.
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports cannot both be bound on one node (same protocol and port, and the
    /// same IP or either is the wildcard).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod (anti-)affinity term with its selectors compiled.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Namespaces named by the term (the pod's own when neither these nor a namespace selector
    /// is given).
    pub namespaces: BTreeSet<String>,
    /// Namespaces whose labels match (`namespaceSelector`); `None` when not given.
    pub namespace_selector: Option<LabelSelector>,
    /// Pods whose labels match.
    pub selector: LabelSelector,
    /// The node label that defines the topology domain.
    pub topology_key: String,
    /// The weight of a preferred term (1 for required terms).
    pub weight: i64,
}

impl AffinityTerm {
    /// Compiles a term of a pod in `namespace` with the labels `pod_labels` (for
    /// `matchLabelKeys` / `mismatchLabelKeys`).
    pub fn compile(
        term: &PodAffinityTerm,
        namespace: &str,
        pod_labels: &BTreeMap<String, String>,
        weight: i64,
    ) -> Result<Self, SelectorError> {
        let mut selector = LabelSelector::from_k8s_opt(term.label_selector.as_ref())?;
        if term.label_selector.is_some() {
            let mut extra = Vec::new();
            for key in term.match_label_keys.iter().flatten() {
                if let Some(v) = pod_labels.get(key) {
                    extra.push(Requirement::new(
                        key.clone(),
                        Operator::In,
                        vec![v.clone()],
                    )?);
                }
            }
            for key in term.mismatch_label_keys.iter().flatten() {
                if let Some(v) = pod_labels.get(key) {
                    extra.push(Requirement::new(
                        key.clone(),
                        Operator::NotIn,
                        vec![v.clone()],
                    )?);
                }
            }
            if !extra.is_empty() {
                selector = selector.add_requirements(extra);
            }
        }
        let namespace_selector = term
            .namespace_selector
            .as_ref()
            .map(LabelSelector::from_k8s)
            .transpose()?;
        let mut namespaces: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.insert(namespace.to_string());
        }
        Ok(AffinityTerm {
            namespaces,
            namespace_selector,
            selector,
            topology_key: term.topology_key.clone(),
            weight,
        })
    }

    /// Whether the term selects `pod`; `ns_labels` gives the labels of a namespace.
    pub fn matches(&self, pod: &PodInfo, ns_labels: &dyn Fn(&str) -> Option<Labels>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                let labels = ns_labels(&pod.namespace);
                s.matches_opt(labels.as_deref())
            });
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// Shared labels of an object.
pub type Labels = Arc<BTreeMap<String, String>>;

/// A pod parsed for scheduling.
#[derive(Debug)]
pub struct PodInfo {
    /// The pod as last seen (trimmed to what scheduling reads), while it waits to be scheduled.
    /// `None` for a bound pod in the cache ([`PodInfo::bound`]): what the plugins read of
    /// bound pods is parsed into the fields below, and a cluster's worth of pods is the
    /// scheduler's largest cost in memory.
    pub pod: Option<Arc<Pod>>,
    /// `metadata.resourceVersion` as last seen.
    pub resource_version: Option<String>,
    /// `namespace/name`.
    pub key: PodKey,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// `spec.schedulerName` (`default-scheduler` when unset).
    pub scheduler_name: String,
    /// `spec.nodeName`, if bound.
    pub node_name: Option<String>,
    /// `status.nominatedNodeName`, if set.
    pub nominated_node_name: Option<String>,
    /// What the pod requests.
    pub requests: Resource,
    /// What it is counted with when scoring (cpu and memory never 0).
    pub non_zero_requests: Resource,
    /// Host ports of its containers.
    pub host_ports: Vec<HostPort>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// Required pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms (with weights).
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred pod anti-affinity terms (with weights).
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// Whether the pod is being deleted.
    pub terminating: bool,
    /// Whether the pod finished (Succeeded or Failed).
    pub finished: bool,
    /// When the pod started (or was created), in seconds, for preemption's tie-break.
    pub start_time: i64,
    /// Why a part of the pod could not be parsed (an invalid selector in a term): such a pod
    /// is unschedulable with this message.
    pub parse_error: Option<String>,
}

impl PodInfo {
    /// Parses a pod.
    pub fn new(pod: Arc<Pod>) -> Self {
        let key = PodKey::of(&pod);
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut host_ports = Vec::new();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            for p in c.ports.iter().flatten() {
                if let Some(port) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port,
                    });
                }
            }
        }
        let mut parse_error = None;
        let mut compile = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            let mut out = Vec::new();
            for t in terms.into_iter().flatten() {
                match AffinityTerm::compile(t, &namespace, &labels, 1) {
                    Ok(t) => out.push(t),
                    Err(e) => parse_error = Some(format!("invalid pod affinity term: {e}")),
                }
            }
            out
        };
        let affinity = spec.affinity.as_ref();
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required_affinity = compile(pa.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let required_anti_affinity = compile(paa.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let mut compile_weighted =
            |terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
                let mut out = Vec::new();
                for t in terms.into_iter().flatten() {
                    match AffinityTerm::compile(
                        &t.pod_affinity_term,
                        &namespace,
                        &labels,
                        i64::from(t.weight),
                    ) {
                        Ok(t) => out.push(t),
                        Err(e) => parse_error = Some(format!("invalid pod affinity term: {e}")),
                    }
                }
                out
            };
        let preferred_affinity = compile_weighted(pa.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_anti_affinity = compile_weighted(paa.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let status = pod.status.as_ref();
        let start_time = status
            .and_then(|s| s.start_time.as_ref())
            .or(pod.metadata.creation_timestamp.as_ref())
            .map(|t| t.0.as_second())
            .unwrap_or(0);
        PodInfo {
            key,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            priority: spec.priority.unwrap_or(0),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| crate::config::DEFAULT_SCHEDULER_NAME.into()),
            node_name: spec.node_name.clone().filter(|s| !s.is_empty()),
            nominated_node_name: status
                .and_then(|s| s.nominated_node_name.clone())
                .filter(|s| !s.is_empty()),
            requests: pod_requests(&spec),
            non_zero_requests: pod_non_zero_requests(&spec),
            host_ports,
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            finished: matches!(
                status.and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            ),
            start_time,
            parse_error,
            resource_version: pod.metadata.resource_version.clone(),
            labels,
            namespace,
            name,
            pod: Some(pod),
        }
    }

    /// The same pod without its object: how the cache keeps a bound pod.
    pub fn bound(mut self) -> Self {
        self.pod = None;
        self
    }

    /// The pod object, while it waits to be scheduled.
    pub fn object(&self) -> Option<&Pod> {
        self.pod.as_deref()
    }

    /// The spec of a pod waiting to be scheduled (empty if it has none, and for a bound pod,
    /// whose spec is not kept).
    pub fn spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        static EMPTY: std::sync::OnceLock<k8s_openapi::api::core::v1::PodSpec> =
            std::sync::OnceLock::new();
        self.pod
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }

    /// Whether the pod has any pod affinity or anti-affinity (required or preferred).
    pub fn has_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Affinity, Container, ContainerPort, PodAntiAffinity, PodSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as K8sSel, ObjectMeta};

    #[test]
    fn a_pod_trimmed_for_the_cache_parses_the_same() {
        let full: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                "labels": {"app": "web"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {
                "priority": 7, "schedulerName": "s",
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "affinity": {"podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "topologyKey": "kubernetes.io/hostname"}],
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5,
                        "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}},
                        "topologyKey": "zone"}}]}},
                "volumes": [{"name": "v", "emptyDir": {}}],
                "overhead": {"cpu": "10m"},
                "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "50m", "memory": "10Mi"}}}],
                "containers": [{"name": "c", "image": "i", "command": ["sleep"],
                    "env": [{"name": "E", "value": "1"}],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]
            },
            "status": {"phase": "Pending", "nominatedNodeName": "n2",
                "startTime": "2026-01-01T00:00:05Z", "podIP": "10.0.0.1",
                "conditions": [{"type": "PodScheduled", "status": "False"}],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0}]}
        }))
        .unwrap();
        let mut slim = full.clone();
        rkube_machinery::slim::pod_for_scheduling(&mut slim);
        let slim = Arc::new(slim);
        let mut a = PodInfo::new(Arc::new(full.clone()));
        let b = PodInfo::new(slim.clone());
        assert_eq!(b.requests, a.requests);
        assert!(b.host_ports.len() == 1 && b.preferred_anti_affinity.len() == 1);
        a.pod = Some(slim.clone());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        // What plugins read from the pod itself.
        let (f, s) = (full.spec.as_ref().unwrap(), slim.spec.as_ref().unwrap());
        assert_eq!(s.node_selector, f.node_selector);
        assert_eq!(s.affinity, f.affinity);
        assert_eq!(s.overhead, f.overhead);
        assert_eq!(s.containers[0].image, f.containers[0].image);
    }

    #[test]
    fn parses_ports_terms_and_defaults() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![
                        ContainerPort {
                            container_port: 80,
                            host_port: Some(8080),
                            ..Default::default()
                        },
                        ContainerPort {
                            container_port: 81,
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                affinity: Some(Affinity {
                    pod_anti_affinity: Some(PodAntiAffinity {
                        required_during_scheduling_ignored_during_execution: Some(vec![
                            PodAffinityTerm {
                                label_selector: Some(K8sSel {
                                    match_labels: Some(
                                        [("app".to_string(), "web".to_string())].into(),
                                    ),
                                    ..Default::default()
                                }),
                                topology_key: "kubernetes.io/hostname".into(),
                                ..Default::default()
                            },
                        ]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let info = PodInfo::new(Arc::new(pod));
        assert_eq!(info.key.as_str(), "ns/p");
        assert_eq!(info.scheduler_name, "default-scheduler");
        assert_eq!(
            info.host_ports,
            vec![HostPort {
                ip: "0.0.0.0".into(),
                protocol: "TCP".into(),
                port: 8080
            }]
        );
        assert_eq!(info.required_anti_affinity.len(), 1);
        let term = &info.required_anti_affinity[0];
        assert!(
            term.namespaces.contains("ns"),
            "defaults to the pod's namespace"
        );
        assert!(
            term.matches(&info, &|_| None),
            "the pod matches its own term"
        );
        assert!(info.has_affinity());
        assert!(info.parse_error.is_none());
    }

    #[test]
    fn host_port_conflicts() {
        let p = |ip: &str, proto: &str, port| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        assert!(p("0.0.0.0", "TCP", 80).conflicts(&p("10.0.0.1", "TCP", 80)));
        assert!(!p("10.0.0.2", "TCP", 80).conflicts(&p("10.0.0.1", "TCP", 80)));
        assert!(!p("0.0.0.0", "UDP", 80).conflicts(&p("0.0.0.0", "TCP", 80)));
        assert!(!p("0.0.0.0", "TCP", 81).conflicts(&p("0.0.0.0", "TCP", 80)));
    }
}

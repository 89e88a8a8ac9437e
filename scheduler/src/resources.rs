//! Resource vectors (cpu in millicores, memory and ephemeral storage in bytes, the pod count,
//! extended resources) and the requests of a pod as Kubernetes computes them: the sum of the
//! app containers and of the restartable init containers (sidecars), at least the largest
//! regular init container (plus the sidecars started before it), plus the pod overhead.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use rkube_machinery::quantity::parse_quantity;

/// `cpu`.
pub const CPU: &str = "cpu";
/// `memory`.
pub const MEMORY: &str = "memory";
/// `ephemeral-storage`.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// `pods`.
pub const PODS: &str = "pods";

/// The cpu a container without a cpu request is counted with when scoring (100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory a container without a memory request is counted with when scoring (200Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource. Extended resources (`example.com/gpu`, `hugepages-2Mi`) are kept
/// in `scalar`, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// Millicores.
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Bytes.
    pub ephemeral_storage: i64,
    /// Pods a node accepts (only meaningful for allocatable).
    pub allowed_pods: i64,
    /// Other resources, sorted by name, in whole units.
    pub scalar: Vec<(String, i64)>,
}

/// A quantity in the unit the scheduler counts a resource in: millicores for cpu, whole units
/// for everything else (rounded up, as Kubernetes does). Unparseable quantities count as 0; the
/// API server rejects them at validation.
fn amount(name: &str, q: &K8sQuantity) -> i64 {
    match parse_quantity(q) {
        Ok(q) if name == CPU => q.to_milli(),
        Ok(q) => q.to_value(),
        Err(_) => 0,
    }
}

/// Whether a resource name is one the scheduler accounts for as a scalar resource: an extended
/// resource (a domain-prefixed name outside `kubernetes.io/`), `hugepages-*` or
/// `attachable-volumes-*`.
pub fn is_scalar_resource(name: &str) -> bool {
    if name.starts_with("hugepages-") || name.starts_with("attachable-volumes-") {
        return true;
    }
    name.contains('/')
        && !name.starts_with("kubernetes.io/")
        && !name.starts_with("requests.")
        && !name.contains(".kubernetes.io/")
}

impl Resource {
    /// Reads a ResourceList (`requests`, `allocatable`).
    pub fn from_list(list: &BTreeMap<String, K8sQuantity>) -> Self {
        let mut r = Resource::default();
        for (name, q) in list {
            r.set(name, amount(name, q));
        }
        r
    }

    /// The amount of one resource.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.milli_cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.allowed_pods,
            _ => self
                .scalar
                .binary_search_by(|(n, _)| n.as_str().cmp(name))
                .map(|i| self.scalar[i].1)
                .unwrap_or(0),
        }
    }

    /// Sets the amount of one resource (ignored for resource names the scheduler does not
    /// account for).
    pub fn set(&mut self, name: &str, value: i64) {
        match name {
            CPU => self.milli_cpu = value,
            MEMORY => self.memory = value,
            EPHEMERAL_STORAGE => self.ephemeral_storage = value,
            PODS => self.allowed_pods = value,
            _ if is_scalar_resource(name) => {
                match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                    Ok(i) => self.scalar[i].1 = value,
                    Err(i) => self.scalar.insert(i, (name.to_string(), value)),
                }
            }
            _ => {}
        }
    }

    /// Adds another vector (`allowed_pods` too).
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pods += other.allowed_pods;
        for (name, v) in &other.scalar {
            let cur = self.get(name);
            self.set(name, cur + v);
        }
    }

    /// Subtracts another vector.
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pods -= other.allowed_pods;
        for (name, v) in &other.scalar {
            let cur = self.get(name);
            self.set(name, cur - v);
        }
    }

    /// Raises each resource to at least the other's amount.
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.allowed_pods = self.allowed_pods.max(other.allowed_pods);
        for (name, v) in &other.scalar {
            let cur = self.get(name);
            self.set(name, cur.max(*v));
        }
    }

    /// Whether nothing is requested (cpu, memory, ephemeral storage and every scalar are 0).
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

/// A container's requests, falling back to its limits for resources with a limit but no
/// request (what Kubernetes' defaulting stores).
fn container_requests(c: &Container) -> Resource {
    let mut r = Resource::default();
    let Some(res) = &c.resources else {
        return r;
    };
    if let Some(limits) = &res.limits {
        for (name, q) in limits {
            r.set(name, amount(name, q));
        }
    }
    if let Some(requests) = &res.requests {
        for (name, q) in requests {
            r.set(name, amount(name, q));
        }
    }
    r
}

/// Whether the container has a request (or a limit standing in for it) for `name`.
fn has_request(c: &Container, name: &str) -> bool {
    c.resources.as_ref().is_some_and(|r| {
        r.requests.as_ref().is_some_and(|m| m.contains_key(name))
            || r.limits.as_ref().is_some_and(|m| m.contains_key(name))
    })
}

/// The requests used for scoring: cpu and memory replaced by 100m / 200Mi where a container
/// does not set them (Kubernetes' `NonMissingContainerRequests`).
fn non_zero_container_requests(c: &Container) -> Resource {
    let mut r = container_requests(c);
    if !has_request(c, CPU) {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if !has_request(c, MEMORY) {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Kubernetes' `PodRequests` with a per-container function.
fn requests_with(spec: &PodSpec, per_container: fn(&Container) -> Resource) -> Resource {
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&per_container(c));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let creqs = per_container(c);
        if is_sidecar(c) {
            reqs.add(&creqs);
            sidecars.add(&creqs);
            init_max.set_max(&sidecars);
        } else {
            let mut tmp = creqs;
            tmp.add(&sidecars);
            init_max.set_max(&tmp);
        }
    }
    reqs.set_max(&init_max);
    if let Some(overhead) = &spec.overhead {
        reqs.add(&Resource::from_list(overhead));
    }
    reqs
}

/// What a pod requests: app containers and sidecars summed, at least each init container's
/// need, plus the overhead.
pub fn pod_requests(spec: &PodSpec) -> Resource {
    requests_with(spec, container_requests)
}

/// What a pod is counted with when scoring: like [`pod_requests`] but with 100m cpu and 200Mi
/// memory for containers that do not request them.
pub fn pod_non_zero_requests(spec: &PodSpec) -> Resource {
    requests_with(spec, non_zero_container_requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, K8sQuantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), K8sQuantity(v.to_string())))
            .collect()
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: (!requests.is_empty()).then(|| list(requests)),
                limits: (!limits.is_empty()).then(|| list(limits)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sidecar(requests: &[(&str, &str)]) -> Container {
        Container {
            restart_policy: Some("Always".into()),
            ..container(requests, &[])
        }
    }

    #[test]
    fn requests_follow_kubernetes_rules() {
        struct Case {
            name: &'static str,
            spec: PodSpec,
            cpu: i64,
            memory: i64,
        }
        let cases = [
            Case {
                name: "sum of app containers",
                spec: PodSpec {
                    containers: vec![
                        container(&[("cpu", "100m"), ("memory", "1Gi")], &[]),
                        container(&[("cpu", "1.5")], &[]),
                    ],
                    ..Default::default()
                },
                cpu: 1600,
                memory: 1 << 30,
            },
            Case {
                name: "an init container larger than the app",
                spec: PodSpec {
                    containers: vec![container(&[("cpu", "100m")], &[])],
                    init_containers: Some(vec![container(&[("cpu", "2"), ("memory", "10")], &[])]),
                    ..Default::default()
                },
                cpu: 2000,
                memory: 10,
            },
            Case {
                name: "limits stand in for missing requests",
                spec: PodSpec {
                    containers: vec![container(&[("memory", "1k")], &[("cpu", "300m")])],
                    ..Default::default()
                },
                cpu: 300,
                memory: 1000,
            },
            Case {
                name: "sidecars run alongside and before later init containers",
                spec: PodSpec {
                    containers: vec![container(&[("cpu", "1")], &[])],
                    init_containers: Some(vec![
                        sidecar(&[("cpu", "500m")]),
                        container(&[("cpu", "1200m")], &[]),
                    ]),
                    ..Default::default()
                },
                // app 1 + sidecar 0.5 = 1.5; init 1.2 + sidecar 0.5 = 1.7.
                cpu: 1700,
                memory: 0,
            },
            Case {
                name: "overhead is added",
                spec: PodSpec {
                    containers: vec![container(&[("cpu", "1")], &[])],
                    overhead: Some(list(&[("cpu", "250m"), ("memory", "120Mi")])),
                    ..Default::default()
                },
                cpu: 1250,
                memory: 120 << 20,
            },
        ];
        for c in cases {
            let r = pod_requests(&c.spec);
            assert_eq!((r.milli_cpu, r.memory), (c.cpu, c.memory), "{}", c.name);
        }
    }

    #[test]
    fn non_zero_requests_default_cpu_and_memory() {
        let spec = PodSpec {
            containers: vec![container(&[], &[]), container(&[("cpu", "0")], &[])],
            ..Default::default()
        };
        let r = pod_non_zero_requests(&spec);
        assert_eq!(
            r.milli_cpu, DEFAULT_MILLI_CPU_REQUEST,
            "an explicit 0 stays 0"
        );
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert!(pod_requests(&spec).is_zero());
    }

    #[test]
    fn extended_resources_are_scalars() {
        let mut r = Resource::from_list(&list(&[
            ("example.com/gpu", "2"),
            ("hugepages-2Mi", "4Mi"),
            ("pods", "110"),
            ("kubernetes.io/something", "1"),
        ]));
        assert_eq!(r.get("example.com/gpu"), 2);
        assert_eq!(r.get("hugepages-2Mi"), 4 << 20);
        assert_eq!(r.get("kubernetes.io/something"), 0);
        assert_eq!(r.allowed_pods, 110);
        let mut other = Resource::default();
        other.set("example.com/gpu", 1);
        other.set("a.io/x", 3);
        r.sub(&other);
        assert_eq!(r.get("example.com/gpu"), 1);
        assert_eq!(r.get("a.io/x"), -3);
        assert_eq!(r.scalar[0].0, "a.io/x", "kept sorted");
    }
}

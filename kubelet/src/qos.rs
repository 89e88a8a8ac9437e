//! Resources: a pod's QoS class (Guaranteed / Burstable / BestEffort), its cgroup parent under
//! the QoS cgroups, and a container's requests and limits as CRI Linux resources (CPU shares
//! and CFS quota, memory limit, OOM score adjustment), as the kubelet computes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_cri::v1 as cri;
use rkube_machinery::quantity::parse_quantity;

/// The CFS period the kubelet uses (100 ms).
pub const CPU_PERIOD: i64 = 100_000;
/// The smallest CPU shares value.
pub const MIN_SHARES: i64 = 2;

/// A pod's quality-of-service class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    /// Every container has equal CPU and memory requests and limits.
    Guaranteed,
    /// Some requests or limits.
    Burstable,
    /// No requests or limits at all.
    BestEffort,
}

impl QosClass {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

fn milli(q: &Quantity) -> Option<i64> {
    parse_quantity(q).ok().map(|q| q.to_milli())
}

fn value(q: &Quantity) -> Option<i64> {
    parse_quantity(q).ok().map(|q| q.to_value())
}

/// Requests with limits filling in missing requests (as the API server defaults them).
fn effective_requests(r: &ResourceRequirements) -> BTreeMap<String, Quantity> {
    let mut req = r.requests.clone().unwrap_or_default();
    for (k, v) in r.limits.clone().unwrap_or_default() {
        req.entry(k).or_insert(v);
    }
    req
}

/// The QoS class of a pod spec.
pub fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = &pod.spec else {
        return QosClass::BestEffort;
    };
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let r = c.resources.clone().unwrap_or_default();
        let limits = r.limits.clone().unwrap_or_default();
        let requests = effective_requests(&r);
        let relevant = |m: &BTreeMap<String, Quantity>| {
            m.iter()
                .filter(|(k, q)| {
                    (k.as_str() == "cpu" || k.as_str() == "memory")
                        && parse_quantity(q).is_ok_and(|q| !q.is_zero())
                })
                .count()
        };
        if relevant(&requests) > 0 || relevant(&limits) > 0 {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = limits.get(res).and_then(|q| parse_quantity(q).ok());
            let q = requests.get(res).and_then(|q| parse_quantity(q).ok());
            match (l, q) {
                (Some(l), Some(q)) if l == q && !l.is_zero() => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        QosClass::BestEffort
    } else if guaranteed {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// The pod's cgroup parent (cgroupfs): `ROOT/pod<uid>` for Guaranteed,
/// `ROOT/burstable/pod<uid>` and `ROOT/besteffort/pod<uid>` otherwise.
pub fn cgroup_parent(root: &str, class: QosClass, uid: &str) -> String {
    let root = root.trim_end_matches('/');
    let pod = format!("pod{uid}");
    match class {
        QosClass::Guaranteed => format!("{root}/{pod}"),
        QosClass::Burstable => format!("{root}/burstable/{pod}"),
        QosClass::BestEffort => format!("{root}/besteffort/{pod}"),
    }
}

/// CPU shares for a CPU request in millicores (at least 2).
pub fn milli_to_shares(m: i64) -> i64 {
    if m <= 0 {
        return MIN_SHARES;
    }
    (m * 1024 / 1000).max(MIN_SHARES)
}

/// The CFS quota for a CPU limit in millicores (0: none); at least 1 ms.
pub fn milli_to_quota(m: i64) -> i64 {
    if m <= 0 {
        return 0;
    }
    (m * CPU_PERIOD / 1000).max(1000)
}

/// The OOM score adjustment of a container: −997 Guaranteed, 1000 BestEffort, and for
/// Burstable `1000 − 1000·request/capacity` kept within 2..999.
pub fn oom_score_adj(class: QosClass, memory_request: i64, memory_capacity: i64) -> i64 {
    match class {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            if memory_capacity <= 0 {
                return 999;
            }
            let adj = 1000 - (1000 * memory_request) / memory_capacity;
            adj.clamp(2, 999)
        }
    }
}

/// A container's CRI Linux resources.
pub fn linux_resources(
    container: &Container,
    class: QosClass,
    memory_capacity: i64,
) -> cri::LinuxContainerResources {
    let r = container.resources.clone().unwrap_or_default();
    let limits = r.limits.clone().unwrap_or_default();
    let requests = effective_requests(&r);
    let cpu_request = requests.get("cpu").and_then(milli).unwrap_or(0);
    let cpu_limit = limits.get("cpu").and_then(milli).unwrap_or(0);
    let memory_limit = limits.get("memory").and_then(value).unwrap_or(0);
    let memory_request = requests.get("memory").and_then(value).unwrap_or(0);
    let quota = milli_to_quota(cpu_limit);
    cri::LinuxContainerResources {
        cpu_period: if quota > 0 { CPU_PERIOD } else { 0 },
        cpu_quota: quota,
        cpu_shares: milli_to_shares(cpu_request),
        memory_limit_in_bytes: memory_limit,
        oom_score_adj: oom_score_adj(class, memory_request, memory_capacity),
        ..Default::default()
    }
}

/// The sum of a pod's CPU (millicores) and memory (bytes) requests — what admission checks
/// against allocatable (the larger of the app containers' sum and any init container).
pub fn pod_requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = &pod.spec else {
        return (0, 0);
    };
    let req = |c: &Container| {
        let r = effective_requests(&c.resources.clone().unwrap_or_default());
        (
            r.get("cpu").and_then(milli).unwrap_or(0),
            r.get("memory").and_then(value).unwrap_or(0),
        )
    };
    let (mut cpu, mut mem) = spec
        .containers
        .iter()
        .map(req)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    for c in spec.init_containers.iter().flatten() {
        let (c_cpu, c_mem) = req(c);
        cpu = cpu.max(c_cpu);
        mem = mem.max(c_mem);
    }
    (cpu, mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": containers}
        }))
        .unwrap()
    }

    #[test]
    fn classes() {
        assert_eq!(
            qos_class(&pod(serde_json::json!([{"name": "a"}]))),
            QosClass::BestEffort
        );
        let g = pod(serde_json::json!([{"name": "a", "resources": {
            "limits": {"cpu": "500m", "memory": "64Mi"}}}]));
        assert_eq!(qos_class(&g), QosClass::Guaranteed);
        let b = pod(serde_json::json!([{"name": "a", "resources": {
            "requests": {"cpu": "100m"}}}]));
        assert_eq!(qos_class(&b), QosClass::Burstable);
        let b2 = pod(serde_json::json!([
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b"}]));
        assert_eq!(qos_class(&b2), QosClass::Burstable);
        assert_eq!(
            cgroup_parent("/kubepods", QosClass::Burstable, "x"),
            "/kubepods/burstable/podx"
        );
        assert_eq!(
            cgroup_parent("/kubepods/", QosClass::Guaranteed, "x"),
            "/kubepods/podx"
        );
    }

    #[test]
    fn cri_resources() {
        let p = pod(serde_json::json!([{"name": "a", "resources": {
            "requests": {"cpu": "250m", "memory": "32Mi"},
            "limits": {"cpu": "1500m", "memory": "64Mi"}}}]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = linux_resources(c, QosClass::Burstable, 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 150_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert_eq!(r.oom_score_adj, 1000 - 1000 * (32 << 20) / (1 << 30));
        let be = pod(serde_json::json!([{"name": "a"}]));
        let r = linux_resources(
            &be.spec.as_ref().unwrap().containers[0],
            QosClass::BestEffort,
            1,
        );
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (2, 0, 0)
        );
        assert_eq!(r.oom_score_adj, 1000);
        assert_eq!(milli_to_quota(5), 1000);
        assert_eq!(oom_score_adj(QosClass::Burstable, 1 << 30, 1 << 30), 2);
        assert_eq!(pod_requests(&p), (250, 32 << 20));
    }
}

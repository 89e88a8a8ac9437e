//! Pod Security admission: the Pod Security Standards' `baseline` and `restricted` levels,
//! chosen per namespace by the label `pod-security.kubernetes.io/enforce` (pods that violate it
//! are refused with Kubernetes' message) and `pod-security.kubernetes.io/warn` (a `Warning`
//! header). A namespace without the label gets the server's default level (`baseline` unless
//! `--pod-security-default` says otherwise): privileged containers, host namespaces, hostPath
//! volumes and host ports are allowed only where a namespace is labelled `privileged`.
//! `kube-system` is exempt, as the system components' pods need those.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Capabilities, Container, PodSpec, SecurityContext};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The label choosing the enforced level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The label choosing the level that only warns.
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";
/// Namespaces the policy does not apply to.
pub const EXEMPT_NAMESPACES: &[&str] = &["kube-system"];

/// A Pod Security Standards level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Anything goes.
    Privileged,
    /// No known privilege escalations.
    #[default]
    Baseline,
    /// Hardened: non-root, no privilege escalation, capabilities dropped, seccomp on.
    Restricted,
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            other => Err(format!(
                "invalid Pod Security level {other:?}: must be one of privileged, baseline, restricted"
            )),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        })
    }
}

/// The levels a namespace's labels choose (`default` where a label is absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespacePolicy {
    /// What is refused.
    pub enforce: Level,
    /// What is warned about.
    pub warn: Level,
}

/// The policy of namespace `ns` with `labels`; an invalid label value counts as `restricted`,
/// as Kubernetes does (namespace validation refuses new ones, see [`validate_labels`]).
pub fn policy(ns: &str, labels: &BTreeMap<String, String>, default: Level) -> NamespacePolicy {
    if EXEMPT_NAMESPACES.contains(&ns) {
        return NamespacePolicy {
            enforce: Level::Privileged,
            warn: Level::Privileged,
        };
    }
    let level = |key: &str| {
        labels
            .get(key)
            .map_or(default, |v| v.parse().unwrap_or(Level::Restricted))
    };
    NamespacePolicy {
        enforce: level(ENFORCE_LABEL),
        warn: level(WARN_LABEL),
    }
}

/// Errors in a namespace's Pod Security labels, as `(label, message)`.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in [
        ENFORCE_LABEL,
        WARN_LABEL,
        "pod-security.kubernetes.io/audit",
    ] {
        if let Some(v) = labels.get(key)
            && let Err(e) = v.parse::<Level>()
        {
            out.push((key.to_string(), e));
        }
    }
    out
}

/// The checks a pod fails at `level`, each as Kubernetes words it (e.g. `hostPath volumes
/// (volume "data")`); empty when it passes.
pub fn violations(level: Level, meta: &ObjectMeta, spec: &PodSpec) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    baseline(meta, spec, &mut out);
    if level == Level::Restricted {
        restricted(spec, &mut out);
    }
    out
}

/// The message of a refused pod.
pub fn forbidden_message(level: Level, violations: &[String]) -> String {
    format!(
        "violates PodSecurity \"{level}:latest\": {}",
        violations.join(", ")
    )
}

fn containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// `"a", "b"` for a list of names.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `container "a"` or `containers "a", "b"`.
fn containers_phrase(names: &[String]) -> String {
    let noun = if names.len() == 1 {
        "container"
    } else {
        "containers"
    };
    format!("{noun} {}", quoted(names))
}

/// Names of the containers whose security context satisfies `f`.
fn offending(spec: &PodSpec, f: impl Fn(&Container, &SecurityContext) -> bool) -> Vec<String> {
    containers(spec)
        .filter(|c| f(c, &c.security_context.clone().unwrap_or_default()))
        .map(|c| c.name.clone())
        .collect()
}

/// Capabilities containers may add at `baseline`.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls that are safe (namespaced, isolated).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

fn added_capabilities(c: &SecurityContext) -> Vec<String> {
    c.capabilities
        .as_ref()
        .and_then(|c: &Capabilities| c.add.clone())
        .unwrap_or_default()
}

fn baseline(meta: &ObjectMeta, spec: &PodSpec, out: &mut Vec<String>) {
    // Host namespaces.
    let host: Vec<&str> = [
        ("hostNetwork=true", spec.host_network),
        ("hostPID=true", spec.host_pid),
        ("hostIPC=true", spec.host_ipc),
    ]
    .into_iter()
    .filter(|(_, v)| *v == Some(true))
    .map(|(n, _)| n)
    .collect();
    if !host.is_empty() {
        out.push(format!("host namespaces ({})", host.join(", ")));
    }
    // Privileged containers.
    let privileged = offending(spec, |_, sc| sc.privileged == Some(true));
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            containers_phrase(&privileged)
        ));
    }
    // Capabilities beyond the baseline set.
    let mut extra: Vec<String> = Vec::new();
    let caps = offending(spec, |_, sc| {
        let bad: Vec<String> = added_capabilities(sc)
            .into_iter()
            .filter(|c| !BASELINE_CAPABILITIES.contains(&c.as_str()))
            .collect();
        !bad.is_empty()
    });
    for c in containers(spec) {
        let sc = c.security_context.clone().unwrap_or_default();
        for cap in added_capabilities(&sc) {
            if !BASELINE_CAPABILITIES.contains(&cap.as_str()) && !extra.contains(&cap) {
                extra.push(cap);
            }
        }
    }
    if !caps.is_empty() {
        out.push(format!(
            "non-default capabilities ({} must not include {} in securityContext.capabilities.add)",
            containers_phrase(&caps),
            quoted(&extra)
        ));
    }
    // hostPath volumes.
    let host_paths: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.clone())
        .collect();
    if !host_paths.is_empty() {
        let noun = if host_paths.len() == 1 {
            "volume"
        } else {
            "volumes"
        };
        out.push(format!("hostPath volumes ({noun} {})", quoted(&host_paths)));
    }
    // Host ports.
    let mut ports: Vec<String> = Vec::new();
    let with_ports: Vec<String> = containers(spec)
        .filter(|c| {
            let mut any = false;
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p != 0) {
                    any = true;
                    let s = hp.to_string();
                    if !ports.contains(&s) {
                        ports.push(s);
                    }
                }
            }
            any
        })
        .map(|c| c.name.clone())
        .collect();
    if !with_ports.is_empty() {
        out.push(format!(
            "hostPort ({} uses hostPort {})",
            containers_phrase(&with_ports),
            ports.join(", ")
        ));
    }
    // AppArmor.
    let unconfined_annotation = meta.annotations.iter().flatten().any(|(k, v)| {
        k.starts_with("container.apparmor.security.beta.kubernetes.io/") && v == "unconfined"
    });
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    let pod_apparmor = pod_sc
        .app_armor_profile
        .as_ref()
        .is_some_and(|p| p.type_ == "Unconfined");
    let apparmor = offending(spec, |_, sc| {
        sc.app_armor_profile
            .as_ref()
            .is_some_and(|p| p.type_ == "Unconfined")
    });
    if unconfined_annotation || pod_apparmor || !apparmor.is_empty() {
        out.push("forbidden AppArmor profile (unconfined)".into());
    }
    // SELinux.
    let bad_selinux = |o: &k8s_openapi::api::core::v1::SELinuxOptions| {
        let ty_ok = o.type_.as_deref().is_none_or(|t| {
            [
                "",
                "container_t",
                "container_init_t",
                "container_kvm_t",
                "container_engine_t",
            ]
            .contains(&t)
        });
        !ty_ok
            || o.user.as_deref().is_some_and(|u| !u.is_empty())
            || o.role.as_deref().is_some_and(|r| !r.is_empty())
    };
    let selinux = pod_sc.se_linux_options.as_ref().is_some_and(bad_selinux)
        || !offending(spec, |_, sc| {
            sc.se_linux_options.as_ref().is_some_and(bad_selinux)
        })
        .is_empty();
    if selinux {
        out.push("seLinuxOptions (the type, user and role may not be set to other values)".into());
    }
    // /proc mount.
    let proc_mount = offending(spec, |_, sc| {
        sc.proc_mount.as_deref().is_some_and(|p| p != "Default")
    });
    if !proc_mount.is_empty() {
        out.push(format!(
            "procMount ({} must not set securityContext.procMount to \"Unmasked\")",
            containers_phrase(&proc_mount)
        ));
    }
    // Seccomp.
    let unconfined = |p: &Option<k8s_openapi::api::core::v1::SeccompProfile>| {
        p.as_ref().is_some_and(|p| p.type_ == "Unconfined")
    };
    let seccomp_pod = unconfined(&pod_sc.seccomp_profile);
    let seccomp = offending(spec, |_, sc| unconfined(&sc.seccomp_profile));
    if seccomp_pod || !seccomp.is_empty() {
        out.push(
            "seccompProfile (the pod and its containers must not set securityContext.seccompProfile.type to \"Unconfined\")"
                .into(),
        );
    }
    // Sysctls.
    let unsafe_sysctls: Vec<String> = pod_sc
        .sysctls
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .filter(|n| !SAFE_SYSCTLS.contains(&n.as_str()))
        .collect();
    if !unsafe_sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", unsafe_sysctls.join(", ")));
    }
}

fn restricted(spec: &PodSpec, out: &mut Vec<String>) {
    // Volume types.
    let restricted_volumes: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| {
            v.host_path.is_none()
                && v.config_map.is_none()
                && v.csi.is_none()
                && v.downward_api.is_none()
                && v.empty_dir.is_none()
                && v.ephemeral.is_none()
                && v.persistent_volume_claim.is_none()
                && v.projected.is_none()
                && v.secret.is_none()
        })
        .map(|v| v.name.clone())
        .collect();
    if !restricted_volumes.is_empty() {
        out.push(format!(
            "restricted volume types (volumes {})",
            quoted(&restricted_volumes)
        ));
    }
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    // Privilege escalation.
    let escalation = offending(spec, |_, sc| sc.allow_privilege_escalation != Some(false));
    if !escalation.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
            containers_phrase(&escalation)
        ));
    }
    // Capabilities: drop ALL, add at most NET_BIND_SERVICE.
    let not_dropped = offending(spec, |_, sc| {
        !sc.capabilities
            .as_ref()
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|c| c == "ALL"))
    });
    if !not_dropped.is_empty() {
        out.push(format!(
            "unrestricted capabilities ({} must set securityContext.capabilities.drop=[\"ALL\"])",
            containers_phrase(&not_dropped)
        ));
    }
    let added = offending(spec, |_, sc| {
        added_capabilities(sc)
            .iter()
            .any(|c| c != "NET_BIND_SERVICE")
    });
    if !added.is_empty() {
        out.push(format!(
            "unrestricted capabilities ({} must not include capabilities other than \"NET_BIND_SERVICE\" in securityContext.capabilities.add)",
            containers_phrase(&added)
        ));
    }
    // Non-root.
    let pod_non_root = pod_sc.run_as_non_root;
    let root_allowed = offending(spec, |_, sc| {
        sc.run_as_non_root.or(pod_non_root) != Some(true)
    });
    if pod_non_root == Some(false) || !root_allowed.is_empty() {
        out.push(format!(
            "runAsNonRoot != true (pod or {} must set securityContext.runAsNonRoot=true)",
            containers_phrase(&root_allowed)
        ));
    }
    let uid0 = pod_sc.run_as_user == Some(0)
        || !offending(spec, |_, sc| sc.run_as_user == Some(0)).is_empty();
    if uid0 {
        out.push("runAsUser=0 (pod and containers must not set runAsUser=0)".into());
    }
    // Seccomp must be set.
    let set = |p: &Option<k8s_openapi::api::core::v1::SeccompProfile>| {
        p.as_ref()
            .is_some_and(|p| p.type_ == "RuntimeDefault" || p.type_ == "Localhost")
    };
    let pod_seccomp = set(&pod_sc.seccomp_profile);
    let no_seccomp = offending(spec, |_, sc| !pod_seccomp && !set(&sc.seccomp_profile));
    if !no_seccomp.is_empty() {
        out.push(format!(
            "seccompProfile (pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            containers_phrase(&no_seccomp)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn baseline_refuses_host_access_and_privilege() {
        let s = spec(serde_json::json!({
            "hostNetwork": true, "hostPID": true,
            "containers": [
                {"name": "a", "image": "x", "securityContext": {"privileged": true,
                    "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "image": "x"}],
            "volumes": [{"name": "data", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}}]
        }));
        let v = violations(Level::Baseline, &ObjectMeta::default(), &s);
        assert_eq!(
            v,
            [
                "host namespaces (hostNetwork=true, hostPID=true)",
                "privileged (container \"a\" must not set securityContext.privileged=true)",
                "non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add)",
                "hostPath volumes (volume \"data\")",
                "hostPort (container \"a\" uses hostPort 8080)",
            ]
        );
        assert!(violations(Level::Privileged, &ObjectMeta::default(), &s).is_empty());
        assert_eq!(
            forbidden_message(Level::Baseline, &v[3..4]),
            "violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"data\")"
        );
    }

    #[test]
    fn a_plain_pod_passes_baseline_but_not_restricted() {
        let s = spec(
            serde_json::json!({"containers": [{"name": "c", "image": "x"}],
            "volumes": [{"name": "e", "emptyDir": {}}]}),
        );
        assert!(violations(Level::Baseline, &ObjectMeta::default(), &s).is_empty());
        let r = violations(Level::Restricted, &ObjectMeta::default(), &s);
        assert_eq!(r.len(), 4, "{r:?}");
        assert!(r[0].starts_with("allowPrivilegeEscalation != false"));
        assert!(r[1].starts_with("unrestricted capabilities"));
        assert!(r[2].starts_with("runAsNonRoot != true"));
        assert!(r[3].starts_with("seccompProfile (pod or container \"c\""));
        let hardened = spec(serde_json::json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "x", "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}));
        assert!(violations(Level::Restricted, &ObjectMeta::default(), &hardened).is_empty());
        let mut no_seccomp = hardened.clone();
        no_seccomp
            .security_context
            .as_mut()
            .unwrap()
            .seccomp_profile = None;
        let r = violations(Level::Restricted, &ObjectMeta::default(), &no_seccomp);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(r[0].starts_with("seccompProfile (pod or container \"c\""));
    }

    #[test]
    fn namespace_labels_choose_the_level() {
        let mut labels = BTreeMap::new();
        assert_eq!(
            policy("default", &labels, Level::Baseline).enforce,
            Level::Baseline
        );
        labels.insert(ENFORCE_LABEL.to_string(), "privileged".to_string());
        labels.insert(WARN_LABEL.to_string(), "restricted".to_string());
        let p = policy("default", &labels, Level::Baseline);
        assert_eq!((p.enforce, p.warn), (Level::Privileged, Level::Restricted));
        labels.insert(ENFORCE_LABEL.to_string(), "nonsense".to_string());
        assert_eq!(
            policy("x", &labels, Level::Baseline).enforce,
            Level::Restricted
        );
        assert_eq!(validate_labels(&labels).len(), 1);
        assert_eq!(
            policy("kube-system", &BTreeMap::new(), Level::Restricted).enforce,
            Level::Privileged
        );
    }
}

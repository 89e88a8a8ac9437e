//! A container as CRI creates it: image, command and args (ENTRYPOINT/CMD semantics are the
//! runtime's: `command` replaces the entrypoint, `args` the cmd), working directory,
//! environment, volume mounts (with subPath, read-only and propagation), the pod's hosts file
//! and the termination-message file, labels and annotations the kubelet reads back, the log
//! path, resources and the security context (run-as user and group, runAsNonRoot, read-only
//! root filesystem, capabilities, privileged when allowed, seccomp, no_new_privs).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use rkube_cri::v1 as cri;

use crate::labels;
use crate::qos::{self, QosClass};
use crate::runtime::Kind;
use crate::sandbox;
use crate::volumes::HostVolume;

/// Why a container config could not be made (the pod shows `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Privileged containers are disabled on this node.
    #[error("container {0} is privileged, but privileged containers are not allowed on this node")]
    Privileged(String),
    /// runAsNonRoot with a root user.
    #[error(
        "container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})"
    )]
    RunAsRoot {
        /// `name_namespace(uid)`.
        pod: String,
        /// Container name.
        container: String,
    },
    /// runAsNonRoot with a user name that cannot be checked.
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{pod}\", container: {container})"
    )]
    NonNumericUser {
        /// `name_namespace(uid)`.
        pod: String,
        /// Container name.
        container: String,
        /// The image user.
        user: String,
    },
    /// A mount names a volume the pod does not have.
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    UnknownVolume {
        /// The volume.
        volume: String,
        /// Container name.
        container: String,
    },
    /// A subPath leaves its volume.
    #[error("invalid subPath {0:?}: must be a relative path without '..'")]
    SubPath(String),
    /// A file the container needs could not be made.
    #[error("preparing {path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        message: String,
    },
}

/// Paths the kubelet masks in unprivileged containers (Kubernetes' defaults).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Paths the kubelet makes read-only in unprivileged containers.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The hash of a container spec, stored on the container to notice spec changes.
pub fn container_hash(c: &Container) -> u64 {
    let json = serde_json::to_vec(c).unwrap_or_default();
    crate::util::fnv64(&json)
}

/// Everything a container config is made from.
pub struct Params<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The container.
    pub container: &'a Container,
    /// Init or app.
    pub kind: Kind,
    /// Its restart count (the CRI attempt).
    pub restart_count: i32,
    /// The image as the runtime knows it (id).
    pub image: &'a cri::Image,
    /// The resolved environment.
    pub env: &'a [(String, String)],
    /// Command and args with `$(VAR)` expanded.
    pub command: (Vec<String>, Vec<String>),
    /// The pod's volumes on the host.
    pub volumes: &'a HashMap<String, HostVolume>,
    /// `DATA/pods/<uid>`.
    pub pod_dir: &'a Path,
    /// The hosts file to mount at /etc/hosts (pod-network pods).
    pub hosts_file: Option<&'a Path>,
    /// The pod's QoS class.
    pub qos: QosClass,
    /// Node memory capacity (for the OOM score).
    pub memory_capacity: i64,
    /// Whether privileged containers may run.
    pub allow_privileged: bool,
    /// Where `Localhost` seccomp profiles are.
    pub seccomp_root: &'a Path,
}

fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn clean_subpath(p: &str) -> Result<PathBuf, ConfigError> {
    let path = Path::new(p);
    if path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(ConfigError::SubPath(p.into()));
    }
    Ok(path.to_path_buf())
}

/// The CRI config of a container and the host path of its termination-message file.
pub fn container_config(p: &Params<'_>) -> Result<(cri::ContainerConfig, PathBuf), ConfigError> {
    let c = p.container;
    let spec = crate::pods::spec_of(p.pod);
    let psc = spec.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged.unwrap_or(false);
    if privileged && !p.allow_privileged {
        return Err(ConfigError::Privileged(c.name.clone()));
    }
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    if sc.run_as_non_root.or(psc.run_as_non_root) == Some(true) {
        match run_as_user {
            Some(0) => {
                return Err(ConfigError::RunAsRoot {
                    pod: pod_desc(p.pod),
                    container: c.name.clone(),
                });
            }
            Some(_) => {}
            None => {
                if let Some(uid) = &p.image.uid {
                    if uid.value == 0 {
                        return Err(ConfigError::RunAsRoot {
                            pod: pod_desc(p.pod),
                            container: c.name.clone(),
                        });
                    }
                } else if p.image.username.is_empty() || p.image.username == "root" {
                    return Err(ConfigError::RunAsRoot {
                        pod: pod_desc(p.pod),
                        container: c.name.clone(),
                    });
                } else {
                    return Err(ConfigError::NonNumericUser {
                        pod: pod_desc(p.pod),
                        container: c.name.clone(),
                        user: p.image.username.clone(),
                    });
                }
            }
        }
    }

    // Mounts.
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let vol = p
            .volumes
            .get(&m.name)
            .ok_or_else(|| ConfigError::UnknownVolume {
                volume: m.name.clone(),
                container: c.name.clone(),
            })?;
        let mut host = vol.path.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            host = host.join(clean_subpath(sub)?);
            if !host.exists() && vol.writable {
                std::fs::create_dir_all(&host).map_err(|e| ConfigError::Io {
                    path: host.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        mounts.push(cri::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: m.read_only.unwrap_or(false) || vol.read_only,
            propagation: match m.mount_propagation.as_deref() {
                Some("HostToContainer") => cri::MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional,
                _ => cri::MountPropagation::PropagationPrivate,
            } as i32,
            ..Default::default()
        });
    }
    let mounted =
        |mounts: &[cri::Mount], path: &str| mounts.iter().any(|m| m.container_path == path);
    if let Some(hosts) = p.hosts_file
        && !mounted(&mounts, "/etc/hosts")
    {
        mounts.push(cri::Mount {
            container_path: "/etc/hosts".into(),
            host_path: hosts.display().to_string(),
            ..Default::default()
        });
    }
    // The termination-message file: a fresh one per container instance.
    let term_dir = p.pod_dir.join("containers").join(&c.name);
    std::fs::create_dir_all(&term_dir).map_err(|e| ConfigError::Io {
        path: term_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let term_file = term_dir.join(format!("{:08x}", rand::random::<u32>()));
    std::fs::write(&term_file, b"").map_err(|e| ConfigError::Io {
        path: term_file.display().to_string(),
        message: e.to_string(),
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&term_file, std::fs::Permissions::from_mode(0o666));
    }
    let term_path = c
        .termination_message_path
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "/dev/termination-log".into());
    if !mounted(&mounts, &term_path) {
        mounts.push(cri::Mount {
            container_path: term_path.clone(),
            host_path: term_file.display().to_string(),
            ..Default::default()
        });
    }

    let mut lbl: HashMap<String, String> = HashMap::new();
    lbl.insert(
        labels::POD_NAME.into(),
        p.pod.metadata.name.clone().unwrap_or_default(),
    );
    lbl.insert(
        labels::POD_NAMESPACE.into(),
        p.pod.metadata.namespace.clone().unwrap_or_default(),
    );
    lbl.insert(
        labels::POD_UID.into(),
        p.pod.metadata.uid.clone().unwrap_or_default(),
    );
    lbl.insert(labels::CONTAINER_NAME.into(), c.name.clone());
    lbl.insert(
        labels::CONTAINER_KIND.into(),
        match p.kind {
            Kind::Init => "init",
            Kind::App => "app",
        }
        .into(),
    );
    lbl.insert(labels::MANAGED.into(), "true".into());
    let mut ann: HashMap<String, String> = HashMap::new();
    ann.insert(
        labels::CONTAINER_HASH.into(),
        format!("{:x}", container_hash(c)),
    );
    ann.insert(labels::RESTART_COUNT.into(), p.restart_count.to_string());
    ann.insert(labels::TERMINATION_MESSAGE_PATH.into(), term_path);
    ann.insert(
        labels::TERMINATION_MESSAGE_POLICY.into(),
        c.termination_message_policy
            .clone()
            .unwrap_or_else(|| "File".into()),
    );
    ann.insert(
        labels::TERMINATION_MESSAGE_HOST_PATH.into(),
        term_file.display().to_string(),
    );
    ann.insert(
        labels::GRACE_PERIOD.into(),
        spec.termination_grace_period_seconds
            .unwrap_or(30)
            .to_string(),
    );
    if let Some(pre_stop) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        && let Ok(json) = serde_json::to_string(pre_stop)
    {
        ann.insert(labels::PRE_STOP.into(), json);
    }

    let caps = sc.capabilities.clone().unwrap_or_default();
    let security = cri::LinuxContainerSecurityContext {
        capabilities: Some(cri::Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            add_ambient_capabilities: vec![],
        }),
        privileged,
        namespace_options: Some(sandbox::namespace_options(p.pod)),
        run_as_user: run_as_user.map(|v| cri::Int64Value { value: v }),
        run_as_group: run_as_group.map(|v| cri::Int64Value { value: v }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths: if privileged {
            vec![]
        } else {
            MASKED_PATHS.iter().map(|s| s.to_string()).collect()
        },
        readonly_paths: if privileged {
            vec![]
        } else {
            READONLY_PATHS.iter().map(|s| s.to_string()).collect()
        },
        seccomp: Some(sandbox::seccomp(
            sc.seccomp_profile.as_ref().or(psc.seccomp_profile.as_ref()),
            p.seccomp_root,
        )),
        ..Default::default()
    };

    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt: p.restart_count.max(0) as u32,
        }),
        image: Some(cri::ImageSpec {
            image: p.image.id.clone(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: p.command.0.clone(),
        args: p.command.1.clone(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: p
            .env
            .iter()
            .map(|(k, v)| cri::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts,
        labels: lbl,
        annotations: ann,
        log_path: format!("{}/{}.log", c.name, p.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(qos::linux_resources(c, p.qos, p.memory_capacity)),
            security_context: Some(security),
        }),
        ..Default::default()
    };
    Ok((config, term_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_config() {
        let dir = tempfile::tempdir().unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"terminationGracePeriodSeconds": 7, "containers": [{
                "name": "app", "image": "busybox:1.35", "workingDir": "/w",
                "command": ["sh"], "args": ["-c", "x"],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "a/b"},
                                 {"name": "cfg", "mountPath": "/cfg"}],
                "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}},
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}}]}
        }))
        .unwrap();
        let vols: HashMap<String, HostVolume> = [
            (
                "data".to_string(),
                HostVolume {
                    path: dir.path().join("data"),
                    read_only: false,
                    writable: true,
                },
            ),
            (
                "cfg".to_string(),
                HostVolume {
                    path: dir.path().join("cfg"),
                    read_only: true,
                    writable: false,
                },
            ),
        ]
        .into();
        let image = cri::Image {
            id: "sha256:abc".into(),
            ..Default::default()
        };
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let hosts = dir.path().join("etc-hosts");
        let params = Params {
            pod: &pod,
            container: c,
            kind: Kind::App,
            restart_count: 3,
            image: &image,
            env: &[("A".into(), "1".into())],
            command: (vec!["sh".into()], vec!["-c".into(), "x".into()]),
            volumes: &vols,
            pod_dir: dir.path(),
            hosts_file: Some(&hosts),
            qos: QosClass::BestEffort,
            memory_capacity: 1 << 30,
            allow_privileged: false,
            seccomp_root: dir.path(),
        };
        let (cfg, term) = container_config(&params).unwrap();
        assert!(term.exists());
        assert_eq!(cfg.metadata.as_ref().unwrap().attempt, 3);
        assert_eq!(cfg.image.as_ref().unwrap().image, "sha256:abc");
        assert_eq!(cfg.log_path, "app/3.log");
        assert_eq!(cfg.working_dir, "/w");
        let m: HashMap<_, _> = cfg
            .mounts
            .iter()
            .map(|m| (m.container_path.clone(), m.clone()))
            .collect();
        assert!(m["/data"].host_path.ends_with("data/a/b"));
        assert!(dir.path().join("data/a/b").is_dir(), "subPath created");
        assert!(m["/cfg"].readonly);
        assert_eq!(m["/etc/hosts"].host_path, hosts.display().to_string());
        assert_eq!(
            m["/dev/termination-log"].host_path,
            term.display().to_string()
        );
        assert_eq!(cfg.labels[labels::CONTAINER_NAME], "app");
        assert_eq!(cfg.annotations[labels::RESTART_COUNT], "3");
        assert_eq!(cfg.annotations[labels::GRACE_PERIOD], "7");
        assert!(cfg.annotations[labels::PRE_STOP].contains("sleep"));
        let sc = cfg.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert!(sc.readonly_rootfs && sc.no_new_privs);
        assert_eq!(sc.capabilities.unwrap().drop_capabilities, vec!["ALL"]);
        assert!(sc.masked_paths.contains(&"/proc/kcore".to_string()));
        // The hash changes with the spec.
        let mut c2 = c.clone();
        c2.image = Some("busybox:1.36".into());
        assert_ne!(container_hash(c), container_hash(&c2));
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [
                {"name": "priv", "securityContext": {"privileged": true}},
                {"name": "nonroot", "securityContext": {"runAsNonRoot": true}},
                {"name": "bad", "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "../etc"}]}]}
        }))
        .unwrap();
        let image = cri::Image::default();
        let vols: HashMap<String, HostVolume> = [(
            "v".to_string(),
            HostVolume {
                path: dir.path().into(),
                read_only: false,
                writable: true,
            },
        )]
        .into();
        let cs = &pod.spec.as_ref().unwrap().containers;
        let mk = |c| Params {
            pod: &pod,
            container: c,
            kind: Kind::App,
            restart_count: 0,
            image: &image,
            env: &[],
            command: (vec![], vec![]),
            volumes: &vols,
            pod_dir: dir.path(),
            hosts_file: None,
            qos: QosClass::BestEffort,
            memory_capacity: 1,
            allow_privileged: false,
            seccomp_root: dir.path(),
        };
        assert!(matches!(
            container_config(&mk(&cs[0])),
            Err(ConfigError::Privileged(_))
        ));
        let err = container_config(&mk(&cs[1])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("container has runAsNonRoot and image will run as root")
        );
        assert!(matches!(
            container_config(&mk(&cs[2])),
            Err(ConfigError::SubPath(_))
        ));
    }
}

//! Trimming the pods a component caches to what it reads. A pod's size is mostly in what only
//! its kubelet uses — volumes, container commands, environment, mounts, probes, hooks, security
//! contexts — and in its status; the controller manager and the scheduler keep tens of thousands
//! of pods in memory and read neither. Whoever trims must never write a trimmed copy back
//! (controllers and the scheduler write pods by patch, delete, binding and the status
//! subresource only).

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};

/// Drops the volumes, the ephemeral containers, and each container's command, args,
/// environment, mounts, devices, probes, lifecycle hooks and security context. Kept:
/// metadata, the rest of the spec (node name, tolerations, affinity, container names, images,
/// ports, resources, restart policies) and the whole status.
pub fn pod_spec(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.volumes = None;
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        c.command = None;
        c.args = None;
        c.env = None;
        c.env_from = None;
        c.volume_mounts = None;
        c.volume_devices = None;
        c.liveness_probe = None;
        c.readiness_probe = None;
        c.startup_probe = None;
        c.lifecycle = None;
        c.security_context = None;
    }
    spec.ephemeral_containers = None;
}

/// [`pod_spec`], and of the containers only what controllers read — the named ports a
/// Service's `targetPort` may refer to: containers and sidecars (init containers with
/// `restartPolicy: Always`) keep their name, ports and restart policy, and those without ports
/// go, as do the other init containers. Of the container statuses only the name, state, last
/// state, readiness and restart count stay. For the controller manager.
pub fn pod_for_controllers(pod: &mut Pod) {
    pod_spec(pod);
    if let Some(spec) = pod.spec.as_mut() {
        let keep = |c: &mut Container| -> Option<Container> {
            c.ports.as_ref().filter(|p| !p.is_empty())?;
            Some(Container {
                name: std::mem::take(&mut c.name),
                ports: c.ports.take(),
                restart_policy: c.restart_policy.take(),
                ..Default::default()
            })
        };
        spec.containers = spec.containers.iter_mut().filter_map(keep).collect();
        if let Some(init) = spec.init_containers.as_mut() {
            *init = init
                .iter_mut()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                .filter_map(keep)
                .collect();
        }
        if spec.init_containers.as_ref().is_some_and(Vec::is_empty) {
            spec.init_containers = None;
        }
    }
    if let Some(status) = pod.status.as_mut() {
        let statuses = status
            .container_statuses
            .iter_mut()
            .chain(status.init_container_statuses.iter_mut())
            .chain(status.ephemeral_container_statuses.iter_mut())
            .flatten();
        for c in statuses {
            *c = ContainerStatus {
                name: std::mem::take(&mut c.name),
                state: c.state.take(),
                last_state: c.last_state.take(),
                ready: c.ready,
                restart_count: c.restart_count,
                started: c.started,
                ..Default::default()
            };
        }
    }
}

/// [`pod_spec`], and of the status only what scheduling reads: the phase, the conditions, the
/// nominated node and the start time (container statuses and addresses go).
pub fn pod_for_scheduling(pod: &mut Pod) {
    pod_spec(pod);
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
        status.host_ip = None;
        status.host_ips = None;
        status.pod_ip = None;
        status.pod_ips = None;
        status.message = None;
        status.resource_claim_statuses = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "labels": {"app": "a"}},
            "spec": {
                "nodeName": "n1",
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always",
                    "env": [{"name": "E", "value": "1"}]}],
                "containers": [{"name": "c", "image": "i", "command": ["sleep"],
                    "args": ["1d"], "env": [{"name": "E", "value": "1"}],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080}],
                    "resources": {"requests": {"cpu": "100m"}},
                    "readinessProbe": {"exec": {"command": ["true"]}}}]
            },
            "status": {"phase": "Running", "podIP": "10.0.0.1", "nominatedNodeName": "n2",
                "startTime": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                    "ready": true, "restartCount": 2}]}
        }))
        .unwrap()
    }

    #[test]
    fn spec_trimming_keeps_metadata_status_and_scheduling_fields() {
        let full = pod();
        let mut slim = full.clone();
        pod_spec(&mut slim);
        let (s, f) = (slim.spec.as_ref().unwrap(), full.spec.as_ref().unwrap());
        assert!(s.volumes.is_none());
        let c = &s.containers[0];
        assert!(c.command.is_none() && c.args.is_none() && c.env.is_none());
        assert!(c.volume_mounts.is_none() && c.readiness_probe.is_none());
        assert!(s.init_containers.as_ref().unwrap()[0].env.is_none());
        assert_eq!(slim.metadata, full.metadata);
        assert_eq!(slim.status, full.status);
        assert_eq!(s.node_name, f.node_name);
        assert_eq!(s.tolerations, f.tolerations);
        assert_eq!(c.ports, f.containers[0].ports);
        assert_eq!(c.resources, f.containers[0].resources);
        assert_eq!(c.image, f.containers[0].image);
        let side = &s.init_containers.as_ref().unwrap()[0];
        assert_eq!(side.restart_policy.as_deref(), Some("Always"));
    }

    #[test]
    fn controller_trimming_keeps_named_ports_and_restart_counts() {
        let mut full = pod();
        let spec = full.spec.as_mut().unwrap();
        let ports = spec.containers[0].ports.clone();
        // A container without ports and a plain init container go; the sidecar has ports.
        spec.containers.push(Container {
            name: "quiet".into(),
            image: Some("i".into()),
            ..Default::default()
        });
        let init = spec.init_containers.as_mut().unwrap();
        init[0].ports = ports.clone();
        init.push(Container {
            name: "setup".into(),
            ports,
            ..Default::default()
        });
        let mut slim = full.clone();
        pod_for_controllers(&mut slim);
        let (s, f) = (slim.spec.as_ref().unwrap(), full.spec.as_ref().unwrap());
        assert_eq!(s.containers.len(), 1);
        assert_eq!(s.containers[0].name, "c");
        assert_eq!(s.containers[0].ports, f.containers[0].ports);
        assert!(s.containers[0].image.is_none() && s.containers[0].resources.is_none());
        let init = s.init_containers.as_ref().unwrap();
        assert_eq!(init.len(), 1, "only the sidecar");
        assert_eq!(init[0].name, "side");
        assert_eq!(init[0].restart_policy.as_deref(), Some("Always"));
        assert_eq!(init[0].ports, f.containers[0].ports);
        assert_eq!(s.node_name, f.node_name);
        assert_eq!(s.tolerations, f.tolerations);
        assert_eq!(slim.metadata, full.metadata);
        let (ss, fs) = (slim.status.as_ref().unwrap(), full.status.as_ref().unwrap());
        let (c, fc) = (
            &ss.container_statuses.as_ref().unwrap()[0],
            &fs.container_statuses.as_ref().unwrap()[0],
        );
        assert_eq!((c.restart_count, c.ready, &c.name), (2, true, &fc.name));
        assert!(c.image.is_empty());
        assert_eq!(
            (&ss.phase, &ss.conditions, &ss.pod_ip),
            (&fs.phase, &fs.conditions, &fs.pod_ip)
        );
        // No ports anywhere: no containers kept.
        let mut bare = pod();
        for c in bare.spec.as_mut().unwrap().containers.iter_mut() {
            c.ports = None;
        }
        pod_for_controllers(&mut bare);
        let spec = bare.spec.unwrap();
        assert!(spec.containers.is_empty() && spec.init_containers.is_none());
    }

    #[test]
    fn scheduling_trimming_keeps_phase_conditions_nomination_and_start() {
        let full = pod();
        let mut slim = full.clone();
        pod_for_scheduling(&mut slim);
        let (s, f) = (slim.status.unwrap(), full.status.unwrap());
        assert!(s.container_statuses.is_none() && s.pod_ip.is_none());
        assert_eq!(s.phase, f.phase);
        assert_eq!(s.conditions, f.conditions);
        assert_eq!(s.nominated_node_name, f.nominated_node_name);
        assert_eq!(s.start_time, f.start_time);
        assert!(slim.spec.unwrap().volumes.is_none());
    }
}

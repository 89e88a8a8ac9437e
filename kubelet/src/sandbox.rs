//! The pod sandbox as CRI sees it: metadata and labels, hostname, the log directory, DNS (the
//! pod's dnsPolicy and dnsConfig against the cluster DNS and the node's resolv.conf), hostPort
//! mappings, namespaces (hostNetwork/hostPID/hostIPC, shareProcessNamespace), the cgroup parent
//! of the pod's QoS class, and the pod-level security context. Also the `/etc/hosts` file the
//! kubelet writes for each pod.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, SeccompProfile};
use rkube_cri::v1 as cri;

use crate::labels;
use crate::qos;

/// What the sandbox config depends on besides the pod.
#[derive(Clone, Debug)]
pub struct SandboxContext {
    /// Cluster DNS servers.
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster domain.
    pub cluster_domain: String,
    /// The node's resolv.conf.
    pub resolv_conf: PathBuf,
    /// The QoS cgroups' root.
    pub cgroup_root: String,
    /// Where pod log directories go.
    pub logs_root: PathBuf,
    /// Where `Localhost` seccomp profiles are.
    pub seccomp_root: PathBuf,
}

/// The pod's log directory: `<root>/<namespace>_<name>_<uid>`.
pub fn log_dir(root: &Path, pod: &Pod) -> PathBuf {
    root.join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    ))
}

/// The pod's hostname (spec.hostname, else its name cut to 63 characters) and its domain
/// (`<subdomain>.<namespace>.svc.<cluster domain>` when a subdomain is set).
pub fn hostname(pod: &Pod, cluster_domain: &str) -> (String, Option<String>) {
    let spec = crate::pods::spec_of(pod);
    let mut name = spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    if name.len() > 63 {
        name.truncate(63);
        name = name.trim_end_matches(['-', '.']).to_string();
    }
    let domain = spec
        .subdomain
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            format!(
                "{s}.{}.svc.{cluster_domain}",
                pod.metadata.namespace.as_deref().unwrap_or("default")
            )
        });
    (name, domain)
}

/// Nameservers, search domains and options of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default().trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => {
                searches = words.map(str::to_string).collect();
            }
            Some("options") => options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    (servers, searches, options)
}

/// The sandbox DNS config for the pod's dnsPolicy; a warning when ClusterFirst has no cluster
/// DNS to use (the pod then gets the node's resolv.conf, as Kubernetes does).
pub fn dns_config(pod: &Pod, ctx: &SandboxContext) -> (cri::DnsConfig, Option<String>) {
    let spec = crate::pods::spec_of(pod);
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec
        .dns_policy
        .clone()
        .unwrap_or_else(|| "ClusterFirst".into());
    let host = std::fs::read_to_string(&ctx.resolv_conf).unwrap_or_default();
    let (h_servers, h_searches, h_options) = parse_resolv_conf(&host);
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut warning = None;
    let cluster_first = match policy.as_str() {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut cfg = match policy.as_str() {
        "None" => cri::DnsConfig::default(),
        _ if cluster_first && !ctx.cluster_dns.is_empty() => {
            let d = &ctx.cluster_domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.extend(h_searches.iter().cloned());
            cri::DnsConfig {
                servers: ctx.cluster_dns.iter().map(|ip| ip.to_string()).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => {
            if cluster_first {
                warning = Some(
                    "pod: ClusterFirst policy specified but no cluster DNS is configured (--cluster-dns); falling back to \"Default\" policy"
                        .to_string(),
                );
            }
            cri::DnsConfig {
                servers: h_servers,
                searches: h_searches,
                options: h_options,
            }
        }
    };
    if let Some(extra) = &spec.dns_config {
        for s in extra.nameservers.iter().flatten() {
            if !cfg.servers.contains(s) {
                cfg.servers.push(s.clone());
            }
        }
        for s in extra.searches.iter().flatten() {
            if !cfg.searches.contains(s) {
                cfg.searches.push(s.clone());
            }
        }
        for o in extra.options.iter().flatten() {
            let text = match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let name = text.split(':').next().unwrap_or_default().to_string();
            cfg.options
                .retain(|x| x.split(':').next().unwrap_or_default() != name);
            cfg.options.push(text);
        }
    }
    // resolv.conf allows 3 servers and 32 search domains.
    cfg.servers.truncate(3);
    cfg.searches.truncate(32);
    (cfg, warning)
}

/// A seccomp profile as CRI wants it (unset means Unconfined, as Kubernetes defaults).
pub fn seccomp(profile: Option<&SeccompProfile>, root: &Path) -> cri::SecurityProfile {
    use cri::security_profile::ProfileType;
    match profile.map(|p| p.type_.as_str()) {
        Some("RuntimeDefault") => cri::SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        },
        Some("Localhost") => cri::SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: root
                .join(
                    profile
                        .and_then(|p| p.localhost_profile.clone())
                        .unwrap_or_default(),
                )
                .display()
                .to_string(),
        },
        _ => cri::SecurityProfile {
            profile_type: ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        },
    }
}

/// The namespaces of the pod's containers.
pub fn namespace_options(pod: &Pod) -> cri::NamespaceOption {
    let spec = crate::pods::spec_of(pod);
    let mode = |node: bool, pod_mode: cri::NamespaceMode| {
        if node {
            cri::NamespaceMode::Node as i32
        } else {
            pod_mode as i32
        }
    };
    cri::NamespaceOption {
        network: mode(spec.host_network.unwrap_or(false), cri::NamespaceMode::Pod),
        pid: mode(
            spec.host_pid.unwrap_or(false),
            if spec.share_process_namespace.unwrap_or(false) {
                cri::NamespaceMode::Pod
            } else {
                cri::NamespaceMode::Container
            },
        ),
        ipc: mode(spec.host_ipc.unwrap_or(false), cri::NamespaceMode::Pod),
        ..Default::default()
    }
}

/// The labels that tie runtime objects to the pod.
pub fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    l.insert(
        labels::POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    l.insert(
        labels::POD_NAMESPACE.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    l.insert(
        labels::POD_UID.into(),
        pod.metadata.uid.clone().unwrap_or_default(),
    );
    l.insert(labels::MANAGED.into(), "true".into());
    l
}

/// The sandbox config of attempt `attempt`; with a warning to report as an event.
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    ctx: &SandboxContext,
) -> (cri::PodSandboxConfig, Option<String>) {
    let spec = crate::pods::spec_of(pod);
    let host_network = spec.host_network.unwrap_or(false);
    let (hostname, _) = hostname(pod, &ctx.cluster_domain);
    let (dns, warning) = dns_config(pod, ctx);
    let mut ports = Vec::new();
    if !host_network {
        for c in &spec.containers {
            for p in c.ports.iter().flatten() {
                let host_port = p.host_port.unwrap_or(0);
                if host_port <= 0 {
                    continue;
                }
                ports.push(cri::PortMapping {
                    protocol: match p.protocol.as_deref() {
                        Some("UDP") => cri::Protocol::Udp as i32,
                        Some("SCTP") => cri::Protocol::Sctp as i32,
                        _ => cri::Protocol::Tcp as i32,
                    },
                    container_port: p.container_port,
                    host_port,
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                });
            }
        }
    }
    let psc = spec.security_context.clone().unwrap_or_default();
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    let class = qos::qos_class(pod);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname: if host_network {
            String::new()
        } else {
            hostname
        },
        log_directory: log_dir(&ctx.logs_root, pod).display().to_string(),
        dns_config: Some(dns),
        port_mappings: ports,
        labels: pod_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: qos::cgroup_parent(&ctx.cgroup_root, class, &uid),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: psc.run_as_user.map(|v| cri::Int64Value { value: v }),
                run_as_group: psc.run_as_group.map(|v| cri::Int64Value { value: v }),
                supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
                privileged,
                seccomp: Some(seccomp(psc.seccomp_profile.as_ref(), &ctx.seccomp_root)),
                ..Default::default()
            }),
            sysctls: psc
                .sysctls
                .iter()
                .flatten()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            ..Default::default()
        }),
        windows: None,
    };
    (config, warning)
}

/// The `/etc/hosts` of a pod network pod.
pub fn hosts_file(pod: &Pod, ips: &[String], cluster_domain: &str) -> String {
    let (name, domain) = hostname(pod, cluster_domain);
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in ips {
        match &domain {
            Some(d) => s.push_str(&format!("{ip}\t{name}.{d}\t{name}\n")),
            None => s.push_str(&format!("{ip}\t{name}\n")),
        }
    }
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path, dns: &[&str]) -> SandboxContext {
        let resolv = dir.join("resolv.conf");
        std::fs::write(
            &resolv,
            "nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n",
        )
        .unwrap();
        SandboxContext {
            cluster_dns: dns.iter().map(|d| d.parse().unwrap()).collect(),
            cluster_domain: "cluster.local".into(),
            resolv_conf: resolv,
            cgroup_root: "/kubepods".into(),
            logs_root: dir.join("logs"),
            seccomp_root: dir.join("seccomp"),
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn cluster_first_dns() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path(), &["10.96.0.10"]);
        let p =
            pod(serde_json::json!({"containers": [{"name": "c"}], "dnsPolicy": "ClusterFirst"}));
        let (dns, warn) = dns_config(&p, &c);
        assert!(warn.is_none());
        assert_eq!(dns.servers, vec!["10.96.0.10"]);
        assert_eq!(
            dns.searches,
            vec![
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(dns.options, vec!["ndots:5"]);
        // Host network: ClusterFirst means the node's resolv.conf …
        let p = pod(serde_json::json!({"containers": [{"name": "c"}], "hostNetwork": true}));
        assert_eq!(dns_config(&p, &c).0.servers, vec!["192.0.2.53"]);
        // … unless ClusterFirstWithHostNet.
        let p = pod(
            serde_json::json!({"containers": [{"name": "c"}], "hostNetwork": true,
            "dnsPolicy": "ClusterFirstWithHostNet"}),
        );
        assert_eq!(dns_config(&p, &c).0.servers, vec!["10.96.0.10"]);
        // None with dnsConfig.
        let p = pod(
            serde_json::json!({"containers": [{"name": "c"}], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
        );
        let (dns, _) = dns_config(&p, &c);
        assert_eq!(dns.servers, vec!["1.1.1.1"]);
        assert_eq!(dns.searches, vec!["a.b"]);
        assert_eq!(dns.options, vec!["ndots:2", "edns0"]);
        // No cluster DNS configured: Default, with a warning.
        let c2 = ctx(dir.path(), &[]);
        let p = pod(serde_json::json!({"containers": [{"name": "c"}]}));
        let (dns, warn) = dns_config(&p, &c2);
        assert_eq!(dns.servers, vec!["192.0.2.53"]);
        assert!(warn.is_some());
    }

    #[test]
    fn config_fields() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path(), &["10.96.0.10"]);
        let p = pod(serde_json::json!({"containers": [{"name": "c",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}],
            "resources": {"requests": {"cpu": "100m"}}}],
            "securityContext": {"runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"},
                                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}}));
        let (cfg, _) = sandbox_config(&p, 2, &c);
        let md = cfg.metadata.unwrap();
        assert_eq!(
            (
                md.name.as_str(),
                md.namespace.as_str(),
                md.uid.as_str(),
                md.attempt
            ),
            ("web-0", "shop", "u-1", 2)
        );
        assert_eq!(cfg.hostname, "web-0");
        assert_eq!(cfg.port_mappings.len(), 1);
        assert_eq!(cfg.port_mappings[0].host_port, 8080);
        assert_eq!(cfg.labels[labels::POD_UID], "u-1");
        assert_eq!(cfg.labels["app"], "web");
        assert!(cfg.log_directory.ends_with("logs/shop_web-0_u-1"));
        let linux = cfg.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/kubepods/burstable/podu-1");
        assert_eq!(linux.sysctls["net.ipv4.ip_unprivileged_port_start"], "0");
        let sc = linux.security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert_eq!(
            sc.seccomp.unwrap().profile_type,
            cri::security_profile::ProfileType::RuntimeDefault as i32
        );
        let ns = sc.namespace_options.unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Pod as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Container as i32);
        let p = pod(
            serde_json::json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}],
            "hostNetwork": true}),
        );
        let (cfg, _) = sandbox_config(&p, 0, &c);
        assert!(cfg.port_mappings.is_empty());
        assert_eq!(
            cfg.linux
                .unwrap()
                .security_context
                .unwrap()
                .namespace_options
                .unwrap()
                .network,
            cri::NamespaceMode::Node as i32
        );
    }

    #[test]
    fn hosts() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "c"}], "hostname": "h", "subdomain": "sub",
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo", "bar"]}]}),
        );
        let text = hosts_file(&p, &["10.244.0.7".into()], "cluster.local");
        assert!(text.contains("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.244.0.7\th.sub.shop.svc.cluster.local\th\n"));
        assert!(text.contains("10.1.2.3\tfoo\tbar\n"));
        let long = pod(serde_json::json!({"containers": [{"name": "c"}]}));
        let mut long = long;
        long.metadata.name = Some(format!("{}-x", "a".repeat(62)));
        assert_eq!(hostname(&long, "cluster.local").0, "a".repeat(62));
    }
}

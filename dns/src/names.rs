//! Names of the cluster zone: the owner names the Kubernetes DNS specification defines
//! (`<svc>.<ns>.svc.<domain>`, `_<port>._<proto>.…`, `<a-b-c-d>.<ns>.pod.<domain>`), dashed IP
//! labels, reverse (PTR) owner names and the reverse zones rkube-dns answers from its caches.

use std::net::IpAddr;

use hickory_server::proto::rr::{LowerName, Name};

/// A name that could not be built (a label longer than 63 bytes, a name longer than 255, …).
#[derive(Debug, thiserror::Error)]
#[error("invalid DNS name {name:?}: {reason}")]
pub struct NameError {
    /// The name as text.
    pub name: String,
    /// Why it was refused.
    pub reason: String,
}

/// Parses a cluster domain such as `cluster.local` (a trailing dot is optional) into a
/// lowercase fully qualified name.
pub fn cluster_domain(domain: &str) -> Result<Name, NameError> {
    let trimmed = domain.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(NameError {
            name: domain.to_string(),
            reason: "the cluster domain is empty".into(),
        });
    }
    fqdn(&format!("{trimmed}."))
}

/// Parses an absolute name (`a.b.c.`; a missing trailing dot is added) and lowercases it.
pub fn fqdn(text: &str) -> Result<Name, NameError> {
    let mut name = Name::from_ascii(text).map_err(|e| NameError {
        name: text.to_string(),
        reason: e.to_string(),
    })?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// `label.parent`.
pub fn child(parent: &Name, label: &str) -> Result<Name, NameError> {
    parent
        .prepend_label(label.to_ascii_lowercase().as_bytes())
        .map_err(|e| NameError {
            name: format!("{label}.{parent}"),
            reason: e.to_string(),
        })
}

/// The name of a Service: `<svc>.<ns>.svc.<domain>`.
pub fn service(domain: &Name, namespace: &str, service: &str) -> Result<Name, NameError> {
    child(&child(&child(domain, "svc")?, namespace)?, service)
}

/// The SRV owner of a named port: `_<port>._<proto>.<owner>` (`proto` lowercased: tcp, udp, sctp).
pub fn srv(owner: &Name, port: &str, protocol: &str) -> Result<Name, NameError> {
    let proto = format!("_{}", protocol.to_ascii_lowercase());
    child(&child(owner, &proto)?, &format!("_{port}"))
}

/// The name of a pod by IP: `<dashed-ip>.<ns>.pod.<domain>`.
pub fn pod(domain: &Name, namespace: &str, ip: IpAddr) -> Result<Name, NameError> {
    child(&child(&child(domain, "pod")?, namespace)?, &dashed_ip(ip))
}

/// An IP written as one DNS label, as CoreDNS writes it: `10.1.2.3` → `10-1-2-3`,
/// `fd00::1` → `fd00--1`.
pub fn dashed_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The PTR owner name of an IP: `3.2.1.10.in-addr.arpa.` or the nibble form under `ip6.arpa.`.
pub fn reverse(ip: IpAddr) -> Name {
    let mut name = Name::from(ip).to_lowercase();
    name.set_fqdn(true);
    name
}

/// The reverse zones whose PTR records come from the caches (`in-addr.arpa.`, `ip6.arpa.`);
/// names there that the caches do not know are forwarded upstream.
#[derive(Clone, Debug)]
pub struct ReverseZones {
    v4: LowerName,
    v6: LowerName,
}

impl Default for ReverseZones {
    fn default() -> Self {
        Self {
            v4: LowerName::new(&fqdn("in-addr.arpa.").expect("static name")),
            v6: LowerName::new(&fqdn("ip6.arpa.").expect("static name")),
        }
    }
}

impl ReverseZones {
    /// Whether `name` lies in one of the reverse zones.
    pub fn contains(&self, name: &LowerName) -> bool {
        self.v4.zone_of(name) || self.v6.zone_of(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_ips_follow_coredns() {
        assert_eq!(dashed_ip("10.244.1.7".parse().unwrap()), "10-244-1-7");
        assert_eq!(dashed_ip("fd00::1".parse().unwrap()), "fd00--1");
        assert_eq!(
            dashed_ip("2001:db8:0:1::a".parse().unwrap()),
            "2001-db8-0-1--a"
        );
    }

    #[test]
    fn owner_names() {
        let d = cluster_domain("Cluster.Local").unwrap();
        assert_eq!(d.to_ascii(), "cluster.local.");
        assert_eq!(cluster_domain("cluster.local.").unwrap(), d);
        assert!(cluster_domain(" . ").is_err());
        let svc = service(&d, "default", "Redis").unwrap();
        assert_eq!(svc.to_ascii(), "redis.default.svc.cluster.local.");
        assert_eq!(
            srv(&svc, "http", "TCP").unwrap().to_ascii(),
            "_http._tcp.redis.default.svc.cluster.local."
        );
        assert_eq!(
            pod(&d, "kube-system", "10.0.0.9".parse().unwrap())
                .unwrap()
                .to_ascii(),
            "10-0-0-9.kube-system.pod.cluster.local."
        );
        let long = "x".repeat(64);
        let err = child(&d, &long).unwrap_err();
        assert!(err.to_string().contains(&long), "{err}");
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse("10.96.0.10".parse().unwrap()).to_ascii(),
            "10.0.96.10.in-addr.arpa."
        );
        let v6 = reverse("fd00::1".parse().unwrap()).to_ascii();
        assert!(v6.ends_with(".d.f.ip6.arpa."), "{v6}");
        assert!(v6.starts_with("1.0.0.0."), "{v6}");
        let zones = ReverseZones::default();
        assert!(zones.contains(&LowerName::new(&reverse("10.1.2.3".parse().unwrap()))));
        assert!(zones.contains(&LowerName::new(&reverse("fd00::2".parse().unwrap()))));
        assert!(!zones.contains(&LowerName::new(&fqdn("example.org").unwrap())));
    }
}

//! The cluster zone as an immutable snapshot: every owner name the Kubernetes DNS
//! specification gives Services, EndpointSlices and Pods, with its records ready to be written
//! into answers by reference. [`ZoneBuilder`] computes a snapshot from the reflectors' objects
//! (a pure function of them); the server swaps whole snapshots, so a query never waits on an
//! update and never calls the API.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tracing::warn;

use crate::names::{self, NameError, ReverseZones};

/// The version of the Kubernetes DNS schema served in the `dns-version.<domain>` TXT record.
pub const DNS_SCHEMA_VERSION: &str = "1.1.0";

/// The label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What every snapshot of a zone shares.
#[derive(Clone, Debug)]
pub struct ZoneConfig {
    /// The cluster domain, lowercase and fully qualified (`cluster.local.`).
    pub origin: Name,
    /// The TTL of every record, and the SOA minimum (negative-caching TTL).
    pub ttl: u32,
    /// The Service whose ClusterIPs are the zone's name server (`ns.dns.<domain>`):
    /// `(namespace, name)`, `kube-system/kube-dns` by default.
    pub dns_service: (String, String),
}

impl ZoneConfig {
    /// A configuration for `domain` (e.g. `cluster.local`) with TTL `ttl`.
    pub fn new(domain: &str, ttl: u32) -> Result<Self, NameError> {
        Ok(Self {
            origin: names::cluster_domain(domain)?,
            ttl,
            dns_service: ("kube-system".into(), "kube-dns".into()),
        })
    }
}

/// The records of one owner name, sorted by type, with the records an answer for it adds in
/// the additional section (addresses of SRV targets and of the zone's name server).
#[derive(Debug, Default)]
pub struct Node {
    records: Box<[Record]>,
    sets: Box<[(RecordType, u32, u32)]>,
    additionals: Box<[Record]>,
}

impl Node {
    /// The records of one type (empty when there are none).
    pub fn rrset(&self, rtype: RecordType) -> &[Record] {
        self.sets
            .iter()
            .find(|(t, _, _)| *t == rtype)
            .map_or(&[], |&(_, a, b)| &self.records[a as usize..b as usize])
    }

    /// Every record of the name.
    pub fn all(&self) -> &[Record] {
        &self.records
    }

    /// The name's CNAME record, if it is an alias.
    pub fn cname(&self) -> Option<&Record> {
        self.rrset(RecordType::CNAME).first()
    }

    /// Records for the additional section of answers about this name.
    pub fn additionals(&self) -> &[Record] {
        &self.additionals
    }

    /// Whether the name only exists because names below it do (an empty non-terminal).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// One immutable snapshot of the cluster zone (plus PTR records in the reverse zones).
#[derive(Debug)]
pub struct Zone {
    origin: LowerName,
    reverse: ReverseZones,
    soa: Box<[Record]>,
    nodes: HashMap<LowerName, Node>,
    ready: bool,
    serial: u32,
    records: usize,
}

impl Zone {
    /// The snapshot served before the caches have synced: names in the zone are answered with
    /// SERVFAIL (clients retry) rather than with a false NXDOMAIN.
    pub fn pending(config: &ZoneConfig) -> Self {
        Self {
            origin: LowerName::new(&config.origin),
            reverse: ReverseZones::default(),
            soa: Box::new([soa(config, 0)]),
            nodes: HashMap::new(),
            ready: false,
            serial: 0,
            records: 0,
        }
    }

    /// The zone apex (`cluster.local.`).
    pub fn origin(&self) -> &LowerName {
        &self.origin
    }

    /// The reverse zones whose PTR records this snapshot may hold.
    pub fn reverse_zones(&self) -> &ReverseZones {
        &self.reverse
    }

    /// The apex SOA record (a one-element slice, for authority sections).
    pub fn soa(&self) -> &[Record] {
        &self.soa
    }

    /// The records of a name, if the name exists.
    pub fn node(&self, name: &LowerName) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// Whether this snapshot was built from synced caches.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The SOA serial of this snapshot.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Number of owner names (including empty non-terminals).
    pub fn names(&self) -> usize {
        self.nodes.len()
    }

    /// Number of records.
    pub fn records(&self) -> usize {
        self.records
    }
}

fn soa(config: &ZoneConfig, serial: u32) -> Record {
    let ns = ns_name(&config.origin);
    let mbox = names::child(&config.origin, "hostmaster").unwrap_or_else(|_| ns.clone());
    Record::from_rdata(
        config.origin.clone(),
        config.ttl,
        RData::SOA(SOA::new(ns, mbox, serial, 7200, 1800, 86400, config.ttl)),
    )
}

/// The zone's name server: `ns.dns.<domain>` (as CoreDNS names it).
fn ns_name(origin: &Name) -> Name {
    names::child(origin, "dns")
        .and_then(|d| names::child(&d, "ns"))
        .unwrap_or_else(|_| origin.clone())
}

/// One endpoint address of a headless Service, merged over its EndpointSlices.
struct EndpointAddr {
    ip: IpAddr,
    hostname: Option<String>,
    ready: bool,
}

/// A pod with `hostname` and `subdomain` set, waiting for a headless Service of that name.
struct SubdomainPod<'a> {
    hostname: &'a str,
    ips: Vec<IpAddr>,
    ready: bool,
}

/// A named port of a headless Service's endpoints.
#[derive(PartialEq, Eq, Hash)]
struct NamedPort {
    name: String,
    protocol: String,
    port: u16,
}

/// Computes zone snapshots from Services, EndpointSlices and Pods.
pub struct ZoneBuilder<'c> {
    config: &'c ZoneConfig,
    nodes: HashMap<Name, Vec<Record>>,
}

impl<'c> ZoneBuilder<'c> {
    /// A builder for `config`.
    pub fn new(config: &'c ZoneConfig) -> Self {
        Self {
            config,
            nodes: HashMap::new(),
        }
    }

    /// Builds the snapshot with SOA serial `serial` from the given objects.
    pub fn build<'o>(
        mut self,
        services: impl IntoIterator<Item = &'o Service>,
        slices: impl IntoIterator<Item = &'o EndpointSlice>,
        pods: impl IntoIterator<Item = &'o Pod>,
        serial: u32,
    ) -> Zone {
        let config = self.config;
        let origin = config.origin.clone();
        let ttl = config.ttl;
        let ns = ns_name(&origin);
        self.add(soa(config, serial));
        self.add(Record::from_rdata(
            origin.clone(),
            ttl,
            RData::NS(NS(ns.clone())),
        ));
        if let Ok(version) = names::child(&origin, "dns-version") {
            self.add(Record::from_rdata(
                version,
                ttl,
                RData::TXT(TXT::new(vec![DNS_SCHEMA_VERSION.to_string()])),
            ));
        }

        // EndpointSlices by (namespace, service).
        let mut slices_by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            let (Some(ns), Some(svc)) = (
                slice.metadata.namespace.as_deref(),
                slice
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .map(String::as_str),
            ) else {
                continue;
            };
            slices_by_service.entry((ns, svc)).or_default().push(slice);
        }

        // Pods: their own A/AAAA records, and the hostname+subdomain candidates.
        let mut pods_by_subdomain: HashMap<(&str, &str), Vec<SubdomainPod<'_>>> = HashMap::new();
        for pod in pods {
            let Some(ns) = pod.metadata.namespace.as_deref() else {
                continue;
            };
            let name = pod.metadata.name.as_deref().unwrap_or("");
            let ips = pod_ips(pod);
            if ips.is_empty() {
                continue;
            }
            for ip in &ips {
                match names::pod(&origin, ns, *ip) {
                    Ok(owner) => self.add(address(owner, ttl, *ip)),
                    Err(e) => {
                        warn!(pod = %format!("{ns}/{name}"), error = %e, "skipping pod record")
                    }
                }
            }
            let spec = pod.spec.as_ref();
            if let (Some(host), Some(sub)) = (
                spec.and_then(|s| s.hostname.as_deref()),
                spec.and_then(|s| s.subdomain.as_deref()),
            ) && !host.is_empty()
                && !sub.is_empty()
            {
                pods_by_subdomain
                    .entry((ns, sub))
                    .or_default()
                    .push(SubdomainPod {
                        hostname: host,
                        ips,
                        ready: pod_ready(pod),
                    });
            }
        }

        for svc in services {
            let (Some(ns), Some(name)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
            ) else {
                continue;
            };
            if let Err(e) = self.add_service(
                svc,
                ns,
                name,
                slices_by_service.get(&(ns, name)).map_or(&[][..], |v| v),
                pods_by_subdomain.get(&(ns, name)).map_or(&[][..], |v| v),
            ) {
                warn!(service = %format!("{ns}/{name}"), error = %e, "skipping service records");
            }
        }

        self.finish(serial, &ns)
    }

    fn add(&mut self, record: Record) {
        self.nodes
            .entry(record.name.clone())
            .or_default()
            .push(record);
    }

    fn touch(&mut self, name: Name) {
        self.nodes.entry(name).or_default();
    }

    fn add_service(
        &mut self,
        svc: &Service,
        ns: &str,
        name: &str,
        slices: &[&EndpointSlice],
        subdomain_pods: &[SubdomainPod<'_>],
    ) -> Result<(), NameError> {
        let ttl = self.config.ttl;
        let owner = names::service(&self.config.origin, ns, name)?;
        self.touch(owner.clone());
        let Some(spec) = svc.spec.as_ref() else {
            return Ok(());
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec.external_name.as_deref().filter(|t| !t.is_empty()) {
                let target = names::fqdn(target)?;
                self.add(Record::from_rdata(owner, ttl, RData::CNAME(CNAME(target))));
            }
            return Ok(());
        }
        let headless = spec.cluster_ip.as_deref() == Some("None");
        if !headless {
            let ips = spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter())
                .filter_map(|ip| ip.parse::<IpAddr>().ok())
                .collect::<HashSet<_>>();
            for ip in ips {
                self.add(address(owner.clone(), ttl, ip));
                self.add(Record::from_rdata(
                    names::reverse(ip),
                    ttl,
                    RData::PTR(PTR(owner.clone())),
                ));
            }
            for port in spec.ports.iter().flatten() {
                let (Some(pname), Ok(number)) = (
                    port.name.as_deref().filter(|n| !n.is_empty()),
                    u16::try_from(port.port),
                ) else {
                    continue;
                };
                let proto = port.protocol.as_deref().unwrap_or("TCP");
                let srv_owner = names::srv(&owner, pname, proto)?;
                self.add(Record::from_rdata(
                    srv_owner,
                    ttl,
                    RData::SRV(SRV::new(0, 100, number, owner.clone())),
                ));
            }
            return Ok(());
        }

        // Headless: the ready endpoints (all of them with publishNotReadyAddresses).
        let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
        let mut addrs: Vec<EndpointAddr> = Vec::new();
        let mut ports: Vec<NamedPort> = Vec::new();
        for slice in slices {
            if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
                continue;
            }
            for p in slice.ports.iter().flatten() {
                let (Some(pname), Some(Ok(number))) = (
                    p.name.as_deref().filter(|n| !n.is_empty()),
                    p.port.map(u16::try_from),
                ) else {
                    continue;
                };
                let port = NamedPort {
                    name: pname.to_string(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port: number,
                };
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                for a in &ep.addresses {
                    let Ok(ip) = a.parse::<IpAddr>() else {
                        continue;
                    };
                    match addrs.iter_mut().find(|e| e.ip == ip) {
                        Some(e) => {
                            e.ready |= ready;
                            if e.hostname.is_none() {
                                e.hostname.clone_from(&ep.hostname);
                            }
                        }
                        None => addrs.push(EndpointAddr {
                            ip,
                            hostname: ep.hostname.clone().filter(|h| !h.is_empty()),
                            ready,
                        }),
                    }
                }
            }
        }
        addrs.retain(|e| e.ready || publish_not_ready);
        addrs.sort_by_key(|e| e.ip);
        let weight = u16::try_from((100 / addrs.len().max(1)).max(1)).unwrap_or(1);
        for e in &addrs {
            self.add(address(owner.clone(), ttl, e.ip));
            let label = e.hostname.clone().unwrap_or_else(|| names::dashed_ip(e.ip));
            let host = match names::child(&owner, &label) {
                Ok(h) => h,
                Err(err) => {
                    warn!(service = %format!("{ns}/{name}"), error = %err, "skipping endpoint hostname");
                    continue;
                }
            };
            self.add(address(host.clone(), ttl, e.ip));
            self.add(Record::from_rdata(
                names::reverse(e.ip),
                ttl,
                RData::PTR(PTR(host.clone())),
            ));
            for p in &ports {
                let srv_owner = names::srv(&owner, &p.name, &p.protocol)?;
                self.add(Record::from_rdata(
                    srv_owner,
                    ttl,
                    RData::SRV(SRV::new(0, weight, p.port, host.clone())),
                ));
            }
        }
        // Pods with hostname + subdomain naming this headless Service.
        for pod in subdomain_pods {
            if !(pod.ready || publish_not_ready) {
                continue;
            }
            let owner = match names::child(&owner, pod.hostname) {
                Ok(o) => o,
                Err(err) => {
                    warn!(service = %format!("{ns}/{name}"), error = %err, "skipping pod hostname");
                    continue;
                }
            };
            for ip in &pod.ips {
                self.add(address(owner.clone(), ttl, *ip));
            }
        }
        Ok(())
    }

    fn finish(mut self, serial: u32, ns: &Name) -> Zone {
        let config = self.config;
        // The name server's addresses: the DNS Service's ClusterIPs.
        let (dns_ns, dns_name) = &config.dns_service;
        if let Ok(dns_owner) = names::service(&config.origin, dns_ns, dns_name) {
            let glue: Vec<Record> = self
                .nodes
                .get(&dns_owner)
                .into_iter()
                .flatten()
                .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
                .map(|r| Record::from_rdata(ns.clone(), r.ttl, r.data.clone()))
                .collect();
            for r in glue {
                self.add(r);
            }
        }
        // Empty non-terminals: every ancestor of a name, up to the apex, exists.
        let mut missing = Vec::new();
        for name in self.nodes.keys() {
            if !config.origin.zone_of(name) {
                continue;
            }
            let mut n = name.base_name();
            while n.num_labels() > config.origin.num_labels() {
                if !self.nodes.contains_key(&n) {
                    missing.push(n.clone());
                }
                n = n.base_name();
            }
        }
        for n in missing {
            self.touch(n);
        }

        for records in self.nodes.values_mut() {
            // Canonical order: grouped by type, duplicates adjacent.
            records.sort();
            records.dedup();
        }
        let addresses_of = |target: &Name| {
            self.nodes
                .get(target)
                .into_iter()
                .flatten()
                .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
                .cloned()
        };
        let mut additionals: HashMap<Name, Vec<Record>> = HashMap::new();
        for (name, records) in &self.nodes {
            let mut seen = HashSet::new();
            let mut extra = Vec::new();
            for r in records {
                let target = match &r.data {
                    RData::SRV(srv) => &srv.target,
                    RData::NS(NS(target)) => target,
                    _ => continue,
                };
                if seen.insert(target) {
                    extra.extend(addresses_of(target));
                }
            }
            if !extra.is_empty() {
                additionals.insert(name.clone(), extra);
            }
        }
        let mut total = 0;
        let mut nodes = HashMap::with_capacity(self.nodes.len());
        for (name, records) in self.nodes {
            let mut sets = Vec::new();
            let mut start = 0usize;
            while start < records.len() {
                let t = records[start].record_type();
                let end = start
                    + records[start..]
                        .iter()
                        .take_while(|r| r.record_type() == t)
                        .count();
                sets.push((t, start as u32, end as u32));
                start = end;
            }
            total += records.len();
            let extra = additionals.remove(&name).unwrap_or_default();
            nodes.insert(
                LowerName::new(&name),
                Node {
                    records: records.into_boxed_slice(),
                    sets: sets.into_boxed_slice(),
                    additionals: extra.into_boxed_slice(),
                },
            );
        }
        Zone {
            origin: LowerName::new(&config.origin),
            reverse: ReverseZones::default(),
            soa: Box::new([soa(config, serial)]),
            nodes,
            ready: true,
            serial,
            records: total,
        }
    }
}

fn address(owner: Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(owner, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(owner, ttl, RData::AAAA(AAAA(v6))),
    }
}

/// A running pod's IPs (none for pods that finished: their IPs are released).
fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return Vec::new();
    }
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }
    pub(crate) fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }
    pub(crate) fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn lower(s: &str) -> LowerName {
        LowerName::new(&names::fqdn(s).unwrap())
    }

    fn rdata(zone: &Zone, name: &str, t: RecordType) -> Vec<String> {
        let mut v: Vec<String> = zone
            .node(&lower(name))
            .map(|n| n.rrset(t).iter().map(|r| r.data.to_string()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// A small cluster: a ClusterIP Service, a headless one with three endpoints (one not
    /// ready, one with a hostname), an ExternalName, the DNS Service and two pods.
    pub(crate) fn sample() -> (Vec<Service>, Vec<EndpointSlice>, Vec<Pod>) {
        let services = vec![
            service(json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20", "fd00::20"],
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                   {"name": "dns", "port": 53, "protocol": "UDP"},
                                   {"port": 8080}]}})),
            service(json!({"metadata": {"name": "db", "namespace": "data"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})),
            service(json!({"metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "Example.Org"}})),
            service(
                json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}),
            ),
        ];
        let slices = vec![slice(json!({
        "metadata": {"name": "db-abc", "namespace": "data",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.0.6"]},
            {"addresses": ["10.244.0.7"], "conditions": {"ready": false}}
        ]}))];
        let pods = vec![
            pod(json!({"metadata": {"name": "a", "namespace": "data"},
                "spec": {"containers": [], "hostname": "primary", "subdomain": "db"},
                "status": {"phase": "Running", "podIP": "10.244.0.9", "podIPs": [{"ip": "10.244.0.9"}],
                           "conditions": [{"type": "Ready", "status": "True"}]}})),
            pod(json!({"metadata": {"name": "done", "namespace": "data"},
                "spec": {"containers": []},
                "status": {"phase": "Succeeded", "podIP": "10.244.0.10"}})),
        ];
        (services, slices, pods)
    }

    fn build(s: &[Service], e: &[EndpointSlice], p: &[Pod]) -> Zone {
        let cfg = ZoneConfig::new("cluster.local", 5).unwrap();
        ZoneBuilder::new(&cfg).build(s, e, p, 7)
    }

    #[test]
    fn cluster_ip_service_records() {
        let (s, e, p) = sample();
        let z = build(&s, &e, &p);
        assert!(z.is_ready());
        assert_eq!(z.serial(), 7);
        let web = "web.default.svc.cluster.local.";
        assert_eq!(rdata(&z, web, RecordType::A), ["10.96.0.20"]);
        assert_eq!(rdata(&z, web, RecordType::AAAA), ["fd00::20"]);
        assert_eq!(
            rdata(&z, &format!("_http._tcp.{web}"), RecordType::SRV),
            [format!("0 100 80 {web}")]
        );
        assert_eq!(
            rdata(&z, &format!("_dns._udp.{web}"), RecordType::SRV),
            [format!("0 100 53 {web}")]
        );
        // The SRV answer carries the target's addresses.
        let n = z.node(&lower(&format!("_http._tcp.{web}"))).unwrap();
        assert_eq!(n.additionals().len(), 2);
        // Unnamed ports have no SRV record; `_tcp` is an empty non-terminal.
        assert!(z.node(&lower(&format!("_tcp.{web}"))).unwrap().is_empty());
        assert_eq!(
            rdata(&z, "20.0.96.10.in-addr.arpa.", RecordType::PTR),
            [web]
        );
        let ttl = z.node(&lower(web)).unwrap().all()[0].ttl;
        assert_eq!(ttl, 5);
    }

    #[test]
    fn headless_service_records() {
        let (s, e, p) = sample();
        let z = build(&s, &e, &p);
        let db = "db.data.svc.cluster.local.";
        // Ready endpoints only (nil readiness counts as ready).
        assert_eq!(rdata(&z, db, RecordType::A), ["10.244.0.5", "10.244.0.6"]);
        assert_eq!(
            rdata(&z, &format!("db-0.{db}"), RecordType::A),
            ["10.244.0.5"]
        );
        assert_eq!(
            rdata(&z, &format!("10-244-0-6.{db}"), RecordType::A),
            ["10.244.0.6"]
        );
        assert!(z.node(&lower(&format!("10-244-0-7.{db}"))).is_none());
        assert_eq!(
            rdata(&z, &format!("_pg._tcp.{db}"), RecordType::SRV),
            [
                format!("0 50 5432 10-244-0-6.{db}"),
                format!("0 50 5432 db-0.{db}")
            ]
        );
        assert_eq!(
            rdata(&z, "5.0.244.10.in-addr.arpa.", RecordType::PTR),
            [format!("db-0.{db}")]
        );
        // The pod with hostname "primary" and subdomain "db".
        assert_eq!(
            rdata(&z, &format!("primary.{db}"), RecordType::A),
            ["10.244.0.9"]
        );
    }

    #[test]
    fn publish_not_ready_addresses_includes_unready_endpoints_and_pods() {
        let (mut s, e, mut p) = sample();
        s[1].spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        p[0].status.as_mut().unwrap().conditions = None;
        let z = build(&s, &e, &p);
        let db = "db.data.svc.cluster.local.";
        assert_eq!(
            rdata(&z, db, RecordType::A),
            ["10.244.0.5", "10.244.0.6", "10.244.0.7"]
        );
        assert_eq!(
            rdata(&z, &format!("primary.{db}"), RecordType::A),
            ["10.244.0.9"]
        );
        // Without it, an unready pod has no hostname record.
        s[1].spec.as_mut().unwrap().publish_not_ready_addresses = None;
        let z = build(&s, &e, &p);
        assert!(z.node(&lower(&format!("primary.{db}"))).is_none());
    }

    #[test]
    fn external_name_pods_apex_and_ns() {
        let (s, e, p) = sample();
        let z = build(&s, &e, &p);
        assert_eq!(
            rdata(&z, "ext.default.svc.cluster.local.", RecordType::CNAME),
            ["example.org."]
        );
        assert_eq!(
            rdata(&z, "10-244-0-9.data.pod.cluster.local.", RecordType::A),
            ["10.244.0.9"]
        );
        // A finished pod's IP is released.
        assert!(
            z.node(&lower("10-244-0-10.data.pod.cluster.local."))
                .is_none()
        );
        assert_eq!(
            rdata(&z, "cluster.local.", RecordType::NS),
            ["ns.dns.cluster.local."]
        );
        assert_eq!(
            rdata(&z, "ns.dns.cluster.local.", RecordType::A),
            ["10.96.0.10"]
        );
        let apex = z.node(&lower("cluster.local.")).unwrap();
        assert_eq!(apex.additionals().len(), 1);
        let soa = rdata(&z, "cluster.local.", RecordType::SOA);
        assert_eq!(
            soa,
            ["ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5"]
        );
        assert_eq!(
            rdata(&z, "dns-version.cluster.local.", RecordType::TXT),
            ["1.1.0"]
        );
        for ent in [
            "svc.cluster.local.",
            "default.svc.cluster.local.",
            "pod.cluster.local.",
        ] {
            assert!(z.node(&lower(ent)).unwrap().is_empty(), "{ent}");
        }
        assert!(z.node(&lower("nothere.svc.cluster.local.")).is_none());
    }

    #[test]
    fn duplicate_endpoints_across_slices_are_merged() {
        let (s, mut e, p) = sample();
        let mut second = e[0].clone();
        second.metadata.name = Some("db-def".into());
        second.endpoints[0].conditions = Some(Default::default());
        second.endpoints[2].conditions =
            Some(k8s_openapi::api::discovery::v1::EndpointConditions {
                ready: Some(true),
                ..Default::default()
            });
        e.push(second);
        let z = build(&s, &e, &p);
        // 10.244.0.7 is ready in one slice: it is served once.
        assert_eq!(
            rdata(&z, "db.data.svc.cluster.local.", RecordType::A),
            ["10.244.0.5", "10.244.0.6", "10.244.0.7"]
        );
    }

    #[test]
    fn pending_zone_is_not_ready() {
        let cfg = ZoneConfig::new("cluster.local", 5).unwrap();
        let z = Zone::pending(&cfg);
        assert!(!z.is_ready());
        assert_eq!(z.names(), 0);
        assert_eq!(z.soa().len(), 1);
    }
}

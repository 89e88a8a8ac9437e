//! nftables mode: renders the rule set into one `ip rkube` table and applies it with `nft -f` as
//! one atomic transaction. Instead of kube-proxy's chain per Service and per endpoint, every
//! Service lives in a few verdict maps and data maps, so 10,000 Services of 10 endpoints are
//! ~110,000 map elements and a few dozen chains:
//!
//! - `service-ips` (ClusterIP / external IP . protocol . port → `goto` a load-balancing chain) and
//!   `service-nodeports` (protocol . port → the same) pick the chain for a new connection;
//! - a load-balancing chain exists per distinct (frontend kind, masquerade policy, affinity,
//!   endpoint count N) and does `numgen random mod N vmap { i : goto pick-…-i }`, so the spread is
//!   even; the pick chain `i` (one per index, shared by every Service) DNATs with the frontend's
//!   element `<frontend> : <ip> . <port>` of the map `endpoints-i` (`nodeport-endpoints-i`);
//! - `no-endpoint-services` / `no-endpoint-nodeports` send new connections to Services without
//!   ready endpoints to a reject chain (TCP reset, ICMP port unreachable) before NAT;
//! - masquerade by packet mark (off-cluster ClusterIP clients, external traffic with
//!   `externalTrafficPolicy: Cluster`) and for hairpin connections (the `hairpin` set of
//!   `ip . ip` pairs: source == chosen endpoint; only this node's endpoints, as only a pod on this
//!   node sends its Service traffic through this node — a few hundred elements at most);
//! - ClientIP affinity in one dynamic map keyed by client . frontend . protocol . port, filled after
//!   DNAT (`update` with the Service's timeout) and consulted before the random choice.
//!
//! After a sync, UDP conntrack entries that would keep a flow on an endpoint that left (or on a
//! frontend that had no endpoints) are deleted ([`crate::conntrack`]).
//!
//! A change to a few Services is applied as element deletes and adds for just those Services
//! (plus chains for new endpoint counts); a full sync flushes the maps and rewrites everything
//! (but keeps the affinity entries) in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use crate::conntrack;
use crate::netns::Netns;
use crate::rules::{
    EmptyAction, Endpoint, Frontend, FrontendKey, Masquerade, Protocol, RuleSet, ServiceKey,
};

/// The table rkube owns.
pub const TABLE: &str = "rkube";

/// The packet mark bit that asks for masquerade.
const MASQ_MARK: u32 = 0x4000;

const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

/// Errors of the nftables mode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` could not be run.
    #[error("running nft: {0}")]
    Run(#[from] crate::netns::Error),
    /// `nft` rejected the transaction.
    #[error("nft -f rejected the {what} transaction ({bytes} bytes): {stderr}")]
    Rejected {
        /// full, partial, cleanup …
        what: &'static str,
        /// Script size.
        bytes: usize,
        /// nft's message.
        stderr: String,
    },
    /// A frontend moved between Services: only a full sync can settle it.
    #[error("frontend {frontend} is claimed by {owner} and {other}; a full sync is needed")]
    Conflict {
        /// The frontend.
        frontend: FrontendKey,
        /// Its current owner.
        owner: ServiceKey,
        /// The Service that wants it.
        other: ServiceKey,
    },
    /// The affinity map listing could not be parsed.
    #[error("cannot parse `nft -j list map {TABLE} affinity`: {0}")]
    Parse(String),
}

/// Settings of the nftables mode.
#[derive(Clone, Debug)]
pub struct NftConfig {
    /// Sources outside this range are masqueraded when they reach a ClusterIP; `None` masquerades
    /// no ClusterIP traffic.
    pub cluster_cidr: Option<Ipv4Net>,
    /// Addresses NodePorts answer on (local addresses in these ranges); empty = every local
    /// address but loopback.
    pub nodeport_cidrs: Vec<Ipv4Net>,
    /// Size of the affinity map (client . frontend entries).
    pub affinity_size: u32,
}

impl Default for NftConfig {
    fn default() -> Self {
        Self {
            cluster_cidr: None,
            nodeport_cidrs: Vec::new(),
            affinity_size: 262_144,
        }
    }
}

/// The maps and sets elements go into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum MapId {
    ServiceIps,
    ServiceNodeports,
    NoEndpointServices,
    NoEndpointNodeports,
    AffinityServices,
    AffinityNodeports,
    /// The `i`-th endpoint (0-based) of each ClusterIP / external IP frontend.
    Endpoints(usize),
    /// The `i`-th endpoint of each NodePort frontend.
    NodeportEndpoints(usize),
}

impl MapId {
    /// The maps every table has.
    const FIXED: [MapId; 6] = [
        MapId::ServiceIps,
        MapId::ServiceNodeports,
        MapId::NoEndpointServices,
        MapId::NoEndpointNodeports,
        MapId::AffinityServices,
        MapId::AffinityNodeports,
    ];

    fn name(self) -> String {
        match self {
            Self::ServiceIps => "service-ips".into(),
            Self::ServiceNodeports => "service-nodeports".into(),
            Self::NoEndpointServices => "no-endpoint-services".into(),
            Self::NoEndpointNodeports => "no-endpoint-nodeports".into(),
            Self::AffinityServices => "affinity-services".into(),
            Self::AffinityNodeports => "affinity-nodeports".into(),
            Self::Endpoints(i) => format!("endpoints-{i}"),
            Self::NodeportEndpoints(i) => format!("nodeport-endpoints-{i}"),
        }
    }

    /// Plain `type` declarations only: nft 1.0.6 cannot read back a map whose data is declared
    /// with `typeof ... : ip daddr . th dport` (every later rule using it fails with "conflicting
    /// protocols specified: ip vs. th"), and `numgen` has no fixed-size type to put in a key —
    /// hence one endpoint map per index instead of one map keyed by index.
    fn declaration(self) -> &'static str {
        match self {
            Self::ServiceIps | Self::NoEndpointServices | Self::AffinityServices => {
                "type ipv4_addr . inet_proto . inet_service : verdict"
            }
            Self::ServiceNodeports | Self::NoEndpointNodeports | Self::AffinityNodeports => {
                "type inet_proto . inet_service : verdict"
            }
            Self::Endpoints(_) => {
                "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"
            }
            Self::NodeportEndpoints(_) => {
                "type inet_proto . inet_service : ipv4_addr . inet_service"
            }
        }
    }

    /// The endpoint map of index `i`.
    fn endpoints(nodeport: bool, i: usize) -> Self {
        if nodeport {
            Self::NodeportEndpoints(i)
        } else {
            Self::Endpoints(i)
        }
    }
}

/// A chain created on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum ChainSpec {
    /// DNAT to one of `n` endpoints.
    Lb {
        nodeport: bool,
        masquerade: Masquerade,
        affinity: bool,
        n: usize,
    },
    /// Records a new connection's endpoint in the affinity map with this timeout (seconds).
    AffinityRecord(u32),
    /// DNAT to each frontend's `i`-th endpoint (the load-balancing chains jump here).
    Pick { nodeport: bool, i: usize },
}

impl ChainSpec {
    fn name(&self) -> String {
        match *self {
            Self::Lb {
                nodeport,
                masquerade,
                affinity,
                n,
            } => format!(
                "lb-{}-{}{}-{n}",
                if nodeport { "nodeport" } else { "addr" },
                match masquerade {
                    Masquerade::OffCluster => "masq-offcluster",
                    Masquerade::Always => "masq",
                    Masquerade::Never => "nomasq",
                },
                if affinity { "-affinity" } else { "" },
            ),
            Self::AffinityRecord(t) => format!("affinity-record-{t}"),
            Self::Pick { nodeport, i } => {
                format!("pick-{}-{i}", if nodeport { "nodeport" } else { "addr" })
            }
        }
    }

    /// The endpoint map a pick chain reads.
    fn map(&self) -> Option<MapId> {
        match *self {
            Self::Pick { nodeport, i } => Some(MapId::endpoints(nodeport, i)),
            _ => None,
        }
    }

    fn rules(&self, cfg: &NftConfig) -> Vec<String> {
        match *self {
            Self::Lb {
                nodeport,
                masquerade,
                affinity,
                n,
            } => {
                let mut rules = Vec::new();
                match masquerade {
                    Masquerade::OffCluster => {
                        if let Some(cidr) = cfg.cluster_cidr {
                            rules.push(format!("ip saddr != {cidr} jump mark-for-masquerade"));
                        }
                    }
                    Masquerade::Always => rules.push("jump mark-for-masquerade".into()),
                    Masquerade::Never => {}
                }
                if affinity {
                    for p in PROTOCOLS {
                        rules.push(format!(
                            "meta l4proto {p} dnat ip to ip saddr . ct original ip daddr . \
                             meta l4proto . ct original proto-dst map @affinity"
                        ));
                    }
                }
                let pick = |i| ChainSpec::Pick { nodeport, i }.name();
                if n == 1 {
                    rules.push(format!("goto {}", pick(0)));
                } else {
                    let arms: Vec<String> =
                        (0..n).map(|i| format!("{i} : goto {}", pick(i))).collect();
                    rules.push(format!(
                        "numgen random mod {n} vmap {{ {} }}",
                        arms.join(", ")
                    ));
                }
                rules
            }
            Self::AffinityRecord(t) => PROTOCOLS
                .iter()
                .map(|p| {
                    format!(
                        "meta l4proto {p} update @affinity {{ ip saddr . ct original ip daddr . \
                         meta l4proto . ct original proto-dst timeout {t}s : ip daddr . th dport }}"
                    )
                })
                .collect(),
            Self::Pick { nodeport, i } => {
                let key = if nodeport {
                    "meta l4proto . th dport"
                } else {
                    "ip daddr . meta l4proto . th dport"
                };
                vec![format!(
                    "dnat ip to {key} map @{}",
                    MapId::endpoints(nodeport, i).name()
                )]
            }
        }
    }
}

/// One map element: key and (for maps) value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Elem {
    map: MapId,
    key: String,
    value: String,
}

fn addr_key(ip: Ipv4Addr, protocol: Protocol, port: u16) -> String {
    format!("{ip} . {protocol} . {port}")
}

fn ep_value(e: &Endpoint) -> String {
    format!("{} . {}", e.ip, e.port)
}

/// The elements and chains one frontend needs.
fn frontend_elems(f: &Frontend, elems: &mut Vec<Elem>, chains: &mut BTreeSet<ChainSpec>) {
    let (nodeport, key) = match f.key {
        FrontendKey::Addr { ip, protocol, port } => (false, addr_key(ip, protocol, port)),
        FrontendKey::NodePort { protocol, port } => (true, format!("{protocol} . {port}")),
    };
    let pick = |addr: MapId, np: MapId| if nodeport { np } else { addr };
    if f.endpoints.is_empty() {
        let value = match f.when_empty {
            EmptyAction::Reject => "goto reject-chain",
            EmptyAction::Drop => "drop",
        };
        elems.push(Elem {
            map: pick(MapId::NoEndpointServices, MapId::NoEndpointNodeports),
            key,
            value: value.into(),
        });
        return;
    }
    let lb = ChainSpec::Lb {
        nodeport,
        masquerade: f.masquerade,
        affinity: f.affinity_timeout.is_some(),
        n: f.endpoints.len(),
    };
    elems.push(Elem {
        map: pick(MapId::ServiceIps, MapId::ServiceNodeports),
        key: key.clone(),
        value: format!("goto {}", lb.name()),
    });
    chains.insert(lb);
    for (i, e) in f.endpoints.iter().enumerate() {
        chains.insert(ChainSpec::Pick { nodeport, i });
        elems.push(Elem {
            map: MapId::endpoints(nodeport, i),
            key: key.clone(),
            value: ep_value(e),
        });
    }
    if let Some(t) = f.affinity_timeout {
        let rec = ChainSpec::AffinityRecord(t);
        elems.push(Elem {
            map: pick(MapId::AffinityServices, MapId::AffinityNodeports),
            key,
            value: format!("goto {}", rec.name()),
        });
        chains.insert(rec);
    }
}

fn hairpin_key(ip: Ipv4Addr) -> String {
    format!("{ip} . {ip}")
}

/// Appends `add element` / `delete element` commands, a bounded number of elements per line.
fn push_elements<'a>(
    out: &mut String,
    verb: &str,
    map: &str,
    items: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) {
    const PER_LINE: usize = 2_000;
    let mut n = 0;
    for (key, value) in items {
        if n % PER_LINE == 0 {
            if n > 0 {
                out.push_str(" }\n");
            }
            let _ = write!(out, "{verb} element ip {TABLE} {map} {{ ");
        } else {
            out.push_str(", ");
        }
        out.push_str(key);
        if let Some(v) = value {
            out.push_str(" : ");
            out.push_str(v);
        }
        n += 1;
    }
    if n > 0 {
        out.push_str(" }\n");
    }
}

/// [`push_elements`] for items sorted by map: one run of commands per map.
fn push_grouped<'a>(
    out: &mut String,
    verb: &str,
    items: impl Iterator<Item = (MapId, &'a str, Option<&'a str>)>,
) {
    let mut items = items.peekable();
    while let Some(&(m, _, _)) = items.peek() {
        let group = std::iter::from_fn(|| items.next_if(|(mm, _, _)| *mm == m));
        push_elements(out, verb, &m.name(), group.map(|(_, k, v)| (k, v)));
    }
}

fn nodeport_match(cfg: &NftConfig) -> &'static str {
    if cfg.nodeport_cidrs.is_empty() {
        "fib daddr type local ip daddr != 127.0.0.0/8"
    } else {
        "fib daddr type local ip daddr @nodeport-addresses"
    }
}

/// The fixed part of the table: maps, sets and the chains every table has, as `(name, header,
/// rules)` for chains.
fn base_chains(cfg: &NftConfig) -> Vec<(&'static str, Option<&'static str>, Vec<String>)> {
    let np = nodeport_match(cfg);
    let mut affinity_check = Vec::new();
    for p in PROTOCOLS {
        affinity_check.push(format!(
            "meta l4proto {p} ct original ip daddr . meta l4proto . ct original proto-dst vmap @affinity-services"
        ));
        affinity_check.push(format!(
            "meta l4proto {p} meta l4proto . ct original proto-dst vmap @affinity-nodeports"
        ));
    }
    vec![
        (
            "filter-prerouting",
            Some("type filter hook prerouting priority -110; policy accept;"),
            vec!["ct state new jump endpoints-check".into()],
        ),
        (
            "filter-output",
            Some("type filter hook output priority -110; policy accept;"),
            vec!["ct state new jump endpoints-check".into()],
        ),
        (
            "endpoints-check",
            None,
            vec![
                "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into(),
                format!("{np} meta l4proto . th dport vmap @no-endpoint-nodeports"),
            ],
        ),
        (
            "reject-chain",
            None,
            vec![
                "meta l4proto tcp reject with tcp reset".into(),
                "reject".into(),
            ],
        ),
        (
            "nat-prerouting",
            Some("type nat hook prerouting priority -100; policy accept;"),
            vec!["jump services".into()],
        ),
        (
            "nat-output",
            Some("type nat hook output priority -100; policy accept;"),
            vec!["jump services".into()],
        ),
        (
            "nat-postrouting",
            Some("type nat hook postrouting priority 100; policy accept;"),
            vec!["jump masquerading".into()],
        ),
        (
            "services",
            None,
            vec![
                "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
                format!("{np} meta l4proto . th dport vmap @service-nodeports"),
            ],
        ),
        (
            "mark-for-masquerade",
            None,
            vec![format!("meta mark set meta mark | {MASQ_MARK:#x}")],
        ),
        (
            "masquerading",
            None,
            vec![
                "ct status dnat ip saddr . ip daddr @hairpin masquerade".into(),
                format!("meta mark & {MASQ_MARK:#x} == 0 return"),
                format!("meta mark set meta mark ^ {MASQ_MARK:#x}"),
                "masquerade fully-random".into(),
            ],
        ),
        (
            "affinity-postrouting",
            Some("type filter hook postrouting priority 90; policy accept;"),
            vec!["ct state new ct status dnat jump affinity-check".into()],
        ),
        (
            "affinity-input",
            Some("type filter hook input priority -10; policy accept;"),
            vec!["ct state new ct status dnat jump affinity-check".into()],
        ),
        ("affinity-check", None, affinity_check),
    ]
}

/// The `table ip rkube { … }` block declaring every map, set and chain (without chain rules or
/// elements). Declaring is idempotent: existing objects are kept.
fn declarations(cfg: &NftConfig, chains: &BTreeSet<ChainSpec>) -> String {
    let mut out = format!("table ip {TABLE} {{\n");
    for m in MapId::FIXED
        .into_iter()
        .chain(chains.iter().filter_map(ChainSpec::map))
    {
        let _ = writeln!(out, "  map {} {{ {}; }}", m.name(), m.declaration());
    }
    out += "  set hairpin { type ipv4_addr . ipv4_addr; }\n";
    let _ = writeln!(
        out,
        "  map affinity {{ type ipv4_addr . ipv4_addr . inet_proto . inet_service : \
         ipv4_addr . inet_service; flags dynamic,timeout; size {}; }}",
        cfg.affinity_size
    );
    if !cfg.nodeport_cidrs.is_empty() {
        let cidrs: Vec<String> = cfg.nodeport_cidrs.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            out,
            "  set nodeport-addresses {{ type ipv4_addr; flags interval; elements = {{ {} }}; }}",
            cidrs.join(", ")
        );
    }
    for (name, header, _) in base_chains(cfg) {
        match header {
            Some(h) => {
                let _ = writeln!(out, "  chain {name} {{ {h} }}");
            }
            None => {
                let _ = writeln!(out, "  chain {name} {{ }}");
            }
        }
    }
    for c in chains {
        let _ = writeln!(out, "  chain {} {{ }}", c.name());
    }
    out += "}\n";
    out
}

fn push_chain_rules(out: &mut String, name: &str, rules: &[String]) {
    for r in rules {
        let _ = writeln!(out, "add rule ip {TABLE} {name} {r}");
    }
}

/// What the last successful sync programmed.
#[derive(Clone, Debug, Default)]
struct Applied {
    services: HashMap<ServiceKey, Vec<Frontend>>,
    owners: HashMap<FrontendKey, ServiceKey>,
    hairpin: HashMap<Ipv4Addr, usize>,
    chains: BTreeSet<ChainSpec>,
    elements: usize,
}

impl Applied {
    fn add_service(&mut self, key: &ServiceKey, fronts: &[Frontend]) {
        for f in fronts {
            self.owners.insert(f.key, key.clone());
            for e in f.endpoints.iter().filter(|e| e.local) {
                *self.hairpin.entry(e.ip).or_default() += 1;
            }
        }
        self.services.insert(key.clone(), fronts.to_vec());
    }

    fn remove_service(&mut self, key: &ServiceKey) {
        let Some(fronts) = self.services.remove(key) else {
            return;
        };
        for f in &fronts {
            if self.owners.get(&f.key) == Some(key) {
                self.owners.remove(&f.key);
            }
            for e in f.endpoints.iter().filter(|e| e.local) {
                if let Some(c) = self.hairpin.get_mut(&e.ip) {
                    *c -= 1;
                    if *c == 0 {
                        self.hairpin.remove(&e.ip);
                    }
                }
            }
        }
    }
}

/// Figures of one sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Whether it was a full sync.
    pub full: bool,
    /// Size of the transaction script in bytes.
    pub script_bytes: usize,
    /// Elements added or deleted in the transaction.
    pub changed_elements: usize,
    /// Elements and chains programmed after it.
    pub rules: usize,
    /// Stale UDP conntrack entries deleted after it.
    pub conntrack_deleted: usize,
    /// Time spent rendering, in `nft` and clearing conntrack.
    pub duration: Duration,
}

/// The script of a full sync: when `fresh`, the table is replaced outright; otherwise maps and
/// chains are flushed and rewritten (affinity entries stay) and chains no longer used are deleted.
/// Pure; returns the script and the number of elements in it.
fn render_full(
    cfg: &NftConfig,
    rules: &RuleSet,
    old_chains: Option<&BTreeSet<ChainSpec>>,
) -> (String, Applied) {
    let mut applied = Applied::default();
    let mut elems = Vec::new();
    for (key, fronts) in rules {
        for f in fronts {
            frontend_elems(f, &mut elems, &mut applied.chains);
        }
        applied.add_service(key, fronts);
    }
    let mut out = String::with_capacity(elems.len() * 48 + 4096);
    match old_chains {
        None => {
            let _ = writeln!(out, "add table ip {TABLE}\ndelete table ip {TABLE}");
            out += &declarations(cfg, &applied.chains);
        }
        Some(old) => {
            out += &declarations(cfg, &applied.chains);
            let maps = MapId::FIXED
                .into_iter()
                .chain(applied.chains.iter().filter_map(ChainSpec::map));
            for m in maps {
                let _ = writeln!(out, "flush map ip {TABLE} {}", m.name());
            }
            let _ = writeln!(out, "flush set ip {TABLE} hairpin");
            for (name, _, _) in base_chains(cfg) {
                let _ = writeln!(out, "flush chain ip {TABLE} {name}");
            }
            for c in &applied.chains {
                let _ = writeln!(out, "flush chain ip {TABLE} {}", c.name());
            }
            // Unused chains may jump to each other (load-balancing → pick) and read maps (pick →
            // endpoint map): empty them all before deleting any, then their maps.
            let unused: Vec<&ChainSpec> = old.difference(&applied.chains).collect();
            for c in &unused {
                let _ = writeln!(out, "flush chain ip {TABLE} {}", c.name());
            }
            for c in &unused {
                let _ = writeln!(out, "delete chain ip {TABLE} {}", c.name());
            }
            for m in unused.iter().filter_map(|c| c.map()) {
                let _ = writeln!(out, "delete map ip {TABLE} {}", m.name());
            }
        }
    }
    for (name, _, rules) in base_chains(cfg) {
        push_chain_rules(&mut out, name, &rules);
    }
    for c in &applied.chains {
        push_chain_rules(&mut out, &c.name(), &c.rules(cfg));
    }
    elems.sort_by_key(|e| e.map);
    push_grouped(
        &mut out,
        "add",
        elems
            .iter()
            .map(|e| (e.map, e.key.as_str(), Some(e.value.as_str()))),
    );
    let mut hairpin: Vec<&Ipv4Addr> = applied.hairpin.keys().collect();
    hairpin.sort();
    let hp: Vec<String> = hairpin.iter().map(|ip| hairpin_key(**ip)).collect();
    push_elements(
        &mut out,
        "add",
        "hairpin",
        hp.iter().map(|k| (k.as_str(), None)),
    );
    applied.elements = elems.len() + hp.len();
    (out, applied)
}

/// The script of a partial sync: the element changes for the given Services (their new frontends;
/// empty = removed) and chains for new endpoint counts. Updates `applied` to match. Pure.
fn render_changes(
    cfg: &NftConfig,
    applied: &mut Applied,
    changes: &[(ServiceKey, Vec<Frontend>)],
) -> Result<(String, usize), Error> {
    // Conflicts first: a frontend may only move between Services in a full sync.
    let changing: BTreeSet<&ServiceKey> = changes.iter().map(|(k, _)| k).collect();
    for (key, fronts) in changes {
        for f in fronts {
            if let Some(owner) = applied.owners.get(&f.key)
                && owner != key
                && !changing.contains(owner)
            {
                return Err(Error::Conflict {
                    frontend: f.key,
                    owner: owner.clone(),
                    other: key.clone(),
                });
            }
        }
    }
    let mut old_elems = Vec::new();
    let mut new_elems = Vec::new();
    let mut unused = BTreeSet::new();
    let mut new_chains = BTreeSet::new();
    let hairpin_before: BTreeSet<Ipv4Addr> = changes
        .iter()
        .flat_map(|(k, fronts)| {
            applied
                .services
                .get(k)
                .into_iter()
                .flatten()
                .chain(fronts)
                .flat_map(|f| f.endpoints.iter().map(|e| e.ip))
        })
        .filter(|ip| applied.hairpin.contains_key(ip))
        .collect();
    for (key, fronts) in changes {
        for f in applied.services.get(key).into_iter().flatten() {
            frontend_elems(f, &mut old_elems, &mut unused);
        }
        for f in fronts {
            frontend_elems(f, &mut new_elems, &mut new_chains);
        }
        applied.remove_service(key);
        if !fronts.is_empty() {
            applied.add_service(key, fronts);
        }
    }
    let old: BTreeMap<(MapId, &str), &str> = old_elems
        .iter()
        .map(|e| ((e.map, e.key.as_str()), e.value.as_str()))
        .collect();
    let new: BTreeMap<(MapId, &str), &str> = new_elems
        .iter()
        .map(|e| ((e.map, e.key.as_str()), e.value.as_str()))
        .collect();
    let mut out = String::new();
    let added: Vec<&ChainSpec> = new_chains.difference(&applied.chains).collect();
    for m in added.iter().filter_map(|c| c.map()) {
        let _ = writeln!(
            out,
            "add map ip {TABLE} {} {{ {}; }}",
            m.name(),
            m.declaration()
        );
    }
    for c in &added {
        let _ = writeln!(out, "add chain ip {TABLE} {}", c.name());
    }
    for c in &added {
        push_chain_rules(&mut out, &c.name(), &c.rules(cfg));
    }
    applied.chains.extend(new_chains);
    let dels: Vec<(MapId, &str, Option<&str>)> = old
        .iter()
        .filter(|((m, k), v)| new.get(&(*m, *k)) != Some(*v))
        .map(|((m, k), _)| (*m, *k, None))
        .collect();
    let adds: Vec<(MapId, &str, Option<&str>)> = new
        .iter()
        .filter(|((m, k), v)| old.get(&(*m, *k)) != Some(*v))
        .map(|((m, k), v)| (*m, *k, Some(*v)))
        .collect();
    let mut changed = dels.len() + adds.len();
    push_grouped(&mut out, "delete", dels.into_iter());
    push_grouped(&mut out, "add", adds.into_iter());
    let hairpin_after: BTreeSet<Ipv4Addr> = changes
        .iter()
        .flat_map(|(_, fronts)| fronts.iter().flat_map(|f| f.endpoints.iter().map(|e| e.ip)))
        .chain(hairpin_before.iter().copied())
        .filter(|ip| applied.hairpin.contains_key(ip))
        .collect();
    let hp_del: Vec<String> = hairpin_before
        .difference(&hairpin_after)
        .map(|ip| hairpin_key(*ip))
        .collect();
    let hp_add: Vec<String> = hairpin_after
        .difference(&hairpin_before)
        .map(|ip| hairpin_key(*ip))
        .collect();
    changed += hp_del.len() + hp_add.len();
    push_elements(
        &mut out,
        "delete",
        "hairpin",
        hp_del.iter().map(|k| (k.as_str(), None)),
    );
    push_elements(
        &mut out,
        "add",
        "hairpin",
        hp_add.iter().map(|k| (k.as_str(), None)),
    );
    applied.elements =
        (applied.elements + new.len() + hp_add.len()).saturating_sub(old.len() + hp_del.len());
    Ok((out, changed))
}

/// The nftables dataplane.
pub struct NftProxier {
    cfg: NftConfig,
    netns: Netns,
    applied: Option<Applied>,
}

impl NftProxier {
    /// A proxier that programs the table in `netns`.
    pub fn new(cfg: NftConfig, netns: Netns) -> Self {
        Self {
            cfg,
            netns,
            applied: None,
        }
    }

    /// Whether `nft` can be run (and the caller may change rules) in `netns`.
    pub fn available(netns: &Netns) -> bool {
        netns
            .command("nft", &["list", "tables"], b"")
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn run(&self, what: &'static str, script: &str) -> Result<(), Error> {
        let out = self.netns.command("nft", &["-f", "-"], script.as_bytes())?;
        if !out.status.success() {
            return Err(Error::Rejected {
                what,
                bytes: script.len(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    fn rules(&self) -> usize {
        self.applied
            .as_ref()
            .map(|a| a.elements + a.chains.len() + base_chains(&self.cfg).len())
            .unwrap_or(0)
    }

    /// Programs `rules` as the whole table, in one transaction.
    pub fn sync_full(&mut self, rules: &RuleSet) -> Result<SyncStats, Error> {
        let start = Instant::now();
        let stale = conntrack::stale_udp_filters(
            self.applied
                .iter()
                .flat_map(|a| a.services.values().flatten()),
            rules.values().flatten(),
        );
        let old_chains = self.applied.as_ref().map(|a| &a.chains);
        let (script, applied) = render_full(&self.cfg, rules, old_chains);
        let fresh = self.applied.is_none();
        let result = self.run("full", &script);
        if result.is_err() {
            self.applied = None;
        }
        result?;
        let changed = applied.elements;
        self.applied = Some(applied);
        if !fresh {
            // Entries pointing at endpoints that are gone would pin clients to dead pods.
            if let Err(e) = self.purge_affinity() {
                tracing::debug!(error = %e, "affinity purge skipped");
            }
        }
        let conntrack_deleted = self.clear_conntrack(&stale);
        Ok(SyncStats {
            full: true,
            conntrack_deleted,
            script_bytes: script.len(),
            changed_elements: changed,
            rules: self.rules(),
            duration: start.elapsed(),
        })
    }

    /// Applies the new frontends of the given Services (empty = removed) as element changes.
    /// Falls back to nothing on error: the caller should do a full sync then.
    pub fn sync_changes(
        &mut self,
        changes: &[(ServiceKey, Vec<Frontend>)],
    ) -> Result<SyncStats, Error> {
        let start = Instant::now();
        let Some(mut applied) = self.applied.take() else {
            let rules: RuleSet = changes.iter().cloned().collect();
            return self.sync_full(&rules);
        };
        let lost_endpoints = changes.iter().any(|(k, fronts)| {
            applied.services.get(k).is_some_and(|old| {
                old.iter().any(|o| {
                    o.affinity_timeout.is_some()
                        && o.endpoints.iter().any(|e| {
                            !fronts
                                .iter()
                                .any(|f| f.key == o.key && f.endpoints.contains(e))
                        })
                })
            })
        });
        let stale = conntrack::stale_udp_filters(
            changes
                .iter()
                .flat_map(|(k, _)| applied.services.get(k).into_iter().flatten()),
            changes.iter().flat_map(|(_, fronts)| fronts),
        );
        let (script, changed) = match render_changes(&self.cfg, &mut applied, changes) {
            Ok(r) => r,
            Err(e) => {
                // Conflicts are found before anything changes: the state is still exact.
                self.applied = Some(applied);
                return Err(e);
            }
        };
        // On failure `applied` no longer matches the kernel: the next (full) sync starts fresh.
        if !script.is_empty() {
            self.run("partial", &script)?;
        }
        self.applied = Some(applied);
        if lost_endpoints && let Err(e) = self.purge_affinity() {
            tracing::debug!(error = %e, "affinity purge skipped");
        }
        let conntrack_deleted = self.clear_conntrack(&stale);
        Ok(SyncStats {
            full: false,
            conntrack_deleted,
            script_bytes: script.len(),
            changed_elements: changed,
            rules: self.rules(),
            duration: start.elapsed(),
        })
    }

    /// Deletes the conntrack entries `stale` selects (best effort: a failure is logged, and the
    /// entries expire on their own); returns how many went.
    fn clear_conntrack(&self, stale: &BTreeSet<conntrack::Filter>) -> usize {
        if stale.is_empty() {
            return 0;
        }
        match conntrack::delete_matching(&self.netns, stale) {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(deleted = n, "stale UDP conntrack entries removed");
                }
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not remove stale UDP conntrack entries");
                0
            }
        }
    }

    /// Deletes affinity entries whose endpoint is no longer one of their frontend's endpoints.
    /// Best effort: an entry that expires meanwhile fails the delete, and the next sync retries.
    pub fn purge_affinity(&self) -> Result<usize, Error> {
        let Some(applied) = &self.applied else {
            return Ok(0);
        };
        let out =
            self.netns
                .command("nft", &["-j", "list", "map", "ip", TABLE, "affinity"], b"")?;
        if !out.status.success() {
            return Err(Error::Rejected {
                what: "list affinity",
                bytes: 0,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let entries = parse_affinity(&out.stdout)?;
        let mut frontends: HashMap<FrontendKey, &Frontend> = HashMap::new();
        for fronts in applied.services.values() {
            for f in fronts {
                frontends.insert(f.key, f);
            }
        }
        let stale: Vec<String> = entries
            .iter()
            .filter(|a| {
                let by_addr = frontends.get(&FrontendKey::Addr {
                    ip: a.frontend,
                    protocol: a.protocol,
                    port: a.port,
                });
                let f = by_addr.or_else(|| {
                    frontends.get(&FrontendKey::NodePort {
                        protocol: a.protocol,
                        port: a.port,
                    })
                });
                !f.is_some_and(|f| {
                    f.endpoints
                        .iter()
                        .any(|e| e.ip == a.endpoint_ip && e.port == a.endpoint_port)
                })
            })
            .map(|a| {
                format!(
                    "{} . {} . {} . {}",
                    a.client, a.frontend, a.protocol, a.port
                )
            })
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let mut script = String::new();
        push_elements(
            &mut script,
            "delete",
            "affinity",
            stale.iter().map(|k| (k.as_str(), None)),
        );
        self.run("affinity purge", &script)?;
        Ok(stale.len())
    }

    /// Counts of what is programmed.
    pub fn summary(&self) -> crate::rules::Summary {
        let mut s = crate::rules::Summary::default();
        for fronts in self.applied.iter().flat_map(|a| a.services.values()) {
            if !fronts.is_empty() {
                s.services += 1;
            }
            for f in fronts {
                s.frontends += 1;
                s.endpoints += f.endpoints.len();
                s.empty_frontends += usize::from(f.endpoints.is_empty());
            }
        }
        s
    }

    /// Removes the table (idempotent).
    pub fn cleanup(&mut self) -> Result<(), Error> {
        self.applied = None;
        cleanup(&self.netns)
    }
}

/// Removes rkube's table from `netns` if it is there.
pub fn cleanup(netns: &Netns) -> Result<(), Error> {
    let script = format!("add table ip {TABLE}\ndelete table ip {TABLE}\n");
    let out = netns.command("nft", &["-f", "-"], script.as_bytes())?;
    if !out.status.success() {
        return Err(Error::Rejected {
            what: "cleanup",
            bytes: script.len(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// One entry of the affinity map.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AffinityEntry {
    client: Ipv4Addr,
    frontend: Ipv4Addr,
    protocol: Protocol,
    port: u16,
    endpoint_ip: Ipv4Addr,
    endpoint_port: u16,
}

/// Parses `nft -j list map ip rkube affinity`.
fn parse_affinity(json: &[u8]) -> Result<Vec<AffinityEntry>, Error> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| Error::Parse(e.to_string()))?;
    let mut out = Vec::new();
    let items = v["nftables"]
        .as_array()
        .ok_or_else(|| Error::Parse("no nftables array".into()))?;
    for item in items {
        let Some(elems) = item["map"]["elem"].as_array() else {
            continue;
        };
        for el in elems {
            // [ key, value ] where key is {"elem": {"val": {"concat": [...]}, …}} or a concat.
            let Some(pair) = el.as_array().filter(|p| p.len() == 2) else {
                continue;
            };
            let key = pair[0].get("elem").map(|e| &e["val"]).unwrap_or(&pair[0]);
            let (Some(k), Some(val)) = (key["concat"].as_array(), pair[1]["concat"].as_array())
            else {
                continue;
            };
            let ip = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok());
            let port = |v: &serde_json::Value| v.as_u64().and_then(|p| u16::try_from(p).ok());
            let proto = match k.get(2).and_then(|p| p.as_str()) {
                Some("tcp") => Protocol::Tcp,
                Some("udp") => Protocol::Udp,
                Some("sctp") => Protocol::Sctp,
                _ => continue,
            };
            if let (Some(client), Some(frontend), Some(p), Some(eip), Some(eport)) = (
                k.first().and_then(ip),
                k.get(1).and_then(ip),
                k.get(3).and_then(port),
                val.first().and_then(ip),
                val.get(1).and_then(port),
            ) {
                out.push(AffinityEntry {
                    client,
                    frontend,
                    protocol: proto,
                    port: p,
                    endpoint_ip: eip,
                    endpoint_port: eport,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::FrontendKind;

    /// An endpoint on this node.
    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
            local: true,
        }
    }

    fn front(ip: &str, port: u16, eps: &[Endpoint]) -> Frontend {
        Frontend {
            key: FrontendKey::Addr {
                ip: ip.parse().unwrap(),
                protocol: Protocol::Tcp,
                port,
            },
            kind: FrontendKind::ClusterIp,
            port_name: format!("ns/x:{port}"),
            endpoints: eps.to_vec(),
            masquerade: Masquerade::OffCluster,
            affinity_timeout: None,
            when_empty: EmptyAction::Reject,
        }
    }

    fn cfg() -> NftConfig {
        NftConfig {
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
            ..Default::default()
        }
    }

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("ns", name)
    }

    #[test]
    fn full_sync_renders_maps_not_per_service_chains() {
        let mut rules = RuleSet::new();
        rules.insert(
            key("a"),
            vec![front(
                "10.96.0.1",
                80,
                &[ep("10.244.1.2", 8080), ep("10.244.1.3", 8080)],
            )],
        );
        rules.insert(
            key("b"),
            vec![front(
                "10.96.0.2",
                80,
                &[ep("10.244.1.4", 9090), ep("10.244.1.2", 9090)],
            )],
        );
        let mut np = front("10.96.0.3", 53, &[]);
        np.key = FrontendKey::NodePort {
            protocol: Protocol::Udp,
            port: 30053,
        };
        rules.insert(key("c"), vec![front("10.96.0.3", 53, &[]), np]);
        let (script, applied) = render_full(&cfg(), &rules, None);
        assert!(script.starts_with("add table ip rkube\ndelete table ip rkube\n"));
        // Two services with two endpoints share one load-balancing chain, which picks one of
        // two chains reading one endpoint map each.
        let names: Vec<String> = applied.chains.iter().map(ChainSpec::name).collect();
        assert_eq!(
            names,
            ["lb-addr-masq-offcluster-2", "pick-addr-0", "pick-addr-1"]
        );
        assert!(script.contains("chain lb-addr-masq-offcluster-2 { }"));
        assert!(script.contains(
            "  map endpoints-1 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }"
        ));
        assert!(script.contains(
            "add rule ip rkube lb-addr-masq-offcluster-2 ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n\
             add rule ip rkube lb-addr-masq-offcluster-2 numgen random mod 2 vmap { 0 : goto pick-addr-0, 1 : goto pick-addr-1 }\n"
        ));
        assert!(script.contains(
            "add rule ip rkube pick-addr-1 dnat ip to ip daddr . meta l4proto . th dport map @endpoints-1\n"
        ));
        assert!(
            !script.contains("typeof"),
            "nft 1.0.6 cannot read typeof maps back"
        );
        assert!(script.contains(
            "add element ip rkube service-ips { 10.96.0.1 . tcp . 80 : goto lb-addr-masq-offcluster-2, 10.96.0.2 . tcp . 80 : goto lb-addr-masq-offcluster-2 }"
        ));
        assert!(script.contains(
            "add element ip rkube endpoints-1 { 10.96.0.1 . tcp . 80 : 10.244.1.3 . 8080, 10.96.0.2 . tcp . 80 : 10.244.1.2 . 9090 }"
        ));
        assert!(script.contains(
            "add element ip rkube no-endpoint-services { 10.96.0.3 . tcp . 53 : goto reject-chain }"
        ));
        assert!(script.contains(
            "add element ip rkube no-endpoint-nodeports { udp . 30053 : goto reject-chain }"
        ));
        // 10.244.1.2 backs two services but is one hairpin element.
        assert!(script.contains(
            "add element ip rkube hairpin { 10.244.1.2 . 10.244.1.2, 10.244.1.3 . 10.244.1.3, 10.244.1.4 . 10.244.1.4 }"
        ));
        assert_eq!(applied.hairpin[&"10.244.1.2".parse().unwrap()], 2);
        // service-ips 2 + endpoints 4 + no-endpoint 2 + hairpin 3
        assert_eq!(applied.elements, 11);
    }

    #[test]
    fn only_local_endpoints_are_hairpin_candidates() {
        let remote = Endpoint {
            local: false,
            ..ep("10.244.2.7", 80)
        };
        let mut rules = RuleSet::new();
        rules.insert(
            key("a"),
            vec![front("10.96.0.1", 80, &[ep("10.244.1.2", 80), remote])],
        );
        let (script, mut applied) = render_full(&cfg(), &rules, None);
        assert!(script.contains("add element ip rkube hairpin { 10.244.1.2 . 10.244.1.2 }\n"));
        assert!(script.contains("endpoints-1 { 10.96.0.1 . tcp . 80 : 10.244.2.7 . 80 }"));
        // The remote endpoint leaves: no hairpin change; the local one leaves: its element goes.
        let changes = vec![(
            key("a"),
            vec![front("10.96.0.1", 80, &[ep("10.244.1.2", 80)])],
        )];
        let (script, _) = render_changes(&cfg(), &mut applied, &changes).unwrap();
        assert!(!script.contains("hairpin"), "{script}");
        let changes = vec![(key("a"), vec![front("10.96.0.1", 80, &[remote])])];
        let (script, _) = render_changes(&cfg(), &mut applied, &changes).unwrap();
        assert!(script.contains("delete element ip rkube hairpin { 10.244.1.2 . 10.244.1.2 }\n"));
        assert!(!script.contains("add element ip rkube hairpin"));
        assert!(applied.hairpin.is_empty());
    }

    #[test]
    fn periodic_full_sync_flushes_and_deletes_unused_chains_but_keeps_affinity() {
        let mut rules = RuleSet::new();
        rules.insert(
            key("a"),
            vec![front("10.96.0.1", 80, &[ep("10.244.1.2", 80)])],
        );
        let (_, applied) = render_full(&cfg(), &rules, None);
        rules.insert(
            key("a"),
            vec![front(
                "10.96.0.1",
                80,
                &[ep("10.244.1.2", 80), ep("10.244.1.3", 80)],
            )],
        );
        let (script, applied) = render_full(&cfg(), &rules, Some(&applied.chains));
        assert!(!script.contains("delete table"));
        assert!(script.contains("flush map ip rkube service-ips"));
        assert!(script.contains("flush map ip rkube endpoints-1\n"));
        assert!(!script.contains("flush map ip rkube affinity\n"));
        assert!(script.contains("delete chain ip rkube lb-addr-masq-offcluster-1"));
        assert!(script.contains("flush chain ip rkube lb-addr-masq-offcluster-2"));

        // Back to one endpoint: the second pick chain and its map go, after everything that
        // refers to them was emptied.
        rules.insert(
            key("a"),
            vec![front("10.96.0.1", 80, &[ep("10.244.1.3", 80)])],
        );
        let (script, _) = render_full(&cfg(), &rules, Some(&applied.chains));
        let pos = |needle: &str| {
            script
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing from\n{script}"))
        };
        let flush_lb = pos("flush chain ip rkube lb-addr-masq-offcluster-2\n");
        let flush_pick = pos("flush chain ip rkube pick-addr-1\n");
        let del_lb = pos("delete chain ip rkube lb-addr-masq-offcluster-2\n");
        let del_pick = pos("delete chain ip rkube pick-addr-1\n");
        let del_map = pos("delete map ip rkube endpoints-1\n");
        assert!(flush_lb.max(flush_pick) < del_lb.min(del_pick));
        assert!(del_pick < del_map);
        assert!(!script.contains("delete chain ip rkube pick-addr-0"));
        assert!(!script.contains("endpoints-1 {"));
    }

    #[test]
    fn partial_sync_changes_only_the_changed_elements() {
        let mut rules = RuleSet::new();
        rules.insert(
            key("a"),
            vec![front(
                "10.96.0.1",
                80,
                &[ep("10.244.1.2", 80), ep("10.244.1.3", 80)],
            )],
        );
        rules.insert(
            key("b"),
            vec![front("10.96.0.2", 80, &[ep("10.244.1.3", 80)])],
        );
        let (_, mut applied) = render_full(&cfg(), &rules, None);
        let before = applied.elements;

        // 10.244.1.2 turns unready: a's endpoint count drops to 1 (a chain that exists).
        let changes = vec![(
            key("a"),
            vec![front("10.96.0.1", 80, &[ep("10.244.1.3", 80)])],
        )];
        let (script, changed) = render_changes(&cfg(), &mut applied, &changes).unwrap();
        assert_eq!(
            script,
            "delete element ip rkube service-ips { 10.96.0.1 . tcp . 80 }\n\
             delete element ip rkube endpoints-0 { 10.96.0.1 . tcp . 80 }\n\
             delete element ip rkube endpoints-1 { 10.96.0.1 . tcp . 80 }\n\
             add element ip rkube service-ips { 10.96.0.1 . tcp . 80 : goto lb-addr-masq-offcluster-1 }\n\
             add element ip rkube endpoints-0 { 10.96.0.1 . tcp . 80 : 10.244.1.3 . 80 }\n\
             delete element ip rkube hairpin { 10.244.1.2 . 10.244.1.2 }\n"
        );
        assert_eq!(changed, 6);
        assert_eq!(applied.elements, before - 2);

        // A new service with a new endpoint count gets its chain in the same transaction.
        let changes = vec![(
            key("c"),
            vec![front(
                "10.96.0.9",
                443,
                &[
                    ep("10.244.1.3", 443),
                    ep("10.244.1.5", 443),
                    ep("10.244.1.6", 443),
                ],
            )],
        )];
        let (script, _) = render_changes(&cfg(), &mut applied, &changes).unwrap();
        // Its third endpoint needs a third map and pick chain, created before use.
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            lines[..4],
            [
                "add map ip rkube endpoints-2 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }",
                "add chain ip rkube lb-addr-masq-offcluster-3",
                "add chain ip rkube pick-addr-2",
                "add rule ip rkube lb-addr-masq-offcluster-3 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
            ]
        );
        assert!(script.contains(
            "add rule ip rkube pick-addr-2 dnat ip to ip daddr . meta l4proto . th dport map @endpoints-2\n"
        ));
        assert!(script.contains(
            "add element ip rkube hairpin { 10.244.1.5 . 10.244.1.5, 10.244.1.6 . 10.244.1.6 }"
        ));
        assert!(!script.contains("delete"));

        // Removing a service deletes its elements; an unchanged one renders nothing.
        let changes = vec![
            (key("c"), vec![]),
            (key("b"), applied.services[&key("b")].clone()),
        ];
        let (script, _) = render_changes(&cfg(), &mut applied, &changes).unwrap();
        assert!(script.contains("delete element ip rkube service-ips { 10.96.0.9 . tcp . 443 }"));
        assert!(!script.contains("10.96.0.2"));
        assert!(!script.contains("add element"));
        assert!(!applied.services.contains_key(&key("c")));
    }

    #[test]
    fn a_frontend_moving_between_services_needs_a_full_sync() {
        let mut rules = RuleSet::new();
        rules.insert(
            key("a"),
            vec![front("10.96.0.1", 80, &[ep("10.244.1.2", 80)])],
        );
        let (_, mut applied) = render_full(&cfg(), &rules, None);
        let changes = vec![(
            key("b"),
            vec![front("10.96.0.1", 80, &[ep("10.244.1.3", 80)])],
        )];
        assert!(matches!(
            render_changes(&cfg(), &mut applied, &changes),
            Err(Error::Conflict { .. })
        ));
        // Moving it in one change (a drops it, b takes it) is fine.
        let changes = vec![
            (key("a"), vec![]),
            (
                key("b"),
                vec![front("10.96.0.1", 80, &[ep("10.244.1.3", 80)])],
            ),
        ];
        assert!(render_changes(&cfg(), &mut applied, &changes).is_ok());
    }

    #[test]
    fn affinity_nodeport_and_policies_pick_their_chains() {
        let mut f = front("10.96.0.1", 80, &[ep("10.244.1.2", 80)]);
        f.affinity_timeout = Some(30);
        let mut np = f.clone();
        np.key = FrontendKey::NodePort {
            protocol: Protocol::Tcp,
            port: 30080,
        };
        np.kind = FrontendKind::NodePort;
        np.masquerade = Masquerade::Never;
        np.affinity_timeout = None;
        let mut drop = front("192.0.2.1", 80, &[]);
        drop.when_empty = EmptyAction::Drop;
        let mut rules = RuleSet::new();
        rules.insert(key("a"), vec![f, np, drop]);
        let (script, applied) = render_full(&cfg(), &rules, None);
        let names: Vec<String> = applied.chains.iter().map(ChainSpec::name).collect();
        assert_eq!(
            names,
            [
                "lb-addr-masq-offcluster-affinity-1",
                "lb-nodeport-nomasq-1",
                "affinity-record-30",
                "pick-addr-0",
                "pick-nodeport-0",
            ]
        );
        assert!(script.contains("add rule ip rkube lb-nodeport-nomasq-1 goto pick-nodeport-0\n"));
        assert!(script.contains(
            "add rule ip rkube pick-nodeport-0 dnat ip to meta l4proto . th dport map @nodeport-endpoints-0\n"
        ));
        assert!(
            script.contains("affinity-services { 10.96.0.1 . tcp . 80 : goto affinity-record-30 }")
        );
        assert!(script.contains("timeout 30s : ip daddr . th dport"));
        assert!(script.contains("service-nodeports { tcp . 30080 : goto lb-nodeport-nomasq-1 }"));
        assert!(script.contains("nodeport-endpoints-0 { tcp . 30080 : 10.244.1.2 . 80 }"));
        assert!(script.contains("no-endpoint-services { 192.0.2.1 . tcp . 80 : drop }"));
        assert!(script.contains("fib daddr type local ip daddr != 127.0.0.0/8"));
        let mut with_np = cfg();
        with_np.nodeport_cidrs = vec!["192.168.0.0/16".parse().unwrap()];
        let (script, _) = render_full(&with_np, &rules, None);
        assert!(script.contains("elements = { 192.168.0.0/16 }"));
        assert!(script.contains("fib daddr type local ip daddr @nodeport-addresses"));
    }

    #[test]
    fn many_elements_are_split_over_lines() {
        let mut out = String::new();
        let keys: Vec<String> = (0..4_500).map(|i| format!("k{i}")).collect();
        push_elements(
            &mut out,
            "add",
            "m",
            keys.iter().map(|k| (k.as_str(), None)),
        );
        assert_eq!(out.lines().count(), 3);
        assert!(
            out.lines()
                .all(|l| l.starts_with("add element ip rkube m { "))
        );
    }

    #[test]
    fn affinity_listing_parses() {
        let json = br#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"map": {"family": "ip",
          "name": "affinity", "table": "rkube", "type": ["ipv4_addr", "ipv4_addr", "inet_proto",
          "inet_service"], "map": ["ipv4_addr", "inet_service"], "flags": ["timeout", "dynamic"],
          "elem": [[{"elem": {"val": {"concat": ["10.0.0.2", "10.96.0.1", "tcp", 80]},
          "timeout": 30, "expires": 29}}, {"concat": ["10.244.1.2", 8080]}]]}}]}"#;
        let e = parse_affinity(json).unwrap();
        assert_eq!(
            e,
            [AffinityEntry {
                client: "10.0.0.2".parse().unwrap(),
                frontend: "10.96.0.1".parse().unwrap(),
                protocol: Protocol::Tcp,
                port: 80,
                endpoint_ip: "10.244.1.2".parse().unwrap(),
                endpoint_port: 8080,
            }]
        );
        assert!(parse_affinity(b"not json").is_err());
    }
}

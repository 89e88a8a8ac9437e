//! Stale UDP conntrack entries, removed over ctnetlink. A UDP "connection" lives in conntrack for
//! 30–120 s after its last packet and keeps its NAT decision: a DNS client that reuses its source
//! port would keep talking to an endpoint that went away (or, when a Service had no endpoints
//! yet, to the ClusterIP itself). As kube-proxy does, after a sync the proxy deletes the entries of
//! UDP frontends that went from no endpoints to some (original destination = the frontend) and of
//! endpoints that left a frontend (original destination = the frontend, reply source = the
//! endpoint). The matching is a pure function over dumped entries; the dump and the deletes are
//! plain netlink messages (`NETLINK_NETFILTER`, `IPCTNL_MSG_CT_GET` / `IPCTNL_MSG_CT_DELETE`).

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read as _};
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::netns::Netns;
use crate::rules::{Frontend, FrontendKey, Protocol};

/// `AF_NETLINK`.
const AF_NETLINK: i32 = 16;
/// `NETLINK_NETFILTER`.
const NETLINK_NETFILTER: i32 = 12;
/// `AF_INET`.
const AF_INET: u8 = 2;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// `ENOENT`: the entry is already gone.
const ENOENT: i32 = 2;

/// Errors talking to ctnetlink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] crate::netns::Error),
    /// A socket call failed.
    #[error("conntrack netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused a request.
    #[error("conntrack {what} failed: errno {errno}")]
    Kernel {
        /// dump or delete.
        what: &'static str,
        /// The positive errno.
        errno: i32,
    },
    /// A reply could not be parsed.
    #[error("malformed conntrack netlink message: {0}")]
    Malformed(&'static str),
}

/// One direction of a connection: addresses and ports as the kernel tracks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// A conntrack entry: its original and reply tuples (and zone, needed to delete it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The direction the first packet went.
    pub orig: Tuple,
    /// The direction replies go (after NAT: the reply source is the chosen endpoint).
    pub reply: Tuple,
    /// The conntrack zone, when not the default.
    pub zone: Option<u16>,
}

/// Which entries to delete: UDP (or another protocol) flows to a frontend, optionally only those
/// answered by one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filter {
    /// IP protocol number.
    pub proto: u8,
    /// The original destination address; `None` for NodePorts (any local address).
    pub dst: Option<Ipv4Addr>,
    /// The original destination port.
    pub dport: u16,
    /// Only entries whose reply comes from this endpoint (address, port).
    pub endpoint: Option<(Ipv4Addr, u16)>,
}

impl Filter {
    /// Whether `e` is one of the entries this filter selects.
    pub fn matches(&self, e: &Entry) -> bool {
        e.orig.proto == self.proto
            && e.orig.dport == self.dport
            && self.dst.is_none_or(|d| d == e.orig.dst)
            && self
                .endpoint
                .is_none_or(|(ip, port)| e.reply.src == ip && e.reply.sport == port)
    }
}

/// The entries to delete after `old` frontends were replaced by `new` ones (each the frontends
/// of the Services that changed; a Service that went away has none in `new`): UDP frontends that
/// went from no endpoints (or none at all) to some, and endpoints that left a UDP frontend. Pure.
pub fn stale_udp_filters<'a>(
    old: impl IntoIterator<Item = &'a Frontend>,
    new: impl IntoIterator<Item = &'a Frontend>,
) -> BTreeSet<Filter> {
    let udp = |f: &&Frontend| f.key.protocol() == Protocol::Udp;
    let old: HashMap<FrontendKey, &Frontend> =
        old.into_iter().filter(udp).map(|f| (f.key, f)).collect();
    let new: HashMap<FrontendKey, &Frontend> =
        new.into_iter().filter(udp).map(|f| (f.key, f)).collect();
    let filter = |key: &FrontendKey, endpoint| {
        let dst = match *key {
            FrontendKey::Addr { ip, .. } => Some(ip),
            FrontendKey::NodePort { .. } => None,
        };
        Filter {
            proto: IPPROTO_UDP,
            dst,
            dport: key.port(),
            endpoint,
        }
    };
    let mut out = BTreeSet::new();
    for (key, f) in &new {
        let had = old.get(key).is_some_and(|o| !o.endpoints.is_empty());
        if !f.endpoints.is_empty() && !had {
            out.insert(filter(key, None));
        }
    }
    for (key, o) in &old {
        let now = new.get(key).map(|f| f.endpoints.as_slice()).unwrap_or(&[]);
        for e in &o.endpoints {
            if !now.iter().any(|n| n.ip == e.ip && n.port == e.port) {
                out.insert(filter(key, Some((e.ip, e.port))));
            }
        }
    }
    out
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_ne_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_ne_bytes());
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Appends one attribute; `nested` marks it as containing attributes.
fn attr(out: &mut Vec<u8>, ty: u16, payload: &[u8], nested: bool) {
    let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    put_u16(out, len);
    put_u16(out, if nested { ty | NLA_F_NESTED } else { ty });
    out.extend_from_slice(payload);
    pad(out);
}

/// A ctnetlink request: netlink header, nfgenmsg (AF_INET) and `attrs`.
fn message(msg_type: u16, flags: u16, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + attrs.len());
    let len = u32::try_from(20 + attrs.len()).unwrap_or(u32::MAX);
    put_u32(&mut out, len);
    put_u16(&mut out, (NFNL_SUBSYS_CTNETLINK << 8) | msg_type);
    put_u16(&mut out, flags);
    put_u32(&mut out, seq);
    put_u32(&mut out, 0);
    out.extend_from_slice(&[AF_INET, 0, 0, 0]);
    out.extend_from_slice(attrs);
    out
}

/// `CTA_TUPLE_ORIG` of `t` (and `CTA_ZONE`), the key of a delete.
fn encode_delete(e: &Entry, seq: u32) -> Vec<u8> {
    let t = &e.orig;
    let mut ip = Vec::new();
    attr(&mut ip, CTA_IP_V4_SRC, &t.src.octets(), false);
    attr(&mut ip, CTA_IP_V4_DST, &t.dst.octets(), false);
    let mut proto = Vec::new();
    attr(&mut proto, CTA_PROTO_NUM, &[t.proto], false);
    attr(
        &mut proto,
        CTA_PROTO_SRC_PORT,
        &t.sport.to_be_bytes(),
        false,
    );
    attr(
        &mut proto,
        CTA_PROTO_DST_PORT,
        &t.dport.to_be_bytes(),
        false,
    );
    let mut tuple = Vec::new();
    attr(&mut tuple, CTA_TUPLE_IP, &ip, true);
    attr(&mut tuple, CTA_TUPLE_PROTO, &proto, true);
    let mut attrs = Vec::new();
    attr(&mut attrs, CTA_TUPLE_ORIG, &tuple, true);
    if let Some(z) = e.zone {
        attr(&mut attrs, CTA_ZONE, &z.to_be_bytes(), false);
    }
    message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, &attrs)
}

/// Iterates over the `(type, payload)` attributes in `buf`.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let payload = &buf[4..len];
        let next = len.next_multiple_of(4).min(buf.len());
        buf = &buf[next..];
        Some((ty, payload))
    })
}

fn be16(p: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(p.get(..2)?.try_into().ok()?))
}

fn v4(p: &[u8]) -> Option<Ipv4Addr> {
    let o: [u8; 4] = p.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

fn decode_tuple(buf: &[u8]) -> Option<Tuple> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, 0, 0);
    for (ty, p) in attrs(buf) {
        match ty {
            CTA_TUPLE_IP => {
                for (t, q) in attrs(p) {
                    match t {
                        CTA_IP_V4_SRC => src = v4(q),
                        CTA_IP_V4_DST => dst = v4(q),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (t, q) in attrs(p) {
                    match t {
                        CTA_PROTO_NUM => proto = q.first().copied(),
                        CTA_PROTO_SRC_PORT => sport = be16(q).unwrap_or(0),
                        CTA_PROTO_DST_PORT => dport = be16(q).unwrap_or(0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Tuple {
        src: src?,
        dst: dst?,
        proto: proto?,
        sport,
        dport,
    })
}

/// The entry in one `IPCTNL_MSG_CT_NEW` payload (after the netlink header): `None` for non-IPv4.
fn decode_entry(payload: &[u8]) -> Option<Entry> {
    let body = payload.get(4..)?;
    let (mut orig, mut reply, mut zone) = (None, None, None);
    for (ty, p) in attrs(body) {
        match ty {
            CTA_TUPLE_ORIG => orig = decode_tuple(p),
            CTA_TUPLE_REPLY => reply = decode_tuple(p),
            CTA_ZONE => zone = be16(p).filter(|z| *z != 0),
            _ => {}
        }
    }
    Some(Entry {
        orig: orig?,
        reply: reply?,
        zone,
    })
}

/// What one receive buffer held.
#[derive(Debug, Default, PartialEq, Eq)]
struct Batch {
    entries: Vec<Entry>,
    /// `NLMSG_ERROR` codes (0 = ack) in order.
    errors: Vec<i32>,
    done: bool,
}

/// Splits a receive buffer into netlink messages.
fn decode_batch(mut buf: &[u8]) -> Result<Batch, Error> {
    let mut b = Batch::default();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap_or_default());
        let len = usize::try_from(len).map_err(|_| Error::Malformed("length"))?;
        if len < 16 || len > buf.len() {
            return Err(Error::Malformed("message length"));
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let payload = &buf[16..len];
        match ty {
            NLMSG_DONE => b.done = true,
            NLMSG_ERROR => {
                let code = payload
                    .get(..4)
                    .and_then(|c| c.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .ok_or(Error::Malformed("error message"))?;
                b.errors.push(-code);
            }
            t if t >> 8 == NFNL_SUBSYS_CTNETLINK => {
                if let Some(e) = decode_entry(payload) {
                    b.entries.push(e);
                }
            }
            _ => {}
        }
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    Ok(b)
}

fn open(netns: &Netns) -> Result<socket2::Socket, Error> {
    let sock = netns.run(|| {
        socket2::Socket::new(
            socket2::Domain::from(AF_NETLINK),
            socket2::Type::RAW,
            Some(socket2::Protocol::from(NETLINK_NETFILTER)),
        )
    })??;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(sock)
}

/// Every IPv4 conntrack entry of the namespace.
pub fn dump(netns: &Netns) -> Result<Vec<Entry>, Error> {
    let sock = open(netns)?;
    dump_on(&sock)
}

fn dump_on(sock: &socket2::Socket) -> Result<Vec<Entry>, Error> {
    sock.send(&message(
        IPCTNL_MSG_CT_GET,
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
        &[],
    ))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::new();
    loop {
        let n = (&*sock).read(&mut buf)?;
        if n == 0 {
            return Err(Error::Malformed("empty read"));
        }
        let b = decode_batch(&buf[..n])?;
        out.extend(b.entries);
        if let Some(&errno) = b.errors.iter().find(|e| **e != 0) {
            return Err(Error::Kernel {
                what: "dump",
                errno,
            });
        }
        if b.done || !b.errors.is_empty() {
            return Ok(out);
        }
    }
}

/// Deletes the entries of `netns` that any of `filters` selects; returns how many went.
pub fn delete_matching<'a>(
    netns: &Netns,
    filters: impl IntoIterator<Item = &'a Filter>,
) -> Result<usize, Error> {
    let mut by_port: HashMap<(u8, u16), Vec<&Filter>> = HashMap::new();
    for f in filters {
        by_port.entry((f.proto, f.dport)).or_default().push(f);
    }
    if by_port.is_empty() {
        return Ok(0);
    }
    let sock = open(netns)?;
    let stale: Vec<Entry> = dump_on(&sock)?
        .into_iter()
        .filter(|e| {
            by_port
                .get(&(e.orig.proto, e.orig.dport))
                .is_some_and(|fs| fs.iter().any(|f| f.matches(e)))
        })
        .collect();
    let mut buf = vec![0u8; 8192];
    let mut deleted = 0;
    for (seq, e) in (2u32..).zip(&stale) {
        sock.send(&encode_delete(e, seq))?;
        let n = (&sock).read(&mut buf)?;
        let b = decode_batch(&buf[..n])?;
        match b.errors.first() {
            Some(0) => deleted += 1,
            Some(&ENOENT) => {}
            Some(&errno) => {
                return Err(Error::Kernel {
                    what: "delete",
                    errno,
                });
            }
            None => return Err(Error::Malformed("no acknowledgement")),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(src: &str, dst: &str, sport: u16, dport: u16) -> Tuple {
        Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: IPPROTO_UDP,
            sport,
            dport,
        }
    }

    fn entry() -> Entry {
        Entry {
            orig: tuple("192.168.77.2", "10.96.0.10", 40000, 53),
            reply: tuple("10.244.1.12", "192.168.77.2", 8080, 40000),
            zone: None,
        }
    }

    /// The CT_NEW message the kernel would send for `e` (as encode_delete builds tuples, plus
    /// the reply tuple and an unrelated attribute).
    fn kernel_message(e: &Entry) -> Vec<u8> {
        let tuple_attrs = |t: &Tuple| {
            let mut ip = Vec::new();
            attr(&mut ip, CTA_IP_V4_SRC, &t.src.octets(), false);
            attr(&mut ip, CTA_IP_V4_DST, &t.dst.octets(), false);
            let mut proto = Vec::new();
            attr(&mut proto, CTA_PROTO_NUM, &[t.proto], false);
            attr(
                &mut proto,
                CTA_PROTO_SRC_PORT,
                &t.sport.to_be_bytes(),
                false,
            );
            attr(
                &mut proto,
                CTA_PROTO_DST_PORT,
                &t.dport.to_be_bytes(),
                false,
            );
            let mut tuple = Vec::new();
            attr(&mut tuple, CTA_TUPLE_IP, &ip, true);
            attr(&mut tuple, CTA_TUPLE_PROTO, &proto, true);
            tuple
        };
        let mut attrs = Vec::new();
        attr(&mut attrs, CTA_TUPLE_ORIG, &tuple_attrs(&e.orig), true);
        attr(&mut attrs, CTA_TUPLE_REPLY, &tuple_attrs(&e.reply), true);
        attr(&mut attrs, 3, &7u32.to_be_bytes(), false); // CTA_STATUS
        message(0, 0x2, 1, &attrs)
    }

    #[test]
    fn entries_round_trip_through_the_wire_format() {
        let e = entry();
        let mut buf = kernel_message(&e);
        let mut done = message(0, 0, 1, &[]);
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        buf.extend_from_slice(&done);
        let b = decode_batch(&buf).unwrap();
        assert_eq!(b.entries, [e]);
        assert!(b.done);
        assert!(b.errors.is_empty());

        let del = encode_delete(&e, 9);
        assert_eq!(
            u32::from_ne_bytes(del[0..4].try_into().unwrap()) as usize,
            del.len()
        );
        assert_eq!(
            u16::from_ne_bytes([del[4], del[5]]),
            (1 << 8) | IPCTNL_MSG_CT_DELETE
        );
        // The delete's key decodes back to the original tuple.
        let (ty, tuple) = attrs(&del[20..]).next().unwrap();
        assert_eq!(ty, CTA_TUPLE_ORIG);
        assert_eq!(decode_tuple(tuple), Some(e.orig));
    }

    #[test]
    fn errors_and_truncation_are_reported() {
        // nlmsghdr, then the negative errno and the request's header.
        let mut ack = Vec::new();
        put_u32(&mut ack, 36);
        put_u16(&mut ack, NLMSG_ERROR);
        put_u16(&mut ack, 0);
        put_u32(&mut ack, 2);
        put_u32(&mut ack, 0);
        ack.extend_from_slice(&(-ENOENT).to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        assert_eq!(decode_batch(&ack).unwrap().errors, [ENOENT]);
        let mut short = kernel_message(&entry());
        short.truncate(30);
        assert!(matches!(decode_batch(&short), Err(Error::Malformed(_))));
    }

    fn front(key: FrontendKey, eps: &[(&str, u16)]) -> Frontend {
        use crate::rules::{EmptyAction, Endpoint, FrontendKind, Masquerade};
        Frontend {
            key,
            kind: FrontendKind::ClusterIp,
            port_name: "ns/dns:dns".into(),
            endpoints: eps
                .iter()
                .map(|(ip, port)| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: *port,
                    local: true,
                })
                .collect(),
            masquerade: Masquerade::OffCluster,
            affinity_timeout: None,
            when_empty: EmptyAction::Reject,
        }
    }

    #[test]
    fn stale_flows_after_a_change() {
        let vip = FrontendKey::Addr {
            ip: "10.96.0.10".parse().unwrap(),
            protocol: Protocol::Udp,
            port: 53,
        };
        let np = FrontendKey::NodePort {
            protocol: Protocol::Udp,
            port: 30053,
        };
        let tcp = FrontendKey::Addr {
            ip: "10.96.0.10".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: 53,
        };
        let a = ("10.244.1.11", 53);
        let b = ("10.244.1.12", 53);
        let f = |key, endpoint: Option<(&str, u16)>| Filter {
            proto: IPPROTO_UDP,
            dst: match key {
                FrontendKey::Addr { ip, .. } => Some(ip),
                FrontendKey::NodePort { .. } => None,
            },
            dport: key.port(),
            endpoint: endpoint.map(|(ip, port)| (ip.parse().unwrap(), port)),
        };
        // A new Service (or the first sync): flows to its frontends that predate the rules go.
        let new = [front(vip, &[a, b]), front(np, &[a]), front(tcp, &[a])];
        assert_eq!(
            stale_udp_filters([], &new),
            [f(vip, None), f(np, None)].into()
        );
        // Nothing changed: nothing to delete.
        assert!(stale_udp_filters(&new, &new).is_empty());
        // b leaves the ClusterIP, a leaves the NodePort (which is now empty), TCP is ignored.
        let after = [front(vip, &[a]), front(np, &[]), front(tcp, &[])];
        assert_eq!(
            stale_udp_filters(&new, &after),
            [f(vip, Some(b)), f(np, Some(a))].into()
        );
        // From no endpoints to some: every flow to the frontend goes.
        assert_eq!(stale_udp_filters(&after, &new), [f(np, None)].into());
        // The Service goes away: flows to all its endpoints go.
        assert_eq!(
            stale_udp_filters(&new, []),
            [f(vip, Some(a)), f(vip, Some(b)), f(np, Some(a))].into()
        );
    }

    #[test]
    fn filters_select_by_frontend_and_endpoint() {
        let e = entry();
        let front = Filter {
            proto: IPPROTO_UDP,
            dst: Some("10.96.0.10".parse().unwrap()),
            dport: 53,
            endpoint: None,
        };
        assert!(front.matches(&e));
        let ep = Filter {
            endpoint: Some(("10.244.1.12".parse().unwrap(), 8080)),
            ..front
        };
        assert!(ep.matches(&e));
        let other_ep = Filter {
            endpoint: Some(("10.244.1.13".parse().unwrap(), 8080)),
            ..front
        };
        assert!(!other_ep.matches(&e));
        let nodeport = Filter {
            dst: None,
            dport: 53,
            ..front
        };
        assert!(nodeport.matches(&e));
        assert!(!Filter { proto: 6, ..front }.matches(&e));
        assert!(!Filter { dport: 54, ..front }.matches(&e));
    }
}

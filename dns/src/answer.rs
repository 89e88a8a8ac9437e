//! Answering one question from a zone snapshot, without I/O: the response code, which
//! records go in which section (all borrowed from the snapshot), or the decision to forward
//! the question upstream or to chase a CNAME that leaves the zone.

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use crate::zone::{Node, Zone};

/// What to do with a question.
#[derive(Debug)]
pub enum Resolution<'z> {
    /// An authoritative answer from the snapshot.
    Local(LocalAnswer<'z>),
    /// The name is an alias (an ExternalName Service) for a name outside the zone: answer the
    /// CNAME and add what the upstream resolvers answer for the target.
    Chase {
        /// The CNAME record.
        cname: &'z Record,
        /// Its target.
        target: &'z Name,
    },
    /// The name is not ours: forward the question to the upstream resolvers.
    Forward,
}

/// An answer from the snapshot.
#[derive(Debug)]
pub struct LocalAnswer<'z> {
    /// NOERROR, NXDOMAIN, SERVFAIL (caches not synced yet) or REFUSED.
    pub rcode: ResponseCode,
    /// Whether the answer is authoritative (AA).
    pub authoritative: bool,
    /// The answer section: a CNAME and its in-zone target's records, or one RRset.
    pub answers: [&'z [Record]; 2],
    /// The authority section: the SOA for negative answers.
    pub authority: &'z [Record],
    /// The additional section: addresses of SRV and NS targets.
    pub additionals: &'z [Record],
}

impl<'z> LocalAnswer<'z> {
    fn new(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            authoritative: true,
            answers: [&[], &[]],
            authority: &[],
            additionals: &[],
        }
    }

    /// The answer records in order.
    pub fn answer_records(&self) -> impl Iterator<Item = &'z Record> + Send + 'z {
        self.answers[0].iter().chain(self.answers[1].iter())
    }
}

/// Resolves a question (`name` as lowercased by the request parser) against `zone`.
pub fn resolve<'z>(
    zone: &'z Zone,
    name: &LowerName,
    qtype: RecordType,
    qclass: DNSClass,
) -> Resolution<'z> {
    if zone.origin().zone_of(name) {
        return in_zone(zone, name, qtype, qclass);
    }
    if zone.reverse_zones().contains(name)
        && matches!(qclass, DNSClass::IN | DNSClass::ANY)
        && let Some(node) = zone.node(name)
    {
        let records = records_for(node.all(), node.rrset(qtype), qtype);
        if !records.is_empty() {
            let mut a = LocalAnswer::new(ResponseCode::NoError);
            a.answers[0] = records;
            return Resolution::Local(a);
        }
    }
    Resolution::Forward
}

fn records_for<'z>(all: &'z [Record], set: &'z [Record], qtype: RecordType) -> &'z [Record] {
    if qtype == RecordType::ANY { all } else { set }
}

fn in_zone<'z>(
    zone: &'z Zone,
    name: &LowerName,
    qtype: RecordType,
    qclass: DNSClass,
) -> Resolution<'z> {
    Resolution::Local(if !zone.is_ready() {
        let mut a = LocalAnswer::new(ResponseCode::ServFail);
        a.authoritative = false;
        a
    } else if !matches!(qclass, DNSClass::IN | DNSClass::ANY)
        || matches!(qtype, RecordType::AXFR | RecordType::IXFR)
    {
        LocalAnswer::new(ResponseCode::Refused)
    } else if let Some(node) = zone.node(name) {
        return existing(zone, node, qtype);
    } else {
        let mut a = LocalAnswer::new(ResponseCode::NXDomain);
        a.authority = zone.soa();
        a
    })
}

fn existing<'z>(zone: &'z Zone, node: &'z Node, qtype: RecordType) -> Resolution<'z> {
    let mut a = LocalAnswer::new(ResponseCode::NoError);
    if let Some(cname) = node.cname()
        && !matches!(qtype, RecordType::CNAME | RecordType::ANY)
    {
        let RData::CNAME(target) = &cname.data else {
            unreachable!("a CNAME RRset holds CNAME data");
        };
        let target = &target.0;
        let lower = LowerName::new(target);
        if !zone.origin().zone_of(&lower) {
            return Resolution::Chase { cname, target };
        }
        a.answers[0] = node.rrset(RecordType::CNAME);
        match zone.node(&lower) {
            Some(t) => {
                a.answers[1] = t.rrset(qtype);
                if a.answers[1].is_empty() {
                    a.authority = zone.soa();
                }
            }
            None => {
                a.rcode = ResponseCode::NXDomain;
                a.authority = zone.soa();
            }
        }
        return Resolution::Local(a);
    }
    a.answers[0] = records_for(node.all(), node.rrset(qtype), qtype);
    if a.answers[0].is_empty() {
        // NODATA: the name exists without records of this type.
        a.authority = zone.soa();
    } else if matches!(qtype, RecordType::SRV | RecordType::NS | RecordType::ANY) {
        a.additionals = node.additionals();
    }
    Resolution::Local(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names;
    use crate::zone::tests::sample;
    use crate::zone::{ZoneBuilder, ZoneConfig};

    fn zone() -> Zone {
        let (s, e, p) = sample();
        let cfg = ZoneConfig::new("cluster.local", 5).unwrap();
        ZoneBuilder::new(&cfg).build(&s, &e, &p, 1)
    }

    fn q<'z>(z: &'z Zone, name: &str, t: RecordType) -> Resolution<'z> {
        resolve(
            z,
            &LowerName::new(&Name::from_ascii(name).unwrap()),
            t,
            DNSClass::IN,
        )
    }

    fn local<'z>(r: Resolution<'z>) -> LocalAnswer<'z> {
        match r {
            Resolution::Local(a) => a,
            other => panic!("expected a local answer, got {other:?}"),
        }
    }

    fn texts(a: &LocalAnswer<'_>) -> Vec<String> {
        a.answer_records()
            .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
            .collect()
    }

    #[test]
    fn positive_answers_are_authoritative_and_case_insensitive() {
        let z = zone();
        let a = local(q(&z, "WEB.Default.SVC.cluster.local.", RecordType::A));
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert!(a.authoritative);
        assert_eq!(texts(&a), ["web.default.svc.cluster.local. A 10.96.0.20"]);
        assert!(a.authority.is_empty());
        let srv = local(q(
            &z,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        ));
        assert_eq!(srv.answer_records().count(), 1);
        assert_eq!(srv.additionals.len(), 2, "A and AAAA of the target");
    }

    #[test]
    fn nxdomain_and_nodata_carry_the_soa() {
        let z = zone();
        let nx = local(q(&z, "nope.default.svc.cluster.local.", RecordType::A));
        assert_eq!(nx.rcode, ResponseCode::NXDomain);
        assert_eq!(nx.authority.len(), 1);
        assert_eq!(nx.authority[0].record_type(), RecordType::SOA);
        assert_eq!(nx.answer_records().count(), 0);

        let nodata = local(q(&z, "web.default.svc.cluster.local.", RecordType::MX));
        assert_eq!(nodata.rcode, ResponseCode::NoError);
        assert_eq!(nodata.answer_records().count(), 0);
        assert_eq!(nodata.authority[0].record_type(), RecordType::SOA);

        // Empty non-terminals are NODATA, not NXDOMAIN.
        let ent = local(q(&z, "default.svc.cluster.local.", RecordType::A));
        assert_eq!(ent.rcode, ResponseCode::NoError);
        assert_eq!(ent.authority.len(), 1);
    }

    #[test]
    fn apex_soa_ns_and_any() {
        let z = zone();
        let soa = local(q(&z, "cluster.local.", RecordType::SOA));
        assert_eq!(soa.answer_records().count(), 1);
        let ns = local(q(&z, "cluster.local.", RecordType::NS));
        assert_eq!(texts(&ns), ["cluster.local. NS ns.dns.cluster.local."]);
        assert_eq!(ns.additionals.len(), 1, "glue for ns.dns");
        let any = local(q(&z, "web.default.svc.cluster.local.", RecordType::ANY));
        assert_eq!(any.answer_records().count(), 2, "A and AAAA");
    }

    #[test]
    fn external_name_is_chased_outside_the_zone() {
        let z = zone();
        match q(&z, "ext.default.svc.cluster.local.", RecordType::A) {
            Resolution::Chase { cname, target } => {
                assert_eq!(cname.record_type(), RecordType::CNAME);
                assert_eq!(target.to_ascii(), "example.org.");
            }
            other => panic!("expected a chase, got {other:?}"),
        }
        // Asking for the CNAME itself is answered locally.
        let c = local(q(&z, "ext.default.svc.cluster.local.", RecordType::CNAME));
        assert_eq!(
            texts(&c),
            ["ext.default.svc.cluster.local. CNAME example.org."]
        );
    }

    #[test]
    fn cname_inside_the_zone_is_followed() {
        let (mut s, e, p) = sample();
        s[2].spec.as_mut().unwrap().external_name = Some("web.default.svc.cluster.local".into());
        let cfg = ZoneConfig::new("cluster.local", 5).unwrap();
        let z = ZoneBuilder::new(&cfg).build(&s, &e, &p, 1);
        let a = local(q(&z, "ext.default.svc.cluster.local.", RecordType::A));
        assert_eq!(
            texts(&a),
            [
                "ext.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. A 10.96.0.20"
            ]
        );
    }

    #[test]
    fn reverse_lookups_fall_through_when_unknown() {
        let z = zone();
        let ptr = local(q(&z, "10.0.96.10.in-addr.arpa.", RecordType::PTR));
        assert_eq!(
            texts(&ptr),
            ["10.0.96.10.in-addr.arpa. PTR kube-dns.kube-system.svc.cluster.local."]
        );
        let name = names::reverse("192.0.2.1".parse().unwrap()).to_ascii();
        assert!(matches!(q(&z, &name, RecordType::PTR), Resolution::Forward));
        assert!(matches!(
            q(&z, "example.org.", RecordType::A),
            Resolution::Forward
        ));
    }

    #[test]
    fn pending_zone_refuses_classes_and_transfers() {
        let cfg = ZoneConfig::new("cluster.local", 5).unwrap();
        let pending = Zone::pending(&cfg);
        let a = local(q(&pending, "web.default.svc.cluster.local.", RecordType::A));
        assert_eq!(a.rcode, ResponseCode::ServFail);
        assert!(!a.authoritative);

        let z = zone();
        let axfr = local(q(&z, "cluster.local.", RecordType::AXFR));
        assert_eq!(axfr.rcode, ResponseCode::Refused);
        let chaos = local(resolve(
            &z,
            &LowerName::new(&Name::from_ascii("cluster.local.").unwrap()),
            RecordType::TXT,
            DNSClass::CH,
        ));
        assert_eq!(chaos.rcode, ResponseCode::Refused);
    }
}

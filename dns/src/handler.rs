//! The hickory-server request handler: EDNS0 negotiation, opcode and question checks, then
//! the answer from the current zone snapshot — or the upstream resolvers' answer for names
//! outside it — written into the response without copying the snapshot's records.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, warn};

use crate::answer::{self, LocalAnswer, Resolution};
use crate::forward::{Forwarder, Transport};
use crate::metrics::Metrics;
use crate::zone::Zone;

/// The EDNS version rkube-dns speaks.
const EDNS_VERSION: u8 = 0;

/// The largest UDP response rkube-dns sends, whatever buffer a client advertises: larger
/// datagrams fragment, and a small query must not buy a huge answer (amplification).
pub const MAX_UDP_PAYLOAD: u16 = 4096;

/// Answers DNS requests from the current zone snapshot and the upstream resolvers.
#[derive(Clone)]
pub struct DnsHandler {
    zone: Arc<ArcSwap<Zone>>,
    forwarder: Forwarder,
    metrics: Arc<Metrics>,
}

impl DnsHandler {
    /// A handler serving the snapshots published in `zone`.
    pub fn new(zone: Arc<ArcSwap<Zone>>, forwarder: Forwarder, metrics: Arc<Metrics>) -> Self {
        Self {
            zone,
            forwarder,
            metrics,
        }
    }

    async fn respond<R: ResponseHandler>(&self, request: &Request, handle: R) -> ResponseInfo {
        let tcp = request.protocol() == Protocol::Tcp;
        // EDNS0 (RFC 6891): answer an OPT with an OPT; the client's payload size bounds UDP
        // answers (never below 512, never above MAX_UDP_PAYLOAD).
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e.set_version(EDNS_VERSION);
            e
        });
        if request
            .edns
            .as_ref()
            .is_some_and(|e| e.version() > EDNS_VERSION)
        {
            return self
                .error(request, ResponseCode::BADVERS, edns.as_ref(), handle)
                .await;
        }
        if request.metadata.op_code != OpCode::Query {
            return self
                .error(request, ResponseCode::NotImp, edns.as_ref(), handle)
                .await;
        }
        let Ok(info) = request.request_info() else {
            return self
                .error(request, ResponseCode::FormErr, edns.as_ref(), handle)
                .await;
        };
        let query = info.query;
        let zone = self.zone.load_full();
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        match answer::resolve(&zone, query.name(), query.query_type(), query.query_class()) {
            Resolution::Local(a) => self.send_local(request, &a, edns.as_ref(), handle).await,
            Resolution::Chase { cname, target } => {
                self.metrics.chased.fetch_add(1, Ordering::Relaxed);
                let (rcode, extra) = match self
                    .forwarder
                    .lookup(target, query.query_type(), transport)
                    .await
                {
                    Ok(m)
                        if matches!(
                            m.metadata.response_code,
                            ResponseCode::NoError | ResponseCode::NXDomain
                        ) =>
                    {
                        (m.metadata.response_code, m.answers)
                    }
                    Ok(m) => {
                        debug!(%target, rcode = %m.metadata.response_code, "upstream could not resolve the CNAME target");
                        (ResponseCode::NoError, Vec::new())
                    }
                    Err(e) => {
                        debug!(%target, error = %e, "upstream could not resolve the CNAME target");
                        (ResponseCode::NoError, Vec::new())
                    }
                };
                let mut meta = Metadata::response_from_request(&request.metadata);
                meta.authoritative = true;
                meta.recursion_available = true;
                meta.response_code = rcode;
                let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
                    meta,
                    std::iter::once(cname).chain(extra.iter()),
                    std::iter::empty::<&Record>(),
                    std::iter::empty::<&Record>(),
                    std::iter::empty::<&Record>(),
                );
                self.send(handle, response, meta).await
            }
            Resolution::Forward => {
                self.metrics.forwarded.fetch_add(1, Ordering::Relaxed);
                match self.forwarder.exchange(request.as_slice(), transport).await {
                    Ok(m) => {
                        let mut meta = Metadata::response_from_request(&request.metadata);
                        meta.response_code = m.metadata.response_code;
                        meta.authoritative = m.metadata.authoritative;
                        meta.truncation = m.metadata.truncation;
                        meta.recursion_available = m.metadata.recursion_available;
                        meta.authentic_data = m.metadata.authentic_data;
                        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref())
                            .build(
                                meta,
                                m.answers.iter(),
                                m.authorities.iter(),
                                std::iter::empty::<&Record>(),
                                m.additionals.iter(),
                            );
                        self.send(handle, response, meta).await
                    }
                    Err(e) => {
                        self.metrics
                            .forward_failures
                            .fetch_add(1, Ordering::Relaxed);
                        warn!(name = %query.name(), qtype = %query.query_type(), error = %e, "forwarding failed");
                        self.error(request, ResponseCode::ServFail, edns.as_ref(), handle)
                            .await
                    }
                }
            }
        }
    }

    async fn send_local<R: ResponseHandler>(
        &self,
        request: &Request,
        a: &LocalAnswer<'_>,
        edns: Option<&Edns>,
        handle: R,
    ) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.authoritative = a.authoritative;
        meta.recursion_available = true;
        meta.response_code = a.rcode;
        let response = MessageResponseBuilder::new(&request.queries, edns).build(
            meta,
            a.answer_records(),
            a.authority.iter(),
            std::iter::empty::<&Record>(),
            a.additionals.iter(),
        );
        self.send(handle, response, meta).await
    }

    async fn error<R: ResponseHandler>(
        &self,
        request: &Request,
        rcode: ResponseCode,
        edns: Option<&Edns>,
        handle: R,
    ) -> ResponseInfo {
        let response =
            MessageResponseBuilder::new(&request.queries, edns).error_msg(&request.metadata, rcode);
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.response_code = rcode;
        self.send(handle, response, meta).await
    }

    async fn send<'a, R: ResponseHandler>(
        &self,
        mut handle: R,
        response: hickory_server::zone_handler::MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
        meta: Metadata,
    ) -> ResponseInfo {
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                self.metrics.send_errors.fetch_add(1, Ordering::Relaxed);
                debug!(error = %e, "cannot send a response");
                ResponseInfo::from(Header {
                    metadata: meta,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let info = self.respond(request, response_handle).await;
        self.metrics
            .response(info.response_code, request.protocol() == Protocol::Tcp);
        info
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use hickory_server::net::NetError;
    use hickory_server::net::runtime::TokioTime;
    use hickory_server::proto::op::{Message, Query};
    use hickory_server::proto::rr::{Name, RecordType};
    use hickory_server::proto::serialize::binary::BinEncoder;
    use hickory_server::zone_handler::MessageResponse;
    use serde_json::json;

    use super::*;
    use crate::forward::Forwarder;
    use crate::zone::tests::{sample, service, slice};
    use crate::zone::{ZoneBuilder, ZoneConfig};

    /// Encodes responses as the server would (UDP: bounded by the EDNS payload or 512).
    #[derive(Clone)]
    struct Capture {
        tcp: bool,
        out: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    #[async_trait::async_trait]
    impl ResponseHandler for Capture {
        async fn send_response<'a>(
            &mut self,
            response: MessageResponse<
                '_,
                'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
            >,
        ) -> Result<ResponseInfo, NetError> {
            let limit = if self.tcp {
                u16::MAX
            } else {
                response.edns().map_or(512, |e| e.max_payload())
            };
            let mut buf = Vec::new();
            let mut enc = BinEncoder::new(&mut buf);
            enc.set_max_size(limit);
            let info = response.destructive_emit(&mut enc)?;
            self.out.lock().unwrap().push(buf);
            Ok(info)
        }
    }

    fn handler(zone: Zone) -> (DnsHandler, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let h = DnsHandler::new(
            Arc::new(ArcSwap::from_pointee(zone)),
            Forwarder::new(vec![], Duration::from_millis(100)),
            metrics.clone(),
        );
        (h, metrics)
    }

    fn sample_zone() -> Zone {
        // A headless Service with 60 ready endpoints: far more than 512 bytes of A records.
        zone_with_many(60)
    }

    /// The sample zone plus `many.default`, a headless Service with `n` ready endpoints.
    fn zone_with_many(n: u32) -> Zone {
        let (mut s, mut e, p) = sample();
        s.push(service(
            json!({"metadata": {"name": "many", "namespace": "default"},
            "spec": {"clusterIP": "None"}}),
        ));
        let endpoints: Vec<_> = (0..n)
            .map(|i| json!({"addresses": [format!("10.1.{}.{}", i / 250, i % 250 + 1)]}))
            .collect();
        e.push(slice(
            json!({"metadata": {"name": "many-1", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "many"}},
            "addressType": "IPv4", "endpoints": endpoints}),
        ));
        let cfg = ZoneConfig::new("cluster.local", 5).unwrap();
        ZoneBuilder::new(&cfg).build(&s, &e, &p, 3)
    }

    fn query(name: &str, t: RecordType, edns: Option<(u16, u8)>) -> Message {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if let Some((size, version)) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            e.set_version(version);
            m.set_edns(e);
        }
        m
    }

    async fn ask(h: &DnsHandler, m: &Message, tcp: bool) -> (Message, usize) {
        let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
        let req = Request::from_bytes(
            m.to_vec().unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
            protocol,
        )
        .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let cap = Capture {
            tcp,
            out: out.clone(),
        };
        let info = h.handle_request::<_, TokioTime>(&req, cap).await;
        let bytes = out.lock().unwrap().pop().expect("a response was sent");
        let msg = Message::from_vec(&bytes).unwrap();
        // Compare numerically: 16 decodes as BADSIG, whatever was meant (BADVERS).
        assert_eq!(
            u16::from(info.response_code),
            u16::from(msg.metadata.response_code)
        );
        (msg, bytes.len())
    }

    #[tokio::test]
    async fn answers_authoritatively_with_the_query_echoed() {
        let (h, metrics) = handler(sample_zone());
        let (m, _) = ask(
            &h,
            &query("Web.default.svc.cluster.local.", RecordType::A, None),
            false,
        )
        .await;
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
        assert_eq!(
            m.queries[0].name().to_ascii(),
            "Web.default.svc.cluster.local."
        );
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data.to_string(), "10.96.0.20");
        assert_eq!(m.answers[0].ttl, 5);
        assert!(
            m.edns.is_none(),
            "no OPT in the response to a query without one"
        );
        assert_eq!(metrics.responses(ResponseCode::NoError), 1);
    }

    #[tokio::test]
    async fn nxdomain_has_the_soa_and_edns_is_echoed() {
        let (h, _) = handler(sample_zone());
        let (m, _) = ask(
            &h,
            &query(
                "nope.default.svc.cluster.local.",
                RecordType::A,
                Some((1232, 0)),
            ),
            false,
        )
        .await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative);
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(m.edns.as_ref().map(|e| e.version()), Some(0));
    }

    #[tokio::test]
    async fn large_answers_are_truncated_over_udp_only() {
        let (h, _) = handler(sample_zone());
        let q = query("many.default.svc.cluster.local.", RecordType::A, None);
        let (m, len) = ask(&h, &q, false).await;
        assert!(
            m.metadata.truncation,
            "60 A records do not fit in 512 bytes"
        );
        assert!(len <= 512, "{len}");
        assert!(m.answers.len() < 60);
        let (m, _) = ask(&h, &q, true).await;
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 60);
        // A client advertising a 4096-byte EDNS buffer gets everything over UDP.
        let (m, len) = ask(
            &h,
            &query(
                "many.default.svc.cluster.local.",
                RecordType::A,
                Some((4096, 0)),
            ),
            false,
        )
        .await;
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 60);
        assert!(len > 512);
    }

    #[tokio::test]
    async fn udp_answers_are_capped_whatever_buffer_the_client_claims() {
        // 400 A records: ~6.4 KB, more than the cap.
        let (h, _) = handler(zone_with_many(400));
        let name = "many.default.svc.cluster.local.";
        let (m, len) = ask(&h, &query(name, RecordType::A, Some((65_000, 0))), false).await;
        assert!(m.metadata.truncation, "6.4 KB does not fit in 4096 bytes");
        assert!(len <= usize::from(MAX_UDP_PAYLOAD), "{len}");
        assert!(len > 2048, "as much as fits is sent: {len}");
        assert_eq!(
            m.edns.as_ref().map(|e| e.max_payload()),
            Some(MAX_UDP_PAYLOAD)
        );
        // A buffer below 512 counts as 512.
        let (m, _) = ask(&h, &query(name, RecordType::A, Some((100, 0))), false).await;
        assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(512));
        // TCP carries everything.
        let (m, _) = ask(&h, &query(name, RecordType::A, Some((65_000, 0))), true).await;
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 400);
    }

    #[tokio::test]
    async fn protocol_errors() {
        let (h, metrics) = handler(sample_zone());
        let (m, _) = ask(
            &h,
            &query(
                "web.default.svc.cluster.local.",
                RecordType::A,
                Some((1232, 1)),
            ),
            false,
        )
        .await;
        assert_eq!(
            u16::from(m.metadata.response_code),
            u16::from(ResponseCode::BADVERS)
        );
        assert!(
            m.edns.is_some(),
            "BADVERS needs the OPT record for its upper bits"
        );

        let mut two = query("web.default.svc.cluster.local.", RecordType::A, None);
        two.add_query(Query::query(
            Name::from_ascii("db.data.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let (m, _) = ask(&h, &two, false).await;
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

        let mut status = query("web.default.svc.cluster.local.", RecordType::A, None);
        status.metadata.op_code = OpCode::Status;
        let (m, _) = ask(&h, &status, false).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
        assert_eq!(metrics.responses(ResponseCode::FormErr), 1);
        assert_eq!(metrics.responses(ResponseCode::NotImp), 1);
    }

    #[tokio::test]
    async fn not_synced_or_no_upstream_is_servfail() {
        let cfg = ZoneConfig::new("cluster.local", 5).unwrap();
        let (h, metrics) = handler(Zone::pending(&cfg));
        let (m, _) = ask(
            &h,
            &query("web.default.svc.cluster.local.", RecordType::A, None),
            false,
        )
        .await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        let (m, _) = ask(&h, &query("example.org.", RecordType::A, None), true).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(metrics.forwarded.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.forward_failures.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.responses(ResponseCode::ServFail), 2);
    }

    #[tokio::test]
    async fn external_name_without_upstream_is_still_the_cname() {
        let (h, metrics) = handler(sample_zone());
        let (m, _) = ask(
            &h,
            &query("ext.default.svc.cluster.local.", RecordType::A, None),
            false,
        )
        .await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(metrics.chased.load(Ordering::Relaxed), 1);
    }
}

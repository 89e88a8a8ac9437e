//! Forwarding questions outside the cluster zone to the upstream resolvers, over UDP or TCP
//! (as the client asked), trying each upstream in turn within one overall deadline, so an
//! unreachable upstream turns into SERVFAIL rather than a hang.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;
use tracing::debug;

/// How the client asked, and so how the question is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: a truncated upstream answer is passed on truncated (the client retries over TCP).
    Udp,
    /// TCP.
    Tcp,
}

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No upstream resolvers are configured.
    #[error("no upstream resolvers are configured")]
    NoUpstreams,
    /// The question could not be read back from the request.
    #[error("cannot forward a request without a valid header: {0}")]
    BadRequest(String),
    /// A socket error talking to an upstream.
    #[error("upstream {upstream}: {source}")]
    Io {
        /// The upstream.
        upstream: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The upstream did not answer in time.
    #[error("upstream {upstream} did not answer within {waited:?}")]
    Timeout {
        /// The upstream.
        upstream: SocketAddr,
        /// How long it was given.
        waited: Duration,
    },
    /// The upstream's answer could not be parsed or did not match the question.
    #[error("upstream {upstream} sent a malformed answer: {reason}")]
    Malformed {
        /// The upstream.
        upstream: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// Every upstream failed.
    #[error("all {count} upstream resolvers failed; the last: {last}")]
    AllFailed {
        /// Number of upstreams tried.
        count: usize,
        /// The last failure.
        last: Box<ForwardError>,
    },
}

/// The upstream resolvers and the deadline for one forwarded question.
#[derive(Clone, Debug)]
pub struct Forwarder {
    upstreams: Arc<[SocketAddr]>,
    timeout: Duration,
    next_id: Arc<AtomicU16>,
}

impl Forwarder {
    /// Upstreams tried in order, all within `timeout`.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() as u16);
        Self {
            upstreams: upstreams.into(),
            timeout,
            next_id: Arc::new(AtomicU16::new(seed)),
        }
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The overall deadline of one forwarded question.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends the wire-format `query` to the upstreams in turn and returns the first answer
    /// that is not SERVFAIL/REFUSED (or the last answer, if all of them are).
    pub async fn exchange(
        &self,
        query: &[u8],
        transport: Transport,
    ) -> Result<Message, ForwardError> {
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstreams);
        }
        let expected = Expected::of(query)?;
        let deadline = Instant::now() + self.timeout;
        let mut last_err = None;
        let mut last_answer = None;
        for (i, &upstream) in self.upstreams.iter().enumerate() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Share what is left of the deadline among the upstreams not yet tried.
            let left = (self.upstreams.len() - i) as u32;
            let budget = (deadline - now) / left;
            let attempt = async {
                match transport {
                    Transport::Udp => udp_exchange(upstream, query, budget).await,
                    Transport::Tcp => tcp_exchange(upstream, query).await,
                }
            };
            let result = match tokio::time::timeout(budget, attempt).await {
                Ok(r) => r.and_then(|bytes| expected.check(upstream, &bytes)),
                Err(_) => Err(ForwardError::Timeout {
                    upstream,
                    waited: budget,
                }),
            };
            match result {
                Ok(answer)
                    if matches!(
                        answer.metadata.response_code,
                        ResponseCode::ServFail | ResponseCode::Refused
                    ) =>
                {
                    debug!(%upstream, rcode = %answer.metadata.response_code, "upstream failed the question; trying the next");
                    last_answer = Some(answer);
                }
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    debug!(%upstream, error = %e, "forwarding failed");
                    last_err = Some(e);
                }
            }
        }
        if let Some(answer) = last_answer {
            return Ok(answer);
        }
        let last = last_err.unwrap_or(ForwardError::Timeout {
            upstream: self.upstreams[0],
            waited: self.timeout,
        });
        Err(ForwardError::AllFailed {
            count: self.upstreams.len(),
            last: Box::new(last),
        })
    }

    /// Asks the upstreams for `qtype` records of `name` (to complete a CNAME that leaves the
    /// zone), with recursion desired and EDNS0.
    pub async fn lookup(
        &self,
        name: &Name,
        qtype: RecordType,
        transport: Transport,
    ) -> Result<Message, ForwardError> {
        let mut msg = Message::query();
        msg.metadata.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(name.clone(), qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        msg.set_edns(edns);
        let bytes = msg
            .to_vec()
            .map_err(|e| ForwardError::BadRequest(e.to_string()))?;
        self.exchange(&bytes, transport).await
    }
}

/// What a valid answer to a query must match: its ID and its question.
struct Expected {
    id: u16,
    question: Option<Query>,
}

impl Expected {
    fn of(query: &[u8]) -> Result<Self, ForwardError> {
        let msg = Message::from_vec(query).map_err(|e| ForwardError::BadRequest(e.to_string()))?;
        Ok(Self {
            id: msg.metadata.id,
            question: msg.queries.into_iter().next(),
        })
    }

    fn check(&self, upstream: SocketAddr, bytes: &[u8]) -> Result<Message, ForwardError> {
        let malformed = |reason: String| ForwardError::Malformed { upstream, reason };
        let msg = Message::from_vec(bytes).map_err(|e| malformed(e.to_string()))?;
        if msg.metadata.id != self.id || msg.metadata.message_type != MessageType::Response {
            return Err(malformed(format!(
                "answer id {} ({:?}) does not match query id {}",
                msg.metadata.id, msg.metadata.message_type, self.id
            )));
        }
        if let (Some(want), Some(got)) = (&self.question, msg.queries.first())
            && (want.name() != got.name() || want.query_type() != got.query_type())
        {
            return Err(malformed(format!(
                "answer is for {} {}, not {} {}",
                got.name(),
                got.query_type(),
                want.name(),
                want.query_type()
            )));
        }
        Ok(msg)
    }
}

async fn udp_exchange(
    upstream: SocketAddr,
    query: &[u8],
    budget: Duration,
) -> Result<Vec<u8>, ForwardError> {
    let io_err = |source| ForwardError::Io { upstream, source };
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    // A connected socket on a fresh ephemeral port: only the upstream can answer on it.
    let socket = UdpSocket::bind(local).await.map_err(io_err)?;
    socket.connect(upstream).await.map_err(io_err)?;
    socket.send(query).await.map_err(io_err)?;
    let id = query.get(..2);
    let mut buf = vec![0u8; 65_535];
    let deadline = Instant::now() + budget;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| ForwardError::Timeout {
                upstream,
                waited: budget,
            })?
            .map_err(io_err)?;
        // Skip stray datagrams (a late answer to an earlier try cannot arrive on a new port,
        // but be strict anyway).
        if n >= 12 && buf.get(..2) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(upstream: SocketAddr, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
    let io_err = |source| ForwardError::Io { upstream, source };
    let len = u16::try_from(query.len())
        .map_err(|_| ForwardError::BadRequest("query too long".into()))?;
    let mut stream = TcpStream::connect(upstream).await.map_err(io_err)?;
    stream.set_nodelay(true).map_err(io_err)?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    stream.write_all(&out).await.map_err(io_err)?;
    let n = stream.read_u16().await.map_err(io_err)? as usize;
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).await.map_err(io_err)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    fn answer_for(q: &[u8], f: impl FnOnce(&mut Message)) -> Vec<u8> {
        let mut m = Message::from_vec(q).unwrap();
        m.metadata.message_type = MessageType::Response;
        f(&mut m);
        m.to_vec().unwrap()
    }

    #[test]
    fn answers_must_match_id_and_question() {
        let up: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let q = query(7, "example.org.");
        let e = Expected::of(&q).unwrap();
        assert!(e.check(up, &answer_for(&q, |_| {})).is_ok());
        // 0x20 case randomisation upstream still matches.
        let ok = answer_for(&q, |m| {
            m.queries[0] = Query::query(Name::from_ascii("EXAMPLE.org.").unwrap(), RecordType::A)
        });
        assert!(e.check(up, &ok).is_ok());
        let wrong_id = answer_for(&q, |m| m.metadata.id = 8);
        assert!(matches!(
            e.check(up, &wrong_id),
            Err(ForwardError::Malformed { .. })
        ));
        let wrong_q = answer_for(&q, |m| {
            m.queries[0] = Query::query(Name::from_ascii("evil.org.").unwrap(), RecordType::A)
        });
        let err = e.check(up, &wrong_q).unwrap_err();
        assert!(err.to_string().contains("evil.org"), "{err}");
        let not_response = answer_for(&q, |m| m.metadata.message_type = MessageType::Query);
        assert!(e.check(up, &not_response).is_err());
        assert!(e.check(up, &[1, 2, 3]).is_err());
    }

    #[tokio::test]
    async fn no_upstreams_is_an_error() {
        let f = Forwarder::new(vec![], Duration::from_millis(100));
        let err = f
            .exchange(&query(1, "a."), Transport::Udp)
            .await
            .unwrap_err();
        assert!(matches!(err, ForwardError::NoUpstreams));
    }

    /// Paused time: the runtime jumps to the next timer once the silent sockets leave nothing
    /// to do, so the deadline is checked exactly, independent of the machine's load.
    #[tokio::test(start_paused = true)]
    async fn silent_upstream_times_out_within_the_deadline() {
        // Sockets that read and never answer.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let silent_tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp_addr = silent_tcp.local_addr().unwrap();
        let f = Forwarder::new(vec![addr, addr], Duration::from_millis(300));
        let started = Instant::now();
        let err = f
            .exchange(&query(1, "a."), Transport::Udp)
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(err, ForwardError::AllFailed { count: 2, .. }),
            "{err}"
        );
        // Each upstream got its share (150 ms), the whole within the 300 ms deadline.
        assert!(took >= Duration::from_millis(299), "{took:?}");
        assert!(took <= Duration::from_millis(301), "{took:?}");
        assert!(err.to_string().contains("did not answer within"), "{err}");

        // TCP: the listener accepts (the kernel does) but never answers.
        let f = Forwarder::new(vec![tcp_addr], Duration::from_millis(500));
        let started = Instant::now();
        let err = f
            .exchange(&query(2, "a."), Transport::Tcp)
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(err.to_string().contains(&tcp_addr.to_string()), "{err}");
        assert!(took <= Duration::from_millis(501), "{took:?}");
        drop((silent, silent_tcp));
    }

    #[tokio::test]
    async fn fails_over_to_the_next_upstream() {
        let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead); // nothing listens: the kernel refuses
        let live = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = live.recv_from(&mut buf).await.unwrap();
            let reply = answer_for(&buf[..n], |m| m.metadata.recursion_available = true);
            live.send_to(&reply, from).await.unwrap();
        });
        let f = Forwarder::new(vec![dead_addr, live_addr], Duration::from_secs(2));
        let answer = f
            .exchange(&query(9, "example.org."), Transport::Udp)
            .await
            .unwrap();
        assert_eq!(answer.metadata.id, 9);
        assert!(answer.metadata.recursion_available);
        server.await.unwrap();
    }
}

//! rkube-dns against a real API server: every record type of the Kubernetes DNS
//! specification, updates within 1 s, forwarding (and SERVFAIL when upstreams are down),
//! UDP/TCP/EDNS0/truncation, malformed packets — asked with raw DNS messages and with
//! hickory-resolver, a real stub resolver.

mod binary;
mod forwarding;
mod harness;
mod protocol;
mod records;
mod updates;

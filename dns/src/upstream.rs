//! Where names outside the cluster zone go: the `--upstream IP[:port],…` list, or the
//! `nameserver` lines of `/etc/resolv.conf` — never rkube-dns itself, which would loop.

use std::net::{IpAddr, SocketAddr};

/// A malformed upstream.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid upstream {entry:?}: expected IP or IP:port (e.g. 192.0.2.53, [2001:db8::53]:5353)"
)]
pub struct UpstreamError {
    /// The entry as given.
    pub entry: String,
}

/// Parses one upstream: `IP`, `IP:port` or `[IPv6]:port` (port 53 by default).
pub fn parse_upstream(entry: &str) -> Result<SocketAddr, UpstreamError> {
    let e = entry.trim();
    if let Ok(addr) = e.parse::<SocketAddr>() {
        return Ok(addr);
    }
    e.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| UpstreamError {
            entry: entry.to_string(),
        })
}

/// Parses a comma-separated list of upstreams.
pub fn parse_list(list: &str) -> Result<Vec<SocketAddr>, UpstreamError> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_upstream)
        .collect()
}

/// The `nameserver` addresses of a resolv.conf (port 53), in order; malformed lines are
/// skipped, as the C library does. IPv6 link-local zone suffixes (`%eth0`) are dropped.
pub fn from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next()?;
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let addr = words.next()?;
            let addr = addr.split('%').next()?;
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Drops upstreams that are rkube-dns itself (`listen`, or any local address on its port
/// when it listens on the unspecified address), which would forward in a loop.
pub fn without_self(upstreams: Vec<SocketAddr>, listen: SocketAddr) -> Vec<SocketAddr> {
    upstreams
        .into_iter()
        .filter(|u| {
            let same_port = u.port() == listen.port();
            let is_self =
                *u == listen || (same_port && listen.ip().is_unspecified() && u.ip().is_loopback());
            !is_self
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_lists() {
        assert_eq!(
            parse_list("192.0.2.1, 127.0.0.1:5353,[::1]:54,2001:db8::1").unwrap(),
            vec![
                "192.0.2.1:53".parse().unwrap(),
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:54".parse().unwrap(),
                "[2001:db8::1]:53".parse().unwrap(),
            ]
        );
        let err = parse_list("1.2.3.4,dns.example").unwrap_err();
        assert!(err.to_string().contains("dns.example"), "{err}");
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn reads_resolv_conf() {
        let text = "# generated\nsearch example.org\nnameserver 10.0.0.2\nnameserver   fe80::1%eth0 # ll\n\
                    options ndots:5\nnameserver bogus\n;nameserver 9.9.9.9\nnameserver 192.0.2.7\n";
        assert_eq!(
            from_resolv_conf(text),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "192.0.2.7:53".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn never_forwards_to_itself() {
        let ups = vec![
            "127.0.0.1:53".parse().unwrap(),
            "10.0.0.2:53".parse().unwrap(),
            "127.0.0.1:5353".parse().unwrap(),
        ];
        assert_eq!(
            without_self(ups.clone(), "0.0.0.0:53".parse().unwrap()),
            vec![ups[1], ups[2]]
        );
        assert_eq!(
            without_self(ups.clone(), "127.0.0.1:5353".parse().unwrap()),
            vec![ups[0], ups[1]]
        );
    }
}

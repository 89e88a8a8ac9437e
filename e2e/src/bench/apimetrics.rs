//! The API server's own request figures, read from its `/metrics`: the
//! `apiserver_request_duration_seconds` histograms by verb and resource and the
//! `apiserver_request_total` counters by code — snapshots, their difference over a window, and
//! quantiles estimated from the buckets as Prometheus' `histogram_quantile` does.

use std::collections::BTreeMap;

use anyhow::bail;

use super::server::{Http, request};

/// One latency histogram: cumulative counts per upper bound (seconds), `+Inf` last.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Histogram {
    /// (upper bound, requests ≤ it), ascending.
    pub(crate) buckets: Vec<(f64, u64)>,
    /// All requests.
    pub(crate) count: u64,
}

impl Histogram {
    /// `self - earlier`, bucket by bucket (the same bounds).
    fn minus(&self, earlier: &Histogram) -> Histogram {
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0, |(_, n)| *n)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| (*le, n.saturating_sub(before(*le))))
                .collect(),
            count: self.count.saturating_sub(earlier.count),
        }
    }

    /// Adds another histogram of the same bounds.
    fn add(&mut self, other: &Histogram) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.iter().map(|(le, _)| (*le, 0)).collect();
        }
        for ((_, n), (_, m)) in self.buckets.iter_mut().zip(&other.buckets) {
            *n += m;
        }
        self.count += other.count;
    }

    /// The `q` quantile in milliseconds, interpolated linearly within its bucket; a quantile
    /// beyond the last finite bound is that bound. 0 without requests.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = q * self.count as f64;
        let (mut lower, mut below) = (0.0, 0u64);
        for &(le, n) in &self.buckets {
            if n as f64 >= rank {
                if le.is_infinite() {
                    return lower * 1000.0;
                }
                let inside = (n - below) as f64;
                let frac = if inside > 0.0 {
                    (rank - below as f64) / inside
                } else {
                    1.0
                };
                return (lower + (le - lower) * frac) * 1000.0;
            }
            (lower, below) = (le, n);
        }
        lower * 1000.0
    }

    /// The requests that took at most `secs` (a bucket bound), as a share of all.
    pub(crate) fn share_within(&self, secs: f64) -> f64 {
        let n = self
            .buckets
            .iter()
            .find(|(le, _)| *le == secs)
            .map_or(0, |(_, n)| *n);
        n as f64 / self.count.max(1) as f64
    }
}

/// A snapshot of the API server's request metrics.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    /// Latency by (verb, resource).
    pub(crate) latency: BTreeMap<(String, String), Histogram>,
    /// Requests by (verb, resource, code).
    pub(crate) totals: BTreeMap<(String, String, u16), u64>,
    /// The embedded store's commits and the writes they carried (absent on etcd).
    pub(crate) commits: Option<(u64, u64)>,
}

/// The value of `name="…"` in a label set `a="x",b="y"`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

impl Snapshot {
    /// Parses the Prometheus text the API server serves.
    pub(crate) fn parse(text: &str) -> Snapshot {
        let mut s = Snapshot::default();
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let count = || value.parse::<f64>().unwrap_or(0.0) as u64;
            match series {
                "rkube_embedded_store_commit_writes_count" => {
                    s.commits.get_or_insert((0, 0)).0 = count();
                }
                "rkube_embedded_store_commit_writes_sum" => {
                    s.commits.get_or_insert((0, 0)).1 = count();
                }
                _ => {}
            }
            let Some((name, labels)) = series.split_once('{') else {
                continue;
            };
            let labels = labels.trim_end_matches('}');
            let (Some(verb), Some(resource)) = (label(labels, "verb"), label(labels, "resource"))
            else {
                continue;
            };
            let key = (verb.to_string(), resource.to_string());
            match name {
                "apiserver_request_duration_seconds_bucket" => {
                    let (Some(le), Ok(n)) = (label(labels, "le"), value.parse::<f64>()) else {
                        continue;
                    };
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap_or(f64::INFINITY)
                    };
                    s.latency
                        .entry(key)
                        .or_default()
                        .buckets
                        .push((le, n as u64));
                }
                "apiserver_request_duration_seconds_count" => {
                    s.latency.entry(key).or_default().count =
                        value.parse::<f64>().unwrap_or(0.0) as u64;
                }
                "apiserver_request_total" => {
                    let code = label(labels, "code")
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    s.totals.insert(
                        (key.0, key.1, code),
                        value.parse::<f64>().unwrap_or(0.0) as u64,
                    );
                }
                _ => {}
            }
        }
        s
    }

    /// Requests by verb and resource, every response code together.
    pub(crate) fn requests(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for ((verb, resource, _), n) in &self.totals {
            *out.entry((verb.clone(), resource.clone())).or_default() += n;
        }
        out
    }

    /// Fetches and parses `base/metrics` (as the bench CA's admin).
    pub(crate) async fn fetch(c: &Http, base: &str) -> anyhow::Result<Snapshot> {
        let (code, body) = request(c, "GET", &format!("{base}/metrics"), None).await?;
        if code != 200 {
            bail!("GET /metrics answered {code}");
        }
        Ok(Snapshot::parse(&String::from_utf8_lossy(&body)))
    }

    /// What happened between `earlier` and this snapshot.
    pub(crate) fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            latency: self
                .latency
                .iter()
                .map(|(k, h)| {
                    let d = earlier
                        .latency
                        .get(k)
                        .map_or_else(|| h.clone(), |e| h.minus(e));
                    (k.clone(), d)
                })
                .filter(|(_, h)| h.count > 0)
                .collect(),
            totals: self
                .totals
                .iter()
                .map(|(k, n)| {
                    (
                        k.clone(),
                        n - earlier.totals.get(k).copied().unwrap_or(0).min(*n),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
            commits: self.commits.map(|(c, w)| {
                let (ec, ew) = earlier.commits.unwrap_or_default();
                (c.saturating_sub(ec), w.saturating_sub(ew))
            }),
        }
    }

    /// Writes per commit of the embedded store (`None` on etcd or without commits).
    pub(crate) fn writes_per_commit(&self) -> Option<f64> {
        self.commits
            .filter(|(c, _)| *c > 0)
            .map(|(c, w)| w as f64 / c as f64)
    }

    /// The latency histograms merged over resources, by verb.
    pub(crate) fn by_verb(&self) -> BTreeMap<String, Histogram> {
        let mut out: BTreeMap<String, Histogram> = BTreeMap::new();
        for ((verb, _), h) in &self.latency {
            out.entry(verb.clone()).or_default().add(h);
        }
        out
    }

    /// Every verb's requests merged (watches are not in the histograms).
    pub(crate) fn all(&self) -> Histogram {
        let mut h = Histogram::default();
        for v in self.latency.values() {
            h.add(v);
        }
        h
    }

    /// Requests answered with a code of 500 or more.
    pub(crate) fn server_errors(&self) -> u64 {
        self.totals
            .iter()
            .filter(|((_, _, code), _)| *code >= 500)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE apiserver_request_total counter
apiserver_request_total{verb="get",resource="pods",code="200"} 10
apiserver_request_total{verb="create",resource="pods",code="503"} 1
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{verb="get",resource="pods",le="0.1"} 5
apiserver_request_duration_seconds_bucket{verb="get",resource="pods",le="1"} 9
apiserver_request_duration_seconds_bucket{verb="get",resource="pods",le="+Inf"} 10
apiserver_request_duration_seconds_sum{verb="get",resource="pods"} 3.5
apiserver_request_duration_seconds_count{verb="get",resource="pods"} 10
apiserver_request_duration_seconds_bucket{verb="get",resource="nodes",le="0.1"} 10
apiserver_request_duration_seconds_bucket{verb="get",resource="nodes",le="1"} 10
apiserver_request_duration_seconds_bucket{verb="get",resource="nodes",le="+Inf"} 10
apiserver_request_duration_seconds_count{verb="get",resource="nodes"} 10
"#;

    #[test]
    fn parses_histograms_and_counters() {
        let s = Snapshot::parse(TEXT);
        let h = &s.latency[&("get".to_string(), "pods".to_string())];
        assert_eq!(h.buckets, [(0.1, 5), (1.0, 9), (f64::INFINITY, 10)]);
        assert_eq!(h.count, 10);
        assert_eq!(s.server_errors(), 1);
        assert_eq!(s.by_verb()["get"].count, 20);
        assert_eq!(s.all().buckets[0], (0.1, 15));
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let s = Snapshot::parse(TEXT);
        let h = &s.latency[&("get".to_string(), "pods".to_string())];
        // Rank 5 of 10 is the top of the first bucket.
        assert!((h.quantile_ms(0.5) - 100.0).abs() < 1e-9);
        // Rank 7 is half-way into (0.1, 1].
        assert!((h.quantile_ms(0.7) - 550.0).abs() < 1e-9);
        // Rank 9.9 is in +Inf: the last finite bound.
        assert!((h.quantile_ms(0.99) - 1000.0).abs() < 1e-9);
        assert!((h.share_within(1.0) - 0.9).abs() < 1e-9);
        assert_eq!(Histogram::default().quantile_ms(0.99), 0.0);
    }

    #[test]
    fn differences_cover_the_window() {
        let before = Snapshot::parse(TEXT);
        let after = Snapshot::parse(
            &TEXT
                .replace("le=\"0.1\"} 5", "le=\"0.1\"} 7")
                .replace("le=\"1\"} 9", "le=\"1\"} 11")
                .replace("le=\"+Inf\"} 10\napiserver_request_duration_seconds_sum{verb=\"get\",resource=\"pods\"}", "le=\"+Inf\"} 12\napiserver_request_duration_seconds_sum{verb=\"get\",resource=\"pods\"}")
                .replace("count{verb=\"get\",resource=\"pods\"} 10", "count{verb=\"get\",resource=\"pods\"} 12"),
        );
        let d = after.since(&before);
        assert_eq!(d.latency.len(), 1, "{d:?}");
        let h = &d.latency[&("get".to_string(), "pods".to_string())];
        assert_eq!(h.buckets, [(0.1, 2), (1.0, 2), (f64::INFINITY, 2)]);
        assert_eq!(h.count, 2);
        assert_eq!(d.server_errors(), 0);
    }

    #[test]
    fn embedded_store_commits() {
        assert_eq!(Snapshot::parse(TEXT).commits, None, "none on etcd");
        let text = |commits: u64, writes: u64| {
            format!(
                "{TEXT}rkube_embedded_store_commit_writes_bucket{{le=\"+Inf\"}} {commits}\nrkube_embedded_store_commit_writes_sum {writes}\nrkube_embedded_store_commit_writes_count {commits}\n"
            )
        };
        let before = Snapshot::parse(&text(10, 12));
        let after = Snapshot::parse(&text(30, 112));
        assert_eq!(after.commits, Some((30, 112)));
        let d = after.since(&before);
        assert_eq!(d.commits, Some((20, 100)));
        assert_eq!(d.writes_per_commit(), Some(5.0));
    }
}

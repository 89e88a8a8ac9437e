//! The storage benchmark: with the same ~2 KiB JSON objects and the same concurrency, measures
//! raw etcd puts through etcd-client (the baseline), creates through the storage layer on etcd,
//! creates on the embedded store, and watch fan-out (one writer, many watchers on the watch
//! cache). Raw etcd create-transactions (a put guarded by "the key does not exist", which is
//! what any Kubernetes-style create is) are measured too: etcd 3.4 applies those at about half
//! the rate of plain puts, whatever the client does. Each figure is the median of several rounds run alternately, so the ratios compare
//! like with like on the same machine in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use rkube_apiserver::storage::cache::{CacheConfig, WatchCache};
use rkube_apiserver::storage::embedded::{EmbeddedConfig, EmbeddedStorage};
use rkube_apiserver::storage::etcd::{EtcdConfig, EtcdStorage};
use rkube_apiserver::storage::{Storage, WatchItem};
use rkube_testkit::etcd::EtcdServer;

use super::api::etcd_create;
use super::report::Report;

/// Parameters of the storage benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// Writes per round and backend.
    pub writes: usize,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// Rounds (the median is reported).
    pub rounds: usize,
    /// Watchers in the fan-out test.
    pub watchers: usize,
    /// Events written in the fan-out test.
    pub fanout_events: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            writes: 5_000,
            concurrency: 64,
            rounds: 3,
            watchers: 100,
            fanout_events: 5_000,
        }
    }
}

/// A JSON object of about 2 KiB, shaped like a pod.
pub fn payload(i: usize) -> Bytes {
    let padding = "x".repeat(1_700);
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": format!("pod-{i}"), "namespace": "bench",
                         "uid": format!("00000000-0000-0000-0000-{i:012}"),
                         "labels": {"app": "bench", "tier": "load"},
                         "annotations": {"padding": padding}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.35",
                                     "command": ["sleep", "3600"]}]}
        })
        .to_string(),
    )
}

/// Runs `total` operations with `concurrency` in flight; returns operations per second.
async fn throughput<F, Fut>(total: usize, concurrency: usize, op: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut results = futures::stream::iter(0..total)
        .map(&op)
        .buffer_unordered(concurrency);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measures events delivered per second to `watchers` watchers of a prefix while one writer
/// creates `events` objects.
async fn fanout(store: Arc<dyn Storage>, cfg: &Config, round: usize) -> anyhow::Result<f64> {
    let prefix = format!("/registry/fanout/r{round}/");
    let start = store.current_revision().await?;
    let mut handles = Vec::new();
    for _ in 0..cfg.watchers {
        let mut w = store.watch(&prefix, true, start).await?;
        let expect = cfg.fanout_events;
        handles.push(tokio::spawn(async move {
            let mut n = 0;
            while n < expect {
                match w.next().await {
                    Some(Ok(WatchItem::Event(_))) => n += 1,
                    Some(Ok(WatchItem::Progress(_))) => {}
                    Some(Err(e)) => anyhow::bail!("watch failed: {e}"),
                    None => anyhow::bail!("watch ended after {n} events"),
                }
            }
            Ok(())
        }));
    }
    let started = Instant::now();
    let writer = store.clone();
    let prefix2 = prefix.clone();
    throughput(cfg.fanout_events, cfg.concurrency, |i| {
        let s = writer.clone();
        let key = format!("{prefix2}{i}");
        async move {
            s.create(&key, payload(i)).await?;
            Ok(())
        }
    })
    .await?;
    for h in handles {
        tokio::time::timeout(Duration::from_secs(120), h)
            .await
            .context("watchers did not receive every event within 120 s")???;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((cfg.watchers * cfg.fanout_events) as f64 / elapsed)
}

/// Runs the storage benchmark against a real etcd started here and an embedded store in a
/// temporary directory on the same filesystem.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let etcd = tokio::task::spawn_blocking(EtcdServer::start).await?;
    let dir = tempfile::tempdir()?;
    let raw = etcd_client::Client::connect([etcd.endpoint()], None).await?;
    let over_etcd: Arc<dyn Storage> =
        Arc::new(EtcdStorage::connect(EtcdConfig::new(vec![etcd.endpoint()])).await?);
    let embedded = EmbeddedStorage::open(EmbeddedConfig::new(dir.path().join("rkube.db")))?;
    let embedded: Arc<dyn Storage> = Arc::new(embedded);
    let cached: Arc<dyn Storage> = Arc::new(WatchCache::new(
        embedded.clone(),
        vec!["/registry/fanout/".into()],
        CacheConfig::default(),
    ));

    let (mut raw_puts, mut etcd_creates, mut embedded_creates) = (vec![], vec![], vec![]);
    let mut raw_txns = vec![];
    let mut fanouts = vec![];
    for round in 0..cfg.rounds {
        raw_puts.push(
            throughput(cfg.writes, cfg.concurrency, |i| {
                let mut kv = raw.kv_client();
                async move {
                    kv.put(
                        format!("/bench/raw/r{round}/{i}"),
                        payload(i).to_vec(),
                        None,
                    )
                    .await?;
                    Ok(())
                }
            })
            .await?,
        );
        // What a create costs etcd itself: a put guarded by "the key does not exist yet".
        raw_txns.push(
            throughput(cfg.writes, cfg.concurrency, |i| {
                let mut kv = raw.kv_client();
                let key = format!("/bench/txn/r{round}/{i}");
                async move { etcd_create(&mut kv, key, payload(i)).await }
            })
            .await?,
        );
        etcd_creates.push(
            throughput(cfg.writes, cfg.concurrency, |i| {
                let s = over_etcd.clone();
                async move {
                    s.create(&format!("/registry/bench/etcd/r{round}/{i}"), payload(i))
                        .await?;
                    Ok(())
                }
            })
            .await?,
        );
        embedded_creates.push(
            throughput(cfg.writes, cfg.concurrency, |i| {
                let s = embedded.clone();
                async move {
                    s.create(
                        &format!("/registry/bench/embedded/r{round}/{i}"),
                        payload(i),
                    )
                    .await?;
                    Ok(())
                }
            })
            .await?,
        );
        fanouts.push(fanout(cached.clone(), cfg, round).await?);
    }
    let raw_puts = median(raw_puts);
    let raw_txns = median(raw_txns);
    let etcd_creates = median(etcd_creates);
    let embedded_creates = median(embedded_creates);
    let fanout = median(fanouts);

    let mut report = Report {
        workload: "storage".into(),
        ..Default::default()
    };
    let p = &mut report.parameters;
    p.insert("payload_bytes".into(), payload(0).len().into());
    p.insert("writes_per_round".into(), cfg.writes.into());
    p.insert("concurrency".into(), cfg.concurrency.into());
    p.insert("rounds".into(), cfg.rounds.into());
    p.insert("watchers".into(), cfg.watchers.into());
    p.insert("fanout_events".into(), cfg.fanout_events.into());
    report.measure("raw etcd puts (etcd-client)", raw_puts, "ops/s");
    report.measure("raw etcd create-txns (etcd-client)", raw_txns, "ops/s");
    report.measure("storage creates on etcd", etcd_creates, "ops/s");
    report.measure("storage creates on embedded", embedded_creates, "ops/s");
    report.measure("watch fan-out delivered (cache)", fanout, "events/s");
    report.ratio("storage-over-etcd / raw etcd", etcd_creates / raw_puts, 0.9);
    report.ratio(
        "storage-over-etcd / raw etcd create-txns",
        etcd_creates / raw_txns,
        0.9,
    );
    report.ratio("embedded / raw etcd", embedded_creates / raw_puts, 1.0);
    report.ratio("fan-out / 100k events/s", fanout / 100_000.0, 1.0);
    drop(etcd);
    Ok(report)
}

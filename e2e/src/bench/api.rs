//! The API benchmark: an API server started in-process (on the embedded store, then on a real
//! etcd started here) under HTTPS load (as the admin, client certificate) — pod creates/s and gets/s with C concurrent requests,
//! the latency of listing 10k pods (consistent and from the watch cache), and watch events/s
//! delivered to 100 watchers — plus raw etcd puts/s of the same payload size in the same run,
//! the baseline of the creates-over-etcd ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rkube_testkit::etcd::EtcdServer;

use super::report::Report;

/// Parameters of the API benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// Pods created (and read) per backend.
    pub creates: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Pods in the namespace for the list measurement.
    pub list_size: usize,
    /// Watchers in the fan-out measurement.
    pub watchers: usize,
    /// Objects written during the fan-out measurement.
    pub watch_events: usize,
    /// Rounds of the create measurement (the median is reported).
    pub rounds: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            creates: 5_000,
            concurrency: 64,
            list_size: 10_000,
            watchers: 100,
            watch_events: 2_000,
            rounds: 3,
        }
    }
}

/// The benchmarks' HTTPS client type.
pub(crate) type Http = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The CA both benchmarked servers use (copied into their data directories before they
/// start), and the admin client certificate it issued.
struct BenchPki {
    _dir: tempfile::TempDir,
    ca_dir: std::path::PathBuf,
    tls: rustls::ClientConfig,
}

fn bench_pki() -> &'static BenchPki {
    static PKI: std::sync::OnceLock<BenchPki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let dir = tempfile::tempdir().expect("a temp dir for the bench CA");
        let ca_dir = dir.path().join("pki");
        let pki = rkube_apiserver::pki::Pki::load_or_create(&ca_dir).expect("the bench CA");
        let admin = pki.admin().expect("the admin certificate");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(pki.ca_der().expect("CA DER")))
            .expect("CA in the root store");
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(admin.cert_pem.as_bytes()).expect("admin cert")],
            PrivateKeyDer::from_pem_slice(admin.key_pem.as_bytes()).expect("admin key"),
        )
        .expect("client certificate");
        BenchPki {
            _dir: dir,
            ca_dir,
            tls,
        }
    })
}

/// Puts the bench CA into an API server's data directory (before it starts), so that
/// [`http`] clients trust it and are its admin.
pub(crate) fn use_bench_ca(data_dir: &std::path::Path) -> std::io::Result<()> {
    let pki_dir = data_dir.join("pki");
    std::fs::create_dir_all(&pki_dir)?;
    for f in ["ca.crt", "ca.key"] {
        std::fs::copy(bench_pki().ca_dir.join(f), pki_dir.join(f))?;
    }
    Ok(())
}

/// An HTTPS client (HTTP/1.1) with the admin certificate of the bench CA.
pub(crate) fn http() -> Http {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(bench_pki().tls.clone())
        .https_only()
        .enable_http1()
        .build();
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build(https)
}

async fn request(
    c: &Http,
    method: &str,
    url: &str,
    body: Option<Bytes>,
) -> anyhow::Result<(u16, Bytes)> {
    let mut req = axum::http::Request::builder().method(method).uri(url);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let resp = c
        .request(req.body(Full::new(body.unwrap_or_default()))?)
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// A pod of about 2 KiB.
pub fn pod(name: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench", "tier": "load"},
                         "annotations": {"bench/padding": "p".repeat(900)}},
            "spec": {"containers": [{
                "name": "app", "image": "busybox:1.35",
                "command": ["sh", "-c", "sleep 3600"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [{"name": "MODE", "value": "bench"}, {"name": "LEVEL", "value": "info"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
            }]}
        })
        .to_string(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs `total` requests with `concurrency` in flight: (ops/s, p50 ms, p99 ms).
async fn load<F, Fut>(total: usize, concurrency: usize, op: F) -> anyhow::Result<(f64, f64, f64)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut lat = Vec::with_capacity(total);
    let mut s = futures::stream::iter(0..total)
        .map(|i| {
            let f = op(i);
            async move {
                let t = Instant::now();
                f.await.map(|()| t.elapsed())
            }
        })
        .buffer_unordered(concurrency);
    while let Some(r) = s.next().await {
        lat.push(r?);
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    Ok((rate, percentile(&lat, 0.5), percentile(&lat, 0.99)))
}

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start_server(etcd: Option<&EtcdServer>) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    // The shared bench CA: the server issues its own certificates from it.
    use_bench_ca(dir.path())?;
    let mut config = rkube_apiserver::server::Config::new(dir.path());
    if let Some(e) = etcd {
        config.etcd_servers = vec![e.endpoint()];
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(e) = rkube_apiserver::server::run(config, listener, async {
            let _ = rx.await;
        })
        .await
        {
            eprintln!("apiserver failed: {e}");
        }
    });
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        if Instant::now() > deadline {
            bail!("the API server did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Server {
        url,
        stop: Some(tx),
        task,
        _dir: dir,
    })
}

async fn create_namespace(c: &Http, base: &str, ns: &str) -> anyhow::Result<()> {
    let body =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let (code, _) = request(
        c,
        "POST",
        &format!("{base}/api/v1/namespaces"),
        Some(Bytes::from(body.to_string())),
    )
    .await?;
    if code != 201 {
        bail!("cannot create namespace {ns}: {code}");
    }
    Ok(())
}

/// Creates `count` pods named `{prefix}{i}` in `ns`: (ops/s, p50 ms, p99 ms).
async fn create_pods(
    c: &Arc<Http>,
    base: &str,
    ns: &str,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let url = format!("{base}/api/v1/namespaces/{ns}/pods");
    load(count, concurrency, |i| {
        let c = c.clone();
        let url = url.clone();
        let name = format!("{prefix}{i}");
        async move {
            let (code, body) = request(&c, "POST", &url, Some(pod(&name))).await?;
            if code != 201 {
                bail!("create answered {code}: {}", String::from_utf8_lossy(&body));
            }
            Ok(())
        }
    })
    .await
}

/// The read-side figures of one backend.
struct Reads {
    gets: (f64, f64, f64),
    list_consistent_ms: f64,
    list_cached_ms: f64,
    list_items: usize,
    watch_events_per_s: f64,
}

async fn measure_reads(server: &Server, cfg: &Config) -> anyhow::Result<Reads> {
    let c = Arc::new(http());
    let base = server.url.clone();
    create_namespace(&c, &base, "bench").await?;
    create_pods(&c, &base, "bench", "p", cfg.list_size, cfg.concurrency).await?;
    let pods_url = format!("{base}/api/v1/namespaces/bench/pods");
    let gets = load(cfg.creates, cfg.concurrency, |i| {
        let c = c.clone();
        let url = format!("{pods_url}/p{}", (i * 7919) % cfg.list_size.max(1));
        async move {
            let (code, _) = request(&c, "GET", &url, None).await?;
            if code != 200 {
                bail!("get answered {code}");
            }
            Ok(())
        }
    })
    .await?;
    let mut consistent = Vec::new();
    let mut cached = Vec::new();
    let mut items = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let (code, body) = request(&c, "GET", &pods_url, None).await?;
        consistent.push(t.elapsed());
        if code != 200 {
            bail!(
                "list answered {code}: {}",
                String::from_utf8_lossy(&body[..body.len().min(400)])
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        items = v["items"].as_array().map_or(0, Vec::len);
        let t = Instant::now();
        let (code, _) = request(&c, "GET", &format!("{pods_url}?resourceVersion=0"), None).await?;
        cached.push(t.elapsed());
        if code != 200 {
            bail!("cached list answered {code}");
        }
    }
    consistent.sort();
    cached.sort();

    // Watch fan-out.
    let (_, body) = request(
        &c,
        "GET",
        &format!("{base}/api/v1/namespaces/bench/configmaps"),
        None,
    )
    .await?;
    let rv = serde_json::from_slice::<serde_json::Value>(&body)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut watchers = Vec::new();
    for _ in 0..cfg.watchers {
        let url = format!("{base}/api/v1/namespaces/bench/configmaps?watch=1&resourceVersion={rv}");
        let c = http();
        let resp = c
            .request(axum::http::Request::get(url).body(Full::new(Bytes::new()))?)
            .await?;
        let want = cfg.watch_events;
        watchers.push(tokio::spawn(async move {
            let mut body = resp.into_body();
            let mut lines = 0usize;
            while lines < want {
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Some(d) = f.data_ref() {
                            lines += d.iter().filter(|b| **b == b'\n').count();
                        }
                    }
                    _ => return Err(anyhow::anyhow!("watch ended after {lines} events")),
                }
            }
            Ok(())
        }));
    }
    let started = Instant::now();
    let cms_url = format!("{base}/api/v1/namespaces/bench/configmaps");
    load(cfg.watch_events, cfg.concurrency, |i| {
        let c = c.clone();
        let url = cms_url.clone();
        async move {
            let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("w{i}")}, "data": {"k": "v"}});
            let (code, _) = request(&c, "POST", &url, Some(Bytes::from(body.to_string()))).await?;
            if code != 201 {
                bail!("create answered {code}");
            }
            Ok(())
        }
    })
    .await?;
    for w in watchers {
        tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .context("watchers did not get every event in 120 s")???;
    }
    let delivered = (cfg.watchers * cfg.watch_events) as f64 / started.elapsed().as_secs_f64();
    Ok(Reads {
        gets,
        list_consistent_ms: percentile(&consistent, 0.5),
        list_cached_ms: percentile(&cached, 0.5),
        list_items: items,
        watch_events_per_s: delivered,
    })
}

fn median(mut v: Vec<(f64, f64, f64)>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v[v.len() / 2]
}

async fn stop(mut server: Server) {
    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), &mut server.task).await;
}

/// Runs the API benchmark on the embedded store and on etcd.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report {
        workload: "api".into(),
        ..Default::default()
    };
    let p = &mut report.parameters;
    p.insert("pod_bytes".into(), pod("p0").len().into());
    p.insert("creates".into(), cfg.creates.into());
    p.insert("concurrency".into(), cfg.concurrency.into());
    p.insert("list_size".into(), cfg.list_size.into());
    p.insert("watchers".into(), cfg.watchers.into());
    p.insert("watch_events".into(), cfg.watch_events.into());

    p.insert("rounds".into(), cfg.rounds.into());
    let etcd = tokio::task::spawn_blocking(EtcdServer::start).await?;
    let raw = etcd_client::Client::connect([etcd.endpoint()], None).await?;
    let embedded = start_server(None).await?;
    let over_etcd = start_server(Some(&etcd)).await?;
    let c = Arc::new(http());
    // Creates: the raw etcd baseline and both backends, alternating rounds (median reported),
    // so machine noise hits all three alike.
    let (mut raw_puts, mut raw_txns, mut emb, mut etc) = (vec![], vec![], vec![], vec![]);
    for round in 0..cfg.rounds.max(1) {
        raw_puts.push(
            load(cfg.creates, cfg.concurrency, |i| {
                let mut kv = raw.kv_client();
                async move {
                    kv.put(
                        format!("/bench/raw/r{round}/{i}"),
                        pod(&format!("p{i}")).to_vec(),
                        None,
                    )
                    .await?;
                    Ok(())
                }
            })
            .await?,
        );
        // What one create costs etcd itself: a put guarded by "the key does not exist yet".
        raw_txns.push(
            load(cfg.creates, cfg.concurrency, |i| {
                let mut kv = raw.kv_client();
                async move {
                    let key = format!("/bench/txn/r{round}/{i}");
                    let txn = etcd_client::Txn::new()
                        .when([etcd_client::Compare::version(
                            key.clone(),
                            etcd_client::CompareOp::Equal,
                            0,
                        )])
                        .and_then([etcd_client::TxnOp::put(
                            key,
                            pod(&format!("p{i}")).to_vec(),
                            None,
                        )]);
                    kv.txn(txn).await?;
                    Ok(())
                }
            })
            .await?,
        );
        let ns = format!("create-r{round}");
        create_namespace(&c, &embedded.url, &ns).await?;
        emb.push(create_pods(&c, &embedded.url, &ns, "p", cfg.creates, cfg.concurrency).await?);
        create_namespace(&c, &over_etcd.url, &ns).await?;
        etc.push(create_pods(&c, &over_etcd.url, &ns, "p", cfg.creates, cfg.concurrency).await?);
    }
    let raw_puts = median(raw_puts);
    let raw_txns = median(raw_txns);
    report.measure("raw etcd puts (etcd-client)", raw_puts.0, "ops/s");
    report.measure("raw etcd create-txns (etcd-client)", raw_txns.0, "ops/s");
    for (label, server, creates) in [
        ("embedded", embedded, median(emb)),
        ("etcd", over_etcd, median(etc)),
    ] {
        report.measure(&format!("{label}: pod creates"), creates.0, "ops/s");
        report.measure(&format!("{label}: create p50"), creates.1, "ms");
        report.measure(&format!("{label}: create p99"), creates.2, "ms");
        let r = measure_reads(&server, cfg).await?;
        report.measure(&format!("{label}: pod gets"), r.gets.0, "ops/s");
        report.measure(&format!("{label}: get p99"), r.gets.2, "ms");
        report.measure(
            &format!("{label}: list {} pods (consistent)", r.list_items),
            r.list_consistent_ms,
            "ms",
        );
        report.measure(
            &format!("{label}: list {} pods (rv=0, cache)", r.list_items),
            r.list_cached_ms,
            "ms",
        );
        report.measure(
            &format!(
                "{label}: watch events delivered to {} watchers",
                cfg.watchers
            ),
            r.watch_events_per_s,
            "events/s",
        );
        if label == "etcd" {
            report.ratio(
                "API creates over etcd / raw etcd puts",
                creates.0 / raw_puts.0,
                0.5,
            );
        } else {
            report.ratio(
                "API creates on embedded / raw etcd puts",
                creates.0 / raw_puts.0,
                0.5,
            );
        }
        stop(server).await;
    }
    drop(etcd);
    Ok(report)
}

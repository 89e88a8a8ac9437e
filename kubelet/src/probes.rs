//! Liveness, readiness and startup probes: one task per running container and probe, honouring
//! initialDelaySeconds, periodSeconds, timeoutSeconds and the success/failure thresholds.
//! httpGet and tcpSocket probes go to the pod IP from the node's network; exec probes run
//! through CRI ExecSync. Results are shared with the pod worker, which restarts a container
//! whose liveness (or startup) probe failed and reports readiness in the pod's conditions.
//! Liveness and readiness probes wait until a startup probe has succeeded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cri::Cri;
use crate::events::{EventType, Events};

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Restarts the container when it fails.
    Liveness,
    /// Decides whether the container is ready.
    Readiness,
    /// Holds the other probes until it succeeds; restarts the container when it fails.
    Startup,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// What a probe is aimed at.
#[derive(Clone, Debug)]
pub struct Target {
    /// The container id.
    pub container_id: String,
    /// The pod IP (the node IP for host-network pods).
    pub pod_ip: String,
}

/// Runs one probe once.
#[async_trait::async_trait]
pub trait Prober: Send + Sync {
    /// `Ok` when the probe succeeds, else why it failed.
    async fn run(
        &self,
        probe: &Probe,
        container: &Container,
        target: &Target,
    ) -> Result<(), String>;
}

/// Resolves a probe port: a number, or the name of a container port.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) if (1..=65535).contains(n) => Ok(*n as u16),
        IntOrString::Int(n) => Err(format!("invalid port number: {n}")),
        IntOrString::String(s) => {
            if let Ok(n) = s.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port as u16)
                .ok_or_else(|| format!("couldn't find port {s:?} in container {}", container.name))
        }
    }
}

/// The real prober: HTTP and TCP over the network, exec through the CRI.
pub struct RealProber {
    /// The CRI client for exec probes.
    pub cri: Cri,
}

/// An HTTP/1.1 GET with the probe's headers; success is a status in 200..400.
pub(crate) async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host_part = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let url = format!("http://{host_part}:{port}{path}");
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {host_part}:{port}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        req.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
    {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    let addr = format!("{host_part}:{port}");
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("Get \"{url}\": dial tcp {addr}: connect: {e}"))?;
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        // The status line is all a probe needs.
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .filter(|_| line.starts_with("HTTP/"))
            .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

#[async_trait::async_trait]
impl Prober for RealProber {
    async fn run(
        &self,
        probe: &Probe,
        container: &Container,
        target: &Target,
    ) -> Result<(), String> {
        let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
        if let Some(h) = &probe.http_get {
            if h.scheme.as_deref() == Some("HTTPS") {
                return Err("HTTPS probes are not supported by rkubelet".into());
            }
            let port = resolve_port(&h.port, container)?;
            let host = h
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| target.pod_ip.clone());
            let headers: Vec<(String, String)> = h
                .http_headers
                .iter()
                .flatten()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect();
            return http_get(
                &host,
                port,
                h.path.as_deref().unwrap_or("/"),
                &headers,
                timeout,
            )
            .await;
        }
        if let Some(t) = &probe.tcp_socket {
            let port = resolve_port(&t.port, container)?;
            let host = t
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| target.pod_ip.clone());
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {e}")),
                Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
            };
        }
        if let Some(e) = &probe.exec {
            let cmd = e.command.clone().unwrap_or_default();
            return match self
                .cri
                .exec_sync(&target.container_id, cmd.clone(), timeout.as_secs() as i64)
                .await
            {
                Ok(r) if r.exit_code == 0 => Ok(()),
                Ok(r) => {
                    let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                    out.push_str(&String::from_utf8_lossy(&r.stderr));
                    Err(format!(
                        "command {:?} exited with {}: {}",
                        cmd.join(" "),
                        r.exit_code,
                        out.trim()
                    ))
                }
                Err(e)
                    if matches!(e, crate::cri::CriError::Timeout { .. })
                        || e.code() == Some(tonic::Code::DeadlineExceeded) =>
                {
                    Err(format!("command {:?} timed out", cmd.join(" ")))
                }
                Err(e) => Err(e.to_string()),
            };
        }
        if probe.grpc.is_some() {
            return Err("gRPC probes are not supported by rkubelet".into());
        }
        Err("probe has no handler".into())
    }
}

/// The hollow prober: exec through the (fake) CRI, network probes always succeed.
pub struct HollowProber {
    /// The fake runtime's client.
    pub cri: Cri,
}

#[async_trait::async_trait]
impl Prober for HollowProber {
    async fn run(
        &self,
        probe: &Probe,
        container: &Container,
        target: &Target,
    ) -> Result<(), String> {
        if probe.exec.is_some() {
            return RealProber {
                cri: self.cri.clone(),
            }
            .run(probe, container, target)
            .await;
        }
        Ok(())
    }
}

/// The latest result of one probe of one container instance.
#[derive(Clone, Debug)]
struct ResultEntry {
    container_id: String,
    success: bool,
    message: String,
}

type Results = Arc<Mutex<HashMap<(String, Kind), ResultEntry>>>;

struct Worker {
    container_id: String,
    task: tokio::task::JoinHandle<()>,
}

/// The probes of one pod.
pub struct PodProbes {
    prober: Arc<dyn Prober>,
    events: Events,
    results: Results,
    workers: HashMap<(String, Kind), Worker>,
    /// Woken when a result changes.
    pub changed: Arc<Notify>,
}

impl Drop for PodProbes {
    fn drop(&mut self) {
        for w in self.workers.values() {
            w.task.abort();
        }
    }
}

/// A running container the probes look at.
#[derive(Clone, Debug)]
pub struct Running {
    /// The spec container.
    pub container: Container,
    /// The container id.
    pub id: String,
    /// When it started.
    pub started: Instant,
}

fn probe_of(c: &Container, kind: Kind) -> Option<&Probe> {
    match kind {
        Kind::Liveness => c.liveness_probe.as_ref(),
        Kind::Readiness => c.readiness_probe.as_ref(),
        Kind::Startup => c.startup_probe.as_ref(),
    }
}

impl PodProbes {
    /// The probes of a pod, run with `prober`.
    pub fn new(prober: Arc<dyn Prober>, events: Events) -> Self {
        PodProbes {
            prober,
            events,
            results: Default::default(),
            workers: HashMap::new(),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Starts probes for newly running containers and stops those of containers that are gone.
    pub fn sync(&mut self, pod: &Arc<Pod>, running: &[Running], pod_ip: &str) {
        let mut wanted = std::collections::HashSet::new();
        for r in running {
            for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
                let Some(probe) = probe_of(&r.container, kind) else {
                    continue;
                };
                let key = (r.container.name.clone(), kind);
                wanted.insert(key.clone());
                // A worker that finished for this instance is done with it (its startup probe
                // succeeded, or its liveness/startup probe failed and the result waits for the
                // pod worker to restart the container): not started again.
                if self
                    .workers
                    .get(&key)
                    .is_some_and(|w| w.container_id == r.id)
                {
                    continue;
                }
                if let Some(old) = self.workers.remove(&key) {
                    old.task.abort();
                }
                // Initial results: not ready, alive, not started.
                self.results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        key.clone(),
                        ResultEntry {
                            container_id: r.id.clone(),
                            success: kind == Kind::Liveness,
                            message: String::new(),
                        },
                    );
                let task = tokio::spawn(run_worker(WorkerArgs {
                    prober: self.prober.clone(),
                    events: self.events.clone(),
                    results: self.results.clone(),
                    changed: self.changed.clone(),
                    pod: pod.clone(),
                    container: r.container.clone(),
                    probe: probe.clone(),
                    kind,
                    target: Target {
                        container_id: r.id.clone(),
                        pod_ip: pod_ip.to_string(),
                    },
                    started: r.started,
                    has_startup: r.container.startup_probe.is_some(),
                }));
                self.workers.insert(
                    key,
                    Worker {
                        container_id: r.id.clone(),
                        task,
                    },
                );
            }
        }
        self.workers.retain(|k, w| {
            let keep = wanted.contains(k);
            if !keep {
                w.task.abort();
            }
            keep
        });
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| wanted.contains(k));
    }

    fn result(&self, name: &str, id: &str, kind: Kind) -> Option<ResultEntry> {
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(name.to_string(), kind))
            .filter(|r| r.container_id == id)
            .cloned()
    }

    /// Whether the container instance is ready (no readiness probe: ready once started).
    pub fn ready(&self, c: &Container, id: &str) -> bool {
        if !self.started(c, id) {
            return false;
        }
        match c.readiness_probe {
            None => true,
            Some(_) => self
                .result(&c.name, id, Kind::Readiness)
                .is_some_and(|r| r.success),
        }
    }

    /// Whether the container instance has started (no startup probe: yes).
    pub fn started(&self, c: &Container, id: &str) -> bool {
        match c.startup_probe {
            None => true,
            Some(_) => self
                .result(&c.name, id, Kind::Startup)
                .is_some_and(|r| r.success),
        }
    }

    /// If a liveness or startup probe of the instance failed: which and why.
    pub fn failed(&self, c: &Container, id: &str) -> Option<(Kind, String)> {
        for kind in [Kind::Liveness, Kind::Startup] {
            if probe_of(c, kind).is_none() {
                continue;
            }
            if let Some(r) = self.result(&c.name, id, kind)
                && !r.success
                && !r.message.is_empty()
            {
                return Some((kind, r.message));
            }
        }
        None
    }

    /// Stops every probe.
    pub fn stop(&mut self) {
        for w in self.workers.values() {
            w.task.abort();
        }
        self.workers.clear();
    }
}

struct WorkerArgs {
    prober: Arc<dyn Prober>,
    events: Events,
    results: Results,
    changed: Arc<Notify>,
    pod: Arc<Pod>,
    container: Container,
    probe: Probe,
    kind: Kind,
    target: Target,
    started: Instant,
    has_startup: bool,
}

async fn run_worker(a: WorkerArgs) {
    let period = Duration::from_secs(a.probe.period_seconds.unwrap_or(10).max(1) as u64);
    let initial = Duration::from_secs(a.probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
    let success_threshold = a.probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = a.probe.failure_threshold.unwrap_or(3).max(1);
    let key = (a.container.name.clone(), a.kind);
    let field_path = format!("spec.containers{{{}}}", a.container.name);
    tokio::time::sleep_until(a.started + initial).await;
    let (mut successes, mut failures) = (0, 0);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let current = a
            .results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let Some(current) = current.filter(|c| c.container_id == a.target.container_id) else {
            return;
        };
        if a.kind != Kind::Startup && a.has_startup {
            let started = a
                .results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(a.container.name.clone(), Kind::Startup))
                .is_some_and(|r| r.success && r.container_id == a.target.container_id);
            if !started {
                continue;
            }
        }
        if a.kind == Kind::Startup && current.success {
            // A startup probe is done once it succeeded.
            return;
        }
        let outcome = a.prober.run(&a.probe, &a.container, &a.target).await;
        let mut new = current.clone();
        match outcome {
            Ok(()) => {
                failures = 0;
                successes += 1;
                // Liveness and startup need one success; readiness its threshold.
                let need = if a.kind == Kind::Readiness {
                    success_threshold
                } else {
                    1
                };
                if successes >= need {
                    new.success = true;
                    new.message.clear();
                }
            }
            Err(msg) => {
                successes = 0;
                failures += 1;
                a.events.pod(
                    &a.pod,
                    Some(&field_path),
                    EventType::Warning,
                    "Unhealthy",
                    &format!("{} probe failed: {msg}", a.kind.name()),
                );
                if failures >= failure_threshold {
                    new.success = false;
                    new.message = format!("{} probe failed: {msg}", a.kind.name());
                }
            }
        }
        if new.success != current.success || new.message != current.message {
            a.results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), new.clone());
            a.changed.notify_one();
            // After a liveness or startup failure the worker restarts the container; this
            // instance is not probed further.
            if !new.success && a.kind != Kind::Readiness {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// A prober whose answer the test switches.
    struct Switch {
        ok: AtomicBool,
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Prober for Switch {
        async fn run(&self, _: &Probe, _: &Container, _: &Target) -> Result<(), String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.ok.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("HTTP probe failed with statuscode: 500".into())
            }
        }
    }

    fn container(spec: serde_json::Value) -> Container {
        serde_json::from_value(spec).unwrap()
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_follows_thresholds() {
        let sw = Arc::new(Switch {
            ok: AtomicBool::new(true),
            calls: AtomicU32::new(0),
        });
        let mut probes = PodProbes::new(sw.clone(), Events::disabled());
        let c = container(serde_json::json!({"name": "web", "readinessProbe": {
            "httpGet": {"port": 80}, "initialDelaySeconds": 5, "periodSeconds": 2,
            "successThreshold": 2, "failureThreshold": 3}}));
        let pod = Arc::new(Pod::default());
        probes.sync(
            &pod,
            &[Running {
                container: c.clone(),
                id: "c1".into(),
                started: Instant::now(),
            }],
            "10.0.0.1",
        );
        settle().await;
        assert!(!probes.ready(&c, "c1"), "not ready before the first probe");
        tokio::time::advance(Duration::from_millis(4900)).await;
        settle().await;
        assert_eq!(sw.calls.load(Ordering::SeqCst), 0, "initial delay");
        tokio::time::advance(Duration::from_millis(200)).await;
        settle().await;
        assert_eq!(sw.calls.load(Ordering::SeqCst), 1);
        assert!(!probes.ready(&c, "c1"), "one success of two");
        tokio::time::advance(Duration::from_secs(2)).await;
        settle().await;
        assert!(probes.ready(&c, "c1"));
        // Failures: ready until the third consecutive one.
        sw.ok.store(false, Ordering::SeqCst);
        for _ in 0..2 {
            tokio::time::advance(Duration::from_secs(2)).await;
            settle().await;
            assert!(probes.ready(&c, "c1"));
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        settle().await;
        assert!(!probes.ready(&c, "c1"));
        // A different instance of the container is not this one's result.
        assert!(!probes.ready(&c, "other"));
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_fails_after_threshold_and_waits_for_startup() {
        let sw = Arc::new(Switch {
            ok: AtomicBool::new(false),
            calls: AtomicU32::new(0),
        });
        let mut probes = PodProbes::new(sw.clone(), Events::disabled());
        let c = container(serde_json::json!({"name": "app",
            "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 2},
            "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 30}}));
        let pod = Arc::new(Pod::default());
        probes.sync(
            &pod,
            &[Running {
                container: c.clone(),
                id: "c1".into(),
                started: Instant::now(),
            }],
            "",
        );
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            settle().await;
        }
        // Only the startup probe ran; liveness waits and nothing failed yet.
        assert!(!probes.started(&c, "c1"));
        assert!(probes.failed(&c, "c1").is_none());
        assert!(!probes.ready(&c, "c1"));
        sw.ok.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert!(probes.started(&c, "c1"));
        assert!(
            probes.ready(&c, "c1"),
            "no readiness probe: ready once started"
        );
        sw.ok.store(false, Ordering::SeqCst);
        let changed = probes.changed.clone();
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(1)).await;
            settle().await;
        }
        let (kind, msg) = probes.failed(&c, "c1").expect("liveness failed");
        assert_eq!(kind, Kind::Liveness);
        assert!(msg.starts_with("Liveness probe failed"), "{msg}");
        tokio::time::timeout(Duration::from_millis(1), changed.notified())
            .await
            .expect("the pod worker is woken");
        // The pod worker syncs the probes again before it acts on the failure: it stays.
        let calls = sw.calls.load(Ordering::SeqCst);
        probes.sync(
            &pod,
            &[Running {
                container: c.clone(),
                id: "c1".into(),
                started: Instant::now(),
            }],
            "",
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        settle().await;
        assert!(probes.failed(&c, "c1").is_some(), "the failure is kept");
        assert_eq!(
            sw.calls.load(Ordering::SeqCst),
            calls,
            "a failed instance is not probed again"
        );
        // The restarted instance is probed afresh.
        probes.sync(
            &pod,
            &[Running {
                container: c.clone(),
                id: "c2".into(),
                started: Instant::now(),
            }],
            "",
        );
        assert!(probes.failed(&c, "c2").is_none());
    }

    #[test]
    fn ports() {
        let c = container(
            serde_json::json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}),
        );
        assert_eq!(resolve_port(&IntOrString::Int(80), &c).unwrap(), 80);
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c).unwrap(),
            8080
        );
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
    }

    #[tokio::test]
    async fn real_network_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "fine" }))
            .route(
                "/bad",
                axum::routing::get(|| async {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no")
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let prober = RealProber {
            cri: crate::hollow::FakeRuntime::default().client(Default::default()),
        };
        let c = container(serde_json::json!({"name": "c"}));
        let t = Target {
            container_id: "x".into(),
            pod_ip: "127.0.0.1".into(),
        };
        let http = |path: &str| -> Probe {
            serde_json::from_value(serde_json::json!({"httpGet": {"path": path, "port": port}}))
                .unwrap()
        };
        prober.run(&http("/ok"), &c, &t).await.unwrap();
        let err = prober.run(&http("/bad"), &c, &t).await.unwrap_err();
        assert!(err.contains("500"), "{err}");
        let tcp: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": port}})).unwrap();
        prober.run(&tcp, &c, &t).await.unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let tcp: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": closed}})).unwrap();
        assert!(
            prober
                .run(&tcp, &c, &t)
                .await
                .unwrap_err()
                .contains("connect")
        );
    }
}

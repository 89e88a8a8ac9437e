//! The cluster state rkube-dns serves: kube-rs reflectors on Services, EndpointSlices and
//! Pods (trimmed to the fields DNS needs), and the task that rebuilds the zone snapshot from
//! their stores after changes — bursts coalesced — and publishes it with an atomic swap, so
//! the answer path never waits and never calls the API.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::zone::{Zone, ZoneBuilder, ZoneConfig};

/// Why the cache task stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A reflector stopped before its initial list completed.
    #[error("the {kind} reflector stopped before its initial list completed")]
    NotSynced {
        /// Services, EndpointSlices or Pods.
        kind: &'static str,
    },
    /// Building a snapshot panicked.
    #[error("building the zone snapshot failed: {0}")]
    Build(String),
}

/// How the cache task behaves.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// The zone's names and TTL.
    pub zone: ZoneConfig,
    /// How long to wait after a change for more changes before rebuilding (coalescing bursts).
    pub settle: Duration,
}

fn strip_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.owner_references = None;
    if let Some(spec) = pod.spec.as_mut() {
        spec.containers.clear();
        spec.init_containers = None;
        spec.ephemeral_containers = None;
        spec.volumes = None;
        spec.affinity = None;
        spec.tolerations = None;
    }
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
    }
}

fn strip_meta(meta: &mut kube::api::ObjectMeta) {
    meta.managed_fields = None;
    meta.annotations = None;
}

/// Drives one reflector stream, waking the builder on every change.
async fn drive<K>(
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    changed: Arc<Notify>,
    kind: &'static str,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => {
                changed.notify_one();
            }
            Ok(_) => {}
            Err(e) => warn!(kind, error = %e, "watch failed; retrying with backoff"),
        }
    }
}

/// Reflects Services, EndpointSlices and Pods from `client`, publishing a new snapshot in
/// `zone` after each change, until `shutdown` completes.
pub async fn run(
    client: Client,
    config: WatchConfig,
    zone: Arc<ArcSwap<Zone>>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WatchError> {
    let changed = Arc::new(Notify::new());
    let (services, w) = reflector::store::<Service>();
    let svc = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .modify(|s: &mut Service| strip_meta(&mut s.metadata))
    .default_backoff()
    .reflect(w);
    let (slices, w) = reflector::store::<EndpointSlice>();
    let eps = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    )
    .modify(|s: &mut EndpointSlice| strip_meta(&mut s.metadata))
    .default_backoff()
    .reflect(w);
    let (pods, w) = reflector::store::<Pod>();
    let pod = watcher(Api::<Pod>::all(client), watcher::Config::default())
        .modify(strip_pod)
        .default_backoff()
        .reflect(w);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(drive(svc, changed.clone(), "Service"));
    tasks.spawn(drive(eps, changed.clone(), "EndpointSlice"));
    tasks.spawn(drive(pod, changed.clone(), "Pod"));

    let mut shutdown = std::pin::pin!(shutdown);
    let synced = async {
        services
            .wait_until_ready()
            .await
            .map_err(|_| WatchError::NotSynced { kind: "Service" })?;
        slices
            .wait_until_ready()
            .await
            .map_err(|_| WatchError::NotSynced {
                kind: "EndpointSlice",
            })?;
        pods.wait_until_ready()
            .await
            .map_err(|_| WatchError::NotSynced { kind: "Pod" })
    };
    tokio::select! {
        r = synced => r?,
        _ = &mut shutdown => return Ok(()),
    }
    info!("caches synced; serving the cluster zone");

    let mut serial = 0u32;
    let outcome = rebuild_loop(&changed, config.settle, shutdown, || {
        serial = next_serial(serial);
        let serial = serial;
        let (config, services, slices, pods) = (&config, &services, &slices, &pods);
        let (zone, metrics) = (&zone, &metrics);
        async move {
            let started = Instant::now();
            let snapshot = build(&config.zone, services, slices, pods, serial).await?;
            let took = started.elapsed();
            debug!(
                serial,
                names = snapshot.names(),
                records = snapshot.records(),
                ?took,
                "zone rebuilt"
            );
            metrics.zone_builds.fetch_add(1, Ordering::Relaxed);
            metrics
                .zone_names
                .store(snapshot.names() as u64, Ordering::Relaxed);
            metrics
                .zone_records
                .store(snapshot.records() as u64, Ordering::Relaxed);
            metrics
                .zone_serial
                .store(u64::from(serial), Ordering::Relaxed);
            metrics
                .zone_build_micros
                .store(took.as_micros() as u64, Ordering::Relaxed);
            zone.store(Arc::new(snapshot));
            metrics.ready.store(true, Ordering::Relaxed);
            Ok(())
        }
    })
    .await;
    tasks.shutdown().await;
    outcome
}

/// Rebuilds at once, then after every change notification: waits `settle` so that a burst
/// of changes (a rollout, a namespace delete) lands in one rebuild, and drops the
/// notifications that arrived meanwhile — the rebuild reads the stores after them.
async fn rebuild_loop<F, Fut>(
    changed: &Notify,
    settle: Duration,
    shutdown: impl Future<Output = ()>,
    mut rebuild: F,
) -> Result<(), WatchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), WatchError>>,
{
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        rebuild().await?;
        tokio::select! {
            _ = changed.notified() => {}
            _ = &mut shutdown => return Ok(()),
        }
        tokio::select! {
            _ = tokio::time::sleep(settle) => {}
            _ = &mut shutdown => return Ok(()),
        }
        // A change that arrived during the settle left a permit: it is in this rebuild.
        let _ = changed.notified().now_or_never();
    }
}

/// Builds a snapshot off the async threads (large clusters take milliseconds).
async fn build(
    config: &ZoneConfig,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    pods: &Store<Pod>,
    serial: u32,
) -> Result<Zone, WatchError> {
    let (s, e, p) = (services.state(), slices.state(), pods.state());
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        ZoneBuilder::new(&config).build(
            s.iter().map(AsRef::as_ref),
            e.iter().map(AsRef::as_ref),
            p.iter().map(AsRef::as_ref),
            serial,
        )
    })
    .await
    .map_err(|e| WatchError::Build(e.to_string()))
}

/// The next SOA serial: the Unix time in seconds, kept strictly increasing.
fn next_serial(prev: u32) -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    now.max(prev.wrapping_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_increase_strictly() {
        let a = next_serial(0);
        assert!(a > 1_600_000_000);
        let b = next_serial(a);
        let c = next_serial(b);
        assert!(b > a && c > b);
        assert_eq!(next_serial(u32::MAX - 1), u32::MAX);
    }

    /// Paused time: a burst of changes is one rebuild, `settle` after its first change.
    #[tokio::test(start_paused = true)]
    async fn bursts_of_changes_are_one_rebuild_after_the_settle_time() {
        use std::sync::atomic::AtomicUsize;
        let changed = Arc::new(Notify::new());
        let builds = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let settle = Duration::from_millis(20);
        let started = tokio::time::Instant::now();
        let task = {
            let (changed, builds) = (changed.clone(), builds.clone());
            tokio::spawn(async move {
                rebuild_loop(
                    &changed,
                    settle,
                    async {
                        let _ = stop_rx.await;
                    },
                    || {
                        builds.lock().unwrap().push(started.elapsed());
                        async { Ok(()) }
                    },
                )
                .await
            })
        };
        let count = || builds.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(count(), 1, "the initial build");

        // Five changes 2 ms apart: one rebuild, 20 ms after the first.
        let burst = started.elapsed();
        for _ in 0..5 {
            changed.notify_one();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b = builds.lock().unwrap().clone();
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!(b[1] - burst, settle, "{b:?}");

        // A change much later: another rebuild.
        changed.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(count(), 3);

        // A failing rebuild ends the loop with its error.
        let failing = Notify::new();
        let calls = AtomicUsize::new(0);
        let err = rebuild_loop(&failing, settle, std::future::pending(), || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(WatchError::Build("boom".into())) }
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(calls.load(Ordering::Relaxed), 1);

        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(count(), 3, "no rebuild after shutdown");
    }

    #[test]
    fn pods_are_trimmed_to_what_dns_needs() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "annotations": {"a": "b"}},
            "spec": {"hostname": "h", "subdomain": "s",
                     "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"podIP": "10.0.0.1", "containerStatuses": [{"name": "c", "image": "busybox",
                "imageID": "", "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        strip_pod(&mut pod);
        let spec = pod.spec.as_ref().unwrap();
        assert!(spec.containers.is_empty());
        assert_eq!(spec.hostname.as_deref(), Some("h"));
        assert_eq!(spec.subdomain.as_deref(), Some("s"));
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert!(status.container_statuses.is_none());
        assert!(pod.metadata.annotations.is_none());
    }
}

//! Events about pods (`events.k8s.io/v1`, which `kubectl describe` shows through core/v1):
//! `Scheduled`, `FailedScheduling`, `Preempted`. Recording never blocks scheduling: events go
//! through a bounded queue to a worker that posts a few at a time; when the queue is full the
//! event is dropped and counted, as Kubernetes' event broadcaster does. A repeated event (same
//! pod, reason and message within 6 minutes) updates the first one's series count instead of
//! creating a new object.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::pod_info::PodInfo;

/// Events waiting to be sent at most.
pub const QUEUE_SIZE: usize = 4096;
/// Events sent at once.
const CONCURRENCY: usize = 8;
/// How long a repeated event is folded into a series.
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// Series entries kept before expired ones are pruned.
const SERIES_PRUNE_AT: usize = 1024;

/// One event to send.
#[derive(Clone, Debug)]
pub struct EventRecord {
    /// The pod concerned.
    pub regarding: ObjectReference,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// `Scheduled`, `FailedScheduling`, `Preempted`.
    pub reason: &'static str,
    /// `Binding`, `Scheduling`, `Preempting`.
    pub action: &'static str,
    /// The message.
    pub note: String,
    /// The reporting controller (the profile's scheduler name).
    pub controller: String,
}

/// A pod's object reference.
pub fn pod_ref(pod: &PodInfo) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(pod.name.clone()),
        namespace: Some(pod.namespace.clone()),
        uid: (!pod.uid.is_empty()).then(|| pod.uid.clone()),
        resource_version: pod.resource_version.clone(),
        ..Default::default()
    }
}

/// Sends events in the background.
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<EventRecord>,
    metrics: Arc<Metrics>,
}

struct SeriesMap {
    map: HashMap<(String, &'static str, String), Series>,
    prune_at: usize,
}

struct Series {
    name: String,
    namespace: String,
    count: i32,
    first: tokio::time::Instant,
}

impl EventRecorder {
    /// Starts the worker; it ends when every recorder clone is dropped.
    pub fn start(
        client: kube::Client,
        instance: String,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<EventRecord>(QUEUE_SIZE);
        let task = tokio::spawn(worker(client, instance, rx));
        (EventRecorder { tx, metrics }, task)
    }

    /// Queues an event (dropped and counted if the queue is full).
    pub fn record(&self, ev: EventRecord) {
        if self.tx.try_send(ev).is_err() {
            self.metrics.event_dropped();
        }
    }
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

async fn worker(client: kube::Client, instance: String, rx: mpsc::Receiver<EventRecord>) {
    let series: Arc<tokio::sync::Mutex<SeriesMap>> = Arc::new(tokio::sync::Mutex::new(SeriesMap {
        map: HashMap::new(),
        prune_at: SERIES_PRUNE_AT,
    }));
    tokio_stream_from(rx)
        .for_each_concurrent(CONCURRENCY, |ev| {
            let client = client.clone();
            let instance = instance.clone();
            let series = series.clone();
            async move {
                let uid = ev.regarding.uid.clone().unwrap_or_default();
                let ns = ev
                    .regarding
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                let key = (uid, ev.reason, ev.note.clone());
                // Only warnings repeat (a pod failing again and again); Scheduled happens once.
                let folds = ev.type_ == "Warning";
                let repeat = if folds {
                    let mut s = series.lock().await;
                    if s.map.len() >= s.prune_at {
                        s.map.retain(|_, v| v.first.elapsed() < SERIES_TTL);
                        // Amortized: prune again only after the map doubled.
                        s.prune_at = (s.map.len() * 2).max(SERIES_PRUNE_AT);
                    }
                    s.map
                        .get_mut(&key)
                        .filter(|v| v.first.elapsed() < SERIES_TTL)
                        .map(|v| {
                            v.count += 1;
                            (v.name.clone(), v.namespace.clone(), v.count)
                        })
                } else {
                    None
                };
                let api: Api<Event> = Api::namespaced(client, &ns);
                if let Some((name, ns, count)) = repeat {
                    let patch = serde_json::json!({
                        "series": {"count": count, "lastObservedTime": now()}
                    });
                    if let Err(e) = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        tracing::debug!(event = %name, namespace = %ns, error = %e, "updating event series");
                    }
                    return;
                }
                let at = jiff::Timestamp::now();
                let name = format!(
                    "{}.{:x}",
                    ev.regarding.name.as_deref().unwrap_or("pod"),
                    at.as_nanosecond()
                );
                let event = Event {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(ns.clone()),
                        ..Default::default()
                    },
                    event_time: Some(MicroTime(at)),
                    action: Some(ev.action.into()),
                    reason: Some(ev.reason.into()),
                    note: Some(ev.note.chars().take(1024).collect()),
                    regarding: Some(ev.regarding),
                    reporting_controller: Some(ev.controller.clone()),
                    reporting_instance: Some(instance),
                    type_: Some(ev.type_.into()),
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &event).await {
                    Ok(_) if folds => {
                        series.lock().await.map.insert(
                            key,
                            Series {
                                name,
                                namespace: ns,
                                count: 1,
                                first: tokio::time::Instant::now(),
                            },
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(event = %name, error = %e, "creating event"),
                }
            }
        })
        .await;
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<EventRecord>,
) -> impl futures::Stream<Item = EventRecord> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

//! Events about pods and the node (`Pulling`, `Created`, `Started`, `Killing`, `BackOff`,
//! `Unhealthy`, `FailedMount`, `NodeReady`, …), published through kube-rs' `Recorder` (so they
//! appear in `kubectl describe`) from a background task: recording never blocks a pod worker,
//! and when the API server is slow, events are dropped rather than queued without bound.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder, Reporter};
use tokio::sync::mpsc;

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Something went wrong.
    Warning,
}

struct Item {
    reference: ObjectReference,
    type_: EventType,
    reason: String,
    note: String,
}

/// The event sink. Cheap to clone.
#[derive(Clone, Default)]
pub struct Events {
    tx: Option<mpsc::Sender<Item>>,
}

impl Events {
    /// Publishes through `client` as `kubelet` on `node`; runs until every sender is dropped.
    pub fn start(client: kube::Client, node: &str) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Item>(1024);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "kubelet".into(),
                instance: Some(node.to_string()),
            },
        );
        let task = tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                let ev = Event {
                    type_: match item.type_ {
                        EventType::Normal => KubeEventType::Normal,
                        EventType::Warning => KubeEventType::Warning,
                    },
                    reason: item.reason.clone(),
                    note: Some(truncate(&item.note, 1024)),
                    action: item.reason,
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&ev, &item.reference).await {
                    tracing::debug!(error = %e, "publishing an event failed");
                }
            }
        });
        (Events { tx: Some(tx) }, task)
    }

    /// A sink that drops everything (unit tests).
    pub fn disabled() -> Self {
        Events { tx: None }
    }

    fn send(&self, item: Item) {
        if let Some(tx) = &self.tx
            && tx.try_send(item).is_err()
        {
            tracing::debug!("event queue full; dropping an event");
        }
    }

    /// An event about a pod (or one of its containers, by field path such as
    /// `spec.containers{app}`).
    pub fn pod(
        &self,
        pod: &Pod,
        field_path: Option<&str>,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        if type_ == EventType::Warning {
            tracing::info!(
                pod = %pod_key(pod),
                reason,
                note,
                "warning event"
            );
        }
        self.send(Item {
            reference: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                field_path: field_path.map(str::to_string),
                ..Default::default()
            },
            type_,
            reason: reason.into(),
            note: note.into(),
        });
    }

    /// An event about the node.
    pub fn node(&self, node: &str, type_: EventType, reason: &str, note: &str) {
        self.send(Item {
            reference: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.into()),
                uid: Some(node.into()),
                ..Default::default()
            },
            type_,
            reason: reason.into(),
            note: note.into(),
        });
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

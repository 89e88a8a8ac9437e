//! Events about pods and the node (`Pulling`, `Created`, `Started`, `Killing`, `BackOff`,
//! `Unhealthy`, `FailedMount`, `NodeReady`, …), written as core/v1 Events the way Kubernetes'
//! kubelet writes them (its role, `system:node`, may create and patch core Events only): source
//! `kubelet` on the node, a repeated event patched with a higher count instead of written
//! again. They are written from a background task: recording never blocks a pod worker, and
//! when the API server is slow, events are dropped rather than queued without bound.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

/// Distinct events remembered for aggregation (the cache is reset when it is full).
const REMEMBERED: usize = 4096;

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
    /// Writes through `client` as the kubelet of `node`; runs until every sender is dropped.
    pub fn start(client: kube::Client, node: &str) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Item>(1024);
        let mut writer = Writer {
            client,
            node: node.to_string(),
            seen: HashMap::new(),
        };
        let task = tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                if let Err(e) = writer.write(item).await {
                    tracing::debug!(error = %e, "writing an event failed");
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

/// What makes two events the same one (counted rather than written again).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    uid: String,
    field_path: String,
    type_: &'static str,
    reason: String,
    message: String,
}

/// Where an event was written and how often it happened.
struct Written {
    namespace: String,
    name: String,
    count: i32,
}

struct Writer {
    client: kube::Client,
    node: String,
    seen: HashMap<Key, Written>,
}

impl Writer {
    async fn write(&mut self, item: Item) -> Result<(), kube::Error> {
        let type_ = match item.type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let message = truncate(&item.note, 1024);
        let key = Key {
            uid: item.reference.uid.clone().unwrap_or_default(),
            field_path: item.reference.field_path.clone().unwrap_or_default(),
            type_,
            reason: item.reason.clone(),
            message: message.clone(),
        };
        let now = jiff::Timestamp::now();
        if let Some(w) = self.seen.get_mut(&key) {
            // A repeat: the count and last time of the event written before.
            let api: Api<Event> = Api::namespaced(self.client.clone(), &w.namespace);
            let patch = serde_json::json!({
                "count": w.count + 1,
                "lastTimestamp": Time(now),
            });
            match api
                .patch(&w.name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => {
                    w.count += 1;
                    return Ok(());
                }
                // Gone (expired or deleted): write it anew.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    self.seen.remove(&key);
                }
                Err(e) => return Err(e),
            }
        }
        // As Kubernetes names them: the object's name and the time in hex nanoseconds; events
        // about cluster-scoped objects (the node) go to `default`.
        let namespace = item
            .reference
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let name = format!(
            "{}.{:x}",
            item.reference.name.as_deref().unwrap_or_default(),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: item.reference,
            reason: Some(item.reason),
            message: Some(message),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        if self.seen.len() >= REMEMBERED {
            self.seen.clear();
        }
        self.seen.insert(
            key,
            Written {
                namespace,
                name,
                count: 1,
            },
        );
        Ok(())
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

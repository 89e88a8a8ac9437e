//! Events for what the controllers do (`SuccessfulCreate`, `ScalingReplicaSet`, …), written as
//! core/v1 Events the way client-go's event broadcaster writes them, so `kubectl describe` shows
//! them under the object with the controller's name in the From column.
//!
//! Controllers never wait for an event: [`Recorder`] hands it to one background writer, which
//! - counts repeats of the same event (same object, reason and message) by patching `count` and
//!   `lastTimestamp` of the event already written,
//! - combines more than ten different messages of the same reason on the same object within ten
//!   minutes into one event with the message `(combined from similar events): …` (client-go's
//!   EventAggregator), and
//! - drops events of an object beyond a burst of 25, refilled by one every five minutes
//!   (client-go's EventSourceObjectSpamFilter), so a thousand pod creates cannot flood the API.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use tokio::time::Instant;

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something happened as intended.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An event as a controller reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The reporting component (`replicaset-controller`, …).
    pub component: String,
    /// The object it is about.
    pub involved: ObjectReference,
    /// Normal or Warning.
    pub type_: EventType,
    /// `SuccessfulCreate`, `ScalingReplicaSet`, …
    pub reason: String,
    /// Human-readable text.
    pub message: String,
}

#[derive(Clone)]
enum Sink {
    Api(mpsc::UnboundedSender<Recorded>),
    Memory(Arc<Mutex<Vec<Recorded>>>),
}

/// Hands events to the writer; cheap to clone, never blocks.
#[derive(Clone)]
pub struct Recorder {
    component: String,
    sink: Sink,
}

impl Recorder {
    /// A recorder writing through `client`; the writer runs until every clone is dropped.
    pub fn new(client: Client, component: &str) -> Self {
        let (tx, rx) = mpsc::unbounded();
        tokio::spawn(write_events(client, rx));
        Self {
            component: component.into(),
            sink: Sink::Api(tx),
        }
    }

    /// A recorder that keeps events in memory (tests).
    pub fn memory(component: &str) -> (Self, Arc<Mutex<Vec<Recorded>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                component: component.into(),
                sink: Sink::Memory(events.clone()),
            },
            events,
        )
    }

    /// The same writer, reporting as another component.
    pub fn with_component(&self, component: &str) -> Self {
        Self {
            component: component.into(),
            sink: self.sink.clone(),
        }
    }

    /// A Normal event about `obj`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: String) {
        self.record(reference(obj), EventType::Normal, reason, message);
    }

    /// A Warning event about `obj`.
    pub fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: String) {
        self.record(reference(obj), EventType::Warning, reason, message);
    }

    /// An event about the object `involved` refers to.
    pub fn record(
        &self,
        involved: ObjectReference,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        let ev = Recorded {
            component: self.component.clone(),
            involved,
            type_,
            reason: reason.into(),
            message,
        };
        tracing::debug!(component = %ev.component, object = ?ev.involved.name, reason = %ev.reason, message = %ev.message, "event");
        match &self.sink {
            Sink::Api(tx) => {
                let _ = tx.unbounded_send(ev);
            }
            Sink::Memory(v) => v.lock().expect("events").push(ev),
        }
    }
}

/// The reference to `obj` an event carries.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    let m = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        namespace: m.namespace.clone(),
        name: m.name.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path: None,
    }
}

const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL: Duration = Duration::from_secs(300);
const AGGREGATE_MAX: usize = 10;
const AGGREGATE_WINDOW: Duration = Duration::from_secs(600);

/// What the writer remembers of an event it wrote, to count repeats.
struct Written {
    name: String,
    namespace: String,
    count: i32,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Similar {
    messages: HashSet<String>,
    since: Instant,
}

/// The event correlator: decides what to write for each reported event.
#[derive(Default)]
struct Correlator {
    buckets: HashMap<(String, String), Bucket>,
    similar: HashMap<(String, String, String, &'static str), Similar>,
    written: HashMap<(String, String, &'static str, String, String), Written>,
}

/// What the correlator decided.
#[derive(Debug, PartialEq)]
enum Action {
    Drop,
    Create {
        message: String,
    },
    Count {
        name: String,
        namespace: String,
        count: i32,
    },
}

impl Correlator {
    fn decide(&mut self, ev: &Recorded) -> Action {
        let uid = ev
            .involved
            .uid
            .clone()
            .or_else(|| ev.involved.name.clone())
            .unwrap_or_default();
        // Spam filter: a token bucket per source and object.
        let now = Instant::now();
        let bucket = self
            .buckets
            .entry((ev.component.clone(), uid.clone()))
            .or_insert(Bucket {
                tokens: SPAM_BURST,
                at: now,
            });
        let refill = now.duration_since(bucket.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        bucket.tokens = (bucket.tokens + refill).min(SPAM_BURST);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Action::Drop;
        }
        bucket.tokens -= 1.0;
        // Aggregation of similar events with different messages.
        let similar_key = (
            ev.component.clone(),
            uid.clone(),
            ev.reason.clone(),
            ev.type_.as_str(),
        );
        let similar = self.similar.entry(similar_key).or_insert(Similar {
            messages: HashSet::new(),
            since: now,
        });
        if now.duration_since(similar.since) > AGGREGATE_WINDOW {
            similar.messages.clear();
            similar.since = now;
        }
        let message =
            if similar.messages.contains(&ev.message) || similar.messages.len() < AGGREGATE_MAX {
                similar.messages.insert(ev.message.clone());
                ev.message.clone()
            } else {
                format!("(combined from similar events): {}", ev.message)
            };
        // Count repeats of an identical event (aggregated ones share one key).
        let message_key = if message.starts_with("(combined") {
            String::new()
        } else {
            message.clone()
        };
        let key = (
            ev.component.clone(),
            uid,
            ev.type_.as_str(),
            ev.reason.clone(),
            message_key,
        );
        match self.written.get_mut(&key) {
            Some(w) => {
                w.count += 1;
                Action::Count {
                    name: w.name.clone(),
                    namespace: w.namespace.clone(),
                    count: w.count,
                }
            }
            None => Action::Create { message },
        }
    }

    fn remember(&mut self, ev: &Recorded, message: &str, written: Written) {
        let uid = ev
            .involved
            .uid
            .clone()
            .or_else(|| ev.involved.name.clone())
            .unwrap_or_default();
        let message_key = if message.starts_with("(combined") {
            String::new()
        } else {
            message.to_string()
        };
        self.written.insert(
            (
                ev.component.clone(),
                uid,
                ev.type_.as_str(),
                ev.reason.clone(),
                message_key,
            ),
            written,
        );
        if self.written.len() > 4096 {
            self.written.clear();
        }
    }
}

fn event_object(ev: &Recorded, message: &str, namespace: &str, now: Time) -> Event {
    let stamp = jiff::Timestamp::now().as_nanosecond();
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                ev.involved.name.as_deref().unwrap_or("object"),
                stamp
            )),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        involved_object: ev.involved.clone(),
        reason: Some(ev.reason.clone()),
        message: Some(message.to_string()),
        source: Some(EventSource {
            component: Some(ev.component.clone()),
            host: None,
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        type_: Some(ev.type_.as_str().to_string()),
        reporting_component: Some(ev.component.clone()),
        reporting_instance: Some(ev.component.clone()),
        ..Default::default()
    }
}

async fn write_events(client: Client, mut rx: mpsc::UnboundedReceiver<Recorded>) {
    let mut correlator = Correlator::default();
    while let Some(ev) = rx.next().await {
        let namespace = ev
            .involved
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let now = Time(jiff::Timestamp::now());
        match correlator.decide(&ev) {
            Action::Drop => {}
            Action::Create { message } => {
                let event = event_object(&ev, &message, &namespace, now.clone());
                let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
                match api.create(&PostParams::default(), &event).await {
                    Ok(created) => correlator.remember(
                        &ev,
                        &message,
                        Written {
                            name: created.metadata.name.unwrap_or_default(),
                            namespace,
                            count: 1,
                        },
                    ),
                    Err(e) => {
                        tracing::debug!(error = %e, reason = %ev.reason, "could not write event")
                    }
                }
            }
            Action::Count {
                name,
                namespace,
                count,
            } => {
                let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
                let patch = serde_json::json!({"count": count, "lastTimestamp": now});
                if let Err(e) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::debug!(error = %e, event = %name, "could not update event count");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(uid: &str, reason: &str, message: &str) -> Recorded {
        Recorded {
            component: "replicaset-controller".into(),
            involved: ObjectReference {
                uid: Some(uid.into()),
                name: Some(uid.into()),
                ..Default::default()
            },
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn written(c: &mut Correlator, e: &Recorded, name: &str) {
        if let Action::Create { message } = c.decide(e) {
            c.remember(
                e,
                &message,
                Written {
                    name: name.into(),
                    namespace: "ns".into(),
                    count: 1,
                },
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn repeats_are_counted_similar_events_combined_and_floods_dropped() {
        let mut c = Correlator::default();
        written(
            &mut c,
            &ev("rs", "SuccessfulCreate", "Created pod: a"),
            "e1",
        );
        assert_eq!(
            c.decide(&ev("rs", "SuccessfulCreate", "Created pod: a")),
            Action::Count {
                name: "e1".into(),
                namespace: "ns".into(),
                count: 2
            }
        );
        for i in 1..10 {
            written(
                &mut c,
                &ev("rs", "SuccessfulCreate", &format!("Created pod: {i}")),
                "x",
            );
        }
        // The eleventh different message is combined.
        assert_eq!(
            c.decide(&ev("rs", "SuccessfulCreate", "Created pod: z")),
            Action::Create {
                message: "(combined from similar events): Created pod: z".into()
            }
        );
        // 12 tokens used so far; the burst is 25.
        let mut c = Correlator::default();
        let mut created = 0;
        for i in 0..40 {
            if c.decide(&ev("other", &format!("R{i}"), "m")) != Action::Drop {
                created += 1;
            }
        }
        assert_eq!(created, 25);
        tokio::time::advance(SPAM_REFILL).await;
        assert_ne!(c.decide(&ev("other", "Later", "m")), Action::Drop);
        assert_eq!(c.decide(&ev("other", "Later2", "m")), Action::Drop);
    }
}

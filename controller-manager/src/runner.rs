//! Runs one `kube::runtime::Controller` the way every controller here runs: triggers from
//! shared informers, a bounded number of concurrent reconciles, an error policy that retries a
//! failing key with exponential backoff (5 ms doubling up to a minute, like client-go's
//! per-item rate limiter), and metrics: reconciles, errors, latency and queue depth.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::informer::{Informer, Object};
use crate::metrics::{Metrics, Pending};

/// First retry delay of a failing key.
const BACKOFF_BASE: Duration = Duration::from_millis(5);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Whether an error (or one of its sources) is an API conflict or a stale cache: expected
/// under concurrency, retried quietly.
pub fn is_conflict(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(kube::Error::Api(s)) = e.downcast_ref::<kube::Error>()
            && (s.code == 409)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The API status code behind an error, if any.
pub fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether an API call failed with 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    api_code(err) == Some(404)
}

/// Whether an API call failed with 409 AlreadyExists.
pub fn is_already_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// Whether a create failed because the namespace is being terminated.
pub fn is_namespace_terminating(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => {
            s.code == 403
                && (s.message.contains("being terminated")
                    || s.details.as_ref().is_some_and(|d| {
                        d.causes.iter().any(|c| c.reason == "NamespaceTerminating")
                    }))
        }
        _ => false,
    }
}

/// The metrics and queue bookkeeping of one controller.
pub struct Wiring<K: Object> {
    name: &'static str,
    metrics: Arc<Metrics>,
    pending: Arc<Pending>,
    store: Store<K>,
    failures: Arc<Mutex<HashMap<String, u32>>>,
}

impl<K: Object> Wiring<K> {
    /// Wiring for a controller of `K`s named `name` (as in `--controllers`).
    pub fn new(name: &'static str, metrics: &Arc<Metrics>, informer: &Informer<K>) -> Self {
        let pending = Arc::new(Pending::default());
        let store = informer.store();
        {
            let pending = pending.clone();
            let store = store.clone();
            metrics.register_queue(name, move || {
                let live: HashSet<String> = store
                    .state()
                    .iter()
                    .map(|o| ObjectRef::from_obj(&**o).to_string())
                    .collect();
                pending.depth(|k| live.contains(k))
            });
        }
        Self {
            name,
            metrics: metrics.clone(),
            pending,
            store,
            failures: Arc::default(),
        }
    }

    /// A controller triggered by every change of a `K`.
    pub fn controller(&self, informer: &Informer<K>) -> Controller<K> {
        let pending = self.pending.clone();
        let trigger = informer
            .objects()
            .inspect(move |o| pending.add(ObjectRef::from_obj(&**o).to_string()));
        Controller::for_shared_stream(trigger, self.store.clone())
    }

    /// A controller triggered by the objects of `trigger` (a subscription mapped by the caller).
    pub fn controller_on(
        &self,
        trigger: impl Stream<Item = Arc<K>> + Send + 'static,
    ) -> Controller<K> {
        let pending = self.pending.clone();
        let trigger = trigger.inspect(move |o| pending.add(ObjectRef::from_obj(&**o).to_string()));
        Controller::for_shared_stream(trigger, self.store.clone())
    }

    /// Counts keys of another trigger stream in the queue depth.
    pub fn track(
        &self,
        refs: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    ) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
        let pending = self.pending.clone();
        refs.inspect(move |r| pending.add(r.to_string()))
    }

    /// Runs the controller until `shutdown`.
    pub async fn run<C, Fut, E>(
        self,
        controller: Controller<K>,
        concurrency: u16,
        ctx: Arc<C>,
        reconcile: fn(Arc<K>, Arc<C>) -> Fut,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) where
        C: Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let name = self.name;
        let metrics = self.metrics.clone();
        let pending = self.pending.clone();
        let failures = self.failures.clone();
        let failures_policy = self.failures.clone();
        let reconcile_fn = move |obj: Arc<K>, ctx: Arc<C>| {
            let key = ObjectRef::from_obj(&*obj).to_string();
            pending.remove(&key);
            let metrics = metrics.clone();
            let failures = failures.clone();
            let fut = reconcile(obj, ctx);
            async move {
                let started = Instant::now();
                let res = fut.await;
                metrics.observe(name, started.elapsed(), res.is_ok());
                if res.is_ok() {
                    failures.lock().expect("failures").remove(&key);
                }
                res
            }
        };
        let error_policy = move |obj: Arc<K>, err: &E, _ctx: Arc<C>| {
            let key = ObjectRef::from_obj(&*obj).to_string();
            let n = {
                let mut f = failures_policy.lock().expect("failures");
                let n = f.entry(key.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let delay = BACKOFF_BASE
                .saturating_mul(1u32 << (n - 1).min(20))
                .min(BACKOFF_MAX);
            if is_conflict(err) {
                tracing::debug!(controller = name, object = %key, error = %err, "conflict; retrying");
            } else {
                tracing::warn!(controller = name, object = %key, error = %err, retry_in = ?delay, "reconcile failed");
            }
            Action::requeue(delay)
        };
        controller
            .with_config(controller::Config::default().concurrency(concurrency))
            .graceful_shutdown_on(shutdown)
            .run(reconcile_fn, error_policy, ctx)
            .for_each(|res| async move {
                match res {
                    Ok(_) | Err(controller::Error::ObjectNotFound(_)) => {}
                    Err(controller::Error::ReconcilerFailed(..)) => {}
                    Err(e) => tracing::debug!(controller = name, error = %e, "controller"),
                }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_found_through_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("update rs: {0}")]
        struct Wrap(#[source] kube::Error);
        let status =
            kube::core::Status::failure("the object has been modified", "Conflict").with_code(409);
        let e = Wrap(kube::Error::Api(status.boxed()));
        assert!(is_conflict(&e));
        let status = kube::core::Status::failure("nope", "NotFound").with_code(404);
        let nf = kube::Error::Api(status.boxed());
        assert!(is_not_found(&nf));
        assert!(!is_conflict(&Wrap(nf)));
    }
}

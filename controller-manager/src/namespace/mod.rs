//! The namespace controller: empties a namespace that is being deleted, then removes the
//! `kubernetes` finalizer from its `spec.finalizers` through the `finalize` subresource, after
//! which the API server deletes it. Until then the namespace stays Terminating and its status
//! conditions say what is left (`NamespaceContentRemaining`, `NamespaceFinalizersRemaining`,
//! `NamespaceDeletionContentFailure`, …), as Kubernetes reports them.

pub mod deleter;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, Client};

use crate::Shared;
use crate::clock::Clock;
use crate::discovery::Resources;
use crate::runner::{Wiring, is_not_found};

/// The controller's name.
pub const NAME: &str = "namespace-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "namespace-controller";
/// The finalizer this controller removes.
pub const FINALIZER: &str = "kubernetes";

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The namespaced resources to empty.
    pub resources: Resources,
    /// The clock (condition times).
    pub clock: Clock,
    /// How long to wait before looking again at a namespace with content left.
    pub retry: Duration,
}

/// Why a namespace could not be finalized.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call on the namespace failed.
    #[error("namespace {name}: {what}: {source}")]
    Api {
        /// The namespace.
        name: String,
        /// What was being done.
        what: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::from_second(now.as_second()).unwrap_or(now),
        )),
    }
}

/// The deletion conditions for a pass's outcome (Kubernetes' types, reasons and messages).
pub fn conditions(outcome: &deleter::Outcome, now: jiff::Timestamp) -> Vec<NamespaceCondition> {
    let mut c = vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
            now,
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
            now,
        ),
    ];
    if outcome.errors.is_empty() {
        c.push(condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
            now,
        ));
    } else {
        c.push(condition(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                outcome.errors.len(),
                outcome.errors.join(", ")
            ),
            now,
        ));
    }
    if outcome.remaining.is_empty() {
        c.push(condition(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
            now,
        ));
    } else {
        let parts: Vec<String> = outcome
            .remaining
            .iter()
            .map(|(resource, n)| format!("{resource} has {n} resource instances"))
            .collect();
        c.push(condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", parts.join(", ")),
            now,
        ));
    }
    if outcome.finalizers.is_empty() {
        c.push(condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
            now,
        ));
    } else {
        let parts: Vec<String> = outcome
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        c.push(condition(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                parts.join(", ")
            ),
            now,
        ));
    }
    c
}

/// Whether two condition lists say the same (ignoring times).
fn same_conditions(a: &[NamespaceCondition], b: &[NamespaceCondition]) -> bool {
    let key = |c: &NamespaceCondition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
        )
    };
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

/// One pass over a namespace being deleted.
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    let outcome = deleter::delete_all(&ctx.client, &ctx.resources, &name).await;
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let err = |what: &'static str| {
        let name = name.clone();
        move |source| Error::Api { name, what, source }
    };
    // Report progress in the conditions (only when it changed).
    let wanted = conditions(&outcome, ctx.clock.now());
    let current = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if !same_conditions(&current, &wanted) {
        let mut next = (*ns).clone();
        next.status.get_or_insert_with(Default::default).conditions = Some(wanted);
        match api
            .replace_status(&name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) if crate::runner::is_conflict(&e) => {}
            Err(e) => return Err(err("updating status")(e)),
        }
    }
    if !outcome.is_empty() {
        tracing::debug!(namespace = %name, remaining = ?outcome.remaining, "namespace not empty yet");
        return Ok(Action::requeue(
            outcome.estimate.unwrap_or(ctx.retry).max(ctx.retry),
        ));
    }
    // Empty: remove our finalizer.
    let fresh = match api.get_opt(&name).await.map_err(err("reading"))? {
        Some(n) => n,
        None => return Ok(Action::await_change()),
    };
    let mut next = fresh.clone();
    let spec = next.spec.get_or_insert_with(Default::default);
    spec.finalizers = Some(
        spec.finalizers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != FINALIZER)
            .collect(),
    );
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &next)
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = %name, "namespace emptied and finalized");
            Ok(Action::await_change())
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(err("finalizing")(e)),
    }
}

/// Builds the controller; discovery runs first.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let namespaces = shared.informers.all::<Namespace>();
    let wiring = Wiring::new(NAME, &shared.metrics, &namespaces);
    let controller = wiring.controller(&namespaces);
    let client = shared.client_for(ACCOUNT);
    let concurrency = shared.config.concurrent_namespace_syncs;
    let shutdown = shared.shutdown();
    Box::pin(async move {
        let resources = loop {
            match Resources::discover(client.clone()).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!(error = %e, "namespace controller: discovery failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.clone() => return,
                    }
                }
            }
        };
        let ctx = Arc::new(Ctx {
            client,
            resources,
            clock: Clock::new(),
            retry: Duration::from_millis(500),
        });
        wiring
            .run(controller, concurrency, ctx, reconcile, shutdown)
            .await;
    })
}

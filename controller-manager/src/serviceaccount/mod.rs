//! The ServiceAccount controller: a `default` ServiceAccount in every active namespace,
//! re-created when deleted. The API server keeps one too, so a create that finds it already
//! there is success.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client};

use crate::Shared;
use crate::informer::{Change, ref_in};
use crate::runner::{Wiring, is_already_exists, is_namespace_terminating, is_not_found};

/// The controller's name.
pub const NAME: &str = "serviceaccount-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "service-account-controller";
/// The ServiceAccounts every namespace gets.
pub const DEFAULT_ACCOUNTS: &[&str] = &["default"];

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// Shared ServiceAccount cache.
    pub accounts: Store<ServiceAccount>,
}

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
#[error("serviceaccount {namespace}/{name}: {source}")]
pub struct Error {
    namespace: String,
    name: String,
    #[source]
    source: kube::Error,
}

/// Ensures the default accounts of an active namespace (`syncNamespace`).
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(Action::await_change());
    }
    let namespace = ns.metadata.name.clone().unwrap_or_default();
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &namespace);
    for name in DEFAULT_ACCOUNTS {
        if ctx.accounts.get(&ref_in(Some(&namespace), name)).is_some() {
            continue;
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {
                tracing::info!(namespace = %namespace, account = name, "created service account")
            }
            Err(e) if is_already_exists(&e) || is_not_found(&e) || is_namespace_terminating(&e) => {
            }
            Err(source) => {
                return Err(Error {
                    namespace,
                    name: name.to_string(),
                    source,
                });
            }
        }
    }
    Ok(Action::await_change())
}

/// Builds the controller: namespaces, woken also by deleted accounts.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let namespaces = shared.informers.all::<Namespace>();
    let accounts = shared.informers.all::<ServiceAccount>();
    let wiring = Wiring::new(NAME, &shared.metrics, &namespaces);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        accounts: accounts.store(),
    });
    let deleted = accounts.subscribe().filter_map(|c| {
        let r = match &c {
            Change::Deleted(sa)
                if DEFAULT_ACCOUNTS.contains(&sa.metadata.name.as_deref().unwrap_or_default()) =>
            {
                sa.metadata
                    .namespace
                    .as_deref()
                    .map(|ns| ref_in::<Namespace>(None, ns))
            }
            _ => None,
        };
        std::future::ready(r)
    });
    let controller = wiring
        .controller(&namespaces)
        .reconcile_on(wiring.track(deleted));
    Box::pin(wiring.run(controller, 1, ctx, reconcile, shared.shutdown()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeApi, store_of};

    #[tokio::test]
    async fn every_active_namespace_gets_a_default_account() {
        let fake = FakeApi::new();
        let existing = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                namespace: Some("has".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let (accounts, _) = store_of(vec![existing]);
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            accounts,
        });
        let ns = |name: &str| Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        reconcile(Arc::new(ns("missing")), ctx.clone())
            .await
            .unwrap();
        reconcile(Arc::new(ns("has")), ctx.clone()).await.unwrap();
        let mut gone = ns("gone");
        gone.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        reconcile(Arc::new(gone), ctx.clone()).await.unwrap();
        let made: Vec<ServiceAccount> = fake.list("v1/serviceaccounts");
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].metadata.namespace.as_deref(), Some("missing"));
        // The API server made it first: AlreadyExists is success.
        let (empty, _) = store_of::<ServiceAccount>(vec![]);
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            accounts: empty,
        });
        reconcile(Arc::new(ns("missing")), ctx).await.unwrap();
    }
}

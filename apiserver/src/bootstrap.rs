//! First-start state and the small controllers the API server runs itself: the system
//! namespaces (default, kube-system, kube-public, kube-node-lease), the built-in
//! PriorityClasses (`system-node-critical`, `system-cluster-critical`) and a `default`
//! ServiceAccount in every namespace.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use crate::error::ApiError;
use crate::registry::kinds::priority;
use crate::registry::{Api, WriteOptions};
use crate::resources;
use crate::storage::{ListOptions, WatchItem};

/// The namespaces that exist from the first start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates what a new cluster has: the system namespaces and PriorityClasses.
pub async fn ensure_system_state(api: &Api) -> Result<(), ApiError> {
    ensure_system_namespaces(api).await?;
    ensure_system_priority_classes(api).await
}

async fn ensure_system_namespaces(api: &Api) -> Result<(), ApiError> {
    let kind = api
        .kind(&resources::NAMESPACES)
        .ok_or_else(|| ApiError::internal("namespaces not served"))?;
    for ns in SYSTEM_NAMESPACES {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match kind.create(api, None, body, &WriteOptions::default()).await {
            Ok(_) => tracing::info!(namespace = ns, "created system namespace"),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates the built-in PriorityClasses that are missing. Existing ones are left as they are
/// (validation keeps their value and preemption policy as built in), as Kubernetes does.
pub async fn ensure_system_priority_classes(api: &Api) -> Result<(), ApiError> {
    let kind = api
        .kind(&resources::PRIORITYCLASSES)
        .ok_or_else(|| ApiError::internal("priorityclasses not served"))?;
    for class in priority::SYSTEM_CLASSES {
        match kind.get(api, None, class.name).await {
            Ok(_) => {
                tracing::debug!(class = class.name, "system priority class exists");
                continue;
            }
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        match kind
            .create(api, None, class.object(), &WriteOptions::default())
            .await
        {
            Ok(_) => tracing::info!(
                class = class.name,
                value = class.value,
                "created system priority class"
            ),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn ensure_default_service_account(api: &Api, ns: &str) {
    let Some(kind) = api.kind(&resources::SERVICEACCOUNTS) else {
        return;
    };
    if kind.get(api, Some(ns), "default").await.is_ok() {
        return;
    }
    let body = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": {"name": "default", "namespace": ns}});
    match kind
        .create(api, Some(ns), body, &WriteOptions::default())
        .await
    {
        Ok(_) => tracing::debug!(namespace = ns, "created default service account"),
        Err(e) if e.reason == "AlreadyExists" || e.code == 403 || e.code == 404 => {}
        Err(e) => {
            tracing::warn!(namespace = ns, error = %e, "cannot create default service account")
        }
    }
}

/// Keeps a `default` ServiceAccount in every active namespace (re-created if deleted).
pub fn spawn_service_account_controller(api: Arc<Api>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ns_prefix = resources::NAMESPACES.prefix();
        let sa_prefix = resources::SERVICEACCOUNTS.prefix();
        loop {
            let listed = match api.store.list(&ns_prefix, ListOptions::default()).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "service account controller: list failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for kv in &listed.items {
                if let Some(ns) = kv.key.strip_prefix(&ns_prefix) {
                    ensure_default_service_account(&api, ns).await;
                }
            }
            let Ok(mut ns_watch) = api.store.watch(&ns_prefix, true, listed.revision).await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let Ok(mut sa_watch) = api.store.watch(&sa_prefix, true, listed.revision).await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            loop {
                let ns = tokio::select! {
                    item = ns_watch.next() => match item {
                        Some(Ok(WatchItem::Event(ev))) if ev.kind != crate::storage::EventKind::Deleted => {
                            ev.kv.key.strip_prefix(&ns_prefix).map(str::to_string)
                        }
                        Some(Ok(_)) => None,
                        _ => break,
                    },
                    item = sa_watch.next() => match item {
                        Some(Ok(WatchItem::Event(ev))) if ev.kind == crate::storage::EventKind::Deleted => {
                            let rest = ev.kv.key.strip_prefix(&sa_prefix).unwrap_or_default();
                            match rest.split_once('/') {
                                Some((ns, "default")) => Some(ns.to_string()),
                                _ => None,
                            }
                        }
                        Some(Ok(_)) => None,
                        _ => break,
                    },
                };
                if let Some(ns) = ns {
                    ensure_default_service_account(&api, &ns).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

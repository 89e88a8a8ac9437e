//! First-start state and the small controllers the API server runs itself: the system
//! namespaces (default, kube-system, kube-public, kube-node-lease), the built-in
//! PriorityClasses (`system-node-critical`, `system-cluster-critical`), and in every namespace a
//! `default` ServiceAccount and the ConfigMap `kube-root-ca.crt` with the cluster CA (what
//! Kubernetes' root-ca-cert-publisher keeps, and what pods' projected service account volumes
//! read their `ca.crt` from).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::registry::kinds::priority;
use crate::registry::{Api, Sub, WriteOptions};
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

/// The ConfigMap with the cluster CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// The `kube-root-ca.crt` ConfigMap of `ns`, holding `ca_pem`.
fn root_ca_config_map(ns: &str, ca_pem: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns, "annotations": {
               "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
           "data": {"ca.crt": ca_pem}})
}

async fn ensure_root_ca(api: &Api, ns: &str, ca_pem: &str) {
    let Some(kind) = api.kind(&resources::CONFIGMAPS) else {
        return;
    };
    let opts = WriteOptions {
        field_manager: Some("root-ca-cert-publisher".into()),
        ..Default::default()
    };
    match kind.get(api, Some(ns), ROOT_CA_CONFIGMAP).await {
        Ok(raw) => {
            let stored: Value = serde_json::from_slice(&raw).unwrap_or_default();
            if stored["data"]["ca.crt"] == ca_pem
                && stored["data"].as_object().map(|d| d.len()) == Some(1)
            {
                return;
            }
            let mutate = |cur: &Value| {
                let mut v = cur.clone();
                v["data"] = json!({"ca.crt": ca_pem});
                Ok(v)
            };
            if let Err(e) = kind
                .update(api, Some(ns), ROOT_CA_CONFIGMAP, Sub::Main, &opts, &mutate)
                .await
            {
                tracing::warn!(namespace = ns, error = %e, "cannot update kube-root-ca.crt");
            }
        }
        Err(e) if e.code == 404 => {
            match kind
                .create(api, Some(ns), root_ca_config_map(ns, ca_pem), &opts)
                .await
            {
                Ok(_) => tracing::debug!(namespace = ns, "published kube-root-ca.crt"),
                Err(e) if e.reason == "AlreadyExists" || e.code == 403 || e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(namespace = ns, error = %e, "cannot publish kube-root-ca.crt")
                }
            }
        }
        Err(e) => tracing::warn!(namespace = ns, error = %e, "cannot read kube-root-ca.crt"),
    }
}

async fn ensure_namespace_defaults(api: &Api, ns: &str, ca_pem: &str) {
    ensure_default_service_account(api, ns).await;
    ensure_root_ca(api, ns, ca_pem).await;
}

/// Keeps a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap (with `ca_pem`) in
/// every active namespace (re-created if deleted, restored if changed).
pub fn spawn_namespace_defaults_controller(
    api: Arc<Api>,
    ca_pem: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ns_prefix = resources::NAMESPACES.prefix();
        let sa_prefix = resources::SERVICEACCOUNTS.prefix();
        let cm_prefix = resources::CONFIGMAPS.prefix();
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
                    ensure_namespace_defaults(&api, ns, &ca_pem).await;
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
            let Ok(mut cm_watch) = api.store.watch(&cm_prefix, true, listed.revision).await else {
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
                    item = cm_watch.next() => match item {
                        // Deleted or edited by someone else.
                        Some(Ok(WatchItem::Event(ev))) => {
                            let rest = ev.kv.key.strip_prefix(&cm_prefix).unwrap_or_default();
                            match rest.split_once('/') {
                                Some((ns, ROOT_CA_CONFIGMAP)) => Some(ns.to_string()),
                                _ => None,
                            }
                        }
                        Some(Ok(_)) => None,
                        _ => break,
                    },
                };
                if let Some(ns) = ns {
                    ensure_namespace_defaults(&api, &ns, &ca_pem).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

//! Container environment: `envFrom` (ConfigMaps and Secrets, with prefixes), `env` values with
//! `$(VAR)` expansion, and `valueFrom` — `fieldRef` (pod metadata, node name, IPs, service
//! account), `resourceFieldRef` (limits and requests with divisors, node allocatable when
//! unset), `configMapKeyRef` and `secretKeyRef` (honouring `optional`). A missing reference
//! is a [`EnvError`], which the pod worker turns into `CreateContainerConfigError`. Command
//! and args are expanded with the same rules. Service environment variables
//! ([`crate::service_env`]) come first, overridden by anything the container sets.

use std::collections::{BTreeMap, HashMap};

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::runtime::reflector;
use rkube_machinery::quantity::parse_quantity;

use crate::watched::WatchedObjects;

/// Why an environment could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A referenced ConfigMap does not exist.
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    /// A referenced Secret does not exist.
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    /// A referenced key is not in the ConfigMap.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        /// Namespace.
        namespace: String,
        /// ConfigMap.
        name: String,
        /// The key.
        key: String,
    },
    /// A referenced key is not in the Secret.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        /// Namespace.
        namespace: String,
        /// Secret.
        name: String,
        /// The key.
        key: String,
    },
    /// A fieldRef path the kubelet does not know.
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    /// A resourceFieldRef the kubelet does not know.
    #[error("unsupported container resource: {0}")]
    Resource(String),
    /// The API server could not be asked.
    #[error("failed to read {kind} {namespace}/{name}: {message}")]
    Api {
        /// ConfigMap or Secret.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The error.
        message: String,
    },
}

/// A ServiceAccount token for a pod (a `serviceAccountToken` projection).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenFor {
    /// The pod's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub service_account: String,
    /// The pod the token is bound to.
    pub pod_name: String,
    /// Its uid.
    pub pod_uid: String,
    /// The audience, if not the API server's.
    pub audience: Option<String>,
    /// The lifetime asked for.
    pub expiration_seconds: i64,
}

/// Where ConfigMaps, Secrets, Services and ServiceAccount tokens come from (the API server, or
/// maps in tests).
#[async_trait::async_trait]
pub trait Objects: Send + Sync {
    /// A ConfigMap; `Ok(None)` when it does not exist.
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, EnvError>;
    /// A Secret; `Ok(None)` when it does not exist.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, EnvError>;
    /// The Services of a namespace.
    async fn services(&self, namespace: &str) -> Result<Vec<Service>, EnvError>;
    /// A ServiceAccount token bound to the pod (the same one until 80% of its life has passed).
    async fn service_account_token(&self, req: &TokenFor) -> Result<String, EnvError>;
}

/// How long the watch of a ConfigMap or Secret lives on after its last read. Running pods
/// read theirs at every sync (every `sync_frequency`, 30 s by default), so a watch stops a
/// while after the last pod using its object is gone.
const OBJECT_WATCH_IDLE: Duration = Duration::from_secs(180);

/// A token and when it is to be replaced.
#[derive(Clone)]
struct CachedToken {
    token: String,
    refresh_at: SystemTime,
}

/// Reads ConfigMaps and Secrets through a watch of each one its pods use
/// ([`WatchedObjects`], the kubelet's watch-based manager: a pod's syncs do not ask the API
/// server again), Services from a cache of every Service (a watch, as the kubelet's Service
/// lister: a pod's start does not list them), and requests
/// tokens (TokenRequest), keeping each token until 80% of its lifetime has passed (at most
/// 24 h), as the kubelet's token manager does; tokens an hour past that (their pods are gone)
/// are dropped.
pub struct ApiObjects {
    client: kube::Client,
    config_maps: WatchedObjects<ConfigMap>,
    secrets: WatchedObjects<Secret>,
    tokens: Mutex<HashMap<TokenFor, CachedToken>>,
    services: reflector::Store<Service>,
    services_writer: Mutex<Option<reflector::store::Writer<Service>>>,
    /// Whether the Service cache holds a complete list (until then, Services are listed).
    services_synced: AtomicBool,
}

impl ApiObjects {
    /// Objects of the API server `client` talks to. Services are listed on every call until
    /// [`ApiObjects::watch_services`] runs.
    pub fn new(client: kube::Client) -> Self {
        let (services, writer) = reflector::store();
        Self {
            config_maps: WatchedObjects::new(client.clone(), OBJECT_WATCH_IDLE),
            secrets: WatchedObjects::new(client.clone(), OBJECT_WATCH_IDLE),
            client,
            tokens: Mutex::new(HashMap::new()),
            services,
            services_writer: Mutex::new(Some(writer)),
            services_synced: AtomicBool::new(false),
        }
    }

    /// Keeps the Service cache up to date until `cancel`; from its first complete list on,
    /// [`Objects::services`] answers from it. Runs once (a second call returns at once).
    pub async fn watch_services(&self, cancel: tokio_util::sync::CancellationToken) {
        use futures::StreamExt as _;
        use kube::runtime::WatchStreamExt as _;
        use kube::runtime::watcher::{self, Event};
        let Some(writer) = self.services_writer.lock().ok().and_then(|mut w| w.take()) else {
            return;
        };
        let api = kube::Api::<Service>::all(self.client.clone());
        // Managed fields are never read here: not keeping them makes every node's copy of
        // the cluster's Services smaller.
        let stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|s: &mut Service| s.metadata.managed_fields = None);
        let mut stream = reflector::reflector(writer, stream).boxed();
        loop {
            let ev = tokio::select! {
                _ = cancel.cancelled() => return,
                ev = stream.next() => ev,
            };
            match ev {
                Some(Ok(Event::InitDone)) => self.services_synced.store(true, Ordering::Release),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::debug!(error = %e, "service watch failed; retrying"),
                None => return,
            }
        }
    }

    async fn request_token(&self, req: &TokenFor) -> Result<CachedToken, EnvError> {
        let err = |message: String| EnvError::Api {
            kind: "serviceaccount token",
            namespace: req.namespace.clone(),
            name: req.service_account.clone(),
            message,
        };
        let body = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": req.audience.iter().collect::<Vec<_>>(),
                "expirationSeconds": req.expiration_seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                   "name": req.pod_name, "uid": req.pod_uid},
            },
        });
        let url = format!(
            "/api/v1/namespaces/{}/serviceaccounts/{}/token",
            req.namespace, req.service_account
        );
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
        let answer: serde_json::Value = self
            .client
            .request(request)
            .await
            .map_err(|e| err(e.to_string()))?;
        let token = answer["status"]["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err("the TokenRequest's answer has no token".into()))?
            .to_string();
        let now = SystemTime::now();
        let expires = answer["status"]["expirationTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(SystemTime::from)
            .unwrap_or(now + Duration::from_secs(req.expiration_seconds.max(0) as u64));
        let life = expires.duration_since(now).unwrap_or_default();
        let refresh_at = now + (life * 4 / 5).min(Duration::from_secs(24 * 3600));
        Ok(CachedToken { token, refresh_at })
    }
}

#[async_trait::async_trait]
impl Objects for ApiObjects {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, EnvError> {
        self.config_maps
            .get(namespace, name)
            .await
            .map(|o| o.map(|cm| ConfigMap::clone(&cm)))
            .map_err(|e| EnvError::Api {
                kind: "configmap",
                namespace: namespace.into(),
                name: name.into(),
                message: e.to_string(),
            })
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, EnvError> {
        self.secrets
            .get(namespace, name)
            .await
            .map(|o| o.map(|s| Secret::clone(&s)))
            .map_err(|e| EnvError::Api {
                kind: "secret",
                namespace: namespace.into(),
                name: name.into(),
                message: e.to_string(),
            })
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>, EnvError> {
        if self.services_synced.load(Ordering::Acquire) {
            return Ok(self
                .services
                .state()
                .iter()
                .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
                .map(|s| Service::clone(s))
                .collect());
        }
        kube::Api::<Service>::namespaced(self.client.clone(), namespace)
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .map_err(|e| EnvError::Api {
                kind: "services",
                namespace: namespace.into(),
                name: String::new(),
                message: e.to_string(),
            })
    }

    async fn service_account_token(&self, req: &TokenFor) -> Result<String, EnvError> {
        let cached = self.tokens.lock().ok().and_then(|t| t.get(req).cloned());
        if let Some(c) = cached
            && SystemTime::now() < c.refresh_at
        {
            return Ok(c.token);
        }
        let fresh = self.request_token(req).await?;
        if let Ok(mut t) = self.tokens.lock() {
            // Tokens of pods that are gone are not asked for again: drop those long due.
            let now = SystemTime::now();
            t.retain(|_, c| {
                now.duration_since(c.refresh_at).unwrap_or_default() < Duration::from_secs(3600)
            });
            t.insert(req.clone(), fresh.clone());
        }
        Ok(fresh.token)
    }
}

/// The service environment of `pod`: its namespace's Services unless `enableServiceLinks` is
/// false, and the `kubernetes` Service always.
pub async fn service_links(
    pod: &Pod,
    objects: &dyn Objects,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut services = Vec::new();
    if links {
        services = objects.services(&ns).await?;
    }
    if !links || ns != "default" {
        services.extend(
            objects
                .services("default")
                .await?
                .into_iter()
                .filter(|s| s.metadata.name.as_deref() == Some("kubernetes")),
        );
    }
    Ok(crate::service_env::service_env(&services))
}

/// ConfigMap data and binaryData (as text) merged.
pub fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.clone().unwrap_or_default() {
        out.insert(k, v.0);
    }
    out
}

/// Secret data and stringData merged.
pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in s.string_data.clone().unwrap_or_default() {
        out.insert(k, v.into_bytes());
    }
    out
}

/// What the environment may refer to besides the pod spec.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The pod's IPs.
    pub pod_ips: Vec<String>,
    /// The node's IPs.
    pub host_ips: Vec<String>,
    /// Node allocatable CPU (millicores), for unset CPU limits.
    pub allocatable_cpu_milli: i64,
    /// Node allocatable memory (bytes), for unset memory limits.
    pub allocatable_memory: i64,
    /// Node allocatable ephemeral storage (bytes).
    pub allocatable_storage: i64,
}

/// Expands `$(VAR)` references with Kubernetes' rules: `$$` is a literal `$`, an unknown
/// variable stays as written.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push_str(&input[last..i]);
                    out.push('$');
                    i += 2;
                    last = i;
                    continue;
                }
                b'(' => {
                    if let Some(close) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + close];
                        out.push_str(&input[last..i]);
                        match vars.get(name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&input[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        last = i;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&input[last..]);
    out
}

/// The value of a `fieldRef` path for a pod.
pub fn field_value(pod: &Pod, path: &str, ctx: &Context) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let spec = crate::pods::spec_of(pod);
    let map_key = |prefix: &str| -> Option<String> {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_string)
    };
    if let Some(k) = map_key("metadata.labels") {
        return Ok(m
            .labels
            .as_ref()
            .and_then(|l| l.get(&k).cloned())
            .unwrap_or_default());
    }
    if let Some(k) = map_key("metadata.annotations") {
        return Ok(m
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k).cloned())
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.clone().unwrap_or_default(),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => ctx.pod_ips.join(","),
        "status.hostIP" => ctx.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => ctx.host_ips.join(","),
        other => return Err(EnvError::FieldPath(other.into())),
    })
}

/// The value of a `resourceFieldRef` for a container.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    ctx: &Context,
) -> Result<String, EnvError> {
    let r = container.resources.clone().unwrap_or_default();
    let (section, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::Resource(resource.into()))?;
    let map = match section {
        "limits" => r.limits.clone().unwrap_or_default(),
        "requests" => {
            let mut req = r.requests.clone().unwrap_or_default();
            for (k, v) in r.limits.clone().unwrap_or_default() {
                req.entry(k).or_insert(v);
            }
            req
        }
        _ => return Err(EnvError::Resource(resource.into())),
    };
    let q = map.get(name).and_then(|q| parse_quantity(q).ok());
    let divisor = divisor.and_then(|d| parse_quantity(d).ok());
    let ceil_div = |a: i128, b: i128| if b <= 0 { a } else { (a + b - 1) / b };
    match name {
        "cpu" => {
            let milli = match (&q, section) {
                (Some(q), _) => q.to_milli(),
                (None, "limits") => ctx.allocatable_cpu_milli,
                (None, _) => 0,
            };
            let d = divisor
                .map(|d| d.to_milli())
                .filter(|d| *d > 0)
                .unwrap_or(1000);
            Ok(ceil_div(milli as i128, d as i128).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let bytes = match (&q, section) {
                (Some(q), _) => q.to_value(),
                (None, "limits") if name == "memory" => ctx.allocatable_memory,
                (None, "limits") => ctx.allocatable_storage,
                (None, _) => 0,
            };
            let d = divisor
                .map(|d| d.to_value())
                .filter(|d| *d > 0)
                .unwrap_or(1);
            Ok(ceil_div(bytes as i128, d as i128).to_string())
        }
        _ => Err(EnvError::Resource(resource.into())),
    }
}

/// Whether a name may be an environment variable (C identifier-ish, as Kubernetes allows:
/// no `=` and not empty).
fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.contains('\0')
}

/// The container's environment, in order (`envFrom` first, then `env`, later entries
/// overriding earlier ones of the same name).
pub async fn resolve(
    pod: &Pod,
    container: &Container,
    objects: &dyn Objects,
    ctx: &Context,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let set = |order: &mut Vec<String>, vars: &mut HashMap<String, String>, k: String, v| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    let mut cm_cache: HashMap<String, Option<ConfigMap>> = HashMap::new();
    let mut secret_cache: HashMap<String, Option<Secret>> = HashMap::new();
    for (k, v) in service_links(pod, objects).await? {
        set(&mut order, &mut vars, k, v);
    }

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        // The data of this entry's ConfigMap and/or Secret (an optional missing one adds none).
        let mut sources = Vec::new();
        if let Some(r) = &from.config_map_ref {
            let cm = match cm_cache.get(&r.name) {
                Some(c) => c.clone(),
                None => {
                    let c = objects.config_map(&ns, &r.name).await?;
                    cm_cache.insert(r.name.clone(), c.clone());
                    c
                }
            };
            match cm {
                Some(cm) => sources.push(config_map_data(&cm)),
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        }
        if let Some(r) = &from.secret_ref {
            let secret = match secret_cache.get(&r.name) {
                Some(s) => s.clone(),
                None => {
                    let s = objects.secret(&ns, &r.name).await?;
                    secret_cache.insert(r.name.clone(), s.clone());
                    s
                }
            };
            match secret {
                Some(s) => sources.push(secret_data(&s)),
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        }
        for (k, v) in sources.into_iter().flatten() {
            let key = format!("{prefix}{k}");
            if valid_env_name(&key) {
                set(
                    &mut order,
                    &mut vars,
                    key,
                    String::from_utf8_lossy(&v).into(),
                );
            }
        }
    }

    for e in container.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                Some(field_value(pod, &f.field_path, ctx)?)
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                    Some(n) => pod
                        .spec
                        .as_ref()
                        .and_then(|s| {
                            s.containers
                                .iter()
                                .chain(s.init_containers.iter().flatten())
                                .find(|c| c.name == n)
                                .cloned()
                        })
                        .ok_or_else(|| EnvError::Resource(format!("container {n}")))?,
                    None => container.clone(),
                };
                Some(resource_value(
                    &target,
                    &r.resource,
                    r.divisor.as_ref(),
                    ctx,
                )?)
            } else if let Some(r) = &from.config_map_key_ref {
                let name = r.name.clone();
                let cm = match cm_cache.get(&name) {
                    Some(c) => c.clone(),
                    None => {
                        let c = objects.config_map(&ns, &name).await?;
                        cm_cache.insert(name.clone(), c.clone());
                        c
                    }
                };
                let optional = r.optional == Some(true);
                match cm {
                    None if optional => None,
                    None => return Err(EnvError::ConfigMapNotFound(name)),
                    Some(cm) => match config_map_data(&cm).remove(&r.key) {
                        Some(v) => Some(String::from_utf8_lossy(&v).into_owned()),
                        None if optional => None,
                        None => {
                            return Err(EnvError::ConfigMapKey {
                                namespace: ns.clone(),
                                name,
                                key: r.key.clone(),
                            });
                        }
                    },
                }
            } else if let Some(r) = &from.secret_key_ref {
                let name = r.name.clone();
                let s = match secret_cache.get(&name) {
                    Some(s) => s.clone(),
                    None => {
                        let s = objects.secret(&ns, &name).await?;
                        secret_cache.insert(name.clone(), s.clone());
                        s
                    }
                };
                let optional = r.optional == Some(true);
                match s {
                    None if optional => None,
                    None => return Err(EnvError::SecretNotFound(name)),
                    Some(s) => match secret_data(&s).remove(&r.key) {
                        Some(v) => Some(String::from_utf8_lossy(&v).into_owned()),
                        None if optional => None,
                        None => {
                            return Err(EnvError::SecretKey {
                                namespace: ns.clone(),
                                name,
                                key: r.key.clone(),
                            });
                        }
                    },
                }
            } else {
                Some(String::new())
            }
        } else {
            Some(expand(e.value.as_deref().unwrap_or_default(), &vars))
        };
        if let Some(v) = value {
            set(&mut order, &mut vars, e.name.clone(), v);
        }
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.get(&k).cloned().unwrap_or_default();
            (k, v)
        })
        .collect())
}

/// The container's command and args with `$(VAR)` expanded from its environment.
pub fn expand_command(
    container: &Container,
    env: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let ex = |v: &Option<Vec<String>>| {
        v.iter()
            .flatten()
            .map(|s| expand(s, &vars))
            .collect::<Vec<_>>()
    };
    (ex(&container.command), ex(&container.args))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// ConfigMaps and Secrets from maps.
    #[derive(Default)]
    pub struct MapObjects {
        pub config_maps: Mutex<HashMap<String, ConfigMap>>,
        pub secrets: Mutex<HashMap<String, Secret>>,
        pub services: Mutex<Vec<Service>>,
    }

    #[async_trait::async_trait]
    impl Objects for MapObjects {
        async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, EnvError> {
            Ok(self
                .config_maps
                .lock()
                .unwrap()
                .get(&format!("{ns}/{name}"))
                .cloned())
        }
        async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, EnvError> {
            Ok(self
                .secrets
                .lock()
                .unwrap()
                .get(&format!("{ns}/{name}"))
                .cloned())
        }
        async fn services(&self, ns: &str) -> Result<Vec<Service>, EnvError> {
            Ok(self
                .services
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
                .cloned()
                .collect())
        }
        async fn service_account_token(&self, req: &TokenFor) -> Result<String, EnvError> {
            Ok(format!(
                "token-of-{}/{}-for-{}",
                req.namespace, req.service_account, req.pod_name
            ))
        }
    }

    impl MapObjects {
        pub fn with(cms: serde_json::Value, secrets: serde_json::Value) -> Self {
            let o = MapObjects::default();
            for cm in cms.as_array().into_iter().flatten() {
                let cm: ConfigMap = serde_json::from_value(cm.clone()).unwrap();
                let key = format!(
                    "{}/{}",
                    cm.metadata.namespace.clone().unwrap(),
                    cm.metadata.name.clone().unwrap()
                );
                o.config_maps.lock().unwrap().insert(key, cm);
            }
            for s in secrets.as_array().into_iter().flatten() {
                let s: Secret = serde_json::from_value(s.clone()).unwrap();
                let key = format!(
                    "{}/{}",
                    s.metadata.namespace.clone().unwrap(),
                    s.metadata.name.clone().unwrap()
                );
                o.secrets.lock().unwrap().insert(key, s);
            }
            o
        }
    }

    #[test]
    fn expansion_rules() {
        let vars: HashMap<String, String> =
            [("A".to_string(), "x".to_string()), ("B".into(), "y".into())].into();
        assert_eq!(expand("$(A)-$(B)", &vars), "x-y");
        assert_eq!(expand("$(C)", &vars), "$(C)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("a$b$", &vars), "a$b$");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("héllo $(A)", &vars), "héllo x");
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                         "labels": {"app": "web"}, "annotations": {"team": "a"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa",
              "containers": [{"name": "c", "image": "busybox",
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                            {"secretRef": {"name": "sec"}}],
                "env": [
                  {"name": "PLAIN", "value": "v-$(CFG_mode)"},
                  {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                  {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                  {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                  {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                  {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                  {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                  {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                  {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                  {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                  {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
                  {"name": "user", "value": "override"}
                ]}]}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn resolves_every_source() {
        let objects = MapObjects::with(
            serde_json::json!([{"metadata": {"name": "cfg", "namespace": "ns1"},
                                "data": {"mode": "fast", "level": "3"}}]),
            serde_json::json!([{"metadata": {"name": "sec", "namespace": "ns1"},
                                "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}}]),
        );
        let p = pod();
        let ctx = Context {
            pod_ips: vec!["10.244.0.5".into()],
            ..Default::default()
        };
        let env = resolve(&p, &p.spec.as_ref().unwrap().containers[0], &objects, &ctx)
            .await
            .unwrap();
        let m: HashMap<_, _> = env.iter().cloned().collect();
        assert_eq!(m["CFG_mode"], "fast");
        assert_eq!(m["CFG_level"], "3");
        assert_eq!(m["password"], "hunter2");
        assert_eq!(m["PLAIN"], "v-fast");
        assert_eq!(m["POD"], "web");
        assert_eq!(m["NS"], "ns1");
        assert_eq!(m["APP"], "web");
        assert_eq!(m["IP"], "10.244.0.5");
        assert_eq!(m["NODE"], "n1");
        assert_eq!(m["CPU"], "500");
        assert_eq!(m["MEM"], "64");
        assert_eq!(m["KEY"], "fast");
        assert_eq!(m["PASS"], "hunter2");
        assert!(!m.contains_key("OPT"));
        // env overrides envFrom, keeping the first position.
        assert_eq!(m["user"], "override");
        assert_eq!(env.iter().filter(|(k, _)| k == "user").count(), 1);
    }

    #[tokio::test]
    async fn missing_references_are_errors() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let none = MapObjects::default();
        let err = resolve(&p, c, &none, &Context::default())
            .await
            .unwrap_err();
        assert_eq!(err, EnvError::ConfigMapNotFound("cfg".into()));
        assert_eq!(err.to_string(), "configmap \"cfg\" not found");
        let objects = MapObjects::with(
            serde_json::json!([{"metadata": {"name": "cfg", "namespace": "ns1"}, "data": {}}]),
            serde_json::json!([{"metadata": {"name": "sec", "namespace": "ns1"}, "data": {}}]),
        );
        let err = resolve(&p, c, &objects, &Context::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "couldn't find key mode in ConfigMap ns1/cfg"
        );
    }

    #[test]
    fn resources_default_to_allocatable() {
        let c: Container = serde_json::from_value(serde_json::json!({"name": "c"})).unwrap();
        let ctx = Context {
            allocatable_cpu_milli: 2500,
            allocatable_memory: 1 << 30,
            ..Default::default()
        };
        assert_eq!(resource_value(&c, "limits.cpu", None, &ctx).unwrap(), "3");
        assert_eq!(
            resource_value(&c, "limits.memory", None, &ctx).unwrap(),
            "1073741824"
        );
        assert_eq!(resource_value(&c, "requests.cpu", None, &ctx).unwrap(), "0");
        assert!(resource_value(&c, "limits.gpu", None, &ctx).is_err());
        let (cmd, args) = expand_command(
            &serde_json::from_value(serde_json::json!({"name": "c",
                "command": ["sh", "-c"], "args": ["echo $(X) $$(X)"]}))
            .unwrap(),
            &[("X".into(), "1".into())],
        );
        assert_eq!(cmd, vec!["sh", "-c"]);
        assert_eq!(args, vec!["echo 1 $(X)"]);
    }
}

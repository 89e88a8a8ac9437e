//! Who may use the kubelet's API, decided as Kubernetes' kubelet does in webhook mode.
//!
//! **Authentication**: a client certificate verified against `--client-ca-file` (by rustls,
//! during the handshake) names the user (CN) and groups (O); else a bearer token is sent to
//! the API server in a TokenReview (`authentication.k8s.io/v1`), its answer reused for
//! `--authentication-token-webhook-cache-ttl`; else the request is anonymous: 401, unless
//! `--anonymous-auth` lets it on as `system:anonymous`.
//!
//! **Authorization**: a SubjectAccessReview (`authorization.k8s.io/v1`) asks the API server
//! whether the user may `<verb>` the `nodes/<subresource>` named after this node — the verb
//! from the HTTP method (`get`, `create`, `update`, `patch`, `delete`), the subresource from
//! the path (`/stats…` → `stats`, `/metrics…` → `metrics`, `/logs…` → `log`, `/spec…` →
//! `spec`, anything else — container logs, pods, exec — `proxy`). Allowing answers are reused
//! for `--authorization-webhook-cache-authorized-ttl`; a denial is 403 with Kubernetes'
//! message (`Forbidden (user=jane, verb=get, resource=nodes, subresource=proxy)`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

/// The group every authenticated user is in.
const AUTHENTICATED: &str = "system:authenticated";
/// Entries a cache holds before expired ones are dropped (and, if still full, all).
const CACHE_LIMIT: usize = 4096;

/// The user a verified client certificate proved, for every request of its connection.
#[derive(Clone, Debug, Default)]
pub struct PeerUser(pub Option<UserInfo>);

impl PeerUser {
    /// The subject of the connection's client certificate (rustls verified it against the
    /// client CA; without one, no certificate is asked for).
    pub fn of(tls: &rustls::ServerConnection) -> Self {
        let Some(der) = tls.peer_certificates().and_then(|c| c.first()) else {
            return PeerUser(None);
        };
        match rkube_machinery::https::x509::subject_of(der) {
            Ok(s) if !s.common_name.is_empty() => {
                let mut groups = s.organizations;
                groups.push(AUTHENTICATED.to_string());
                PeerUser(Some(UserInfo {
                    username: Some(s.common_name),
                    groups: Some(groups),
                    ..Default::default()
                }))
            }
            Ok(_) => PeerUser(None),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable client certificate");
                PeerUser(None)
            }
        }
    }
}

/// What a request asks of the node, as the SubjectAccessReview names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `create`, `update`, `patch`, `delete`.
    pub verb: &'static str,
    /// `stats`, `metrics`, `log`, `spec` or `proxy`.
    pub subresource: &'static str,
}

/// The attributes of a request, as Kubernetes' kubelet maps them.
pub fn attributes(method: &Method, path: &str) -> Attributes {
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    };
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let subresource = if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/spec") {
        "spec"
    } else {
        "proxy"
    };
    Attributes { verb, subresource }
}

/// Answers kept for a while.
struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: String, v: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_LIMIT {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= CACHE_LIMIT {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), v));
    }
}

/// Why a request was not let through.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials (and anonymous requests are refused), or a token the API server did not
    /// authenticate.
    #[error("Unauthorized")]
    Unauthenticated,
    /// The API server could not be asked.
    #[error("asking the API server: {0}")]
    Api(#[from] kube::Error),
}

/// The kubelet's authenticator and authorizer.
pub struct ApiAuth {
    client: kube::Client,
    node_name: String,
    anonymous: bool,
    tokens: TtlCache<UserInfo>,
    allowed: TtlCache<()>,
}

impl ApiAuth {
    /// For node `node_name`, asking the API server through `client`.
    pub fn new(
        client: kube::Client,
        node_name: &str,
        serving: &crate::config::ServingConfig,
    ) -> Self {
        Self {
            client,
            node_name: node_name.to_string(),
            anonymous: serving.anonymous_auth,
            tokens: TtlCache::new(serving.authentication_cache_ttl),
            allowed: TtlCache::new(serving.authorization_cache_ttl),
        }
    }

    /// Who a request comes from: its certificate's subject, else its bearer token's user,
    /// else `system:anonymous` if anonymous requests are allowed.
    pub async fn authenticate(
        &self,
        peer: Option<&UserInfo>,
        authorization: Option<&str>,
    ) -> Result<UserInfo, AuthError> {
        if let Some(u) = peer {
            return Ok(u.clone());
        }
        let Some(token) = authorization.and_then(rkube_machinery::https::bearer_token) else {
            if self.anonymous {
                return Ok(UserInfo {
                    username: Some("system:anonymous".into()),
                    groups: Some(vec!["system:unauthenticated".into()]),
                    ..Default::default()
                });
            }
            return Err(AuthError::Unauthenticated);
        };
        if let Some(u) = self.tokens.get(token) {
            return Ok(u);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let status = answer.status.unwrap_or_default();
        match (status.authenticated, status.user) {
            (Some(true), Some(user)) => {
                self.tokens.put(token.to_string(), user.clone());
                Ok(user)
            }
            _ => {
                tracing::debug!(error = ?status.error, "a bearer token was not authenticated");
                Err(AuthError::Unauthenticated)
            }
        }
    }

    /// Whether `user` may do `attrs` on this node.
    pub async fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Result<bool, AuthError> {
        let spec = SubjectAccessReviewSpec {
            user: user.username.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(attrs.verb.into()),
                group: Some(String::new()),
                version: Some("v1".into()),
                resource: Some("nodes".into()),
                subresource: Some(attrs.subresource.into()),
                name: Some(self.node_name.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let key = serde_json::to_string(&spec).unwrap_or_default();
        if self.allowed.get(&key).is_some() {
            return Ok(true);
        }
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        if allowed {
            self.allowed.put(key, ());
        }
        Ok(allowed)
    }
}

fn text(code: StatusCode, msg: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], msg).into_response()
}

/// The filter in front of every handler of the API port: 401 without valid credentials, 403
/// when the API server does not authorize the request, 500 when it cannot be asked.
pub async fn guard(State(auth): State<Arc<ApiAuth>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<PeerUser>().and_then(|p| p.0.clone());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let user = match auth
        .authenticate(peer.as_ref(), authorization.as_deref())
        .await
    {
        Ok(u) => u,
        Err(AuthError::Unauthenticated) => {
            return text(StatusCode::UNAUTHORIZED, "Unauthorized".into());
        }
        Err(e) => {
            tracing::warn!(error = %e, "authenticating a request");
            return text(StatusCode::UNAUTHORIZED, "Unauthorized".into());
        }
    };
    let attrs = attributes(req.method(), req.uri().path());
    let name = user.username.clone().unwrap_or_default();
    let described = format!(
        "user={name}, verb={}, resource=nodes, subresource={}",
        attrs.verb, attrs.subresource
    );
    match auth.authorize(&user, &attrs).await {
        Ok(true) => next.run(req).await,
        Ok(false) => {
            tracing::debug!(path = %req.uri().path(), "forbidden ({described})");
            text(StatusCode::FORBIDDEN, format!("Forbidden ({described})"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "authorizing a request");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Authorization error ({described})"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_node_subresources() {
        let a = |m: Method, p: &str| {
            let a = attributes(&m, p);
            (a.verb, a.subresource)
        };
        assert_eq!(a(Method::GET, "/stats/summary"), ("get", "stats"));
        assert_eq!(a(Method::GET, "/stats"), ("get", "stats"));
        assert_eq!(a(Method::GET, "/statsx"), ("get", "proxy"));
        assert_eq!(a(Method::GET, "/metrics"), ("get", "metrics"));
        assert_eq!(a(Method::GET, "/metrics/cadvisor"), ("get", "metrics"));
        assert_eq!(a(Method::GET, "/logs/syslog"), ("get", "log"));
        assert_eq!(a(Method::GET, "/spec/"), ("get", "spec"));
        assert_eq!(
            a(Method::GET, "/containerLogs/default/web/c"),
            ("get", "proxy")
        );
        assert_eq!(a(Method::GET, "/pods"), ("get", "proxy"));
        assert_eq!(a(Method::GET, "/healthz"), ("get", "proxy"));
        assert_eq!(a(Method::POST, "/exec/a/b/c"), ("create", "proxy"));
        assert_eq!(a(Method::DELETE, "/x"), ("delete", "proxy"));
    }

    #[test]
    fn caches_expire_and_stay_bounded() {
        let c = TtlCache::new(Duration::from_millis(50));
        c.put("a".into(), 1);
        assert_eq!(c.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("a"), None);
        for i in 0..(CACHE_LIMIT + 10) {
            c.put(i.to_string(), i);
        }
        assert!(c.entries.lock().unwrap().len() <= CACHE_LIMIT);
        let off = TtlCache::new(Duration::ZERO);
        off.put("a".into(), 1);
        assert_eq!(off.get("a"), None);
    }
}

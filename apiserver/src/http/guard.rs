//! The filter every request passes before its handler, in Kubernetes' order: authentication
//! (401 for missing or bad credentials, except the public health and version paths),
//! impersonation (`Impersonate-User`/`-Group`/`-Uid` headers, `kubectl --as`, allowed by the
//! `impersonate` verb), authorization (403 with Kubernetes' message), limits (429 with `Retry-After` past
//! `--max-requests-inflight` requests, watches excluded, or past `--max-watches-per-user`
//! watches), then the audit record of the response.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::request::{self, PathKind, Query};
use crate::audit::AuditEvent;
use crate::auth::{Attributes, Decision, PeerIdentity, UserInfo, forbidden_message};
use crate::error::{ApiError, qualified};
use rkube_machinery::selector::FieldSelector;

/// The connection a request came on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: SocketAddr,
}

/// Paths anyone may read without credentials.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
    )
}

/// Request limits.
pub struct Limits {
    inflight: Arc<Semaphore>,
    max_watches: usize,
    watches: Mutex<HashMap<String, usize>>,
}

/// One open watch of a user; released when dropped.
pub struct WatchSlot {
    limits: Arc<Limits>,
    user: String,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut w = self.limits.watches.lock().expect("watch counts");
        if let Some(n) = w.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.user);
            }
        }
    }
}

impl Limits {
    /// At most `max_inflight` requests at once (watches excluded) and `max_watches` watches per
    /// user.
    pub fn new(max_inflight: usize, max_watches: usize) -> Self {
        Self {
            inflight: Arc::new(Semaphore::new(max_inflight.max(1))),
            max_watches: max_watches.max(1),
            watches: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one short request, if one is free.
    pub fn request(&self) -> Option<OwnedSemaphorePermit> {
        self.inflight.clone().try_acquire_owned().ok()
    }

    /// A slot for one more watch of `user`, if under the limit.
    pub fn watch(self: &Arc<Self>, user: &str) -> Option<WatchSlot> {
        let mut w = self.watches.lock().expect("watch counts");
        let n = w.entry(user.to_string()).or_insert(0);
        if *n >= self.max_watches {
            return None;
        }
        *n += 1;
        Some(WatchSlot {
            limits: self.clone(),
            user: user.to_string(),
        })
    }

    /// Open watches of `user`.
    pub fn watches_of(&self, user: &str) -> usize {
        self.watches
            .lock()
            .expect("watch counts")
            .get(user)
            .copied()
            .unwrap_or(0)
    }
}

/// The authorization attributes of a request.
pub fn attributes(method: &Method, path: &str, query: Option<&str>) -> Attributes {
    let non_resource = || Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        resource_request: false,
        path: path.to_string(),
        ..Default::default()
    };
    let Ok(Some(PathKind::Resource(t))) = request::parse_path(path) else {
        return non_resource();
    };
    let q = Query::parse(query);
    let named = t.name.is_some();
    let verb = match *method {
        Method::GET | Method::HEAD if t.watch_prefix || q.flag("watch") => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => return non_resource(),
    };
    // A namespace is its own namespace, as Kubernetes' request info says.
    let namespace = if std::ptr::eq(t.def, &crate::resources::NAMESPACES) {
        t.name.clone().unwrap_or_default()
    } else {
        t.namespace.clone().unwrap_or_default()
    };
    // A list or watch of one object by `fieldSelector=metadata.name=…` names that object, as
    // Kubernetes' request info does: RBAC's resourceNames and the Node authorizer see it.
    let name = t.name.clone().or_else(|| {
        matches!(verb, "list" | "watch")
            .then(|| q.get("fieldSelector"))
            .flatten()
            .and_then(|f| FieldSelector::parse(f).ok())
            .and_then(|f| f.requires_exact_match("metadata.name").map(str::to_string))
    });
    Attributes {
        verb: verb.to_string(),
        resource_request: true,
        api_group: t.def.group.to_string(),
        resource: t.def.resource.to_string(),
        subresource: t.sub.clone().unwrap_or_default(),
        namespace,
        name: name.unwrap_or_default(),
        path: path.to_string(),
    }
}

/// The user a request impersonates (`Impersonate-User`, `Impersonate-Group`,
/// `Impersonate-Uid`, `Impersonate-Extra-<key>`), if it asks to, after checking that `real`
/// may impersonate each part; the 403 answer otherwise.
async fn impersonate(
    st: &AppState,
    real: &UserInfo,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Arc<UserInfo>>, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let user = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid").into_iter().next();
    let extra: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix("impersonate-extra-")?;
            Some((key.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    let Some(username) = user else {
        if !groups.is_empty() || uid.is_some() || !extra.is_empty() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, uid or extra without impersonating a user",
            ));
        }
        return Ok(None);
    };
    let check = |resource: &str, group: &str, namespace: &str, name: &str| Attributes {
        verb: "impersonate".into(),
        resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: name.into(),
        ..Default::default()
    };
    let mut wanted = Vec::new();
    let sa = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    match sa {
        Some((ns, name)) => wanted.push(check("serviceaccounts", "", ns, name)),
        None => wanted.push(check("users", "", "", &username)),
    }
    wanted.extend(groups.iter().map(|g| check("groups", "", "", g)));
    if let Some(u) = &uid {
        wanted.push(check("uids", "authentication.k8s.io", "", u));
    }
    for (k, v) in &extra {
        let mut a = check("userextras", "authentication.k8s.io", "", v);
        a.subresource = k.clone();
        wanted.push(a);
    }
    for a in &wanted {
        if !matches!(
            st.authz.authorize(&st.api, real, a).await,
            Decision::Allow(_)
        ) {
            return Err(forbidden(real, a, ""));
        }
    }
    let mut groups = groups;
    if let Some((ns, _)) = sa
        && groups.is_empty()
    {
        groups = vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ];
    }
    let mut u = UserInfo::authenticated(username, uid.as_deref().unwrap_or_default(), groups);
    for (k, v) in extra {
        u.extra.entry(k).or_default().push(v);
    }
    Ok(Some(Arc::new(u)))
}

/// The 401 answer.
fn unauthorized() -> Response {
    ApiError::unauthorized().into_response()
}

/// The 403 answer for a denied request.
pub fn forbidden(user: &UserInfo, a: &Attributes, reason: &str) -> ApiError {
    let mut msg = forbidden_message(user, a);
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    let prefix = if !a.resource_request {
        "forbidden".to_string()
    } else if a.name.is_empty() {
        format!("{} is forbidden", qualified(&a.api_group, &a.resource))
    } else {
        format!(
            "{} {:?} is forbidden",
            qualified(&a.api_group, &a.resource),
            a.name
        )
    };
    let mut e = ApiError::forbidden(format!("{prefix}: {msg}"));
    if a.resource_request {
        e.details = Some(Box::new(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                group: (!a.api_group.is_empty()).then(|| a.api_group.clone()),
                kind: Some(a.resource.clone()),
                name: (!a.name.is_empty()).then(|| a.name.clone()),
                ..Default::default()
            },
        ));
    }
    e
}

fn too_many(what: &str) -> Response {
    ApiError::too_many_requests(
        format!("Too many requests, please try again later. ({what})"),
        1,
    )
    .into_response()
}

/// Whether a request is long-running (excluded from the in-flight limit).
fn long_running(a: &Attributes, query: Option<&str>) -> bool {
    a.verb == "watch"
        || (a.subresource == "log" && Query::parse(query).flag("follow"))
        || (a.resource == "pods"
            && matches!(a.subresource.as_str(), "exec" | "attach" | "portforward"))
}

/// The filter: authentication, authorization, limits, audit.
pub async fn guard(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let method = req.method().clone();
    let public = is_public(&path);
    let peer = req
        .extensions()
        .get::<PeerIdentity>()
        .and_then(|p| p.0.clone());
    let remote = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.remote.ip().to_string())
        .unwrap_or_default();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let attrs = attributes(&method, &path, query.as_deref());
    let audit = |user: Option<&UserInfo>, code: u16, reason: String| {
        if let Some(log) = &st.audit {
            log.record(AuditEvent {
                kind: "Event",
                timestamp: jiff::Timestamp::now().to_string(),
                audit_id: uuid::Uuid::new_v4().to_string(),
                user: user.map(|u| u.username.clone()).unwrap_or_default(),
                groups: user.map(|u| u.groups.clone()).unwrap_or_default(),
                verb: attrs.verb.clone(),
                api_group: attrs.api_group.clone(),
                resource: attrs.resource.clone(),
                subresource: attrs.subresource.clone(),
                namespace: attrs.namespace.clone(),
                name: attrs.name.clone(),
                request_uri: match &query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                },
                source_ip: remote.clone(),
                code,
                reason,
            });
        }
    };
    let user = match st
        .authn
        .authenticate(&st.api, peer.as_ref(), authorization.as_deref())
        .await
    {
        Ok(Some(u)) => u,
        Ok(None) if public => Arc::new(UserInfo::anonymous()),
        Ok(None) => {
            audit(None, 401, "no credentials".into());
            return unauthorized();
        }
        Err(e) => {
            tracing::debug!(%path, error = %e, "authentication failed");
            audit(None, 401, e.to_string());
            return unauthorized();
        }
    };
    let user = match impersonate(&st, &user, req.headers()).await {
        Ok(Some(as_user)) => {
            tracing::debug!(real = %user.username, as_user = %as_user.username, "impersonation");
            as_user
        }
        Ok(None) => user,
        Err(e) => {
            audit(Some(&user), e.code, e.message.clone());
            return e.into_response();
        }
    };
    let mut reason = String::new();
    if !public {
        match st.authz.authorize(&st.api, &user, &attrs).await {
            Decision::Allow(why) => reason = why,
            Decision::Deny(why) => {
                audit(Some(&user), 403, why.clone());
                return forbidden(&user, &attrs, &why).into_response();
            }
            Decision::NoOpinion => {
                audit(Some(&user), 403, String::new());
                return forbidden(&user, &attrs, "").into_response();
            }
        }
    }
    let long = long_running(&attrs, query.as_deref());
    let permit = if long {
        None
    } else {
        match st.limits.request() {
            Some(p) => Some(p),
            None => {
                audit(Some(&user), 429, "max-requests-inflight".into());
                return too_many("max-requests-inflight");
            }
        }
    };
    let slot = if attrs.verb == "watch" {
        match st.limits.watch(&user.username) {
            Some(s) => Some(s),
            None => {
                audit(Some(&user), 429, "max-watches-per-user".into());
                return too_many("max-watches-per-user");
            }
        }
    } else {
        None
    };
    req.extensions_mut().insert(user.clone());
    let resp = next.run(req).await;
    drop(permit);
    audit(Some(&user), resp.status().as_u16(), reason);
    match slot {
        // The watch slot is held as long as the response streams.
        Some(slot) => {
            let (parts, body) = resp.into_parts();
            let stream = body.into_data_stream().map(move |chunk| {
                let _held = &slot;
                chunk
            });
            Response::from_parts(parts, Body::from_stream(stream))
        }
        None => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_attributes() {
        let a = attributes(&Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str(), a.namespace.as_str()),
            ("list", "pods", "default")
        );
        let a = attributes(&Method::GET, "/api/v1/pods", Some("watch=1"));
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("watch", ""));
        let a = attributes(
            &Method::PUT,
            "/apis/apps/v1/namespaces/x/deployments/d/scale",
            None,
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.api_group.as_str(),
                a.subresource.as_str(),
                a.name.as_str()
            ),
            ("update", "apps", "scale", "d")
        );
        let a = attributes(&Method::DELETE, "/api/v1/namespaces/x/configmaps", None);
        assert_eq!(a.verb, "deletecollection");
        // A list or watch of one object by field selector names it; other selectors do not.
        let a = attributes(
            &Method::GET,
            "/api/v1/namespaces/x/configmaps",
            Some("watch=true&fieldSelector=metadata.name%3Dkube-root-ca.crt"),
        );
        assert_eq!(
            (a.verb.as_str(), a.name.as_str()),
            ("watch", "kube-root-ca.crt")
        );
        let a = attributes(
            &Method::GET,
            "/api/v1/namespaces/x/secrets",
            Some("fieldSelector=type%3Dx,metadata.name%3D%3Ds"),
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "s"));
        let a = attributes(
            &Method::GET,
            "/api/v1/namespaces/x/secrets",
            Some("fieldSelector=metadata.name%21%3Ds"),
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", ""));
        let a = attributes(&Method::GET, "/api/v1/namespaces/team", None);
        assert_eq!(
            (a.verb.as_str(), a.namespace.as_str(), a.name.as_str()),
            ("get", "team", "team")
        );
        let a = attributes(&Method::GET, "/metrics", None);
        assert!(!a.resource_request);
        assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", "/metrics"));
        let a = attributes(&Method::GET, "/apis/apps/v1", None);
        assert!(!a.resource_request);
    }

    #[test]
    fn forbidden_messages_read_like_kubernetes() {
        let u = UserInfo::authenticated("jane", "", vec![]);
        let a = attributes(&Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            forbidden(&u, &a, "").message,
            "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let a = attributes(
            &Method::GET,
            "/apis/apps/v1/namespaces/default/deployments/web",
            None,
        );
        assert_eq!(
            forbidden(&u, &a, "").message,
            "deployments.apps \"web\" is forbidden: User \"jane\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"default\""
        );
        let a = attributes(&Method::GET, "/api/v1/nodes", None);
        assert!(
            forbidden(&u, &a, "")
                .message
                .ends_with("at the cluster scope")
        );
        let a = attributes(&Method::GET, "/metrics", None);
        assert_eq!(
            forbidden(&u, &a, "").message,
            "forbidden: User \"jane\" cannot get path \"/metrics\""
        );
    }

    #[test]
    fn watch_slots_are_counted_per_user() {
        let l = Arc::new(Limits::new(1, 2));
        let a = l.watch("u").unwrap();
        let _b = l.watch("u").unwrap();
        assert!(l.watch("u").is_none());
        assert!(l.watch("v").is_some());
        drop(a);
        assert_eq!(l.watches_of("u"), 1);
        assert!(l.watch("u").is_some());
        let p = l.request().unwrap();
        assert!(l.request().is_none());
        drop(p);
        assert!(l.request().is_some());
    }
}

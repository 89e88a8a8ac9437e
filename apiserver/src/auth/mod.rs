//! Authentication and authorization: who a request comes from ([`UserInfo`], from an x509
//! client certificate, a static token, a bootstrap token, or a ServiceAccount token) and
//! whether it may do what it asks ([`Attributes`] checked by the [`node`] authorizer, then
//! [`rbac`]).

pub mod bootstraptoken;
pub mod defaults;
pub mod node;
pub mod rbac;
pub mod serviceaccount;
pub mod tokens;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::registry::Api;

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user name of anonymous requests.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group whose members may do anything.
pub const MASTERS: &str = "system:masters";
/// The group of the kubelets' identities (`system:node:<name>`).
pub const NODES: &str = "system:nodes";

/// Who a request comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// The user name.
    pub username: String,
    /// A unique id, if the authenticator knows one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The groups.
    pub groups: Vec<String>,
    /// Further facts (e.g. the pod a ServiceAccount token is bound to).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// An authenticated user: `system:authenticated` is added to the groups.
    pub fn authenticated(username: impl Into<String>, uid: &str, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        Self {
            username: username.into(),
            uid: uid.to_string(),
            groups,
            extra: BTreeMap::new(),
        }
    }

    /// The anonymous user.
    pub fn anonymous() -> Self {
        Self {
            username: ANONYMOUS.to_string(),
            uid: String::new(),
            groups: vec![UNAUTHENTICATED.to_string()],
            extra: BTreeMap::new(),
        }
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.username == ANONYMOUS
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node name of a kubelet identity (`system:node:<name>` in `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        self.username
            .strip_prefix("system:node:")
            .filter(|n| !n.is_empty() && self.in_group(NODES))
    }
}

/// The identity a TLS client certificate proved (set per connection).
#[derive(Clone, Debug)]
pub struct PeerIdentity(pub Option<Arc<UserInfo>>);

/// Why a credential was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// The bearer token is not known or not valid.
    #[error("invalid bearer token: {0}")]
    InvalidToken(String),
}

/// The authenticators in the order Kubernetes tries them: client certificate, static token,
/// bootstrap token, ServiceAccount token.
pub struct Authenticator {
    /// `--token-auth-file` users.
    pub tokens: tokens::TokenFile,
    /// ServiceAccount token issuer and verifier.
    pub service_accounts: serviceaccount::TokenIssuer,
}

impl Authenticator {
    /// The user of a request: the TLS peer's when it presented a certificate (Kubernetes tries
    /// x509 first), else the bearer token's; `Ok(None)` when there is no credential
    /// (anonymous).
    pub async fn authenticate(
        &self,
        api: &Api,
        peer: Option<&Arc<UserInfo>>,
        authorization: Option<&str>,
    ) -> Result<Option<Arc<UserInfo>>, AuthnError> {
        if let Some(p) = peer {
            return Ok(Some(p.clone()));
        }
        let Some(bearer) = authorization.and_then(bearer_token) else {
            return Ok(None);
        };
        self.authenticate_token(api, bearer).await.map(Some)
    }

    /// The user of a bearer token: a static one, else a bootstrap token, else a ServiceAccount
    /// token (also what a TokenReview asks).
    pub async fn authenticate_token(
        &self,
        api: &Api,
        token: &str,
    ) -> Result<Arc<UserInfo>, AuthnError> {
        if let Some(u) = self.tokens.lookup(token) {
            return Ok(u);
        }
        if let Some((id, secret)) = bootstraptoken::parse(token) {
            return bootstraptoken::authenticate(api, id, secret)
                .await
                .map(Arc::new)
                .map_err(|e| AuthnError::InvalidToken(e.to_string()));
        }
        if serviceaccount::looks_like_jwt(token) {
            let u = self
                .service_accounts
                .verify(api, token)
                .await
                .map_err(|e| AuthnError::InvalidToken(e.to_string()))?;
            return Ok(Arc::new(u));
        }
        Err(AuthnError::InvalidToken("unknown token".into()))
    }
}

pub use rkube_machinery::https::bearer_token;

/// What a request asks to do, as authorizers see it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Attributes {
    /// The verb: get, list, watch, create, update, patch, delete, deletecollection (resource
    /// requests) or the lowercase HTTP method (non-resource requests).
    pub verb: String,
    /// A request for a resource (else for a path like `/healthz`).
    pub resource_request: bool,
    /// API group.
    pub api_group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Namespace (empty: cluster scope or all namespaces).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// The request path.
    pub path: String,
}

impl Attributes {
    /// `pods` or `pods/status`.
    pub fn resource_and_sub(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// An authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the reason says by what.
    Allow(String),
    /// Denied outright (later authorizers are not asked).
    Deny(String),
    /// This authorizer has no opinion; the next one decides (none left: denied).
    NoOpinion,
}

/// The chain of authorizers: `system:masters` (always allowed, as Kubernetes'
/// privileged-group authorizer), the Node authorizer for kubelets, then RBAC.
pub struct Authorizer {
    /// The RBAC rules, kept current from storage.
    pub rbac: Arc<rbac::RbacCache>,
}

impl Authorizer {
    /// Decides whether `user` may do `attrs`.
    pub async fn authorize(&self, api: &Api, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.in_group(MASTERS) {
            return Decision::Allow("system:masters".into());
        }
        match node::authorize(api, user, attrs).await {
            Decision::NoOpinion => {}
            other => return other,
        }
        self.rbac.authorize(user, attrs)
    }
}

/// Kubernetes' message of a denied request (without the resource prefix):
/// `User "x" cannot list resource "pods" in API group "" in the namespace "default"`.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    if !attrs.resource_request {
        return format!(
            "User {:?} cannot {} path {:?}",
            user.username, attrs.verb, attrs.path
        );
    }
    let resource = attrs.resource_and_sub();
    if attrs.namespace.is_empty() {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
            user.username, attrs.verb, resource, attrs.api_group
        )
    } else {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
            user.username, attrs.verb, resource, attrs.api_group, attrs.namespace
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_messages() {
        let u = UserInfo::authenticated("jane", "", vec![]);
        assert!(u.in_group(AUTHENTICATED));
        let a = Attributes {
            verb: "list".into(),
            resource_request: true,
            resource: "pods".into(),
            namespace: "default".into(),
            ..Default::default()
        };
        assert_eq!(
            forbidden_message(&u, &a),
            "User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let n = UserInfo::authenticated("system:node:n1", "", vec![NODES.into()]);
        assert_eq!(n.node_name(), Some("n1"));
        assert_eq!(
            UserInfo::authenticated("system:node:n1", "", vec![]).node_name(),
            None
        );
    }
}

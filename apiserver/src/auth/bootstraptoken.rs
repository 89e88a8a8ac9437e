//! Bootstrap tokens (what `kubeadm token` and `rkube token` make, and agents join with): a
//! bearer token `<id>.<secret>` (`[a-z0-9]{6}.[a-z0-9]{16}`) authenticates as
//! `system:bootstrap:<id>` in `system:bootstrappers` (plus the Secret's `auth-extra-groups`)
//! while the Secret `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`
//! exists with that `token-id` and `token-secret`, `usage-bootstrap-authentication: "true"` and
//! no `expiration` in the past — Kubernetes' bootstrap token authenticator. Deleting the Secret
//! revokes the token at once: the Secret is read consistently (and decrypted) from storage on
//! every request that presents one, which only joining agents do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::UserInfo;
use crate::registry::Api;
use crate::resources;

/// The namespace of bootstrap token Secrets.
pub const NAMESPACE: &str = "kube-system";
/// The prefix of their names (`bootstrap-token-<id>`).
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// Their type.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group every bootstrap token is in.
pub const GROUP: &str = "system:bootstrappers";
/// The user name prefix (`system:bootstrap:<id>`).
pub const USER_PREFIX: &str = "system:bootstrap:";

/// Why a bootstrap token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootstrapTokenError {
    /// No Secret for the token id (never made, or deleted: revoked).
    #[error("no bootstrap token secret {NAMESPACE}/{SECRET_PREFIX}{0}")]
    NotFound(String),
    /// The Secret is being deleted.
    #[error("bootstrap token {0} is being deleted")]
    Deleting(String),
    /// The Secret has another type.
    #[error("secret {NAMESPACE}/{SECRET_PREFIX}{id} has type {found:?}, not {SECRET_TYPE:?}")]
    WrongType {
        /// The token id.
        id: String,
        /// The type found.
        found: String,
    },
    /// `token-id` or `token-secret` does not match.
    #[error("bootstrap token {0}: the token does not match its secret")]
    Mismatch(String),
    /// `expiration` has passed (or cannot be read).
    #[error("bootstrap token {0} has expired")]
    Expired(String),
    /// `usage-bootstrap-authentication` is not `"true"`.
    #[error("bootstrap token {0} may not be used for authentication")]
    NotForAuthentication(String),
    /// An `auth-extra-groups` entry is not a `system:bootstrappers:` group.
    #[error(
        "bootstrap token {id}: auth-extra-groups entry {group:?} must match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]"
    )]
    BadGroup {
        /// The token id.
        id: String,
        /// The entry.
        group: String,
    },
    /// Storage could not be read.
    #[error("cannot read the bootstrap token secret: {0}")]
    Lookup(String),
}

/// The id and secret of a token with the shape of a bootstrap token.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// Whether two byte strings are equal, in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an `auth-extra-groups` entry is allowed (Kubernetes'
/// `\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z`).
fn valid_group(g: &str) -> bool {
    let Some(rest) = g.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The user of token `id.secret` given its Secret (`now` in Unix seconds).
pub fn check(
    secret: &Secret,
    id: &str,
    token_secret: &str,
    now: i64,
) -> Result<UserInfo, BootstrapTokenError> {
    if secret.metadata.deletion_timestamp.is_some() {
        return Err(BootstrapTokenError::Deleting(id.to_string()));
    }
    let type_ = secret.type_.clone().unwrap_or_default();
    if type_ != SECRET_TYPE {
        return Err(BootstrapTokenError::WrongType {
            id: id.to_string(),
            found: type_,
        });
    }
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let field = |k: &str| data.get(k).map(|v| v.0.as_slice()).unwrap_or_default();
    let secret_ok = constant_time_eq(field("token-secret"), token_secret.as_bytes());
    if !secret_ok || field("token-id") != id.as_bytes() {
        return Err(BootstrapTokenError::Mismatch(id.to_string()));
    }
    let expiration = String::from_utf8_lossy(field("expiration")).into_owned();
    if !expiration.is_empty() {
        // Unreadable counts as expired, as in Kubernetes.
        let expired = expiration
            .parse::<jiff::Timestamp>()
            .map_or(true, |t| t.as_second() <= now);
        if expired {
            return Err(BootstrapTokenError::Expired(id.to_string()));
        }
    }
    if field("usage-bootstrap-authentication") != b"true" {
        return Err(BootstrapTokenError::NotForAuthentication(id.to_string()));
    }
    let mut groups = vec![GROUP.to_string()];
    let extra = String::from_utf8_lossy(field("auth-extra-groups")).into_owned();
    for g in extra.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        if !valid_group(g) {
            return Err(BootstrapTokenError::BadGroup {
                id: id.to_string(),
                group: g.to_string(),
            });
        }
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    Ok(UserInfo::authenticated(
        format!("{USER_PREFIX}{id}"),
        "",
        groups,
    ))
}

/// The user of a bootstrap token `id.secret`, checked against its Secret as stored now.
pub async fn authenticate(
    api: &Api,
    id: &str,
    token_secret: &str,
) -> Result<UserInfo, BootstrapTokenError> {
    let key = resources::SECRETS.key(Some(NAMESPACE), &format!("{SECRET_PREFIX}{id}"));
    // A consistent read through the store, which decrypts Secrets.
    let kv = api
        .store
        .get(&key)
        .await
        .map_err(|e| BootstrapTokenError::Lookup(e.to_string()))?
        .ok_or_else(|| BootstrapTokenError::NotFound(id.to_string()))?;
    let secret: Secret = serde_json::from_slice(&kv.value)
        .map_err(|e| BootstrapTokenError::Lookup(e.to_string()))?;
    let user = check(
        &secret,
        id,
        token_secret,
        jiff::Timestamp::now().as_second(),
    );
    if let Err(e) = &user {
        tracing::debug!(error = %e, "bootstrap token refused");
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(fields: &[(&str, &str)]) -> Secret {
        Secret {
            type_: Some(SECRET_TYPE.into()),
            data: Some(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    const ID: &str = "abcdef";
    const SECRET: &str = "0123456789abcdef";

    fn valid() -> Vec<(&'static str, &'static str)> {
        vec![
            ("token-id", ID),
            ("token-secret", SECRET),
            ("usage-bootstrap-authentication", "true"),
        ]
    }

    #[test]
    fn token_shape() {
        assert_eq!(parse("abcdef.0123456789abcdef"), Some((ID, SECRET)));
        for bad in [
            "abcdef0123456789abcdef",
            "abcde.0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdeff",
            "abcdef.0123456789abcde_",
            "eyJhbGciOi.x.y",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn checks_the_secret_like_kubernetes() {
        let now = 1_800_000_000;
        let u = check(&secret(&valid()), ID, SECRET, now).unwrap();
        assert_eq!(u.username, "system:bootstrap:abcdef");
        assert_eq!(u.groups, ["system:bootstrappers", "system:authenticated"]);

        let mut f = valid();
        f.push((
            "auth-extra-groups",
            "system:bootstrappers:rkube:default-node-token, system:bootstrappers:x",
        ));
        f.push(("expiration", "2030-01-01T00:00:00Z"));
        let u = check(&secret(&f), ID, SECRET, now).unwrap();
        assert_eq!(
            u.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:rkube:default-node-token",
                "system:bootstrappers:x",
                "system:authenticated"
            ]
        );

        let err = |fields: Vec<(&'static str, &'static str)>| {
            check(&secret(&fields), ID, SECRET, now).unwrap_err()
        };
        assert_eq!(
            check(&secret(&valid()), ID, "0123456789abcdee", now).unwrap_err(),
            BootstrapTokenError::Mismatch(ID.into())
        );
        let mut f = valid();
        f[0] = ("token-id", "zzzzzz");
        assert_eq!(err(f), BootstrapTokenError::Mismatch(ID.into()));
        let mut f = valid();
        f.push(("expiration", "2020-01-01T00:00:00Z"));
        assert_eq!(err(f), BootstrapTokenError::Expired(ID.into()));
        let mut f = valid();
        f.push(("expiration", "tomorrow"));
        assert_eq!(err(f), BootstrapTokenError::Expired(ID.into()));
        let mut f = valid();
        f[2] = ("usage-bootstrap-authentication", "false");
        assert_eq!(err(f), BootstrapTokenError::NotForAuthentication(ID.into()));
        let mut f = valid();
        f.pop();
        assert_eq!(err(f), BootstrapTokenError::NotForAuthentication(ID.into()));
        for g in [
            "system:masters",
            "system:bootstrappers:",
            "system:bootstrappers:a-",
        ] {
            let mut f = valid();
            f.push(("auth-extra-groups", g));
            assert!(
                matches!(err(f), BootstrapTokenError::BadGroup { .. }),
                "{g}"
            );
        }
        let mut opaque = secret(&valid());
        opaque.type_ = Some("Opaque".into());
        assert!(matches!(
            check(&opaque, ID, SECRET, now),
            Err(BootstrapTokenError::WrongType { .. })
        ));
        let mut deleting = secret(&valid());
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert!(matches!(
            check(&deleting, ID, SECRET, now),
            Err(BootstrapTokenError::Deleting(_))
        ));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

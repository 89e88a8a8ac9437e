//! ServiceAccount tokens: JWTs (ES256, signed with `DATA/pki/sa.key`) issued through the
//! TokenRequest subresource (`POST …/serviceaccounts/<name>/token`, what `kubectl create
//! token` calls), bound to an expiry and optionally to a pod, with the claims Kubernetes puts
//! in them. A token authenticates as `system:serviceaccount:<ns>:<name>` only while the
//! ServiceAccount (and the pod it is bound to) still exist with the uids it names.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::UserInfo;
use crate::error::{ApiError, FieldError};
use crate::registry::Api;
use crate::resources;

/// The issuer and the audience of the tokens this server issues.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The default lifetime of a requested token.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime a token gets (longer requests are shortened).
pub const MAX_EXPIRATION_SECONDS: i64 = 48 * 3600;

/// Why a ServiceAccount token was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SaTokenError {
    /// Not a well-formed JWT of ours.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("invalid signature")]
    Signature,
    /// The token has expired (or is not valid yet).
    #[error("token has expired")]
    Expired,
    /// Another issuer or audience.
    #[error("token is not for this API server ({0})")]
    Audience(String),
    /// The ServiceAccount or pod it names is gone or was re-created.
    #[error("{0}")]
    Gone(String),
    /// The signing key is unusable.
    #[error("service account signing key: {0}")]
    Key(String),
    /// Storage could not be read.
    #[error("cannot check the token's objects: {0}")]
    Lookup(String),
}

/// A name and uid in the `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// The `kubernetes.io` private claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
}

/// The claims of a token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Issuer.
    pub iss: String,
    /// Token id.
    pub jti: String,
    /// Subject: `system:serviceaccount:<ns>:<name>`.
    pub sub: String,
    /// Kubernetes' claim.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// Whether a bearer token has the shape of a JWT.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

/// How many tokens whose signatures were verified are remembered.
const VERIFIED_CAPACITY: usize = 16_384;

/// Signs and verifies ServiceAccount tokens.
pub struct TokenIssuer {
    key: EcdsaKeyPair,
    public: Vec<u8>,
    key_id: String,
    rng: SystemRandom,
    /// The claims of tokens whose signatures were verified, by the token's SHA-256: every
    /// request of a client with a token presents the same one, and verifying an ECDSA
    /// signature costs far more than the rest of authenticating it. Only the signature check
    /// is skipped: issuer, audience and times are checked at every use, and the caller
    /// checks the ServiceAccount (and pod) at every use.
    verified: std::sync::Mutex<HashMap<[u8; 32], Arc<Claims>>>,
}

impl TokenIssuer {
    /// An issuer with a P-256 key (PKCS#8 DER).
    pub fn new(pkcs8: &[u8]) -> Result<Self, SaTokenError> {
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                .map_err(|e| SaTokenError::Key(e.to_string()))?;
        let public = key.public_key().as_ref().to_vec();
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let key_id = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(Self {
            key,
            public,
            key_id,
            rng,
            verified: Default::default(),
        })
    }

    /// Signs `claims` into a JWT.
    pub fn sign(&self, claims: &Claims) -> Result<String, SaTokenError> {
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let signing_input = format!("{}.{}", b64_json(&header)?, b64_json(claims)?);
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|e| SaTokenError::Key(e.to_string()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }

    /// The claims of a token whose signature, issuer, audience and times are valid.
    pub fn decode(&self, token: &str, now: i64) -> Result<Arc<Claims>, SaTokenError> {
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .unwrap_or_default();
        let known = self.verified_tokens().get(&digest).cloned();
        let claims = match known {
            Some(c) => c,
            None => {
                let c = Arc::new(self.verify_signature(token)?);
                let mut v = self.verified_tokens();
                if v.len() >= VERIFIED_CAPACITY {
                    v.retain(|_, c| now < c.exp + 60);
                    if v.len() >= VERIFIED_CAPACITY {
                        v.clear();
                    }
                }
                v.insert(digest, c.clone());
                c
            }
        };
        Self::check_claims(&claims, now)?;
        Ok(claims)
    }

    fn verified_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<Claims>>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The claims of a token with a valid ES256 signature of this issuer's key.
    fn verify_signature(&self, token: &str) -> Result<Claims, SaTokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SaTokenError::Malformed("not three parts".into()));
        };
        let bytes = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|e| SaTokenError::Malformed(e.to_string()))
        };
        let header: Value = serde_json::from_slice(&bytes(h)?)
            .map_err(|e| SaTokenError::Malformed(format!("header: {e}")))?;
        if header["alg"] != "ES256" {
            return Err(SaTokenError::Malformed(format!(
                "unsupported algorithm {}",
                header["alg"]
            )));
        }
        let sig = bytes(s)?;
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| SaTokenError::Signature)?;
        serde_json::from_slice(&bytes(p)?)
            .map_err(|e| SaTokenError::Malformed(format!("claims: {e}")))
    }

    /// Issuer, audience and validity times.
    fn check_claims(claims: &Claims, now: i64) -> Result<(), SaTokenError> {
        if claims.iss != ISSUER {
            return Err(SaTokenError::Audience(format!("issuer {}", claims.iss)));
        }
        if !claims.aud.iter().any(|a| a == ISSUER) {
            return Err(SaTokenError::Audience(format!(
                "audiences {:?}",
                claims.aud
            )));
        }
        // One minute of clock skew, as Kubernetes allows.
        if now >= claims.exp + 60 || now + 60 < claims.nbf {
            return Err(SaTokenError::Expired);
        }
        Ok(())
    }

    /// The user of a valid token whose ServiceAccount (and pod) still exist.
    pub async fn verify(&self, api: &Api, token: &str) -> Result<UserInfo, SaTokenError> {
        let claims = self.decode(token, jiff::Timestamp::now().as_second())?;
        let k = &claims.kubernetes;
        let sa = stored_uid(
            api,
            &resources::SERVICEACCOUNTS,
            &k.namespace,
            &k.serviceaccount.name,
        )
        .await?;
        if sa.as_deref() != Some(k.serviceaccount.uid.as_str()) {
            return Err(SaTokenError::Gone(format!(
                "service account {}/{} has been deleted",
                k.namespace, k.serviceaccount.name
            )));
        }
        let mut extra = std::collections::BTreeMap::new();
        if let Some(pod) = &k.pod {
            let uid = stored_uid(api, &resources::PODS, &k.namespace, &pod.name).await?;
            if uid.as_deref() != Some(pod.uid.as_str()) {
                return Err(SaTokenError::Gone(format!(
                    "pod {}/{} the token is bound to has been deleted",
                    k.namespace, pod.name
                )));
            }
            extra.insert(
                "authentication.kubernetes.io/pod-name".to_string(),
                vec![pod.name.clone()],
            );
            extra.insert(
                "authentication.kubernetes.io/pod-uid".to_string(),
                vec![pod.uid.clone()],
            );
        }
        extra.insert(
            "authentication.kubernetes.io/credential-id".to_string(),
            vec![format!("JTI={}", claims.jti)],
        );
        let mut u = UserInfo::authenticated(
            claims.sub.clone(),
            &k.serviceaccount.uid,
            vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{}", k.namespace),
            ],
        );
        u.extra = extra;
        Ok(u)
    }

    /// Serves a TokenRequest for ServiceAccount `ns/name`: the answered TokenRequest.
    pub async fn token_request(
        &self,
        api: &Api,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let invalid = |errs: Vec<FieldError>| {
            ApiError::invalid("authentication.k8s.io", "TokenRequest", name, errs)
        };
        let sa_uid = stored_uid(api, &resources::SERVICEACCOUNTS, ns, name)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
        let spec = &body["spec"];
        let mut expiration = spec["expirationSeconds"]
            .as_i64()
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        if expiration < MIN_EXPIRATION_SECONDS {
            return Err(invalid(vec![FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            )]));
        }
        expiration = expiration.min(MAX_EXPIRATION_SECONDS);
        let audiences: Vec<String> = match spec["audiences"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec![ISSUER.to_string()],
        };
        let bound = &spec["boundObjectRef"];
        let pod = if bound.is_object() {
            let kind = bound["kind"].as_str().unwrap_or_default();
            if kind != "Pod" {
                return Err(invalid(vec![FieldError::not_supported(
                    "spec.boundObjectRef.kind",
                    kind,
                    &["Pod"],
                )]));
            }
            let pod_name = bound["name"].as_str().unwrap_or_default();
            let uid = stored_uid(api, &resources::PODS, ns, pod_name)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .ok_or_else(|| ApiError::not_found("", "pods", pod_name))?;
            if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty())
                && want != uid
            {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    pod_name,
                    &format!(
                        "the UID in the bound object reference ({want}) does not match the pod's ({uid})"
                    ),
                ));
            }
            Some(ObjectRef {
                name: pod_name.to_string(),
                uid,
            })
        } else {
            None
        };
        let now = jiff::Timestamp::now().as_second();
        let claims = Claims {
            aud: audiences.clone(),
            exp: now + expiration,
            iat: now,
            nbf: now,
            iss: ISSUER.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            sub: format!("system:serviceaccount:{ns}:{name}"),
            kubernetes: KubernetesClaim {
                namespace: ns.to_string(),
                serviceaccount: ObjectRef {
                    name: name.to_string(),
                    uid: sa_uid,
                },
                pod: pod.clone(),
            },
        };
        let token = self
            .sign(&claims)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let expires = jiff::Timestamp::from_second(claims.exp)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let mut out_spec = json!({"audiences": audiences, "expirationSeconds": expiration});
        if let Some(p) = &pod {
            out_spec["boundObjectRef"] =
                json!({"kind": "Pod", "apiVersion": "v1", "name": p.name, "uid": p.uid});
        }
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": expires},
        }))
    }
}

/// A value as base64url JSON, for the JWT parts.
fn b64_json<T: Serialize>(v: &T) -> Result<String, SaTokenError> {
    serde_json::to_vec(v)
        .map(|b| URL_SAFE_NO_PAD.encode(b))
        .map_err(|e| SaTokenError::Malformed(e.to_string()))
}

/// The uid of a stored object, `None` when it does not exist or is being deleted. Read from
/// the watch cache (every request with a ServiceAccount token checks it), confirmed with a
/// consistent read when the cache does not have it (yet).
async fn stored_uid(
    api: &Api,
    def: &'static resources::ResourceDef,
    ns: &str,
    name: &str,
) -> Result<Option<String>, SaTokenError> {
    let Some(o) = crate::admission::cached_object::<UidOnly>(api, def, Some(ns), name)
        .await
        .map_err(|e| SaTokenError::Lookup(e.message.clone()))?
    else {
        return Ok(None);
    };
    let deleting = o.metadata.deletion_timestamp.is_some();
    Ok((!deleting).then_some(o.metadata.uid).flatten())
}

/// What [`stored_uid`] reads of an object (a pod, for bound tokens, is otherwise parsed whole
/// at every request).
#[derive(Default, Deserialize)]
struct UidOnly {
    #[serde(default)]
    metadata: UidMeta,
}

#[derive(Default, Deserialize)]
struct UidMeta {
    uid: Option<String>,
    /// Only whether it is set (and not `null`) matters.
    #[serde(rename = "deletionTimestamp")]
    deletion_timestamp: Option<serde::de::IgnoredAny>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        let key = rcgen::KeyPair::generate().unwrap();
        TokenIssuer::new(&key.serialize_der()).unwrap()
    }

    fn claims(now: i64) -> Claims {
        Claims {
            aud: vec![ISSUER.into()],
            exp: now + 600,
            iat: now,
            nbf: now,
            iss: ISSUER.into(),
            jti: "j".into(),
            sub: "system:serviceaccount:default:sa".into(),
            kubernetes: KubernetesClaim {
                namespace: "default".into(),
                serviceaccount: ObjectRef {
                    name: "sa".into(),
                    uid: "u".into(),
                },
                pod: None,
            },
        }
    }

    #[test]
    fn signs_and_verifies() {
        let i = issuer();
        let now = 1_700_000_000;
        let t = i.sign(&claims(now)).unwrap();
        assert!(looks_like_jwt(&t));
        assert_eq!(*i.decode(&t, now).unwrap(), claims(now));
        // Again, from the verified tokens: the same claims, and still checked for expiry.
        assert_eq!(*i.decode(&t, now + 1).unwrap(), claims(now));
        assert!(matches!(
            i.decode(&t, now + 700),
            Err(SaTokenError::Expired)
        ));
        // Another key, a changed payload, a foreign audience: refused.
        assert!(matches!(
            issuer().decode(&t, now),
            Err(SaTokenError::Signature)
        ));
        let mut parts: Vec<&str> = t.split('.').collect();
        let mut forged = claims(now);
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        parts[1] = &forged_payload;
        assert!(matches!(
            i.decode(&parts.join("."), now),
            Err(SaTokenError::Signature)
        ));
        let mut other = claims(now);
        other.aud = vec!["vault".into()];
        let t = i.sign(&other).unwrap();
        assert!(matches!(i.decode(&t, now), Err(SaTokenError::Audience(_))));
        assert!(i.decode("a.b", now).is_err());
    }
}

//! Join tokens: how a new machine proves it may join, and how it knows it talks to the right
//! server.
//!
//! A join token reads `K10<ca-hash>::<id>.<secret>` (k3s' format): `<id>.<secret>` is a
//! Kubernetes bootstrap token — the Secret `kube-system/bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token`, which the API server authenticates as
//! `system:bootstrap:<id>` in `system:bootstrappers` (allowed to ask for node certificates,
//! nothing else) — and `<ca-hash>` is the SHA-256 (hex) of the cluster CA certificate in PEM
//! (base64 in 64-column lines, LF line ends, as `DATA/pki/ca.crt` is written), which the agent
//! checks the server's TLS chain against before it sends the token (see [`crate::trust`]).
//! Deleting the Secret revokes the token.
//!
//! `rkube server` keeps one such token for itself in `DATA/node-token` (no expiry, created at
//! the first start, kept across restarts, a new one if it was deleted); `rkube token
//! create|list|delete` manage others through the admin kubeconfig, as `kubeadm token` does.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use sha2::Digest;

/// Where bootstrap token Secrets live.
pub const NAMESPACE: &str = "kube-system";
/// The type of a bootstrap token Secret.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The prefix of a bootstrap token Secret's name (the token id follows).
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The extra group rkube's join tokens carry (as kubeadm's and k3s' default node tokens do).
pub const NODE_TOKEN_GROUP: &str = "system:bootstrappers:rkube:default-node-token";
/// The description of the server's own token.
pub const SERVER_TOKEN_DESCRIPTION: &str = "rkube server node token (DATA/node-token)";

/// Why a token is unusable, or a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The text is not a join token.
    #[error("{0}")]
    Format(String),
    /// A TTL does not parse.
    #[error("invalid --ttl {value:?}: {message} (e.g. 24h, 90m, 1h30m; 0 never expires)")]
    Ttl {
        /// The value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// The API refused or failed a request.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The cause.
        source: kube::Error,
    },
    /// No token has this id.
    #[error("no token with id {0:?} (see `rkube token list`)")]
    NotFound(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> TokenError {
    let what = what.into();
    move |source| TokenError::Api { what, source }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A certificate (DER) in PEM: base64 in 64-column lines, LF line ends — the form rcgen
/// writes `DATA/pki/ca.crt` in, and the form the CA hash is taken of.
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The hash a join token names a CA by: SHA-256 (hex) of its PEM ([`pem_of`]).
pub fn ca_hash(ca_der: &[u8]) -> String {
    hex(&sha2::Sha256::digest(pem_of(ca_der).as_bytes()))
}

/// A bootstrap token: `<id>.<secret>`, id `[a-z0-9]{6}`, secret `[a-z0-9]{16}`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The public part, naming the Secret.
    pub id: String,
    /// The secret part.
    pub secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

impl std::fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

fn token_chars(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn random_chars(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(CHARS[rand::Rng::random_range(&mut rng, 0..CHARS.len())]))
        .collect()
}

impl BootstrapToken {
    /// A new random token.
    pub fn generate() -> Self {
        BootstrapToken {
            id: random_chars(6),
            secret: random_chars(16),
        }
    }

    /// Parses `<id>.<secret>`.
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.split_once('.')?;
        (token_chars(id, 6) && token_chars(secret, 16)).then(|| BootstrapToken {
            id: id.into(),
            secret: secret.into(),
        })
    }

    /// Whether `s` is a token id.
    pub fn valid_id(s: &str) -> bool {
        token_chars(s, 6)
    }

    /// The name of its Secret.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.id)
    }
}

/// A join token: the CA's hash and a bootstrap token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 (lowercase hex) of the cluster CA's PEM.
    pub ca_hash: String,
    /// The bootstrap token.
    pub token: BootstrapToken,
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "K10{}::{}", self.ca_hash, self.token)
    }
}

impl JoinToken {
    /// Parses `K10<64 hex>::<id>.<secret>` (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        let bad = |why: &str| {
            TokenError::Format(format!(
                "the token is not a join token ({why}): expected K10<CA hash>::<id>.<secret>, as \
                 the server's DATA/node-token or `rkube token create` print it"
            ))
        };
        let rest = text
            .strip_prefix("K10")
            .ok_or_else(|| bad("no K10 prefix"))?;
        let (hash, token) = rest
            .split_once("::")
            .ok_or_else(|| bad("no :: after the CA hash"))?;
        let hash = hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the CA hash is not 64 hex digits"));
        }
        if token.starts_with("server:") {
            return Err(TokenError::Format(
                "this is a node token of an older rkube server (K10…::server:…), which cannot \
                 join; restart the server with this version (it rewrites DATA/node-token) or use \
                 `rkube token create`"
                    .into(),
            ));
        }
        let token = BootstrapToken::parse(token)
            .ok_or_else(|| bad("the part after :: is not <6 of a-z0-9>.<16 of a-z0-9>"))?;
        Ok(JoinToken {
            ca_hash: hash,
            token,
        })
    }
}

/// Parses a TTL (`24h`, `90m`, `1h30m`, `3600s`); `0` (or `0s`) means no expiry.
pub fn parse_ttl(value: &str) -> Result<Option<Duration>, TokenError> {
    let err = |message: String| TokenError::Ttl {
        value: value.into(),
        message,
    };
    let d: jiff::SignedDuration = if value.trim() == "0" {
        jiff::SignedDuration::ZERO
    } else {
        value
            .trim()
            .parse()
            .map_err(|e: jiff::Error| err(e.to_string()))?
    };
    if d.is_negative() {
        return Err(err("negative".into()));
    }
    let d = Duration::try_from(d).map_err(|e| err(e.to_string()))?;
    Ok((!d.is_zero()).then_some(d))
}

/// The bootstrap token Secret for `token`: usable for authentication (joining) and signing,
/// with the node-token group, expiring `ttl` after `now` (never without).
pub fn secret_for(
    token: &BootstrapToken,
    description: &str,
    ttl: Option<Duration>,
    now: jiff::Timestamp,
) -> Secret {
    let mut data = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        data.insert(k.to_string(), ByteString(v.into_bytes()));
    };
    put("token-id", token.id.clone());
    put("token-secret", token.secret.clone());
    put("usage-bootstrap-authentication", "true".into());
    put("usage-bootstrap-signing", "true".into());
    put("auth-extra-groups", NODE_TOKEN_GROUP.into());
    if !description.is_empty() {
        put("description", description.into());
    }
    if let Some(ttl) = ttl {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let at = now
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap_or(jiff::Timestamp::MAX);
        put("expiration", at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(token.secret_name()),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some(data),
        ..Default::default()
    }
}

fn field(s: &Secret, key: &str) -> Option<String> {
    let v = s.data.as_ref()?.get(key)?;
    String::from_utf8(v.0.clone()).ok()
}

/// What `rkube token list` shows of one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The id.
    pub id: String,
    /// When it expires (RFC 3339), if ever.
    pub expiration: Option<String>,
    /// Its usages (`authentication`, `signing`).
    pub usages: Vec<String>,
    /// Its description.
    pub description: String,
    /// Its extra groups.
    pub groups: String,
}

impl TokenInfo {
    /// The token a bootstrap token Secret describes (`None` for other Secrets).
    pub fn from_secret(s: &Secret) -> Option<Self> {
        if s.type_.as_deref() != Some(SECRET_TYPE) {
            return None;
        }
        let id = field(s, "token-id")?;
        let usages = ["authentication", "signing"]
            .iter()
            .filter(|u| field(s, &format!("usage-bootstrap-{u}")).as_deref() == Some("true"))
            .map(|u| u.to_string())
            .collect();
        Some(TokenInfo {
            id,
            expiration: field(s, "expiration"),
            usages,
            description: field(s, "description").unwrap_or_default(),
            groups: field(s, "auth-extra-groups").unwrap_or_default(),
        })
    }

    /// The time left until expiry (`<forever>`, `<expired>`, or e.g. `23h`), as kubeadm shows it.
    pub fn ttl(&self, now: jiff::Timestamp) -> String {
        let Some(exp) = &self.expiration else {
            return "<forever>".into();
        };
        let Ok(at) = exp.parse::<jiff::Timestamp>() else {
            return "<invalid>".into();
        };
        let left = at.duration_since(now);
        if left.is_negative() || left.is_zero() {
            return "<invalid>".into();
        }
        let secs = left.as_secs();
        match secs {
            s if s >= 3600 => format!("{}h", s / 3600),
            s if s >= 60 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }
}

/// The table `rkube token list` prints.
pub fn table(tokens: &[TokenInfo], now: jiff::Timestamp) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "TTL".into(),
        "EXPIRES".into(),
        "USAGES".into(),
        "DESCRIPTION".into(),
        "EXTRA GROUPS".into(),
    ]];
    for t in tokens {
        rows.push([
            t.id.clone(),
            t.ttl(now),
            t.expiration.clone().unwrap_or_else(|| "<never>".into()),
            t.usages.join(","),
            if t.description.is_empty() {
                "<none>".into()
            } else {
                t.description.clone()
            },
            t.groups.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn secrets(client: &kube::Client) -> Api<Secret> {
    Api::namespaced(client.clone(), NAMESPACE)
}

/// Creates a new token's Secret; returns the token.
pub async fn create(
    client: &kube::Client,
    description: &str,
    ttl: Option<Duration>,
) -> Result<BootstrapToken, TokenError> {
    let store = secrets(client);
    // A clash with an existing id is unlikely (36^6); a few tries make it impossible to hit.
    let mut last = None;
    for _ in 0..3 {
        let token = BootstrapToken::generate();
        let secret = secret_for(&token, description, ttl, jiff::Timestamp::now());
        match store.create(&PostParams::default(), &secret).await {
            Ok(_) => return Ok(token),
            Err(kube::Error::Api(e)) if e.code == 409 => last = Some(kube::Error::Api(e)),
            Err(e) => return Err(api("creating a bootstrap token Secret")(e)),
        }
    }
    Err(api("creating a bootstrap token Secret")(
        last.expect("three conflicts"),
    ))
}

/// Every bootstrap token, by id.
pub async fn list(client: &kube::Client) -> Result<Vec<TokenInfo>, TokenError> {
    let list = secrets(client)
        .list(&ListParams::default())
        .await
        .map_err(api("listing bootstrap token Secrets"))?;
    let mut out: Vec<TokenInfo> = list
        .items
        .iter()
        .filter_map(TokenInfo::from_secret)
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The id a `rkube token delete` argument names: an id, `<id>.<secret>` or a join token.
pub fn id_of(arg: &str) -> Result<String, TokenError> {
    let arg = arg.trim();
    if BootstrapToken::valid_id(arg) {
        return Ok(arg.into());
    }
    if let Some(t) = BootstrapToken::parse(arg) {
        return Ok(t.id);
    }
    JoinToken::parse(arg).map(|t| t.token.id).map_err(|_| {
        TokenError::Format(format!(
            "{arg:?} is neither a token id (6 of a-z0-9), <id>.<secret> nor a join token"
        ))
    })
}

/// Deletes the Secret of token `id` (revoking it: joins with it are refused from now on).
pub async fn delete(client: &kube::Client, id: &str) -> Result<(), TokenError> {
    let name = format!("{SECRET_PREFIX}{id}");
    match secrets(client)
        .delete(&name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(TokenError::NotFound(id.into())),
        Err(e) => Err(api(format!("deleting the Secret {NAMESPACE}/{name}"))(e)),
    }
}

/// The server's join token (`DATA/node-token`) for the CA `ca_der`: the stored one while its
/// Secret still exists with the same secret (rewritten if the CA changed), else a new token
/// whose Secret is created (no expiry) before the file is written (0600).
pub async fn ensure_node_token(
    client: &kube::Client,
    ca_der: &[u8],
    path: &Path,
) -> Result<JoinToken, TokenError> {
    let ca_hash = ca_hash(ca_der);
    let text = std::fs::read_to_string(path).ok();
    let stored = text.as_deref().map(JoinToken::parse);
    if let Some(Ok(stored)) = &stored {
        let name = stored.token.secret_name();
        let current = secrets(client)
            .get_opt(&name)
            .await
            .map_err(api(format!("reading the Secret {NAMESPACE}/{name}")))?;
        let same = current.as_ref().is_some_and(|s| {
            s.type_.as_deref() == Some(SECRET_TYPE)
                && field(s, "token-secret").as_deref() == Some(stored.token.secret.as_str())
        });
        if same {
            let token = JoinToken {
                ca_hash,
                token: stored.token.clone(),
            };
            if *stored != token {
                write_token(path, &token)?;
            }
            return Ok(token);
        }
        tracing::warn!(
            id = %stored.token.id,
            "the node token's Secret was deleted (revoked): writing a new node token"
        );
    } else if let Some(Err(e)) = &stored {
        tracing::info!(reason = %e, "replacing the node token");
    }
    let token = create(client, SERVER_TOKEN_DESCRIPTION, None).await?;
    let token = JoinToken { ca_hash, token };
    write_token(path, &token)?;
    tracing::info!(id = %token.token.id, path = %path.display(), "wrote the node token");
    Ok(token)
}

fn write_token(path: &Path, token: &JoinToken) -> Result<(), TokenError> {
    rkube_machinery::https::write_private(path, &format!("{token}\n")).map_err(|e| {
        TokenError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_tokens_parse_and_generate() {
        let t = BootstrapToken::generate();
        assert!(BootstrapToken::valid_id(&t.id));
        assert_eq!(BootstrapToken::parse(&t.to_string()), Some(t.clone()));
        assert_eq!(t.secret_name(), format!("bootstrap-token-{}", t.id));
        assert!(!format!("{t:?}").contains(&t.secret));
        for bad in [
            "abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdef0",
            "abcde_.0123456789abcdef",
        ] {
            assert_eq!(BootstrapToken::parse(bad), None, "{bad}");
        }
        assert_ne!(BootstrapToken::generate(), BootstrapToken::generate());
    }

    #[test]
    fn join_tokens_round_trip_and_bad_ones_are_explained() {
        let hash = "ab".repeat(32);
        let text = format!("K10{hash}::abcdef.0123456789abcdef\n");
        let t = JoinToken::parse(&text).unwrap();
        assert_eq!(t.ca_hash, hash);
        assert_eq!(t.token.id, "abcdef");
        assert_eq!(t.to_string(), text.trim());
        let upper = format!("K10{}::ABCDEF.0123456789abcdef", hash.to_uppercase());
        assert!(JoinToken::parse(&upper).is_err(), "token ids are lowercase");
        let old = JoinToken::parse(&format!("K10{hash}::server:0123456789abcdef0123"))
            .unwrap_err()
            .to_string();
        assert!(old.contains("older rkube server"), "{old}");
        for (bad, why) in [
            ("abcdef.0123456789abcdef", "no K10 prefix"),
            ("K10abc::abcdef.0123456789abcdef", "not 64 hex digits"),
            (&format!("K10{hash}abcdef.0123456789abcdef"), "no ::"),
            (&format!("K10{hash}::abcdef"), "<6 of a-z0-9>"),
        ] {
            let e = JoinToken::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("K10<CA hash>::<id>.<secret>"),
                "{e}"
            );
        }
    }

    #[test]
    fn ca_hash_is_of_the_pem_the_server_writes() {
        let dir = tempfile::tempdir().unwrap();
        let pki = rkube_apiserver::pki::Pki::load_or_create(dir.path()).unwrap();
        let der = pki.ca_der().unwrap();
        // The file's text is exactly the canonical PEM, so hashing either gives the same.
        assert_eq!(pem_of(&der), pki.ca_pem());
        assert_eq!(
            ca_hash(&der),
            hex(&sha2::Sha256::digest(
                std::fs::read(dir.path().join("ca.crt")).unwrap()
            ))
        );
        assert_eq!(ca_hash(&der).len(), 64);
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("24h").unwrap(), Some(Duration::from_secs(86400)));
        assert_eq!(parse_ttl("1h30m").unwrap(), Some(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("90s").unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(parse_ttl("0").unwrap(), None);
        assert_eq!(parse_ttl("0s").unwrap(), None);
        let e = parse_ttl("soon").unwrap_err().to_string();
        assert!(e.starts_with("invalid --ttl \"soon\""), "{e}");
        assert!(parse_ttl("-1h").is_err());
    }

    #[test]
    fn secrets_carry_what_the_authenticator_reads() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let now: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let s = secret_for(&t, "for node-b", Some(Duration::from_secs(7200)), now);
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(s.type_.as_deref(), Some(SECRET_TYPE));
        assert_eq!(field(&s, "token-id").as_deref(), Some("abcdef"));
        assert_eq!(
            field(&s, "token-secret").as_deref(),
            Some("0123456789abcdef")
        );
        assert_eq!(
            field(&s, "usage-bootstrap-authentication").as_deref(),
            Some("true")
        );
        assert_eq!(
            field(&s, "expiration").as_deref(),
            Some("2030-01-01T02:00:00Z")
        );
        let info = TokenInfo::from_secret(&s).unwrap();
        assert_eq!(info.usages, ["authentication", "signing"]);
        assert_eq!(info.ttl(now), "2h");
        assert_eq!(
            info.ttl("2030-01-01T03:00:00Z".parse().unwrap()),
            "<invalid>"
        );
        let forever = secret_for(&t, "", None, now);
        assert_eq!(field(&forever, "expiration"), None);
        assert_eq!(field(&forever, "description"), None);
        let info = TokenInfo::from_secret(&forever).unwrap();
        assert_eq!(info.ttl(now), "<forever>");
        let table = table(&[info], now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID       TTL"), "{table}");
        assert!(lines[1].starts_with("abcdef   <forever>"), "{table}");
        assert!(!table.contains("0123456789abcdef"), "{table}");
        let mut other = forever.clone();
        other.type_ = Some("Opaque".into());
        assert_eq!(TokenInfo::from_secret(&other), None);
    }

    #[test]
    fn delete_takes_an_id_a_token_or_a_join_token() {
        assert_eq!(id_of("abcdef").unwrap(), "abcdef");
        assert_eq!(id_of("abcdef.0123456789abcdef").unwrap(), "abcdef");
        let join = format!("K10{}::abcdef.0123456789abcdef", "0".repeat(64));
        assert_eq!(id_of(&join).unwrap(), "abcdef");
        let e = id_of("nope").unwrap_err().to_string();
        assert!(e.contains("neither a token id"), "{e}");
    }
}

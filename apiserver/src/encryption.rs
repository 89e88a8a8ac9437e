//! Encryption at rest: a [`Storage`] wrapper that encrypts the values of chosen resources
//! (Secrets by default) with AES-GCM before they reach etcd or the embedded file, and decrypts
//! them on every read and watch event. Configured by a Kubernetes `EncryptionConfiguration`
//! file (`--encryption-provider-config`; providers `aesgcm` and `identity`): the first provider
//! encrypts, every listed one may decrypt. Without a file, one is generated at the first start
//! (`DATA/encryption-config.yaml`, a random 256-bit key, 0600).
//!
//! Stored values look like Kubernetes': `k8s:enc:aesgcm:v1:<key name>:` + 12-byte nonce +
//! ciphertext and tag, with the storage key as additional authenticated data (a ciphertext
//! cannot be moved to another key).
//!
//! Key rotation: add a new key first in the `aesgcm` key list (keep the old one after it),
//! restart, rewrite every Secret (e.g. `kubectl annotate secrets -A --all
//! rkube.io/encryption-rotated=$(date +%s) --overwrite`: a changed object is written with the
//! new key), then remove the old key and restart again.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

use crate::resources;
use crate::storage::{
    Event, KeyValue, ListOptions, ListResult, Result, Revision, Storage, StorageError, WatchItem,
    WatchStream,
};

/// The prefix of every encrypted value.
const ENC_PREFIX: &[u8] = b"k8s:enc:";

/// Why an encryption configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid EncryptionConfiguration.
    #[error("encryption configuration {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
struct ResourceConfig {
    resources: Vec<String>,
    providers: Vec<ProviderConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProviderConfig {
    aesgcm: Option<KeysConfig>,
    identity: Option<serde_json::Value>,
    aescbc: Option<serde_json::Value>,
    secretbox: Option<serde_json::Value>,
    kms: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct KeysConfig {
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
struct KeyConfig {
    name: String,
    secret: String,
}

/// One provider: AES-GCM with named keys (the first encrypts), or none.
enum Provider {
    AesGcm(Vec<(String, LessSafeKey)>),
    Identity,
}

/// The providers of a set of storage prefixes.
struct Rule {
    prefixes: Vec<String>,
    providers: Vec<Provider>,
}

/// How values are encrypted, per storage prefix.
pub struct EncryptionConfig {
    rules: Vec<Rule>,
}

impl std::fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionConfig")
            .field(
                "prefixes",
                &self.rules.iter().map(|r| &r.prefixes).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The storage prefix of a resource named as in EncryptionConfiguration (`secrets`,
/// `deployments.apps`).
fn prefix_of(name: &str) -> Option<String> {
    let (resource, group) = name.split_once('.').unwrap_or((name, ""));
    resources::ALL
        .iter()
        .find(|d| d.resource == resource && d.group == group && !d.create_only)
        .map(|d| d.prefix())
}

impl EncryptionConfig {
    /// Parses an EncryptionConfiguration (YAML or JSON); `path` is for messages.
    pub fn parse(text: &str, path: &str) -> std::result::Result<Self, EncryptionError> {
        let invalid = |message: String| EncryptionError::Invalid {
            path: path.to_string(),
            message,
        };
        let file: ConfigFile = serde_saphyr::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.kind.as_deref() != Some("EncryptionConfiguration") {
            return Err(invalid("kind must be EncryptionConfiguration".into()));
        }
        let mut rules = Vec::new();
        for (i, r) in file.resources.iter().enumerate() {
            let mut prefixes = Vec::new();
            for name in &r.resources {
                prefixes.push(prefix_of(name).ok_or_else(|| {
                    invalid(format!("resources[{i}]: {name:?} is not a served resource"))
                })?);
            }
            if r.providers.is_empty() {
                return Err(invalid(format!("resources[{i}]: no providers")));
            }
            let mut providers = Vec::new();
            for (j, p) in r.providers.iter().enumerate() {
                let at = format!("resources[{i}].providers[{j}]");
                if p.aescbc.is_some() || p.secretbox.is_some() || p.kms.is_some() {
                    return Err(invalid(format!(
                        "{at}: only the aesgcm and identity providers are supported"
                    )));
                }
                match (&p.aesgcm, &p.identity) {
                    (Some(k), None) => {
                        if k.keys.is_empty() {
                            return Err(invalid(format!("{at}.aesgcm: no keys")));
                        }
                        let mut keys = Vec::new();
                        for key in &k.keys {
                            if key.name.is_empty() || key.name.contains(':') {
                                return Err(invalid(format!(
                                    "{at}.aesgcm: key name {:?} must be non-empty without ':'",
                                    key.name
                                )));
                            }
                            let raw = base64::engine::general_purpose::STANDARD
                                .decode(key.secret.trim())
                                .map_err(|e| {
                                    invalid(format!("{at}.aesgcm key {:?}: {e}", key.name))
                                })?;
                            let alg = match raw.len() {
                                16 => &AES_128_GCM,
                                32 => &AES_256_GCM,
                                n => {
                                    return Err(invalid(format!(
                                        "{at}.aesgcm key {:?}: {n} bytes; 16 or 32 are supported",
                                        key.name
                                    )));
                                }
                            };
                            let unbound = UnboundKey::new(alg, &raw).map_err(|e| {
                                invalid(format!("{at}.aesgcm key {:?}: {e}", key.name))
                            })?;
                            keys.push((key.name.clone(), LessSafeKey::new(unbound)));
                        }
                        providers.push(Provider::AesGcm(keys));
                    }
                    (None, Some(_)) => providers.push(Provider::Identity),
                    _ => {
                        return Err(invalid(format!(
                            "{at}: exactly one of aesgcm and identity must be given"
                        )));
                    }
                }
            }
            rules.push(Rule {
                prefixes,
                providers,
            });
        }
        Ok(Self { rules })
    }

    /// Reads an EncryptionConfiguration file.
    pub fn load(path: &Path) -> std::result::Result<Self, EncryptionError> {
        let text = std::fs::read_to_string(path).map_err(|source| EncryptionError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The configuration in `DATA/encryption-config.yaml`, written with a new random key at
    /// the first start: Secrets encrypted with AES-256-GCM, plaintext still readable.
    pub fn load_or_generate(data_dir: &Path) -> std::result::Result<Self, EncryptionError> {
        let path = data_dir.join("encryption-config.yaml");
        if !path.exists() {
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| EncryptionError::Invalid {
                    path: path.display().to_string(),
                    message: "no random numbers".into(),
                })?;
            let text = format!(
                "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources:
  - secrets
  providers:
  - aesgcm:
      keys:
      - name: key1
        secret: {}
  - identity: {{}}
",
                base64::engine::general_purpose::STANDARD.encode(key)
            );
            crate::pki::write_private(&path, &text).map_err(|e| EncryptionError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            tracing::info!(path = %path.display(), "generated the encryption key for Secrets");
        }
        Self::load(&path)
    }

    fn rule(&self, key: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.prefixes.iter().any(|p| key.starts_with(p.as_str())))
    }

    /// The stored form of `value` at `key`.
    pub fn encrypt(&self, key: &str, value: Bytes) -> Result<Bytes> {
        let Some(rule) = self.rule(key) else {
            return Ok(value);
        };
        match rule.providers.first() {
            Some(Provider::AesGcm(keys)) => {
                let (name, k) = &keys[0];
                let mut nonce = [0u8; NONCE_LEN];
                SystemRandom::new()
                    .fill(&mut nonce)
                    .map_err(|_| StorageError::Internal("no random numbers".into()))?;
                let mut sealed = value.to_vec();
                k.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(key.as_bytes()),
                    &mut sealed,
                )
                .map_err(|_| StorageError::Internal(format!("cannot encrypt {key}")))?;
                let header = format!("k8s:enc:aesgcm:v1:{name}:");
                let mut out = Vec::with_capacity(header.len() + NONCE_LEN + sealed.len());
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                Ok(Bytes::from(out))
            }
            _ => Ok(value),
        }
    }

    /// The plaintext of a stored value at `key`.
    pub fn decrypt(&self, key: &str, value: Bytes) -> Result<Bytes> {
        if !value.starts_with(ENC_PREFIX) {
            return Ok(value);
        }
        let fail = |why: &str| StorageError::Internal(format!("cannot decrypt {key}: {why}"));
        let rest = &value[ENC_PREFIX.len()..];
        let Some(rest) = rest.strip_prefix(b"aesgcm:v1:".as_slice()) else {
            return Err(fail("unknown encryption provider"));
        };
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| fail("no key name"))?;
        let name = std::str::from_utf8(&rest[..colon]).map_err(|_| fail("bad key name"))?;
        let data = &rest[colon + 1..];
        if data.len() < NONCE_LEN {
            return Err(fail("truncated"));
        }
        let keys = self
            .rules
            .iter()
            .filter(|r| r.prefixes.iter().any(|p| key.starts_with(p.as_str())))
            .flat_map(|r| r.providers.iter())
            .filter_map(|p| match p {
                Provider::AesGcm(keys) => Some(keys),
                Provider::Identity => None,
            })
            .flatten();
        for (n, k) in keys {
            if n != name {
                continue;
            }
            let nonce = Nonce::try_assume_unique_for_key(&data[..NONCE_LEN])
                .map_err(|_| fail("bad nonce"))?;
            let mut buf = data[NONCE_LEN..].to_vec();
            let plain = k
                .open_in_place(nonce, Aad::from(key.as_bytes()), &mut buf)
                .map_err(|_| fail(&format!("key {name:?} does not open it")))?;
            let len = plain.len();
            buf.truncate(len);
            return Ok(Bytes::from(buf));
        }
        Err(fail(&format!("key {name:?} is not configured")))
    }
}

/// A [`Storage`] that encrypts values on the way in and decrypts them on the way out.
pub struct EncryptedStorage {
    inner: Arc<dyn Storage>,
    config: Arc<EncryptionConfig>,
}

impl EncryptedStorage {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Storage>, config: Arc<EncryptionConfig>) -> Self {
        Self { inner, config }
    }

    fn open(&self, mut kv: KeyValue) -> Result<KeyValue> {
        kv.value = self.config.decrypt(&kv.key, kv.value)?;
        Ok(kv)
    }
}

#[async_trait]
impl Storage for EncryptedStorage {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let plain = value.clone();
        let mut kv = self
            .inner
            .create(key, self.config.encrypt(key, value)?)
            .await?;
        kv.value = plain;
        Ok(kv)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner
            .get(key)
            .await?
            .map(|kv| self.open(kv))
            .transpose()
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let mut l = self.inner.list(prefix, opts).await?;
        l.items = l
            .items
            .into_iter()
            .map(|kv| self.open(kv))
            .collect::<Result<_>>()?;
        Ok(l)
    }

    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue> {
        let plain = value.clone();
        let mut kv = self
            .inner
            .update(key, expected, self.config.encrypt(key, value)?)
            .await?;
        kv.value = plain;
        Ok(kv)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let kv = self.inner.delete(key, expected).await?;
        self.open(kv)
    }

    async fn watch(&self, key: &str, recursive: bool, from: Revision) -> Result<WatchStream> {
        let config = self.config.clone();
        let stream = self.inner.watch(key, recursive, from).await?;
        Ok(Box::pin(stream.map(move |item| match item {
            Ok(WatchItem::Event(ev)) => {
                let mut kv = ev.kv.clone();
                kv.value = config.decrypt(&kv.key, kv.value)?;
                let prev = match &ev.prev {
                    Some(p) => {
                        let mut p = p.clone();
                        p.value = config.decrypt(&p.key, p.value)?;
                        Some(p)
                    }
                    None => None,
                };
                Ok(WatchItem::Event(Arc::new(Event {
                    kind: ev.kind,
                    kv,
                    prev,
                })))
            }
            other => other,
        })))
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.compacted_revision().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEY2: &str = "HxwdHh8QERITFBUWFxgZGhscHR4fEBESExQVFhcYGRo=";

    fn config(keys: &[(&str, &str)]) -> EncryptionConfig {
        let keys: String = keys
            .iter()
            .map(|(n, k)| format!("      - name: {n}\n        secret: {k}\n"))
            .collect();
        EncryptionConfig::parse(
            &format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n{keys}  - identity: {{}}\n"
            ),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn round_trips_and_rotates() {
        let c = config(&[("k1", KEY1)]);
        let key = "/registry/secrets/default/s";
        let plain = Bytes::from_static(b"{\"data\":{\"a\":\"c2VjcmV0\"}}");
        let enc = c.encrypt(key, plain.clone()).unwrap();
        assert!(enc.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
        assert!(!enc.windows(8).any(|w| w == b"c2VjcmV0"));
        assert_eq!(c.decrypt(key, enc.clone()).unwrap(), plain);
        // Another key position: refused (the key is authenticated data).
        assert!(
            c.decrypt("/registry/secrets/default/t", enc.clone())
                .is_err()
        );
        // Other resources and plaintext pass through.
        let cm = Bytes::from_static(b"{}");
        assert_eq!(
            c.encrypt("/registry/configmaps/default/x", cm.clone())
                .unwrap(),
            cm
        );
        assert_eq!(c.decrypt(key, plain.clone()).unwrap(), plain);
        // Rotation: a new first key encrypts, the old one still decrypts.
        let rotated = config(&[("k2", KEY2), ("k1", KEY1)]);
        assert_eq!(rotated.decrypt(key, enc.clone()).unwrap(), plain);
        assert!(
            rotated
                .encrypt(key, plain.clone())
                .unwrap()
                .starts_with(b"k8s:enc:aesgcm:v1:k2:")
        );
        // The old key removed: unreadable, with a clear error.
        let only_new = config(&[("k2", KEY2)]);
        let e = only_new.decrypt(key, enc).unwrap_err().to_string();
        assert!(e.contains("\"k1\" is not configured"), "{e}");
    }

    #[test]
    fn bad_configurations_are_refused() {
        let bad = |text: &str| EncryptionConfig::parse(text, "f").unwrap_err().to_string();
        assert!(bad("kind: Other\n").contains("EncryptionConfiguration"));
        let head = "kind: EncryptionConfiguration\nresources:\n- resources: [";
        assert!(
            bad(&format!("{head}widgets]\n  providers: [identity: {{}}]\n")).contains("widgets")
        );
        assert!(
            bad(&format!(
                "{head}secrets]\n  providers:\n  - aescbc: {{keys: []}}\n"
            ))
            .contains("aesgcm")
        );
        assert!(
            bad(&format!(
                "{head}secrets]\n  providers:\n  - aesgcm: {{keys: [{{name: a, secret: AAAA}}]}}\n"
            ))
            .contains("16 or 32")
        );
        let dir = tempfile::tempdir().unwrap();
        let generated = EncryptionConfig::load_or_generate(dir.path()).unwrap();
        let again = EncryptionConfig::load_or_generate(dir.path()).unwrap();
        let enc = generated
            .encrypt("/registry/secrets/a/b", Bytes::from_static(b"x"))
            .unwrap();
        assert_eq!(
            again.decrypt("/registry/secrets/a/b", enc).unwrap(),
            Bytes::from_static(b"x")
        );
    }
}

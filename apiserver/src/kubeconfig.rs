//! Kubeconfig files: the admin kubeconfig (`DATA/admin.kubeconfig`) that kubectl and kube-rs
//! use as is — the cluster CA and a client certificate, embedded — and kubeconfigs for other
//! identities (a token, another certificate, or none).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// How a kubeconfig user authenticates.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A client certificate and its key (PEM).
    Certificate {
        /// The certificate.
        cert_pem: String,
        /// The private key.
        key_pem: String,
    },
    /// A bearer token.
    Token(String),
    /// Nothing: requests are anonymous.
    None,
}

/// The kubeconfig text for a server URL, the CA that signed its certificate and a user.
pub fn render(server: &str, ca_pem: &str, user: &str, creds: &Credentials) -> String {
    let user_body = match creds {
        Credentials::Certificate { cert_pem, key_pem } => format!(
            "\n    client-certificate-data: {}\n    client-key-data: {}",
            STANDARD.encode(cert_pem),
            STANDARD.encode(key_pem)
        ),
        Credentials::Token(t) => format!("\n    token: {t:?}"),
        Credentials::None => " {}".to_string(),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: rkube
  cluster:
    server: {server}
    certificate-authority-data: {ca}
contexts:
- name: rkube
  context:
    cluster: rkube
    user: {user:?}
current-context: rkube
users:
- name: {user:?}
  user:{user_body}
preferences: {{}}
",
        ca = STANDARD.encode(ca_pem),
    )
}

/// Writes a kubeconfig to `path` (owner-only permissions), atomically.
pub fn write_text(path: &Path, text: &str) -> std::io::Result<()> {
    crate::pki::write_private(path, text).map_err(|e| match e {
        crate::pki::PkiError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfigs_parse_as_yaml_with_embedded_data() {
        let text = render(
            "https://127.0.0.1:6443",
            "CA",
            "admin",
            &Credentials::Certificate {
                cert_pem: "C".into(),
                key_pem: "K".into(),
            },
        );
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            STANDARD.encode("CA")
        );
        assert_eq!(
            v["users"][0]["user"]["client-key-data"],
            STANDARD.encode("K")
        );
        assert_eq!(v["users"][0]["name"], "admin");
        let t = render(
            "https://h",
            "CA",
            "system:serviceaccount:a:b",
            &Credentials::Token("x.y".into()),
        );
        let v: serde_json::Value = serde_saphyr::from_str(&t).unwrap();
        assert_eq!(v["users"][0]["user"]["token"], "x.y");
        let a = render("https://h", "CA", "anonymous", &Credentials::None);
        let v: serde_json::Value = serde_saphyr::from_str(&a).unwrap();
        assert!(v["users"][0]["user"].as_object().unwrap().is_empty());
    }
}

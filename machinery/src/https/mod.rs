//! HTTPS for rkube's servers and their clients, shared by the API server and the kubelet: rustls
//! server configurations that ask for (and verify) client certificates of a CA, client
//! configurations that verify a server against a CA or — as Kubernetes' API server does with
//! kubelets unless told a CA — skip verification, PEM files (read, written owner-only), bearer
//! tokens of `Authorization` headers, an x509 subject reader ([`x509`]), the accept loop
//! that serves an axum router over TLS ([`serve`]) and the relay of upgraded connections
//! (exec, attach, port-forward streams; [`upgrade`]).

pub mod serve;
pub mod upgrade;
pub mod x509;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use serve::serve;

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificates or keys.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client CA could not be used to verify client certificates.
    #[error("client CA: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

fn pem_error(path: &Path, message: impl ToString) -> HttpsError {
    HttpsError::Pem {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// The certificates of a PEM file (a chain, or a CA bundle), at least one.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, HttpsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, e))
}

/// The certificates of a PEM text (`what` names it in errors).
pub fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, HttpsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(Path::new(what), e))?;
    if certs.is_empty() {
        return Err(pem_error(Path::new(what), "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key of a PEM text (`what` names it in errors).
pub fn parse_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, HttpsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| pem_error(Path::new(what), e))
}

/// Writes `text` to `path` with mode 0600, atomically (keys, kubeconfigs).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(certs: &[CertificateDer<'static>]) -> Result<rustls::RootCertStore, HttpsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c.clone())?;
    }
    Ok(roots)
}

/// A server configuration serving `chain` with `key`, h2 and HTTP/1.1 by ALPN. With
/// `client_ca`, clients are asked for a certificate, and one they present must verify against
/// it (clients without one are let through, to authenticate otherwise or be refused by the
/// handlers).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&[CertificateDer<'static>]>,
) -> Result<rustls::ServerConfig, HttpsError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut cfg = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider,
            )
            .allow_unauthenticated()
            .build()?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)?
        }
        None => builder.with_no_client_auth().with_single_cert(chain, key)?,
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// How a client checks the server's certificate.
#[derive(Clone, Debug)]
pub enum ServerTrust {
    /// It must verify against these CA certificates and name the host connected to.
    Roots(Vec<CertificateDer<'static>>),
    /// Anything is accepted (the connection is encrypted, the server not authenticated) — what
    /// Kubernetes' API server does with kubelets without `--kubelet-certificate-authority`.
    InsecureSkipVerify,
}

/// A client configuration: the server checked per `trust`, `identity` (certificate chain
/// and key) presented when asked for.
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, HttpsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match trust {
        ServerTrust::Roots(ca) => builder.with_root_certificates(roots(ca)?),
        ServerTrust::InsecureSkipVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipServerVerification(provider))),
    };
    Ok(match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    })
}

/// Accepts any server certificate (signatures of the handshake are still checked, so the
/// key exchange is with the certificate's key holder).
#[derive(Debug)]
struct SkipServerVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("c.crt"), dir.path().join("c.key"));
        write_private(&c, &cert.pem()).unwrap();
        write_private(&k, &key.serialize_pem()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&k).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let chain = read_certs(&c).unwrap();
        assert_eq!(chain.len(), 1);
        let key = read_key(&k).unwrap();
        server_config(chain.clone(), key.clone_key(), Some(&chain)).unwrap();
        server_config(chain.clone(), key.clone_key(), None).unwrap();
        client_config(&ServerTrust::Roots(chain.clone()), Some((chain, key))).unwrap();
        client_config(&ServerTrust::InsecureSkipVerify, None).unwrap();
        assert!(read_certs(&k).is_err(), "a key file holds no certificate");
        assert!(read_key(&dir.path().join("missing")).is_err());
        assert!(parse_certs("junk", "inline").is_err());
    }
}

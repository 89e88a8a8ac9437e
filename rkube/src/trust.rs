//! How an agent comes to trust its server before it has any credential: the join token names
//! the cluster CA by hash, the API server sends that CA in its TLS chain (serving certificate,
//! then CA — the usual serving chain), and a TLS handshake is accepted only when a certificate
//! of the presented chain has that hash ([`crate::token::ca_hash`]) *and* the serving
//! certificate verifies against it for the host connected to. Only then is the CA taken; the
//! token is sent later, on connections verified against that CA — never on an unverified one.
//! (k3s fetches `/cacerts` over an unverified connection and compares hashes; here the pinned
//! CA is also the handshake's trust anchor, so nothing is read from a server not yet trusted.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::token::ca_hash;

/// How long connecting and the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server is not trusted, or not reached.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The server URL is unusable.
    #[error("--server {url:?}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Host and port.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server's chain holds no CA of the token's hash.
    #[error(
        "the server's certificate chain has no CA with the token's hash {expected}: the token \
         is for another cluster, or the server's CA changed (its chain: {chain}); nothing was sent"
    )]
    WrongCa {
        /// The token's hash.
        expected: String,
        /// The hashes of the presented certificates.
        chain: String,
    },
    /// The server sent its serving certificate only.
    #[error(
        "the server sent no CA certificate in its TLS chain, so the token's CA hash cannot be \
         checked (is it an rkube server?); nothing was sent"
    )]
    NoCa,
    /// The CA matches but the serving certificate does not verify against it.
    #[error(
        "the server's certificate is not valid for {host} under the token's CA: {reason} \
         (start the server with --tls-san {host}); nothing was sent"
    )]
    Certificate {
        /// The host connected to.
        host: String,
        /// Why.
        reason: String,
    },
    /// The handshake failed otherwise.
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        /// Host and port.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The server's host (for SNI and the certificate check) and port, from an `https://` URL.
pub fn host_port(url: &str) -> Result<(String, u16), TrustError> {
    let err = |message: &str| TrustError::Url {
        url: url.into(),
        message: message.into(),
    };
    let uri: http::Uri = url.parse().map_err(|_| err("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(err("must be an https:// URL, e.g. https://SERVER:6443"));
    }
    let host = uri.host().ok_or_else(|| err("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

/// What the pinning verifier saw.
#[derive(Debug, Default)]
struct Seen {
    ca: Option<CertificateDer<'static>>,
    failure: Option<TrustError>,
}

/// A server certificate verifier that trusts only a CA of the chain with a given hash.
#[derive(Debug)]
struct PinnedCa {
    hash: String,
    host: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    seen: Mutex<Seen>,
}

impl PinnedCa {
    fn reject(&self, failure: TrustError) -> rustls::Error {
        let message = failure.to_string();
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).failure = Some(failure);
        rustls::Error::General(message)
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .chain(std::iter::once(end_entity))
            .find(|c| ca_hash(c) == self.hash);
        let Some(ca) = ca else {
            if intermediates.is_empty() {
                return Err(self.reject(TrustError::NoCa));
            }
            let chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| ca_hash(c))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(self.reject(TrustError::WrongCa {
                expected: self.hash.clone(),
                chain,
            }));
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned()).map_err(|e| {
            self.reject(TrustError::Certificate {
                host: self.host.clone(),
                reason: format!("the CA is unusable: {e}"),
            })
        })?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| {
            self.reject(TrustError::Certificate {
                host: self.host.clone(),
                reason: e.to_string(),
            })
        })?;
        let verified = verifier
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| {
                self.reject(TrustError::Certificate {
                    host: self.host.clone(),
                    reason: e.to_string(),
                })
            })?;
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).ca = Some(ca.clone().into_owned());
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server's CA, as the token pins it.
#[derive(Clone, Debug)]
pub struct TrustedServer {
    /// The CA certificate (DER).
    pub ca_der: Vec<u8>,
}

/// Connects to the server at `url`, completes a TLS handshake that accepts only a chain with
/// a CA of hash `ca_hash` verifying the server for its host, and returns that CA. No HTTP
/// request is made.
pub async fn discover_ca(url: &str, ca_hash: &str) -> Result<TrustedServer, TrustError> {
    let (host, port) = host_port(url)?;
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let connect_err = |source| TrustError::Connect {
        addr: addr.clone(),
        source,
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
        .map_err(connect_err)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCa {
        hash: ca_hash.to_ascii_lowercase(),
        host: host.clone(),
        provider: provider.clone(),
        seen: Mutex::new(Seen::default()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Handshake {
            addr: addr.clone(),
            source: std::io::Error::other(e),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| TrustError::Url {
        url: url.into(),
        message: e.to_string(),
    })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let result = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await;
    let mut seen = std::mem::take(&mut *verifier.seen.lock().unwrap_or_else(|e| e.into_inner()));
    let handshake_err = |source| TrustError::Handshake {
        addr: addr.clone(),
        source,
    };
    match result {
        Err(_) => Err(handshake_err(std::io::ErrorKind::TimedOut.into())),
        Ok(Err(e)) => Err(seen.failure.take().unwrap_or_else(|| handshake_err(e))),
        Ok(Ok(mut tls)) => {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
            match seen.ca {
                Some(ca) => Ok(TrustedServer {
                    ca_der: ca.to_vec(),
                }),
                // The verifier accepted nothing it did not record; unreachable in practice.
                None => Err(TrustError::NoCa),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            host_port("https://10.0.0.1:6443").unwrap(),
            ("10.0.0.1".into(), 6443)
        );
        assert_eq!(
            host_port("https://server.lab").unwrap(),
            ("server.lab".into(), 443)
        );
        assert_eq!(
            host_port("https://[fd00::1]:6443").unwrap(),
            ("fd00::1".into(), 6443)
        );
        let e = host_port("http://10.0.0.1:6443").unwrap_err().to_string();
        assert!(e.contains("must be an https:// URL"), "{e}");
        assert!(host_port("10.0.0.1:6443").is_err());
    }
}

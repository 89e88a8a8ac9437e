//! The kubelet's TLS: its serving certificate — `--tls-cert-file`/`--tls-private-key-file`,
//! or, as Kubernetes' kubelet does without them, a self-signed one for the node's names and
//! addresses kept in the cert dir (`kubelet.crt`, `kubelet.key`; made at the first start and
//! again when it nears expiry) — and the CA client certificates must verify against
//! (`--client-ca-file`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rkube_machinery::https::{self, HttpsError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServingConfig;

/// Validity of a self-signed serving certificate.
const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A self-signed certificate expiring within this time is made anew.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why the kubelet's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file is unusable.
    #[error(transparent)]
    Https(#[from] HttpsError),
    /// Only one of `--tls-cert-file` and `--tls-private-key-file` was given.
    #[error("--tls-cert-file and --tls-private-key-file must be given together")]
    HalfPair,
    /// The self-signed certificate could not be made.
    #[error("making a self-signed serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The self-signed certificate could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a self-signed certificate names: the node's DNS names and IP addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// The subject's CN.
    pub common_name: String,
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
}

impl Names {
    /// The node's: its name and host name, `localhost`, its IPs and loopback.
    pub fn of_node(node_name: &str, hostname: Option<&str>, ips: &[IpAddr]) -> Self {
        let mut n = Names {
            common_name: node_name.to_string(),
            ..Default::default()
        };
        for d in [Some(node_name), hostname, Some("localhost")]
            .into_iter()
            .flatten()
        {
            let d = d.to_ascii_lowercase();
            if !d.is_empty() && !n.dns.contains(&d) {
                n.dns.push(d);
            }
        }
        for ip in ips.iter().copied().chain([
            IpAddr::from([127, 0, 0, 1]),
            "::1".parse().expect("valid IP"),
        ]) {
            if !ip.is_unspecified() && !n.ips.contains(&ip) {
                n.ips.push(ip);
            }
        }
        n
    }
}

/// The rustls server configuration of the kubelet's port: its serving certificate, and client
/// certificates of `--client-ca-file` asked for (not required: bearer tokens authenticate
/// too).
pub fn server_config(
    serving: &ServingConfig,
    data_dir: &Path,
    names: &Names,
) -> Result<rustls::ServerConfig, TlsError> {
    let (chain, key) = match (&serving.tls_cert_file, &serving.tls_private_key_file) {
        (Some(cert), Some(key)) => (https::read_certs(cert)?, https::read_key(key)?),
        (None, None) => {
            let dir = serving
                .cert_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("pki"));
            self_signed(&dir, names)?
        }
        _ => return Err(TlsError::HalfPair),
    };
    let client_ca = serving
        .client_ca_file
        .as_deref()
        .map(https::read_certs)
        .transpose()?;
    Ok(https::server_config(chain, key, client_ca.as_deref())?)
}

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The self-signed certificate in `dir`, made (or made anew, when it nears expiry or cannot
/// be read) for `names`.
pub fn self_signed(dir: &Path, names: &Names) -> Result<Pair, TlsError> {
    let cert_path = dir.join("kubelet.crt");
    let key_path = dir.join("kubelet.key");
    if let Ok(pair) = read_fresh(&cert_path, &key_path) {
        return Ok(pair);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.dns.clone())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let stamp = jiff::Timestamp::now().as_second();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{}@{stamp}", names.common_name),
    );
    params
        .subject_alt_names
        .extend(names.ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let start = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    params.not_before = start;
    params.not_after = start + SELF_SIGNED_VALIDITY;
    let cert = params.self_signed(&key)?;
    https::write_private(&key_path, &key.serialize_pem()).map_err(io(&key_path))?;
    https::write_private(&cert_path, &cert.pem()).map_err(io(&cert_path))?;
    tracing::info!(cert = %cert_path.display(), names = ?names.dns, ips = ?names.ips,
        "made a self-signed serving certificate");
    Ok(read_fresh(&cert_path, &key_path)?)
}

/// The pair in these files, unless it expires within [`RENEW_BEFORE`].
fn read_fresh(cert_path: &Path, key_path: &Path) -> Result<Pair, HttpsError> {
    let chain = https::read_certs(cert_path)?;
    let key = https::read_key(key_path)?;
    let expires = https::x509::not_after(&chain[0]).map_err(|e| HttpsError::Pem {
        path: cert_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let renew = time::Duration::try_from(RENEW_BEFORE).unwrap_or_default();
    if expires < time::OffsetDateTime::now_utc() + renew {
        return Err(HttpsError::Pem {
            path: cert_path.to_path_buf(),
            message: "expires soon".into(),
        });
    }
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_are_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let names = Names::of_node("n1", Some("host-a"), &["10.0.0.5".parse().unwrap()]);
        assert_eq!(names.dns, ["n1", "host-a", "localhost"]);
        assert_eq!(names.ips.len(), 3);
        let serving = ServingConfig::default();
        server_config(&serving, dir.path(), &names).unwrap();
        let cert = dir.path().join("pki").join("kubelet.crt");
        let first = std::fs::read_to_string(&cert).unwrap();
        let der = https::x509::pem_der(&first).unwrap();
        let subject = https::x509::subject_of(&der).unwrap();
        assert!(subject.common_name.starts_with("n1@"), "{subject:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("pki").join("kubelet.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A restart keeps it.
        server_config(&serving, dir.path(), &names).unwrap();
        assert_eq!(std::fs::read_to_string(&cert).unwrap(), first);
        // An unreadable one is made anew.
        std::fs::write(&cert, "junk").unwrap();
        server_config(&serving, dir.path(), &names).unwrap();
        assert_ne!(std::fs::read_to_string(&cert).unwrap(), first);
        // Given files are used as they are; half a pair is an error.
        let given = ServingConfig {
            tls_cert_file: Some(cert.clone()),
            tls_private_key_file: Some(dir.path().join("pki").join("kubelet.key")),
            client_ca_file: Some(cert.clone()),
            cert_dir: Some(dir.path().join("unused")),
            ..Default::default()
        };
        server_config(&given, dir.path(), &names).unwrap();
        assert!(!dir.path().join("unused").exists());
        let half = ServingConfig {
            tls_cert_file: Some(cert),
            ..Default::default()
        };
        assert!(matches!(
            server_config(&half, dir.path(), &names),
            Err(TlsError::HalfPair)
        ));
    }
}

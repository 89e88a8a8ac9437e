//! The cluster's PKI under `DATA/pki/`: a cluster CA, the API server's serving certificate (with
//! SANs for its addresses, names and the `kubernetes` Service ClusterIP), the admin client
//! certificate (CN=admin, O=system:masters) and the ServiceAccount token signing key. Everything
//! is created at the first start (ECDSA P-256, files 0600) and reused afterwards; the serving
//! certificate is re-issued when its SANs change or it nears expiry, a client certificate when it
//! nears expiry. Rotation of the CA: stop the server, delete `DATA/pki/`, start again (every
//! client certificate and token issued before is then void).
//!
//! Client certificates name the user in the subject's CN and the groups in its O attributes;
//! [`subject_of`] reads them back from a verified peer certificate.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rkube_machinery::https::x509::{self, Subject, issuer_cn, not_after, subject_of};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The CA's subject CN (the CA is re-created with the same name when loaded from disk).
const CA_NAME: &str = "rkube-ca";
/// Leaf certificates are re-issued when they expire within this time.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Validity of the CA.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Validity of leaf certificates.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why the PKI could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Certificate or key generation failed.
    #[error("cannot create {what}: {source}")]
    Generate {
        /// What was being created.
        what: String,
        /// The error.
        source: rcgen::Error,
    },
    /// A stored key or certificate is unreadable.
    #[error("{path} is not a valid {what}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What it should be.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A DER certificate could not be parsed.
    #[error(transparent)]
    Der(#[from] x509::X509Error),
    /// A client certificate can name at most two groups (see [`Pki::issue_client`]).
    #[error(
        "a client certificate can carry at most two groups (O attributes), not {0}; use a token for more"
    )]
    TooManyGroups(usize),
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
}

/// What the serving certificate must name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServingNames {
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
}

impl ServingNames {
    /// The usual names: localhost, 127.0.0.1, ::1, `kubernetes` and its service DNS names, the
    /// host name, the listen address (every address of the host's interfaces when it is
    /// `0.0.0.0` or `::`), the `kubernetes` Service ClusterIP, and `extra` (IPs or names from
    /// `--tls-san`).
    pub fn standard(listen: IpAddr, service_ip: Option<IpAddr>, extra: &[String]) -> Self {
        let mut n = ServingNames::default();
        for d in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            n.add_name(d);
        }
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname")
            && !host.trim().is_empty()
        {
            n.add_name(host.trim());
        }
        n.add_ip("127.0.0.1".parse().expect("valid IP"));
        n.add_ip("::1".parse().expect("valid IP"));
        if listen.is_unspecified() {
            for ip in interface_addresses() {
                n.add_ip(ip);
            }
        } else {
            n.add_ip(listen);
        }
        if let Some(ip) = service_ip {
            n.add_ip(ip);
        }
        for e in extra {
            match e.parse::<IpAddr>() {
                Ok(ip) => n.add_ip(ip),
                Err(_) => n.add_name(e),
            }
        }
        n
    }

    /// Adds a DNS name (once).
    pub fn add_name(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        if !self.dns.contains(&name) {
            self.dns.push(name);
        }
    }

    /// Adds an IP address (once).
    pub fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    /// A stable one-line description (stored beside the certificate to detect changes).
    fn fingerprint(&self) -> String {
        let mut parts: Vec<String> = self.dns.clone();
        parts.extend(self.ips.iter().map(IpAddr::to_string));
        parts.sort();
        parts.join(",")
    }
}

/// The addresses of the host's interfaces (IPv6 link-local ones left out).
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let sa = a.address?;
            if let Some(v4) = sa.as_sockaddr_in() {
                return Some(IpAddr::V4(v4.ip()));
            }
            let v6 = sa.as_sockaddr_in6()?.ip();
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            (!link_local).then_some(IpAddr::V6(v6))
        })
        .collect()
}

/// The cluster CA and the files of the PKI directory.
pub struct Pki {
    dir: PathBuf,
    ca_pem: String,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        what: what.to_string(),
        source,
    }
}

/// Writes `text` to `path` with mode 0600, atomically.
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    rkube_machinery::https::write_private(path, text).map_err(io_err(path))
}

fn read_opt(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn leaf_params(
    cn: &str,
    orgs: &[String],
    validity: Duration,
) -> Result<CertificateParams, PkiError> {
    use rkube_machinery::certificates as certs;
    let mut p = CertificateParams::default();
    p.distinguished_name =
        certs::subject(cn, orgs).map_err(|_| PkiError::TooManyGroups(orgs.len()))?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let start = now() - time::Duration::minutes(5);
    p.not_before = start;
    p.not_after = start + validity;
    p.serial_number = Some(certs::random_serial());
    Ok(p)
}

impl Pki {
    /// Loads the CA from `dir` (normally `DATA/pki`), creating the directory and the CA at the
    /// first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err(dir))?;
        }
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        let params = ca_params();
        match (read_opt(&cert_path)?, read_opt(&key_path)?) {
            (Some(ca_pem), Some(key_pem)) => {
                let ca_key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Invalid {
                    path: key_path.display().to_string(),
                    what: "private key",
                    message: e.to_string(),
                })?;
                pem_der(&ca_pem, &cert_path)?;
                Ok(Self {
                    dir: dir.to_path_buf(),
                    ca_pem,
                    ca_params: params,
                    ca_key,
                })
            }
            _ => {
                let ca_key = KeyPair::generate().map_err(gen_err("the CA key"))?;
                let mut p = params.clone();
                let start = now() - time::Duration::minutes(5);
                p.not_before = start;
                p.not_after = start + CA_VALIDITY;
                let cert = p.self_signed(&ca_key).map_err(gen_err("the CA"))?;
                write_private(&key_path, &ca_key.serialize_pem())?;
                write_private(&cert_path, &cert.pem())?;
                tracing::info!(dir = %dir.display(), "created the cluster CA");
                Ok(Self {
                    dir: dir.to_path_buf(),
                    ca_pem: cert.pem(),
                    ca_params: params,
                    ca_key,
                })
            }
        }
    }

    /// The directory of the PKI files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate (DER).
    pub fn ca_der(&self) -> Result<Vec<u8>, PkiError> {
        pem_der(&self.ca_pem, &self.dir.join("ca.crt"))
    }

    fn sign(&self, params: CertificateParams, what: &str) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate().map_err(gen_err(what))?;
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(gen_err(what))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a client certificate for `user` in `groups` (at most two; not stored).
    pub fn issue_client(
        &self,
        user: &str,
        groups: &[String],
        validity: Duration,
    ) -> Result<IssuedCert, PkiError> {
        if groups.len() > 2 {
            return Err(PkiError::TooManyGroups(groups.len()));
        }
        let mut p = leaf_params(user, groups, validity)?;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(p, &format!("a client certificate for {user}"))
    }

    /// Issues a serving certificate for `names` (not stored).
    pub fn issue_serving(&self, cn: &str, names: &ServingNames) -> Result<IssuedCert, PkiError> {
        let mut p = leaf_params(cn, &[], LEAF_VALIDITY)?;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        for d in &names.dns {
            let name = d
                .as_str()
                .try_into()
                .map_err(gen_err(&format!("the SAN {d}")))?;
            p.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &names.ips {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        self.sign(p, "the serving certificate")
    }

    /// A stored certificate pair `<name>.crt`/`<name>.key` if it is still valid for a while and
    /// was issued by this CA with `tag` (stored as `<name>.tag`); else a new one from `issue`,
    /// stored.
    fn stored(
        &self,
        name: &str,
        tag: &str,
        client: bool,
        issue: impl FnOnce() -> Result<IssuedCert, PkiError>,
    ) -> Result<IssuedCert, PkiError> {
        let cert_path = self.dir.join(format!("{name}.crt"));
        let key_path = self.dir.join(format!("{name}.key"));
        let tag_path = self.dir.join(format!("{name}.tag"));
        if let (Some(cert_pem), Some(key_pem), Some(stored_tag)) = (
            read_opt(&cert_path)?,
            read_opt(&key_path)?,
            read_opt(&tag_path)?,
        ) && stored_tag == tag
        {
            let der = pem_der(&cert_pem, &cert_path)?;
            let fresh = not_after(&der).is_ok_and(|t| {
                t > now() + time::Duration::try_from(RENEW_BEFORE).unwrap_or_default()
            });
            let ours = issuer_cn(&der).is_ok_and(|cn| cn == CA_NAME)
                && verify_issued_by(&der, &self.ca_der()?, client);
            if fresh && ours {
                return Ok(IssuedCert { cert_pem, key_pem });
            }
        }
        let issued = issue()?;
        write_private(&key_path, &issued.key_pem)?;
        write_private(&cert_path, &issued.cert_pem)?;
        write_private(&tag_path, tag)?;
        tracing::info!(certificate = name, "issued a certificate");
        Ok(issued)
    }

    /// The serving certificate for `names`, reused from `apiserver.crt` when it still matches.
    pub fn serving(&self, names: &ServingNames) -> Result<IssuedCert, PkiError> {
        self.serving_stored("apiserver", "kube-apiserver", names)
    }

    /// A serving certificate (subject CN `cn`) for `names` kept as `<name>.crt`/`<name>.key`,
    /// reused while it is valid and names the same: e.g. a kubelet's, issued by the cluster CA.
    pub fn serving_stored(
        &self,
        name: &str,
        cn: &str,
        names: &ServingNames,
    ) -> Result<IssuedCert, PkiError> {
        let tag = format!("{cn}/{}", names.fingerprint());
        self.stored(name, &tag, false, || self.issue_serving(cn, names))
    }

    /// The admin client certificate (CN=admin, O=system:masters), reused from `admin.crt`.
    pub fn admin(&self) -> Result<IssuedCert, PkiError> {
        self.stored("admin", "admin/system:masters", true, || {
            self.issue_client("admin", &["system:masters".to_string()], LEAF_VALIDITY)
        })
    }

    /// A client certificate for `user` in `groups` kept as `<name>.crt`/`<name>.key` (reused
    /// while valid, like the admin's): the components' identities.
    pub fn client_stored(
        &self,
        name: &str,
        user: &str,
        groups: &[String],
    ) -> Result<IssuedCert, PkiError> {
        let tag = format!("{user}/{}", groups.join(","));
        self.stored(name, &tag, true, || {
            self.issue_client(user, groups, LEAF_VALIDITY)
        })
    }

    /// The ServiceAccount token signing key (PKCS#8 DER), created at the first start.
    pub fn service_account_key(&self) -> Result<Vec<u8>, PkiError> {
        let path = self.dir.join("sa.key");
        if let Some(pem) = read_opt(&path)? {
            let key = KeyPair::from_pem(&pem).map_err(|e| PkiError::Invalid {
                path: path.display().to_string(),
                what: "private key",
                message: e.to_string(),
            })?;
            return Ok(key.serialize_der());
        }
        let key = KeyPair::generate().map_err(gen_err("the service account key"))?;
        write_private(&path, &key.serialize_pem())?;
        Ok(key.serialize_der())
    }
}

/// The DER of the first `CERTIFICATE` block of a PEM text (`path` names it in errors).
pub fn pem_der(pem: &str, path: &Path) -> Result<Vec<u8>, PkiError> {
    x509::pem_der(pem).map_err(|e| PkiError::Invalid {
        path: path.display().to_string(),
        what: "PEM certificate",
        message: e.to_string(),
    })
}

/// Whether `der` verifies as a certificate issued by the CA `ca_der`, for its purpose (a
/// client certificate when `client`, else a serving certificate).
pub fn verify_issued_by(der: &[u8], ca_der: &[u8], client: bool) -> bool {
    use rustls::pki_types::{CertificateDer, UnixTime};

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(CertificateDer::from(ca_der.to_vec())).is_err() {
        return false;
    }
    let cert = CertificateDer::from(der.to_vec());
    if client {
        let Ok(verifier) = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build() else {
            return false;
        };
        verifier
            .verify_client_cert(&cert, &[], UnixTime::now())
            .is_ok()
    } else {
        let Ok(parsed) = rustls::server::ParsedCertificate::try_from(&cert) else {
            return false;
        };
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &[],
            UnixTime::now(),
            provider.signature_verification_algorithms.all,
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let names = ServingNames::standard(
            "10.1.2.3".parse().unwrap(),
            Some("10.96.0.1".parse().unwrap()),
            &["rkube.example".into(), "192.0.2.7".into()],
        );
        let serving = pki.serving(&names).unwrap();
        let admin = pki.admin().unwrap();
        for f in [
            "ca.crt",
            "ca.key",
            "apiserver.crt",
            "apiserver.key",
            "admin.key",
        ] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        // A restart reuses everything.
        let again = Pki::load_or_create(dir.path()).unwrap();
        assert_eq!(again.ca_pem(), pki.ca_pem());
        assert_eq!(again.serving(&names).unwrap().cert_pem, serving.cert_pem);
        assert_eq!(again.admin().unwrap().cert_pem, admin.cert_pem);
        // Listening on every address: the interfaces' addresses are named.
        let all = ServingNames::standard("0.0.0.0".parse().unwrap(), None, &[]);
        assert!(all.ips.contains(&"127.0.0.1".parse().unwrap()));
        assert!(!all.ips.iter().any(IpAddr::is_unspecified));
        // Other SANs: a new serving certificate.
        let other = ServingNames::standard("10.1.2.4".parse().unwrap(), None, &[]);
        assert_ne!(again.serving(&other).unwrap().cert_pem, serving.cert_pem);
    }

    #[test]
    fn reads_subjects_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let c = pki
            .issue_client(
                "system:node:n1",
                &["system:nodes".into(), "extra".into()],
                Duration::from_secs(3600),
            )
            .unwrap();
        let der = pem_der(&c.cert_pem, Path::new("x")).unwrap();
        let s = subject_of(&der).unwrap();
        assert_eq!(s.common_name, "system:node:n1");
        assert_eq!(s.organizations, ["system:nodes", "extra"]);
        assert_eq!(issuer_cn(&der).unwrap(), CA_NAME);
        let left = not_after(&der).unwrap() - now();
        assert!(left > time::Duration::minutes(50) && left < time::Duration::minutes(61));
        assert!(verify_issued_by(&der, &pki.ca_der().unwrap(), true));
        let other = Pki::load_or_create(&dir.path().join("other")).unwrap();
        assert!(!verify_issued_by(&der, &other.ca_der().unwrap(), true));
        assert!(matches!(
            pki.issue_client("x", &["a".into(), "b".into(), "c".into()], LEAF_VALIDITY),
            Err(PkiError::TooManyGroups(3))
        ));
        assert!(subject_of(b"\x30\x05\x30").is_err());
        assert!(subject_of(b"").is_err());
    }
}

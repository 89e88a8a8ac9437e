//! The `certificates.k8s.io` machinery shared by the API server (CSR validation), the
//! controller manager (approving and signing CSRs) and clients asking for certificates (an
//! agent joining a cluster): the well-known signer names and key usages, PKCS#10 certificate
//! requests (parsed with their signature verified; built from a key), client and serving
//! certificate names (CN = user, each O a group), and a CA that signs requests as
//! Kubernetes' `csrsigning` controller does.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;

/// A private key (rcgen's), to make requests with [`request_pem`].
pub use rcgen::KeyPair;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};

/// Signs client certificates the API server accepts (any user except `system:masters`
/// members — the API server refuses such requests).
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Signs kubelets' client certificates (`system:node:<name>` in `system:nodes`).
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Signs kubelets' serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// The pre-v1 signer, refused by `certificates.k8s.io/v1`.
pub const LEGACY_UNKNOWN: &str = "kubernetes.io/legacy-unknown";

/// The key usages a CSR may ask for (`spec.usages`), Kubernetes' names.
pub const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The shortest lifetime a CSR may ask for (`spec.expirationSeconds`).
pub const MIN_EXPIRATION_SECONDS: i32 = 600;

/// How far back a signed certificate's validity starts (clock skew between machines).
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why a request or certificate could not be read, made or signed.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// No `CERTIFICATE REQUEST` PEM block.
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotARequest,
    /// The request's DER is malformed.
    #[error("malformed certificate request: {0}")]
    Malformed(String),
    /// The request is not signed by the key it carries.
    #[error("the certificate request's signature does not verify: {0}")]
    Signature(String),
    /// A PEM `CERTIFICATE` block is missing or unreadable.
    #[error("{0}")]
    Certificate(String),
    /// More organizations (groups) than a certificate made here can carry.
    #[error("a certificate can carry at most two organizations (groups), not {0}")]
    TooManyOrganizations(usize),
    /// A key usage is not one Kubernetes knows.
    #[error("unknown key usage {0:?}")]
    Usage(String),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// rcgen could not build or sign.
    #[error("{what}: {source}")]
    Rcgen {
        /// What was being done.
        what: String,
        /// The error.
        source: rcgen::Error,
    },
}

fn rcgen_err(what: &str) -> impl FnOnce(rcgen::Error) -> CertificateError + '_ {
    move |source| CertificateError::Rcgen {
        what: what.to_string(),
        source,
    }
}

/// A verified PKCS#10 certificate request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The subject's common names (normally one).
    pub common_names: Vec<String>,
    /// The subject's organizations, in order.
    pub organizations: Vec<String>,
    /// Whether the subject holds attributes other than CN and O.
    pub other_subject_attributes: bool,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// E-mail SANs.
    pub email_addresses: Vec<String>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// The subject public key info (DER).
    spki: Vec<u8>,
}

impl CertificateRequest {
    /// The subject's CN (empty when there is none).
    pub fn common_name(&self) -> &str {
        self.common_names.first().map_or("", String::as_str)
    }

    /// Whether the request names any SAN.
    pub fn has_sans(&self) -> bool {
        !(self.dns_names.is_empty()
            && self.ip_addresses.is_empty()
            && self.email_addresses.is_empty()
            && self.uris.is_empty())
    }
}

/// Parses the first `CERTIFICATE REQUEST` block of `pem` and verifies its signature, as
/// Kubernetes validates `spec.request`.
pub fn parse_request(pem: &[u8]) -> Result<CertificateRequest, CertificateError> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;

    let der = CertificateSigningRequestDer::from_pem_slice(pem)
        .map_err(|_| CertificateError::NotARequest)?;
    let (_, csr) = X509CertificationRequest::from_der(der.as_ref())
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    csr.verify_signature()
        .map_err(|e| CertificateError::Signature(e.to_string()))?;
    let info = &csr.certification_request_info;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        a.as_str()
            .map(str::to_string)
            .map_err(|e| CertificateError::Malformed(format!("subject: {e}")))
    };
    let common_names = info
        .subject
        .iter_common_name()
        .map(text)
        .collect::<Result<Vec<_>, _>>()?;
    let organizations = info
        .subject
        .iter_organization()
        .map(text)
        .collect::<Result<Vec<_>, _>>()?;
    let attributes = info.subject.iter_attributes().count();
    let mut req = CertificateRequest {
        other_subject_attributes: attributes != common_names.len() + organizations.len(),
        common_names,
        organizations,
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        email_addresses: Vec::new(),
        uris: Vec::new(),
        spki: info.subject_pki.raw.to_vec(),
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = ext else {
            continue;
        };
        for name in &san.general_names {
            match name {
                GeneralName::DNSName(d) => req.dns_names.push(d.to_string()),
                GeneralName::RFC822Name(e) => req.email_addresses.push(e.to_string()),
                GeneralName::URI(u) => req.uris.push(u.to_string()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes")),
                        16 => IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes")),
                        n => {
                            return Err(CertificateError::Malformed(format!(
                                "an IP address SAN of {n} bytes"
                            )));
                        }
                    };
                    req.ip_addresses.push(ip);
                }
                _ => {}
            }
        }
    }
    Ok(req)
}

/// Checks `status.certificate` as Kubernetes does: one or more `CERTIFICATE` PEM blocks, each
/// a parseable X.509 certificate.
pub fn check_certificate_pem(pem: &[u8]) -> Result<(), CertificateError> {
    use x509_parser::prelude::FromDer;
    let mut n = 0;
    for block in CertificateDer::pem_slice_iter(pem) {
        let der = block.map_err(|e| CertificateError::Certificate(format!("invalid PEM: {e}")))?;
        x509_parser::certificate::X509Certificate::from_der(der.as_ref()).map_err(|e| {
            CertificateError::Certificate(format!("block {n} is not a certificate: {e}"))
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(CertificateError::Certificate(
            "must contain at least one CERTIFICATE PEM block".into(),
        ));
    }
    Ok(())
}

/// What a certificate names and allows: subject, SANs, expiry, extended key usages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's CN.
    pub common_name: String,
    /// The subject's organizations.
    pub organizations: Vec<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// The end of its validity.
    pub not_after: time::OffsetDateTime,
    /// Extended key usage client auth.
    pub client_auth: bool,
    /// Extended key usage server auth.
    pub server_auth: bool,
}

/// Reads the first `CERTIFICATE` block of `pem` (e.g. a CSR's `status.certificate`).
pub fn certificate_info(pem: &[u8]) -> Result<CertificateInfo, CertificateError> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let bad = |e: String| CertificateError::Certificate(e);
    let der = CertificateDer::from_pem_slice(pem).map_err(|e| bad(format!("invalid PEM: {e}")))?;
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(der.as_ref())
        .map_err(|e| bad(format!("not a certificate: {e}")))?;
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let mut info = CertificateInfo {
        common_name: strings(&mut x.subject().iter_common_name())
            .into_iter()
            .next()
            .unwrap_or_default(),
        organizations: strings(&mut x.subject().iter_organization()),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        not_after: x.validity().not_after.to_datetime(),
        client_auth: false,
        server_auth: false,
    };
    if let Ok(Some(eku)) = x.extended_key_usage() {
        info.client_auth = eku.value.client_auth;
        info.server_auth = eku.value.server_auth;
    }
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => info.dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => info
                    .ip_addresses
                    .push(IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes"))),
                GeneralName::IPAddress(b) if b.len() == 16 => info
                    .ip_addresses
                    .push(IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes"))),
                _ => {}
            }
        }
    }
    Ok(info)
}

/// The OID of the organization attribute, for a second O (rcgen keys subject attributes by
/// type, so further ones go in as a custom type with the same OID).
const OID_O_ARCS: &[u64] = &[2, 5, 4, 10];

/// A subject of CN `cn` and one O per group — how Kubernetes reads a client certificate's
/// user and groups. rcgen keeps one value per attribute type, so the second O goes in as a
/// custom type with the O's OID and there is no room for a third.
pub fn subject(cn: &str, organizations: &[String]) -> Result<DistinguishedName, CertificateError> {
    if organizations.len() > 2 {
        return Err(CertificateError::TooManyOrganizations(organizations.len()));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for (i, o) in organizations.iter().enumerate() {
        let ty = if i == 0 {
            DnType::OrganizationName
        } else {
            DnType::CustomDnType(OID_O_ARCS.to_vec())
        };
        dn.push(ty, o.as_str());
    }
    Ok(dn)
}

/// A random positive 128-bit serial number.
pub fn random_serial() -> rcgen::SerialNumber {
    let mut serial = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut serial);
    serial[0] &= 0x7f;
    serial.to_vec().into()
}

/// A PEM `CERTIFICATE REQUEST` for `key`: subject CN `cn` with O `organizations` (at most
/// two), DNS and IP SANs — what a kubelet or an agent sends in a CSR's `spec.request`.
pub fn request_pem(
    key: &KeyPair,
    cn: &str,
    organizations: &[String],
    dns_names: &[String],
    ip_addresses: &[IpAddr],
) -> Result<String, CertificateError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = subject(cn, organizations)?;
    for d in dns_names {
        let name = d
            .as_str()
            .try_into()
            .map_err(rcgen_err(&format!("the DNS name {d}")))?;
        p.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in ip_addresses {
        p.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    p.serialize_request(key)
        .and_then(|r| r.pem())
        .map_err(rcgen_err("the certificate request"))
}

/// The key usages and extended key usages of `usages` (Kubernetes' names).
pub fn key_usages(
    usages: &[String],
) -> Result<(Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>), CertificateError> {
    let mut ku = Vec::new();
    let mut eku = Vec::new();
    for u in usages {
        match u.as_str() {
            "signing" | "digital signature" => ku.push(KeyUsagePurpose::DigitalSignature),
            "content commitment" => ku.push(KeyUsagePurpose::ContentCommitment),
            "key encipherment" => ku.push(KeyUsagePurpose::KeyEncipherment),
            "key agreement" => ku.push(KeyUsagePurpose::KeyAgreement),
            "data encipherment" => ku.push(KeyUsagePurpose::DataEncipherment),
            "cert sign" => ku.push(KeyUsagePurpose::KeyCertSign),
            "crl sign" => ku.push(KeyUsagePurpose::CrlSign),
            "encipher only" => ku.push(KeyUsagePurpose::EncipherOnly),
            "decipher only" => ku.push(KeyUsagePurpose::DecipherOnly),
            "any" => eku.push(ExtendedKeyUsagePurpose::Any),
            "server auth" => eku.push(ExtendedKeyUsagePurpose::ServerAuth),
            "client auth" => eku.push(ExtendedKeyUsagePurpose::ClientAuth),
            "code signing" => eku.push(ExtendedKeyUsagePurpose::CodeSigning),
            "email protection" | "s/mime" => eku.push(ExtendedKeyUsagePurpose::EmailProtection),
            "ipsec end system" => eku.push(ExtendedKeyUsagePurpose::Other(vec![
                1, 3, 6, 1, 5, 5, 7, 3, 5,
            ])),
            "ipsec tunnel" => eku.push(ExtendedKeyUsagePurpose::Other(vec![
                1, 3, 6, 1, 5, 5, 7, 3, 6,
            ])),
            "ipsec user" => eku.push(ExtendedKeyUsagePurpose::Other(vec![
                1, 3, 6, 1, 5, 5, 7, 3, 7,
            ])),
            "timestamping" => eku.push(ExtendedKeyUsagePurpose::TimeStamping),
            "ocsp signing" => eku.push(ExtendedKeyUsagePurpose::OcspSigning),
            "microsoft sgc" => eku.push(ExtendedKeyUsagePurpose::Other(vec![
                1, 3, 6, 1, 4, 1, 311, 10, 3, 3,
            ])),
            "netscape sgc" => eku.push(ExtendedKeyUsagePurpose::Other(vec![
                2, 16, 840, 1, 113_730, 4, 1,
            ])),
            other => return Err(CertificateError::Usage(other.to_string())),
        }
    }
    ku.dedup();
    eku.dedup();
    Ok((ku, eku))
}

/// A certificate authority that signs requests (the cluster CA of `--cluster-signing-*`).
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    not_after: time::OffsetDateTime,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// The CA of a PEM certificate and its PEM private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertificateError> {
        let key = KeyPair::from_pem(key_pem).map_err(rcgen_err("the CA key"))?;
        let der = crate::https::x509::pem_der(cert_pem)
            .map_err(|e| CertificateError::Certificate(format!("the CA certificate: {e}")))?;
        let not_after = crate::https::x509::not_after(&der)
            .map_err(|e| CertificateError::Certificate(format!("the CA certificate: {e}")))?;
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der), key)
            .map_err(rcgen_err("the CA certificate"))?;
        Ok(Self { issuer, not_after })
    }

    /// The CA of the files `cert` and `key` (PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, CertificateError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| CertificateError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        Self::from_pem(&read(cert)?, &read(key)?)
    }

    /// When the CA expires (signed certificates never outlive it).
    pub fn not_after(&self) -> time::OffsetDateTime {
        self.not_after
    }

    /// Signs `req` for `validity` (from now, backdated five minutes, capped at the CA's
    /// expiry): the request's subject and SANs, the key usages of `usages`, not a CA. The
    /// certificate as PEM.
    pub fn sign(
        &self,
        req: &CertificateRequest,
        usages: &[String],
        validity: Duration,
    ) -> Result<String, CertificateError> {
        let (ku, eku) = key_usages(usages)?;
        let public = rcgen::SubjectPublicKeyInfo::from_der(&req.spki)
            .map_err(rcgen_err("the request's public key"))?;
        let mut p = CertificateParams::default();
        p.distinguished_name = subject(req.common_name(), &req.organizations)?;
        for d in &req.dns_names {
            let name = d
                .as_str()
                .try_into()
                .map_err(rcgen_err(&format!("the DNS name {d}")))?;
            p.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &req.ip_addresses {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for e in &req.email_addresses {
            let name = e
                .as_str()
                .try_into()
                .map_err(rcgen_err(&format!("the e-mail address {e}")))?;
            p.subject_alt_names.push(SanType::Rfc822Name(name));
        }
        for u in &req.uris {
            let name = u
                .as_str()
                .try_into()
                .map_err(rcgen_err(&format!("the URI {u}")))?;
            p.subject_alt_names.push(SanType::URI(name));
        }
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = ku;
        p.extended_key_usages = eku;
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - BACKDATE;
        let until = now + validity;
        p.not_after = until.min(self.not_after);
        p.serial_number = Some(random_serial());
        p.use_authority_key_identifier_extension = true;
        let cert = p
            .signed_by(&public, &self.issuer)
            .map_err(rcgen_err("the certificate"))?;
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (CertificateAuthority, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = subject("test-ca", &[]).unwrap();
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).unwrap();
        (
            CertificateAuthority::from_pem(&cert.pem(), &key.serialize_pem()).unwrap(),
            cert.der().to_vec(),
        )
    }

    #[test]
    fn requests_round_trip_and_are_verified() {
        let key = KeyPair::generate().unwrap();
        let pem = request_pem(
            &key,
            "system:node:n1",
            &["system:nodes".into()],
            &["n1".into(), "n1.lab".into()],
            &["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
        )
        .unwrap();
        let r = parse_request(pem.as_bytes()).unwrap();
        assert_eq!(r.common_name(), "system:node:n1");
        assert_eq!(r.organizations, ["system:nodes"]);
        assert!(!r.other_subject_attributes);
        assert_eq!(r.dns_names, ["n1", "n1.lab"]);
        assert_eq!(
            r.ip_addresses,
            [
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert!(r.has_sans());
        // Two groups survive the round trip.
        let two = request_pem(&key, "u", &["a".into(), "b".into()], &[], &[]).unwrap();
        let r2 = parse_request(two.as_bytes()).unwrap();
        assert_eq!(r2.organizations, ["a", "b"]);
        assert!(!r2.has_sans());
        // Not a request, garbage, a tampered signature.
        assert!(matches!(
            parse_request(b"hello"),
            Err(CertificateError::NotARequest)
        ));
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).unwrap();
        let mut bytes = der.as_ref().to_vec();
        let n = bytes.len();
        bytes[n - 3] ^= 0xff;
        let b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        };
        let tampered_pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n"
        );
        assert!(parse_request(tampered_pem.as_bytes()).is_err());
    }

    #[test]
    fn signs_with_the_requested_names_usages_and_lifetime() {
        let (ca, ca_der) = ca();
        let key = KeyPair::generate().unwrap();
        let pem = request_pem(
            &key,
            "system:node:n1",
            &["system:nodes".into()],
            &["n1".into()],
            &["10.0.0.5".parse().unwrap()],
        )
        .unwrap();
        let req = parse_request(pem.as_bytes()).unwrap();
        let cert = ca
            .sign(
                &req,
                &["digital signature".into(), "server auth".into()],
                Duration::from_secs(3600),
            )
            .unwrap();
        check_certificate_pem(cert.as_bytes()).unwrap();
        let info = certificate_info(cert.as_bytes()).unwrap();
        assert_eq!(info.common_name, "system:node:n1");
        assert_eq!(info.organizations, ["system:nodes"]);
        assert_eq!(info.dns_names, ["n1"]);
        assert_eq!(info.ip_addresses, ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(info.server_auth && !info.client_auth);
        let der = crate::https::x509::pem_der(&cert).unwrap();
        let s = crate::https::x509::subject_of(&der).unwrap();
        assert_eq!(s.common_name, "system:node:n1");
        assert_eq!(s.organizations, ["system:nodes"]);
        let left = crate::https::x509::not_after(&der).unwrap() - time::OffsetDateTime::now_utc();
        assert!(left > time::Duration::minutes(59) && left <= time::Duration::minutes(60));
        use x509_parser::prelude::FromDer;
        let (_, x) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        assert!(x.key_usage().unwrap().unwrap().value.digital_signature());
        assert!(!x.is_ca());
        let san = x.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(san.general_names.len(), 2);
        // Issued by the CA: its signature verifies with the CA's key.
        let (_, ca_x) = x509_parser::certificate::X509Certificate::from_der(&ca_der).unwrap();
        x.verify_signature(Some(ca_x.public_key())).unwrap();
        // Never longer than the CA lives.
        let long = ca
            .sign(
                &req,
                &["client auth".into()],
                Duration::from_secs(100 * 365 * 24 * 3600),
            )
            .unwrap();
        let der = crate::https::x509::pem_der(&long).unwrap();
        assert!(crate::https::x509::not_after(&der).unwrap() <= ca.not_after());
        assert!(matches!(
            ca.sign(&req, &["bogus".into()], Duration::from_secs(600)),
            Err(CertificateError::Usage(_))
        ));
    }

    #[test]
    fn certificate_pem_checks() {
        let (ca, _) = ca();
        let key = KeyPair::generate().unwrap();
        let req = parse_request(request_pem(&key, "x", &[], &[], &[]).unwrap().as_bytes()).unwrap();
        let cert = ca
            .sign(&req, &["client auth".into()], Duration::from_secs(600))
            .unwrap();
        check_certificate_pem(format!("note\n{cert}{cert}").as_bytes()).unwrap();
        assert!(check_certificate_pem(b"").is_err());
        assert!(
            check_certificate_pem(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            )
            .is_err()
        );
        assert_eq!(
            key_usages(&["signing".into(), "digital signature".into()])
                .unwrap()
                .0
                .len(),
            1
        );
    }
}
